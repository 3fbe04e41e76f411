"use strict";
SS.start(async () => {
  await SS.session();
  const columnsOf = (records) => [...new Set(records.flatMap((r) => Object.keys(r)))];
  const flat = (records) => records.map((r) => Object.fromEntries(Object.entries(r).map(
    ([k, v]) => [k, v !== null && typeof v === "object" ? JSON.stringify(v) : v])));
  const overrides = flat(await SS.api("/prices/overrides"));
  SS.table(document.getElementById("overrides"), columnsOf(overrides), overrides);
  const load = async () => {
    const provider = document.getElementById("provider").value.trim();
    const lines = flat(await SS.api("/prices", provider ? { provider } : {}));
    SS.table(document.getElementById("prices"), columnsOf(lines), lines);
  };
  document.getElementById("prices-form").addEventListener("submit", (e) => {
    e.preventDefault(); load().catch(SS.showError); });
  await load();
});
