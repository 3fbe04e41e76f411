"use strict";
SS.start(async () => {
  const me = await SS.session();
  const form = document.getElementById("alerts-form");
  const load = async () => {
    const result = await SS.api("/alerts", { since: document.getElementById("since").value });
    SS.table(document.getElementById("alerts"),
      ["created", "budget", "alert", "state", "spend", "percent", "deliveries", "note"],
      SS.rows(result), { spend: (td, v) => SS.money(td, v),
        percent: (td, v) => { td.textContent = SS.pct(v); } });
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); load().catch(SS.showError); });
  if (me.permissions.includes("operate")) {
    const budgets = await SS.api("/budgets");
    const select = document.getElementById("silence-budget");
    select.replaceChildren(...budgets.map((b) => { const o = SS.el("option", b.budget);
      o.value = b.budget; return o; }));
    document.getElementById("silence-box").hidden = false;
    const send = async (action) => {
      const body = { action, budget: select.value };
      if (action === "silence") {
        body.duration = document.getElementById("silence-duration").value;
        body.reason = document.getElementById("silence-reason").value;
      }
      const done = await SS.api("/silences", {}, { method: "POST", body });
      document.getElementById("silence-result").textContent = action === "silence"
        ? `silenced ${select.value} until ${SS.when(done.until)} (by ${me.name})`
        : `unsilenced ${select.value}`;
      await load();
    };
    document.getElementById("silence-form").addEventListener("submit", (e) => {
      e.preventDefault(); send("silence").catch(SS.showError); });
    document.getElementById("unsilence").addEventListener("click", () =>
      send("unsilence").catch(SS.showError));
  }
  await load();
});
