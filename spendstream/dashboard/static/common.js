// spendstream dashboard helpers. Every value from the API is written with textContent (or
// as an SVG attribute), never parsed as HTML: text from events stays inert.
"use strict";
const SS = (() => {
  const CSRF = { "X-Spendstream-CSRF": "1" };
  const SCALE = 12; // money is summed exactly as BigInt units of 1e-12 USD
  const UNIT = 10n ** BigInt(SCALE);
  const COLORS = ["#2f6fdf", "#e07b39", "#3aa57a", "#c0417a", "#7b5cd6", "#c9a227",
    "#2aa7b8", "#8c6d46", "#6b7a8f", "#d64545"];

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function showError(err) {
    const box = document.getElementById("error");
    box.textContent = err instanceof Error ? err.message : String(err);
    box.hidden = false;
  }
  // 502-504 (storage or broker unavailable): say so (never a traceback, never an
  // empty page as if there were no data) and reload the page once after Retry-After.
  let retrying = false;
  function unavailable(seconds) {
    const err = new Error(`Storage unavailable, retrying in ${seconds} s.`);
    showError(err);
    if (!retrying) {
      retrying = true;
      setTimeout(() => location.reload(), seconds * 1000);
    }
    return err;
  }

  async function call(url, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    if (opts.body !== undefined) Object.assign(headers, CSRF, { "Content-Type": "application/json" });
    Object.assign(headers, opts.headers || {});
    const resp = await fetch(url, {
      method: opts.method || "GET", headers, credentials: "same-origin",
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    if (resp.status === 401 && !opts.noRedirect) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new Error("session expired: log in again");
    }
    if (resp.status === 204) return null;
    if ([502, 503, 504].includes(resp.status)) {
      const seconds = Math.max(1, parseInt(resp.headers.get("Retry-After") || "5", 10) || 5);
      throw unavailable(Math.min(seconds, 60));
    }
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(data.detail || resp.status + " " + resp.statusText);
    return data;
  }

  function api(path, params, options) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      for (const v of Array.isArray(value) ? value : [value]) query.append(key, v);
    }
    const qs = query.toString();
    return call("/api/v1" + path + (qs ? "?" + qs : ""), options);
  }

  // Exact decimals: "12.345" -> BigInt units.
  function units(text) {
    const s = String(text === null || text === undefined ? "0" : text).trim();
    const neg = s.startsWith("-");
    const [whole, frac = ""] = s.replace(/^[-+]/, "").split(".");
    const v = BigInt(whole || "0") * UNIT + BigInt((frac + "0".repeat(SCALE)).slice(0, SCALE));
    return neg ? -v : v;
  }
  function sum(values) { return values.reduce((a, v) => a + units(v), 0n); }
  function exact(u) { // BigInt units -> shortest exact decimal string
    const neg = u < 0n; const a = neg ? -u : u;
    let frac = (a % UNIT).toString().padStart(SCALE, "0").replace(/0+$/, "");
    return (neg ? "-" : "") + (a / UNIT).toString() + (frac ? "." + frac : "");
  }
  // The one money rule (spendstream/money.py): half-up to cents at and above 1, four
  // significant digits below ($0.004200); CSV and JSON keep every digit. Other currencies
  // (converted figures) follow it with their symbol or code: €1,234.57, CHF 0.4567.
  const SYMBOLS = { USD: "$", EUR: "€", GBP: "£", JPY: "¥", INR: "₹" };
  function inCurrency(value, currency) {
    const symbol = SYMBOLS[currency] || currency + " ";
    const u = typeof value === "bigint" ? value : units(value);
    const neg = u < 0n; const a = neg ? -u : u;
    if (a === 0n) return symbol + "0.00";
    let places = 2;
    if (a < UNIT) { // digits of a below one: the first significant one sets the places
      places = SCALE - a.toString().length + 4;
      if (places > SCALE) places = SCALE; // below 1e-12: shown at the unit scale
    }
    const step = 10n ** BigInt(SCALE - places);
    const r = (a + step / 2n) / step;
    const sign = neg ? "-" : "";
    if (places > 2 && r * step >= UNIT) return sign + symbol + "1.00"; // 0.99996 -> 1.00
    const p = 10n ** BigInt(places);
    const whole = (r / p).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return sign + symbol + whole + "." + (r % p).toString().padStart(places, "0");
  }
  function usd(value) { return inCurrency(value, "USD"); }
  // Text for people, the exact figure for tests and tooltips; a converted figure (currency
  // other than USD) carries its rate in the tooltip too.
  function money(node, value, currency, rate) {
    const u = typeof value === "bigint" ? value : units(value);
    const c = currency || "USD";
    node.textContent = inCurrency(u, c);
    node.dataset.exact = exact(u);
    node.title = exact(u) + " " + c + (rate ? " (" + rate + ")" : "");
    return node;
  }
  function pct(value) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(1) + "%";
  }
  function rows(result) {
    return result.rows.map((r) => Object.fromEntries(result.columns.map((c, i) => [c, r[i]])));
  }

  function table(container, columns, records, formats) {
    const fmt = formats || {};
    const t = el("table"); const head = el("tr");
    for (const c of columns) head.append(el("th", c, fmt[c] ? "num" : ""));
    t.append(el("thead")); t.tHead.append(head);
    const body = el("tbody");
    for (const r of records) {
      const tr = el("tr");
      for (const c of columns) {
        const td = el("td", null, fmt[c] ? "num" : "");
        if (fmt[c]) fmt[c](td, r[c], r); else td.textContent = r[c] === null ? "" : String(r[c]);
        tr.append(td);
      }
      body.append(tr);
    }
    t.append(body);
    if (!records.length) { const tr = el("tr"); const td = el("td", "nothing to show", "muted");
      td.colSpan = columns.length; tr.append(td); body.append(tr); }
    container.replaceChildren(t);
    return t;
  }

  function csv(columns, records) {
    const cell = (v) => {
      let s = v === null || v === undefined ? "" : String(v);
      if (/^[=+\-@\t\r]/.test(s)) s = "'" + s; // no formulas when opened in a spreadsheet
      return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    return [columns, ...records.map((r) => columns.map((c) => r[c]))]
      .map((line) => line.map(cell).join(",")).join("\r\n") + "\r\n";
  }
  function download(name, text) {
    const a = el("a");
    a.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    a.download = name; document.body.append(a); a.click(); a.remove();
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }
  // Stacked bars: periods on x, one segment per series (values: BigInt units); optional
  // horizontal reference lines [{ label, value }] (e.g. a budget's pace per bar).
  function stacked(container, periods, series, value, lines) {
    const W = 800, H = 260, B = 24;
    const refs = lines || [];
    const totals = periods.map((p) => series.reduce((a, s) => a + value(p, s), 0n));
    const max = [...totals, ...refs.map((r) => r.value)].reduce((a, v) => (v > a ? v : a), 1n);
    // The y axis's labels, right-aligned in the left margin: the margin grows with the widest
    // (about 6.6 px a character at 11 px) so none is cut at the left edge.
    const ticks = [0, 0.5, 1].map((frac) => [frac, usd((max * BigInt(Math.round(frac * 100))) / 100n)]);
    const L = Math.max(60, Math.ceil(Math.max(...ticks.map(([, text]) => text.length)) * 6.6) + 10);
    // Room above the highest line for its label, which sits above its line.
    const T = refs.length ? 24 : 10;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    const title = svg("title"); title.textContent = "spend over time"; root.append(title);
    const scale = (u) => Number((u * 10000n) / max) / 10000 * (H - B - T);
    for (const [frac, text] of ticks) {
      const y = H - B - frac * (H - B - T);
      root.append(svg("line", { x1: L, x2: W, y1: y, y2: y, stroke: "#d9dee5" }));
      const t = svg("text", { x: L - 6, y: y + 4, "text-anchor": "end", class: "axis-label" });
      t.textContent = text; root.append(t);
    }
    const step = (W - L) / Math.max(periods.length, 1);
    periods.forEach((p, i) => {
      let y = H - B;
      series.forEach((s, j) => {
        const h = scale(value(p, s));
        if (h <= 0) return;
        y -= h;
        const r = svg("rect", { x: L + i * step + 1, y, width: Math.max(step - 2, 1), height: h,
          fill: COLORS[j % COLORS.length] });
        const tip = svg("title"); tip.textContent = `${p} · ${s} · ${usd(value(p, s))}`;
        r.append(tip); root.append(r);
      });
    });
    // Each line's label sits above its line at the right end, away from the y axis and its
    // figures (at the left end a label read as one with the axis figure beside it, and one
    // pushed below its line sat on the $0 row). Lines close together: their labels are pushed
    // apart upwards from the lowest (each stays above its own line), then down again from the
    // top if the highest left the chart. Lines first, labels over them: no dash crosses a label.
    const sorted = [...refs].sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
    const labelYs = sorted.map((ref) => H - B - scale(ref.value) - 4);
    for (const [i, ref] of sorted.entries()) {
      const y = H - B - scale(ref.value);
      const line = svg("line", { x1: L, x2: W, y1: y, y2: y, stroke: "#c62828",
        "stroke-dasharray": "6 4", class: "budget-line" });
      const tip = svg("title"); tip.textContent = `${ref.label}: ${usd(ref.value)}`; line.append(tip);
      root.append(line);
      if (i) labelYs[i] = Math.min(labelYs[i], labelYs[i - 1] - 17); // a 14 px line and a gap
    }
    for (let i = labelYs.length - 1; i >= 0; i--) {
      labelYs[i] = Math.max(labelYs[i], i + 1 < labelYs.length ? labelYs[i + 1] + 17 : 14);
    }
    sorted.forEach((ref, i) => {
      // A white halo keeps the label readable where it crosses a bar.
      const t = svg("text", { x: W - 4, y: labelYs[i], "text-anchor": "end", fill: "#c62828",
        stroke: "#fff", "stroke-width": 3, "paint-order": "stroke", class: "budget-label" });
      t.textContent = `${ref.label} ${usd(ref.value)}`;
      root.append(t);
    });
    // Period labels under their bars; one too close to the right edge ends there instead of
    // running past it.
    const every = Math.ceil(periods.length / 6) || 1;
    periods.forEach((p, i) => {
      if (i % every) return;
      const x = L + i * step;
      const t = svg("text", x > W - 72 ? { x: W, y: H - 6, "text-anchor": "end" } : { x, y: H - 6 });
      t.textContent = String(p).slice(5, 16).replace("T", " ");
      root.append(t);
    });
    container.replaceChildren(root);
  }
  function legend(container, series) {
    container.replaceChildren(...series.map((s, j) => {
      const item = el("span"); const sw = el("span", null, "swatch");
      sw.style.background = COLORS[j % COLORS.length];
      item.append(sw, document.createTextNode(s === "" ? "(none)" : s)); return item;
    }));
  }
  // A bar of spend against a limit, with the forecast as a mark.
  function budgetBar(percent, forecastPercent) {
    const bar = el("div", null, "bar"); const fill = el("span");
    const p = Number(percent || 0);
    fill.style.width = Math.min(p, 100) + "%";
    if (p >= 100) fill.className = "bad"; else if (p >= 80) fill.className = "warn";
    bar.append(fill);
    if (forecastPercent !== null && forecastPercent !== undefined) {
      const mark = el("i"); mark.style.left = Math.min(Number(forecastPercent), 100) + "%";
      mark.title = "forecast " + pct(forecastPercent); bar.append(mark);
    }
    bar.setAttribute("role", "meter"); bar.setAttribute("aria-valuenow", String(p));
    return bar;
  }

  // Cumulative spend through a period: x over [period_start, period_end], y up to the
  // larger of the limit and the spend.
  function burndown(container, data) {
    const W = 400, H = 200, L = 64, B = 20, T = 8;
    const t0 = Date.parse(data.period_start), t1 = Date.parse(data.period_end);
    const limit = units(data.limit);
    const top = [limit, units(data.spend)].reduce((a, v) => (v > a ? v : a), 1n);
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - 4);
    const y = (u) => H - B - (Number((u * 10000n) / top) / 10000) * (H - B - T);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    const title = svg("title"); title.textContent = data.budget + " burn-down"; root.append(title);
    root.append(svg("line", { x1: L, x2: W - 4, y1: y(limit), y2: y(limit), stroke: "#c62828" }));
    root.append(svg("line", { x1: x(t0), y1: y(0n), x2: x(t1), y2: y(limit), stroke: "#5f6b7a",
      "stroke-dasharray": "4 3" }));
    // A staircase: each bucket's spend added at the bucket's start, flat until now.
    const pts = [[t0, 0n]];
    for (const [bucket, value] of data.points) {
      const t = Math.max(Date.parse(bucket.replace(/(\.\d+)?(Z|[+-]\d\d:\d\d)?$/, "Z")), t0);
      pts.push([t, pts[pts.length - 1][1]], [t, units(value)]);
    }
    pts.push([Math.min(Date.now(), t1), pts[pts.length - 1][1]]);
    const line = pts.map(([t, u]) => `${x(t).toFixed(1)},${y(u).toFixed(1)}`).join(" ");
    root.append(svg("polyline", { points: line, fill: "none", stroke: "#2f6fdf", "stroke-width": 2 }));
    const axis = (u) => inCurrency(u, data.currency || "USD").replace(/\.00$/, (m) => (u ? m : ""));
    for (const [u, label] of [[limit, axis(limit)], [0n, axis(0n)]]) {
      const t = svg("text", { x: L - 4, y: y(u) + 4, "text-anchor": "end" }); t.textContent = label;
      root.append(t);
    }
    const a = svg("text", { x: L, y: H - 4 }); a.textContent = data.period_start.slice(0, 10);
    const b = svg("text", { x: W - 4, y: H - 4, "text-anchor": "end" });
    b.textContent = data.period_end.slice(0, 10); root.append(a, b);
    container.replaceChildren(root);
  }

  async function session() {
    const me = await api("/session");
    const who = document.getElementById("who");
    if (who) {
      who.textContent = `${me.name} (${me.role}${me.teams ? ": " + me.teams.join(", ") : ""})`;
      who.title = who.textContent;
    }
    return me;
  }
  async function logout() {
    await call("/logout", { method: "POST", body: {} });
    location.assign("/login");
  }
  function start(main) {
    document.addEventListener("DOMContentLoaded", () => {
      const out = document.getElementById("logout");
      if (out) out.addEventListener("click", () => logout().catch(showError));
      Promise.resolve().then(main).catch(showError);
    });
  }
  // Every bucket start in [since, until) at the API's period format, so empty periods show
  // as gaps; the returned periods alone when that would be too many bars.
  const STEP_MS = { minute: 60e3, hour: 3600e3, day: 86400e3 };
  function buckets(since, until, granularity, returned) {
    const step = STEP_MS[granularity];
    const start = Date.parse(since.replace(/(\.\d+)?(Z|[+-]\d\d:\d\d)?$/, "Z"));
    const end = Date.parse(until.replace(/(\.\d+)?(Z|[+-]\d\d:\d\d)?$/, "Z"));
    if (!step || !(end > start) || (end - start) / step > 2000) return returned;
    const all = [];
    for (let t = Math.floor(start / step) * step; t < end; t += step) {
      all.push(new Date(t).toISOString().slice(0, 19));
    }
    const known = new Set(all);
    return returned.some((p) => !known.has(p)) ? returned : all;
  }
  function when(text) { // an API instant for people: "2026-11-30 08:32:30 UTC"
    return text ? String(text).replace("T", " ").replace(/(\.\d+)?(Z|[+-]00:00)?$/, "") + " UTC" : "–";
  }
  function monthStart(now) { return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)); }
  function dayStart(now) {
    return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  }

  return { el, api, call, units, sum, exact, usd, inCurrency, money, pct, rows, table, csv, download,
    svg, stacked, legend, budgetBar, burndown, session, start, showError, monthStart, dayStart, buckets, when };
})();
