"use strict";
SS.start(async () => {
  await SS.session();
  const field = (id) => document.getElementById(id);
  const { insights } = await SS.api("/insights");
  for (const [name, description] of Object.entries(insights)) {
    const option = SS.el("option", name); option.value = name; option.title = description;
    field("insight").append(option);
  }
  const url = new URLSearchParams(location.search);
  for (const id of ["insight", "since", "until"]) if (url.has(id)) field(id).value = url.get(id);
  if (!field("insight").value && field("insight").options.length) field("insight").selectedIndex = 0;
  // This API takes instants: "now" and "30m"/"24h"/"7d" ago become ISO 8601 here.
  const STEP = { m: 60e3, h: 3600e3, d: 86400e3 };
  const instant = (text) => {
    const t = text.trim(); const m = /^(\d+)([mhd])$/.exec(t);
    if (t === "now" || t === "") return new Date().toISOString();
    return m ? new Date(Date.now() - Number(m[1]) * STEP[m[2]]).toISOString() : t;
  };
  let shown = { name: "insight", columns: [], records: [] };
  const load = async () => {
    const name = field("insight").value;
    const result = await SS.api(`/insights/${encodeURIComponent(name)}`,
      { since: instant(field("since").value), until: instant(field("until").value) });
    const records = SS.rows(result);
    field("title").textContent = result.insight;
    field("description").textContent = insights[name] || "";
    field("note").textContent = result.note;
    field("window").textContent = `${SS.when(result.since)} – ${SS.when(result.until)}`;
    // Money columns (…_usd) keep their exact figure; savings stand out.
    const formats = {};
    for (const c of result.columns) {
      if (!c.endsWith("_usd")) continue;
      formats[c] = (td, v) => {
        if (v === null || v === undefined || v === "") { td.textContent = "–"; return; }
        SS.money(td, v);
        if (c.startsWith("saving")) td.classList.add(SS.units(v) > 0n ? "saving" : "loss");
      };
    }
    SS.table(field("table"), result.columns, records, formats);
    shown = { name, columns: result.columns, records };
    const next = new URLSearchParams({ insight: name, since: field("since").value,
      until: field("until").value });
    history.replaceState(null, "", "?" + next.toString());
  };
  field("insights-form").addEventListener("submit", (e) => { e.preventDefault(); load().catch(SS.showError); });
  field("csv").addEventListener("click", () =>
    SS.download(`${shown.name}.csv`, SS.csv(shown.columns, shown.records)));
  if (field("insight").value) await load();
});
