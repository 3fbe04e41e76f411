"use strict";
// The anomaly inbox: episodes with Explain's drivers and their state (who, when); operators
// and admins change it. Text from events (group values, drivers) is written with textContent.
function stateCell(td, ep, canOperate, reload) {
  td.append(SS.el("div", ep.state, "state-" + ep.state));
  td.append(SS.el("div", `by ${ep.state_by}, ${SS.when(ep.state_at)}`, "muted"));
  const last = ep.history.length ? ep.history[ep.history.length - 1] : null;
  if (last && last.reason) td.append(SS.el("div", `“${last.reason}”`, "muted"));
  if (!canOperate) return;
  const reason = SS.el("input"); reason.placeholder = "reason"; reason.className = "reason";
  const act = (state, text) => {
    const b = SS.el("button", text); b.type = "button"; b.dataset.state = state;
    b.addEventListener("click", () => SS.call(`/api/v1/anomalies/${encodeURIComponent(ep.episode_id)}`,
      { method: "POST", body: { state, reason: reason.value } }).then(reload).catch(SS.showError));
    return b;
  };
  const open = ep.state === "open" || ep.state === "acknowledged";
  const buttons = open
    ? [...(ep.state === "open" ? [act("acknowledged", "Acknowledge")] : []),
      act("resolved", "Resolve"), act("dismissed", "Dismiss")]
    : [act("open", "Reopen")];
  const row = SS.el("div", null, "decide"); row.append(reason, ...buttons); td.append(row);
}

function drivers(td, list) {
  if (!list.length) { td.textContent = "–"; return; }
  const ol = SS.el("ol");
  for (const text of list) ol.append(SS.el("li", text));
  td.append(ol);
}

SS.start(async () => {
  const me = await SS.session();
  const canOperate = me.role === "operator" || me.role === "admin";
  const field = (id) => document.getElementById(id);
  const load = async () => {
    const params = { since: field("since").value };
    if (field("state").value) params.state = field("state").value;
    const result = await SS.api("/anomalies", params);
    field("anomalies-count").textContent = `(${result.anomalies.length} since ${SS.when(result.since)})`;
    const records = result.anomalies.map((e) => ({ ...e, hour: e.started_at, spend: e.observed_usd,
      expected: e.expected_usd, why: e.drivers }));
    const money = (td, v) => SS.money(td, v);
    const table = SS.table(field("anomalies"), ["hour", "rule", "group", "spend", "expected", "why", "state"], records, {
      hour: (td, v, r) => { td.textContent = SS.when(v); td.className = "when";
        td.append(SS.el("div", r.active ? "active" : `ended ${SS.when(r.ended_at)}`, "muted")); },
      spend: money,
      expected: (td, v, r) => { SS.money(td, v); td.append(SS.el("div", r.method, "muted")); },
      why: (td, v) => { td.className = "what"; drivers(td, v); },
      state: (td, _v, r) => { td.className = "state"; stateCell(td, r, canOperate, () => load().catch(SS.showError)); },
    });
    table.classList.add("anomalies");
    for (const th of table.querySelectorAll("th")) { // only money is a number column
      if (!["spend", "expected"].includes(th.textContent)) th.className = "";
    }
  };
  field("anomalies-form").addEventListener("submit", (e) => { e.preventDefault(); load().catch(SS.showError); });
  await load();
});
