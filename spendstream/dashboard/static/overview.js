"use strict";
// Top lists of one grouping: exact sums of the (team, app, model) rows per value.
function topBy(records, tag, count) {
  const totals = new Map();
  for (const r of records) {
    const t = totals.get(r[tag]) || { cost: 0n, events: 0 };
    t.cost += SS.units(r.cost_usd); t.events += Number(r.events); totals.set(r[tag], t);
  }
  return [...totals].sort((a, b) => (b[1].cost > a[1].cost ? 1 : b[1].cost < a[1].cost ? -1 : 0))
    .slice(0, count).map(([value, t]) => ({ [tag]: value, cost_usd: t.cost, events: t.events }));
}

// [currency] display: the spend cards also in that currency (each UTC day at its rate, from
// /spend?currency=), the rates beside them; a missing rate is the API's error naming the day.
async function convertCards(month, day) {
  const { display } = await SS.api("/currencies");
  if (!display) return;
  for (const [id, since] of [["spend-month", month], ["spend-today", day]]) {
    const result = await SS.api("/spend", { by: "team", since, until: "now", limit: 10000,
      currency: display });
    const records = SS.rows(result);
    const converted = "cost_" + display.toLowerCase();
    const rates = [...new Set(records.map((r) => r.rate).filter(Boolean))].join("; ");
    const line = SS.el("div", null, "muted"); line.id = id + "-in";
    line.append("= ", SS.money(SS.el("span"), SS.sum(records.map((r) => r[converted])), display,
      rates), SS.el("div", rates));
    document.getElementById(id).after(line);
  }
}

SS.start(async () => {
  await SS.session();
  const now = new Date();
  const month = SS.monthStart(now).toISOString();
  const day = SS.dayStart(now).toISOString();
  const LIMIT = 10000;
  // Each section fails alone (e.g. a query over the API's time limit) with its own message.
  const section = (id, promise, draw) => promise.then(draw).catch((err) =>
    document.getElementById(id).replaceChildren(SS.el("span", err.message, "error")));
  section("as-of", SS.api("/freshness"), (fresh) => {
    document.getElementById("as-of").textContent = fresh.last_ingested
      ? `${SS.when(fresh.last_event)} (newest event; ingested ${SS.when(fresh.last_ingested)})`
      : "no data yet";
  });
  const budgets = SS.api("/budgets/status");
  section("budgets", budgets, drawBudgets);
  section("top-recs", SS.api("/recommendations", { days: 30 }), drawTopRecommendations);
  const trend = () => drawTrend(budgets.catch(() => null)).catch((err) =>
    document.getElementById("trend-chart").replaceChildren(SS.el("span", err.message, "error")));
  document.getElementById("trend-form").addEventListener("submit", (e) => { e.preventDefault(); trend(); });
  trend();
  // One ledger scan for the month (every team x app x model) instead of one per top list.
  const [m, d] = await Promise.all([
    SS.api("/spend", { by: ["team", "app", "model"], since: month, until: "now", limit: LIMIT }),
    SS.api("/spend", { by: "team", since: day, until: "now", limit: LIMIT })]);
  let records = SS.rows(m);
  let lists = { team: topBy(records, "team", 5), app: topBy(records, "app", 5),
    model: topBy(records, "model", 5) };
  if (records.length >= LIMIT) { // too many combinations: one exact query per grouping
    const [t, a, o] = await Promise.all(["team", "app", "model"].map((tag) =>
      SS.api("/spend", { by: tag, since: month, until: "now", limit: LIMIT })));
    records = SS.rows(t);
    lists = { team: records.slice(0, 5), app: SS.rows(a).slice(0, 5), model: SS.rows(o).slice(0, 5) };
  }

  SS.money(document.getElementById("spend-month"), SS.sum(records.map((r) => r.cost_usd)));
  SS.money(document.getElementById("spend-today"), SS.sum(SS.rows(d).map((r) => r.cost_usd)));
  convertCards(month, day).catch(SS.showError);
  const events = records.reduce((a, r) => a + Number(r.events), 0);
  const unpriced = records.reduce((a, r) => a + Number(r.unpriced_events), 0);
  document.getElementById("coverage").textContent =
    events ? (100 * (events - unpriced) / events).toFixed(2) + "%" : "–";
  document.getElementById("coverage-detail").textContent =
    `${events - unpriced} of ${events} events priced`;
  SS.money(document.getElementById("unallocated"),
    SS.sum(records.filter((r) => r.team === "").map((r) => r.cost_usd)));

  const money = (td, v) => SS.money(td, v);
  const count = (td, v) => { td.textContent = String(v); };
  for (const tag of ["team", "app", "model"]) {
    SS.table(document.getElementById("top-" + tag), [tag, "cost_usd", "events"], lists[tag],
      { cost_usd: money, events: count });
  }
});

function drawBudgets(status) {
  const money = (td, v, r) => SS.money(td, v, r.currency, r.rate);
  const budgets = SS.rows(status).map((r) => ({ ...r,
    forecast_pct: r.forecast === null ? null : 100 * Number(r.forecast) / Number(r.limit) }));
  SS.table(document.getElementById("budgets"),
    ["budget", "period", "spend", "limit", "percent", "burn-down", "forecast", "alerts"], budgets, {
      spend: money, limit: money,
      forecast: (td, v, r) => (v === null ? (td.textContent = "–") : money(td, v, r)),
      percent: (td, v) => { td.textContent = SS.pct(v); },
      "burn-down": (td, _v, r) => td.append(SS.budgetBar(r.percent, r.forecast_pct)),
    });
}

// Spend per day (30 days) or hour (48 hours) stacked by a tag, with each budget's pace per bar
// (its limit x bar length / its period length) as a dashed line.
const PERIOD_HOURS = { day: 24, week: 168 };
async function drawTrend(budgetsPromise) {
  const by = document.getElementById("trend-by").value.trim() || "team";
  const granularity = document.getElementById("trend-granularity").value;
  const result = await SS.api("/spend", { by, granularity, since: granularity === "day" ? "30d" : "48h",
    until: "now", limit: 10000 });
  const records = SS.rows(result);
  const periods = SS.buckets(result.since, result.until, granularity,
    [...new Set(records.map((r) => r.period))]);
  const totals = new Map();
  for (const r of records) totals.set(r[by], (totals.get(r[by]) || 0n) + SS.units(r.cost_usd));
  const series = [...totals.keys()].sort((a, b) => (totals.get(b) > totals.get(a) ? 1 : -1));
  const cell = new Map(records.map((r) => [r.period + "\u0000" + r[by], SS.units(r.cost_usd)]));
  const status = await budgetsPromise;
  const barHours = granularity === "day" ? 24 : 1;
  // The budget's real period (status period_start/period_end: a quarter of 90 days, a month of
  // 28); the bars are USD: a budget in another currency has no pace on them.
  const hours = (b) => {
    const span = (Date.parse(b.period_end) - Date.parse(b.period_start)) / 3600000;
    if (span > 0) return Math.round(span);
    return PERIOD_HOURS[String(b.period).split(" ")[0]] || 24 * 30; // a worker from before
  };
  const paces = (status ? SS.rows(status) : []).filter((b) => (b.currency || "USD") === "USD")
    .map((b) => ({ label: `${b.budget} pace`,
      value: (SS.units(b.limit) * BigInt(barHours)) / BigInt(hours(b)) }));
  // A pace far above every bar would flatten the bars: such budgets are named under the chart.
  const top = periods.reduce((a, p) => {
    const t = series.reduce((sum, s) => sum + (cell.get(p + "\u0000" + s) || 0n), 0n);
    return t > a ? t : a;
  }, 0n);
  const merged = new Map(); // budgets with the same pace share one line
  for (const p of paces) merged.set(p.value, [...(merged.get(p.value) || []), p.label]);
  const all = [...merged].map(([value, labels]) => ({ value, label: labels.join(", ") }));
  const lines = all.filter((l) => l.value <= 2n * top);
  const off = all.filter((l) => l.value > 2n * top);
  SS.legend(document.getElementById("trend-legend"), series);
  SS.stacked(document.getElementById("trend-chart"), periods, series,
    (p, s) => cell.get(p + "\u0000" + s) || 0n, lines);
  document.getElementById("trend-title").textContent = `Spend per ${granularity} by ${by}`;
  const notes = [];
  if (lines.length) notes.push("Dashed lines: a budget's limit spread evenly over its period (its pace per bar).");
  if (off.length) notes.push("Off the scale: " + off.map((l) => `${l.label} ${SS.usd(l.value)} per ${granularity}`).join("; ") + ".");
  document.getElementById("trend-note").textContent = notes.join(" ");
}

function drawTopRecommendations(result) {
  const top = result.recommendations.filter((r) => r.state === "open").slice(0, 3);
  const list = SS.el("ol", null, "top-recs");
  for (const r of top) {
    const item = SS.el("li");
    const m = SS.money(SS.el("strong"), r.monthly_usd);
    item.append(m, document.createTextNode("/month · "), SS.el("span", r.action));
    list.append(item);
  }
  if (!top.length) list.append(SS.el("li", "no open recommendation", "muted"));
  document.getElementById("top-recs").replaceChildren(list);
}
