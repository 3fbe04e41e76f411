"use strict";
SS.start(async () => {
  await SS.session();
  const [status, config, quotas] = await Promise.all(
    [SS.api("/budgets/status"), SS.api("/budgets"), SS.api("/quotas")]);
  // Budgets in another currency carry it (and their rate) in their row.
  const money = (td, v, r) => (v === null ? (td.textContent = "–")
    : SS.money(td, v, r && r.currency, r && r.rate));
  const text = (td, v) => { td.textContent = v === null ? "–" : String(v); };
  SS.table(document.getElementById("budgets"),
    ["budget", "period", "spend", "limit", "percent", "burn-down", "forecast", "overrun", "alerts",
      "rate"],
    SS.rows(status), {
      spend: money, limit: money, forecast: money, overrun: text,
      percent: (td, v) => { td.textContent = SS.pct(v); },
      "burn-down": (td, _v, r) => td.append(SS.budgetBar(r.percent,
        r.forecast === null ? null : 100 * Number(r.forecast) / Number(r.limit))),
    });
  const charts = document.getElementById("burndowns");
  const drawn = SS.rows(status).map(async (r) => {
    const box = SS.el("div", null, "card"); box.dataset.budget = r.budget;
    const head = SS.el("h2", r.budget); const spent = SS.el("span", null, "muted");
    box.append(head, spent, SS.el("div")); charts.append(box);
    const data = await SS.api(`/budgets/${encodeURIComponent(r.budget)}/burndown`);
    spent.textContent = "spent "; spent.append(SS.money(SS.el("span"), data.spend, data.currency),
      document.createTextNode(" of " + SS.inCurrency(data.limit, data.currency)
        + (data.rate ? " at " + data.rate : "")));
    SS.burndown(box.lastChild, data);
  });
  SS.table(document.getElementById("config"),
    ["budget", "scope", "period", "timezone", "limit", "thresholds", "owner"],
    config.map((b) => ({ ...b, thresholds: (b.thresholds || []).join(", ") + "%" })),
    { limit: money });
  const units = new Map(quotas.quotas.map((q) => [q.quota, q.unit]));
  const amount = (td, v, r) => (units.get(r.quota) === "usd" ? SS.money(td, v) : text(td, v));
  SS.table(document.getElementById("quotas"),
    ["quota", "key", "state", "used", "limit", "remaining", "unit", "resets_at", "as_of", "reason"],
    SS.rows(quotas.decisions).map((r) => ({ ...r, state: r.allowed ? "allowed" : "blocked",
      resets_at: SS.when(r.resets_at), as_of: SS.when(r.as_of) })), {
      used: amount, limit: amount, remaining: amount,
      state: (td, v) => { td.textContent = v; td.className = v; }, // text, not a number
    });
  SS.table(document.getElementById("overrides"),
    ["quota", "key", "kind", "limit", "until", "created_by", "reason", "created_at"],
    SS.rows(quotas.overrides).map((r) => ({ ...r, until: SS.when(r.until),
      created_at: SS.when(r.created_at) })),
    { limit: (td, v, r) => (v === null ? text(td, v) : amount(td, v, r)) });
  await Promise.all(drawn);
});
