"use strict";
SS.start(async () => {
  const form = document.getElementById("explore-form");
  const field = (id) => document.getElementById(id);
  // A submit before the page is ready (session, currencies) waits for it instead of reloading
  // the page with an empty query; only the latest load draws (an earlier answer arriving
  // later must not replace it).
  let ready = () => {};
  const started = new Promise((resolve) => { ready = resolve; });
  let latest = 0;
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    started.then(() => load()).catch(SS.showError);
  });
  await SS.session();
  // The form mirrors the URL, so a view can be bookmarked and shared.
  const url = new URLSearchParams(location.search);
  // Currencies with rates; [currency] display is the default choice (USD alone: none).
  const offered = await SS.api("/currencies");
  for (const code of offered.currencies) field("currency").append(SS.el("option", code));
  if (offered.display && offered.currencies.includes(offered.display)) {
    field("currency").value = offered.display;
  }
  for (const id of ["by", "filters", "granularity", "since", "until", "currency"]) {
    if (url.has(id)) field(id).value = url.get(id);
  }
  let shown = { columns: [], records: [] };
  const load = async () => {
    const mine = ++latest;
    shown = { columns: [], records: [] }; // a failed load (e.g. a missing rate) shows nothing stale
    for (const id of ["table", "chart", "legend", "total"]) field(id).replaceChildren();
    field("total").removeAttribute("data-exact");
    field("truncated").hidden = true;
    const by = field("by").value.trim();
    const filters = field("filters").value.split(",").map((f) => f.trim()).filter(Boolean);
    const params = { by, granularity: field("granularity").value, since: field("since").value,
      until: field("until").value, filter: filters, limit: 10000 };
    const currency = field("currency").value;
    if (currency !== "USD") params.currency = currency; // adds cost_<cur> and rate per row
    // The URL names the asked view before it is fetched: the reload after a 503's Retry-After
    // asks for this view again, not the one before it.
    const next = new URLSearchParams({ by, filters: field("filters").value,
      granularity: params.granularity, since: params.since, until: params.until, currency });
    history.replaceState(null, "", "?" + next.toString());
    const result = await SS.api("/spend", params);
    if (mine !== latest) return; // a newer load was asked for meanwhile: it draws
    const records = SS.rows(result);
    if (result.truncated) { // the API cut the answer: the chart and the total miss spend
      field("truncated").textContent = `Only the first ${result.limit.toLocaleString("en")} ` +
        "rows are shown: the chart and the total miss the rest. Narrow the period, add a " +
        "filter or choose a coarser granularity.";
      field("truncated").hidden = false;
    }
    const periods = SS.buckets(result.since, result.until, params.granularity,
      [...new Set(records.map((r) => r.period))]);
    const totals = new Map();
    for (const r of records) totals.set(r[by], (totals.get(r[by]) || 0n) + SS.units(r.cost_usd));
    const series = [...totals.keys()].sort((a, b) => (totals.get(b) > totals.get(a) ? 1 : -1));
    const cell = new Map(records.map((r) => [r.period + "\u0000" + r[by], SS.units(r.cost_usd)]));
    SS.legend(field("legend"), series);
    SS.stacked(field("chart"), periods, series, (p, s) => cell.get(p + "\u0000" + s) || 0n);
    field("chart-title").textContent = `Spend by ${by} per ${params.granularity}`;
    SS.money(field("total"), SS.sum(records.map((r) => r.cost_usd)));
    const money = (td, v) => SS.money(td, v);
    const count = (td, v) => { td.textContent = String(v); };
    const formats = { cost_usd: money, events: count, input_tokens: count, output_tokens: count,
      cache_read_tokens: count, unpriced_events: count };
    if (params.currency) {
      const converted = "cost_" + currency.toLowerCase();
      formats[converted] = (td, v, r) => SS.money(td, v, currency, r.rate);
      field("total").append(" = ", SS.money(SS.el("span"),
        SS.sum(records.map((r) => r[converted])), currency));
    }
    SS.table(field("table"), result.columns, records, formats);
    shown = { columns: result.columns, records };
  };
  ready();
  field("csv").addEventListener("click", () =>
    SS.download("spend.csv", SS.csv(shown.columns, shown.records)));
  await load();
});
