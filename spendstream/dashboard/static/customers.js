"use strict";
// Customers: cost per customer, its trend, and gross margin against imported revenue (the
// customers served at a loss). Customer names come from events: written with textContent.
const money = (td, v) => SS.money(td, v);
const SERIES = 8; // customers drawn in the trend; the rest are summed as "others"
const name = (c) => (c === "" ? "(none)" : c);

function percentOf(part, whole) { // exact tenths of a percent
  return whole === 0n ? "–" : (() => { const t = (part * 1000n + whole / 2n) / whole;
    return `${t / 10n}.${t % 10n}%`; })();
}

function answer(list, customers, margins, days) {
  const items = [];
  const total = SS.sum(customers.map((c) => c.cost));
  const named = customers.filter((c) => c.customer !== "");
  if (named.length) {
    const top = named[0];
    const li = SS.el("li", `costliest customer ${top.customer}: `);
    li.append(SS.money(SS.el("strong", null, "top-customer"), top.cost),
      document.createTextNode(` over ${days} days, ${percentOf(SS.units(top.cost), total)} of the spend ` +
        `(${named.length} customers)`));
    items.push(li);
  } else items.push(SS.el("li", `no spend with a customer in the last ${days} days`, "muted"));
  if (margins !== null) {
    const losses = margins.filter((m) => m.at_loss);
    items.push(SS.el("li", margins.length === 0 ? "no revenue imported for this period"
      : losses.length === 0 ? `no customer served at a loss (${margins.length} revenue periods)`
        : `${losses.length} customer period${losses.length > 1 ? "s" : ""} served at a loss: ` +
          losses.map((m) => m.customer).join(", "), losses.length ? "loss" : ""));
  }
  list.replaceChildren(...items);
}

function trend(customers, rows) {
  const chosen = customers.slice(0, SERIES).map((c) => c.customer);
  const others = customers.length > SERIES;
  const series = others ? [...chosen, "others"] : chosen;
  const periods = [...new Set(rows.map((r) => String(r.period)))].sort();
  const cell = new Map();
  for (const r of rows) {
    const s = chosen.includes(r.customer) ? r.customer : "others";
    const key = `${r.period}\u0000${s}`;
    cell.set(key, (cell.get(key) || 0n) + SS.units(r.cost));
  }
  const field = (id) => document.getElementById(id);
  SS.stacked(field("trend-chart"), periods, series, (p, s) => cell.get(`${p}\u0000${s}`) || 0n);
  SS.legend(field("trend-legend"), series.map((s) => (s === "others" && others ? "others" : name(s))));
}

async function marginsFor(days) { // null: this token may not see margin (a team-scoped token)
  try {
    return await SS.api("/customers/margin", { since: `${days}d` });
  } catch (err) {
    if (/needs a token of every team/.test(err.message)) return null;
    throw err;
  }
}

SS.start(async () => {
  await SS.session();
  const field = (id) => document.getElementById(id);
  const url = new URLSearchParams(location.search);
  if (url.has("days")) field("days").value = url.get("days");
  if (url.has("granularity")) field("granularity").value = url.get("granularity");
  const load = async () => {
    const days = field("days").value; const since = `${days}d`;
    const granularity = field("granularity").value;
    const [spend, perPeriod, margin] = await Promise.all([
      SS.api("/customers", { since }),
      SS.api("/customers", { since, granularity }),
      marginsFor(days),
    ]);
    const customers = SS.rows(spend);
    const total = SS.sum(customers.map((c) => c.cost));
    const records = customers.map((c) => ({ ...c, customer: name(c.customer),
      share: percentOf(SS.units(c.cost), total) }));
    SS.table(field("customers"), ["customer", "events", "cost", "share"], records, { cost: money })
      .classList.add("customers");
    field("trend-title").textContent = `Cost per ${granularity} by customer`;
    trend(customers, SS.rows(perPeriod));
    const margins = margin === null ? null : margin.margins;
    answer(field("customers-answer"), customers, margins, days);
    field("margin-note").textContent = margins === null
      ? "Margin sets revenue against every team's cost: it needs a token of every team."
      : "Import revenue with: spendstream customers import-revenue FILE (or POST /api/v1/revenue).";
    if (margins === null) { field("margins").replaceChildren(); return; }
    const rows = margins.map((m) => ({ ...m, period: `${m.period_start} – ${m.period_end}` }));
    const t = SS.table(field("margins"), ["customer", "period", "revenue", "cost", "margin",
      "margin_pct", "at_loss"], rows, { revenue: money, cost: money, margin: money,
      margin_pct: (td, v) => { td.textContent = v === null ? "–" : `${v}%`; },
      at_loss: (td, v) => { td.textContent = v ? "at a loss" : "profit"; td.className = v ? "loss" : ""; },
    });
    rows.forEach((m, i) => { if (m.at_loss) t.tBodies[0].rows[i].classList.add("at-loss"); });
    const next = new URLSearchParams({ days, granularity });
    history.replaceState(null, "", "?" + next.toString());
  };
  field("customers-form").addEventListener("submit", (e) => { e.preventDefault(); load().catch(SS.showError); });
  await load();
});
