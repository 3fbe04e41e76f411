"use strict";
// Recommendations (ranked, with decisions) and the what-if form. Text from events is written
// with textContent only.
const STEP = { m: 60e3, h: 3600e3, d: 86400e3 };
function instant(text) { // "now" and "30m"/"24h"/"7d" ago as ISO 8601
  const t = text.trim(); const m = /^(\d+)([mhd])$/.exec(t);
  if (t === "now" || t === "") return new Date().toISOString();
  return m ? new Date(Date.now() - Number(m[1]) * STEP[m[2]]).toISOString() : t;
}
function pairs(text) {
  return text.split(",").map((f) => f.trim()).filter(Boolean).map((f) => {
    const i = f.indexOf("=");
    if (i < 1) throw new Error(`"${f}": write key=value, e.g. feature=qa`);
    return [f.slice(0, i).trim(), f.slice(i + 1).trim()];
  });
}

function details(rec) {
  const box = SS.el("div");
  box.append(SS.el("div", rec.action, "action"));
  if (rec.alternatives.length) {
    const alt = SS.el("div", "Alternatives: ", "muted");
    rec.alternatives.forEach((a, i) => {
      const span = SS.el("span", `${i ? ", " : ""}${a.model} `);
      const m = SS.money(SS.el("span"), a.monthly_usd); span.append(m, document.createTextNode("/month"));
      alt.append(span);
    });
    box.append(alt);
  }
  const e = rec.evidence;
  const bits = [`${SS.when(e.since)} – ${SS.when(e.until)} (${e.days} days)`, `${e.events} events`];
  if (e.p50_in_tokens !== undefined) {
    bits.push(`input p50/p95 ${e.p50_in_tokens}/${e.p95_in_tokens}`,
      `output p50/p95 ${e.p50_out_tokens}/${e.p95_out_tokens} tokens`);
  }
  const ev = SS.el("div", "Evidence: " + bits.join(" · ") + " ", "muted evidence");
  const link = SS.el("a", "Explore"); link.href = rec.explore; ev.append(link);
  box.append(ev);
  for (const c of rec.caveats) box.append(SS.el("div", c, "caveat"));
  return box;
}

function stateCell(td, rec, canOperate, reload) {
  const label = rec.state + (rec.decided_by ? ` by ${rec.decided_by}` : "");
  td.append(SS.el("div", label, "state-" + rec.state));
  if (rec.reason) td.append(SS.el("div", `“${rec.reason}”`, "muted"));
  if (rec.realised) {
    const r = rec.realised; const line = SS.el("div", "realised: ", "realised");
    if (r.monthly_usd === null) line.append(document.createTextNode("not enough traffic yet"));
    else { line.append(SS.money(SS.el("span"), r.monthly_usd), document.createTextNode("/month")); }
    const per = SS.el("div", "per request ", "muted");
    per.append(r.before_cost_per_request === null ? document.createTextNode("–")
      : SS.money(SS.el("span"), r.before_cost_per_request), document.createTextNode(" → "),
    r.after_cost_per_request === null ? document.createTextNode("–")
      : SS.money(SS.el("span"), r.after_cost_per_request));
    td.append(line, per);
  }
  if (!canOperate) return;
  const reason = SS.el("input"); reason.placeholder = "reason"; reason.className = "reason";
  const act = (state, text) => {
    const b = SS.el("button", text); b.type = "button"; b.dataset.state = state;
    b.addEventListener("click", () => SS.call(`/api/v1/recommendations/${encodeURIComponent(rec.rec_id)}`,
      { method: "POST", body: { state, reason: reason.value } }).then(reload).catch(SS.showError));
    return b;
  };
  const buttons = rec.state === "open" ? [act("accepted", "Accept"), act("dismissed", "Dismiss")]
    : [act("open", "Reopen")];
  const row = SS.el("div", null, "decide"); row.append(reason, ...buttons); td.append(row);
}

SS.start(async () => {
  const me = await SS.session();
  const canOperate = me.role === "operator" || me.role === "admin";
  const field = (id) => document.getElementById(id);
  const url = new URLSearchParams(location.search);
  if (url.has("days")) field("days").value = url.get("days");
  const load = async () => {
    const params = { days: field("days").value, include_dismissed: field("show-dismissed").checked };
    const scope = pairs(field("recs-scope").value).map(([k, v]) => `${k}=${v}`);
    if (scope.length) params.scope = scope;
    const result = await SS.api("/recommendations", params);
    field("recs-window").textContent =
      `${SS.when(result.since)} – ${SS.when(result.until)}: savings over these ${result.days} days × 30 / ${result.days}.`;
    SS.money(field("recs-total"), SS.sum(result.recommendations.filter((r) => r.state === "open")
      .map((r) => r.monthly_usd)));
    const records = result.recommendations.map((r) => ({ ...r, monthly: r.monthly_usd,
      share: r.share_pct, where: Object.entries(r.scope).map(([k, v]) => `${k}=${v || "(none)"}`).join("\n") }));
    SS.table(field("recs"), ["monthly", "share", "kind", "where", "what to change", "state"], records, {
      monthly: (td, v) => { SS.money(td, v); td.append(document.createTextNode("/mo")); },
      share: (td, v) => { td.textContent = v === null ? "–" : `${v}%`; },
      kind: (td, v) => { td.textContent = v; td.className = "kind"; },
      where: (td, v) => { td.textContent = v; td.className = "where"; },
      "what to change": (td, _v, r) => { td.className = "what"; td.append(details(r)); },
      state: (td, _v, r) => { td.className = "state"; stateCell(td, r, canOperate, () => load().catch(SS.showError)); },
    }).classList.add("recs");
    const next = new URLSearchParams({ days: field("days").value });
    history.replaceState(null, "", "?" + next.toString());
  };
  field("recs-form").addEventListener("submit", (e) => { e.preventDefault(); load().catch(SS.showError); });

  const changes = [];
  const drawChanges = () => field("wi-changes").replaceChildren(...changes.map((c) =>
    SS.el("li", `${c.action} ${JSON.stringify(c.scope)}${c.to_model ? " → " + c.to_model : ""}` +
      `${c.share !== undefined ? " share " + c.share : ""}${c.percent !== undefined ? " " + c.percent + "%" : ""}`)));
  const current = () => {
    const action = field("wi-action").value; const value = field("wi-value").value.trim();
    const change = { action, scope: Object.fromEntries(pairs(field("wi-scope").value)) };
    if (action === "model") change.to_model = value;
    if (action === "cache_read") change.share = value;
    if (action === "price") change.percent = value;
    return change;
  };
  field("wi-add").addEventListener("click", () => {
    try { changes.push(current()); drawChanges(); } catch (err) { SS.showError(err); }
  });
  const simulate = async () => {
    const list = changes.length ? changes : [current()];
    const result = await SS.call("/api/v1/whatif", { method: "POST", body: {
      since: instant(field("wi-since").value), until: instant(field("wi-until").value),
      by: field("wi-by").value, changes: list } });
    SS.money(field("wi-before"), result.before_usd);
    SS.money(field("wi-after"), result.after_usd);
    SS.money(field("wi-change"), result.change_usd);
    const money = (td, v) => SS.money(td, v);
    const fmt = { before_usd: money, after_usd: money, change_usd: money };
    SS.table(field("wi-by-scope"), result.by_scope.columns, SS.rows(result.by_scope), fmt);
    SS.table(field("wi-by-day"), result.by_day.columns, SS.rows(result.by_day), fmt);
  };
  field("whatif-form").addEventListener("submit", (e) => { e.preventDefault(); simulate().catch(SS.showError); });
  await load();
});
