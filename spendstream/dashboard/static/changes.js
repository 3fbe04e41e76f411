"use strict";
// The "What changed" panel (GET /api/v1/explain): the sentence, the drivers as bars that add
// up to the delta, and the contributors tree. It draws into #what-changed on any page: the
// /changes page (with its form) or the Overview, which holds the section and this script.
const WhatChanged = (() => {
  const share = (s) => (s === null || s === undefined ? "–" : (Number(s) * 100).toFixed(1) + " %");

  function driverBars(drivers) {
    const box = SS.el("div", null, "drivers");
    const largest = drivers.reduce((m, d) => {
      const u = SS.units(d.amount_usd); const a = u < 0n ? -u : u;
      return a > m ? a : m;
    }, 1n);
    for (const d of drivers) {
      const u = SS.units(d.amount_usd);
      const row = SS.el("div", null, "driver");
      const bar = SS.el("div", null, "bar diverging");
      const fill = SS.el("span", null, u < 0n ? "down" : "up");
      fill.style.width = (Number(((u < 0n ? -u : u) * 1000n) / largest) / 10).toFixed(1) + "%";
      bar.append(fill);
      const amount = SS.el("span", null, "num");
      SS.money(amount, d.amount_usd);
      if (u > 0n) amount.textContent = "+" + amount.textContent;
      row.append(SS.el("span", d.label, "label"), bar, amount, SS.el("span", share(d.share), "muted num"));
      box.append(row);
    }
    return box;
  }

  function treeRows(nodes, depth, out) {
    for (const n of nodes) {
      const top = n.drivers.length ? n.drivers[0].label : "";
      out.push({ where: "\u2003".repeat(depth) + `${n.dimension}=${n.value || "(none)"}`,
        before_usd: n.before_usd, after_usd: n.after_usd, delta_usd: n.delta_usd,
        share: share(n.share), top_driver: top });
      treeRows(n.children, depth + 1, out);
    }
    return out;
  }

  // compact (the Overview): the sentence and the drivers, the rest one click away on /changes.
  async function draw(container, params, compact = false) {
    container.replaceChildren(SS.el("p", "Explaining…", "muted"));
    const answer = await SS.api("/explain", params);
    const sentence = SS.el("p", answer.sentence, "sentence");
    sentence.id = "changes-sentence";
    const copy = SS.el("button", "Copy sentence");
    copy.type = "button";
    copy.addEventListener("click", () => navigator.clipboard.writeText(answer.sentence));
    const period = SS.el("p", `${SS.when(answer.since)} → ${SS.when(answer.until)} against `
      + `${SS.when(answer.vs_since)} → ${SS.when(answer.vs_until)}`, "muted watermark");
    const cards = SS.el("div", null, "cards");
    for (const [label, value] of [["Before", answer.before_usd], ["Now", answer.after_usd],
      ["Change", answer.delta_usd]]) {
      const card = SS.el("div", null, "card");
      const figure = SS.el("div", null, "value");
      SS.money(figure, value);
      card.append(SS.el("div", label, "muted"), figure);
      cards.append(card);
    }
    const money = (td, v) => SS.money(td, v);
    const tree = SS.el("div", null, "scroll");
    SS.table(tree, ["where", "before_usd", "after_usd", "delta_usd", "share", "top_driver"],
      treeRows(answer.contributors, 0, []), { before_usd: money, after_usd: money, delta_usd: money });
    if (compact) {
      const more = SS.el("a", "Where it changed, for any period and scope");
      more.href = "/changes";
      container.replaceChildren(SS.el("h2", "What changed"), sentence, period,
        driverBars(answer.drivers), SS.el("p", null), more);
      return;
    }
    container.replaceChildren(SS.el("h2", "What changed"), sentence, copy, period, cards,
      SS.el("h2", "Drivers (they add up to the change exactly)"), driverBars(answer.drivers),
      SS.el("h2", "Where it changed"), tree);
  }
  return { draw };
})();

SS.start(async () => {
  const container = document.getElementById("what-changed");
  if (!container) return;
  const form = document.getElementById("changes-form");
  if (!form) { // the Overview: its defaults (last 24 h vs a week before), compact
    await WhatChanged.draw(container, {}, true);
    return;
  }
  await SS.session();
  const field = (id) => document.getElementById(id);
  const url = new URLSearchParams(location.search);
  for (const id of ["since", "until", "vs", "filters"]) if (url.has(id)) field(id).value = url.get(id);
  const load = async () => {
    const filters = field("filters").value.split(",").map((f) => f.trim()).filter(Boolean);
    await WhatChanged.draw(container, { since: field("since").value, until: field("until").value,
      vs: field("vs").value, filter: filters });
    history.replaceState(null, "", "?" + new URLSearchParams({ since: field("since").value,
      until: field("until").value, vs: field("vs").value, filters: field("filters").value }));
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); load().catch(SS.showError); });
  await load();
});
