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
    // rightsize: one row per feature and model, the best candidate first and the others in
    // one cell (the CSV keeps the insight's rows as they are).
    const view = name === "rightsize" ? rightsizeView(result.columns, records)
      : { columns: result.columns, records };
    if (name === "rightsize") {
      formats.alternatives = (td, v) => {
        td.className = "candidates";
        for (const c of v) {
          const line = SS.el("div", c.candidate + " ");
          line.append(SS.money(SS.el("span"), c.saving_usd), document.createTextNode(` (${c.saving_pct}%)`));
          td.append(line);
        }
      };
    }
    SS.table(field("table"), view.columns, view.records, formats)
      .classList.toggle("compact", name === "rightsize");
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

function rightsizeView(columns, records) {
  const groups = new Map();
  for (const r of records) {
    const key = [r.feature, r.provider, r.model].join("\u0000");
    if (!groups.has(key)) groups.set(key, { ...r, candidates: [] });
    if (r.candidate) groups.get(key).candidates.push(r);
  }
  const rows = [...groups.values()].map((g) => {
    g.candidates.sort((a, b) => (SS.units(b.saving_usd) > SS.units(a.saving_usd) ? 1 : -1));
    const best = g.candidates[0];
    return { ...g, candidate: best ? best.candidate : "", candidate_cost_usd: best ? best.candidate_cost_usd : null,
      saving_usd: best ? best.saving_usd : null, saving_pct: best ? best.saving_pct : null,
      alternatives: g.candidates.slice(1),
      "input p50/p95": `${g.p50_input_tokens}/${g.p95_input_tokens}`,
      "output p50/p95": `${g.p50_output_tokens}/${g.p95_output_tokens}` };
  });
  const tokens = (c) => /^p(50|95)_(in|out)put_tokens$/.test(c);
  // requests and candidate_cost_usd stay in the CSV: the table keeps what a decision needs
  const hidden = new Set(["flag", "requests", "candidate_cost_usd"]);
  const shown = columns.filter((c) => !hidden.has(c) && !tokens(c));
  const at = shown.indexOf("cost_usd") + 1;
  return { columns: [...shown.slice(0, at), "input p50/p95", "output p50/p95", ...shown.slice(at),
    "alternatives", "flag"], records: rows };
}
