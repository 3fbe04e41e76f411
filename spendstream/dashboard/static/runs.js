"use strict";
// Runs: cost per run per agent, the most expensive runs, one run's steps as a cost waterfall,
// cost per session. Text from events (agents, runs, models, tools) is written with textContent.
const money = (td, v) => SS.money(td, v);

function share(part, whole) { // exact tenths of a percent from decimal strings
  const w = SS.units(whole);
  if (w === 0n) return "–";
  const tenths = (SS.units(part) * 1000n + w / 2n) / w;
  return `${tenths / 10n}.${tenths % 10n}%`;
}

function answer(list, agents, top, days) {
  const items = agents.map((a) => {
    const li = SS.el("li", `agent ${a.agent || "(none)"}: p95 `);
    li.append(SS.money(SS.el("strong"), a.cost_p95),
      document.createTextNode(` per run over ${days} days (${a.runs} runs, p50 `),
      SS.money(SS.el("span"), a.cost_p50), document.createTextNode(")"));
    return li;
  });
  if (top.length) {
    const r = top[0];
    const li = SS.el("li", "costliest run ");
    li.append(SS.money(SS.el("strong", null, "costliest"), r.cost),
      document.createTextNode(` (run ${r.run_id}, agent ${r.agent || "(none)"}, ${r.steps} steps)`));
    items.push(li);
  }
  if (!items.length) items.push(SS.el("li", `no agent runs in the last ${days} days`, "muted"));
  list.replaceChildren(...items);
}

// A cost waterfall: one bar per step, from the run's cost before it to the cost after it.
function waterfall(container, steps) {
  const W = 800, L = 220, ROW = 18, T = 6;
  const H = T + ROW * steps.length + 20;
  const total = SS.sum(steps.map((s) => s.cost));
  const max = total > 0n ? total : 1n;
  const x = (u) => L + (Number((u * 10000n) / max) / 10000) * (W - L - 10);
  const root = SS.svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "waterfall" });
  const title = SS.svg("title"); title.textContent = "cost of each step"; root.append(title);
  let before = 0n;
  steps.forEach((s, i) => {
    const cost = SS.units(s.cost); const y = T + i * ROW;
    const label = SS.svg("text", { x: L - 6, y: y + 12, "text-anchor": "end",
      class: "step-label" });
    label.textContent = `${s.step}. ${s.kind} ${s.name}`;
    const bar = SS.svg("rect", { x: x(before), y: y + 2, width: Math.max(x(before + cost) - x(before), 1),
      height: ROW - 4, fill: s.kind === "tool" ? "#e07b39" : "#2f6fdf", class: "step-bar" });
    const tip = SS.svg("title"); tip.textContent = `${s.kind} ${s.name} · ${SS.usd(cost)}`; bar.append(tip);
    const fits = x(before + cost) + 70 <= W; // else the figure goes left of its bar
    const value = SS.svg("text", { x: fits ? x(before + cost) + 4 : x(before) - 4, y: y + 12,
      "text-anchor": fits ? "start" : "end" });
    value.textContent = SS.usd(cost);
    root.append(label, bar, value);
    before += cost;
  });
  const axis = SS.svg("text", { x: W - 10, y: H - 4, "text-anchor": "end" });
  axis.textContent = `run total ${SS.usd(total)}`; root.append(axis);
  container.replaceChildren(root);
}

async function showRun(runId) {
  const field = (id) => document.getElementById(id);
  const result = await SS.api(`/runs/${encodeURIComponent(runId)}`);
  const steps = SS.rows(result);
  field("run-detail").hidden = false;
  field("run-title").textContent = `Run ${runId}, step by step`;
  const tool = SS.sum(steps.filter((s) => s.kind === "tool").map((s) => s.cost));
  const total = SS.sum(steps.map((s) => s.cost));
  const summary = field("run-summary");
  summary.replaceChildren(document.createTextNode(`${steps.length} steps, `),
    SS.money(SS.el("strong", null, "run-total"), total),
    document.createTextNode(`; tools ${share(SS.exact(tool), SS.exact(total))} of the cost`));
  waterfall(field("waterfall"), steps);
  SS.table(field("steps"), ["step", "event_time", "kind", "name", "input_tokens", "output_tokens",
    "cost", "latency_ms"], steps, { cost: money, event_time: (td, v) => { td.textContent = SS.when(v); } });
  field("run-detail").scrollIntoView();
}

SS.start(async () => {
  await SS.session();
  const field = (id) => document.getElementById(id);
  const url = new URLSearchParams(location.search);
  if (url.has("days")) field("days").value = url.get("days");
  if (url.has("agent")) field("agent").value = url.get("agent");
  const open = (runId) => showRun(runId).catch(SS.showError);
  const load = async () => {
    const days = field("days").value; const since = `${days}d`;
    const agent = field("agent").value.trim();
    const [agents, top, sessions] = await Promise.all([
      SS.api("/runs", { since }),
      SS.api("/runs/top", { since, limit: 20, ...(agent ? { agent } : {}) }),
      SS.api("/sessions", { since, limit: 20 }),
    ]);
    const perAgent = SS.rows(agents).map((a) => ({ ...a, model_share: share(a.model_cost, a.cost),
      tool_share: share(a.tool_cost, a.cost) }));
    const runs = SS.rows(top);
    answer(field("runs-answer"), perAgent, runs, days);
    SS.table(field("agents"), ["agent", "runs", "cost_p50", "cost_p95", "cost_max", "cost",
      "steps_p50", "steps_p95", "steps_max", "model_share", "tool_share"], perAgent,
    { cost_p50: money, cost_p95: money, cost_max: money, cost: money }).classList.add("agents");
    SS.table(field("top-runs"), ["run_id", "agent", "customer", "session_id", "started", "steps",
      "cost", "tool_cost"], runs, {
      run_id: (td, v) => {
        const b = SS.el("button", v, "link run-link"); b.type = "button"; b.dataset.run = v;
        b.addEventListener("click", () => open(v)); td.className = ""; td.append(b);
      },
      started: (td, v) => { td.textContent = SS.when(v); },
      cost: money, tool_cost: money,
    }).classList.add("runs");
    SS.table(field("sessions"), ["session_id", "runs", "steps", "cost", "started"], SS.rows(sessions),
      { cost: money, started: (td, v) => { td.textContent = SS.when(v); } });
    const next = new URLSearchParams({ days, ...(agent ? { agent } : {}) });
    history.replaceState(null, "", "?" + next.toString());
  };
  field("runs-form").addEventListener("submit", (e) => { e.preventDefault(); load().catch(SS.showError); });
  await load();
  if (url.has("run")) await open(url.get("run"));
});
