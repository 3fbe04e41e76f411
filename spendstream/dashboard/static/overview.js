"use strict";
SS.start(async () => {
  await SS.session();
  const now = new Date();
  const month = SS.monthStart(now).toISOString();
  const day = SS.dayStart(now).toISOString();
  const teamsMonth = SS.api("/spend", { by: "team", since: month, until: "now", limit: 10000 });
  const teamsToday = SS.api("/spend", { by: "team", since: day, until: "now", limit: 10000 });
  const top = (tag) => SS.api("/spend", { by: tag, since: month, until: "now", limit: 5 });
  const [m, d, apps, models, status, fresh] = await Promise.all([teamsMonth, teamsToday,
    top("app"), top("model"), SS.api("/budgets/status"), SS.api("/freshness")]);

  const asOf = document.getElementById("as-of");
  asOf.textContent = fresh.last_ingested
    ? `${SS.when(fresh.last_event)} (newest event; ingested ${SS.when(fresh.last_ingested)})`
    : "no data yet";
  const mr = SS.rows(m);
  SS.money(document.getElementById("spend-month"), SS.sum(mr.map((r) => r.cost_usd)));
  SS.money(document.getElementById("spend-today"), SS.sum(SS.rows(d).map((r) => r.cost_usd)));
  const events = mr.reduce((a, r) => a + Number(r.events), 0);
  const unpriced = mr.reduce((a, r) => a + Number(r.unpriced_events), 0);
  const coverage = document.getElementById("coverage");
  coverage.textContent = events ? (100 * (events - unpriced) / events).toFixed(2) + "%" : "–";
  document.getElementById("coverage-detail").textContent =
    `${events - unpriced} of ${events} events priced`;
  SS.money(document.getElementById("unallocated"),
    SS.sum(mr.filter((r) => r.team === "").map((r) => r.cost_usd)));

  const money = (td, v) => SS.money(td, v);
  const list = (id, tag, result) => SS.table(document.getElementById(id), [tag, "cost_usd", "events"],
    SS.rows(result), { cost_usd: money, events: (td, v) => { td.textContent = String(v); } });
  list("top-team", "team", { columns: m.columns, rows: m.rows.slice(0, 5) });
  list("top-app", "app", apps);
  list("top-model", "model", models);

  const budgets = SS.rows(status).map((r) => ({ ...r,
    forecast_pct: r.forecast === null ? null : 100 * Number(r.forecast) / Number(r.limit) }));
  SS.table(document.getElementById("budgets"),
    ["budget", "period", "spend", "limit", "percent", "burn-down", "forecast", "alerts"], budgets, {
      spend: money, limit: money, forecast: (td, v) => (v === null ? (td.textContent = "–") : SS.money(td, v)),
      percent: (td, v) => { td.textContent = SS.pct(v); },
      "burn-down": (td, _v, r) => td.append(SS.budgetBar(r.percent, r.forecast_pct)),
    });
});
