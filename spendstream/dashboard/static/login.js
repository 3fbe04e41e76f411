"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = document.getElementById("token").value.trim();
    try {
      await SS.call("/login", { method: "POST", body: {}, noRedirect: true,
        headers: { Authorization: "Bearer " + token } });
      const next = new URLSearchParams(location.search).get("next") || "/";
      // Only paths on this site: never "//host" or "https://host".
      location.assign(/^\/(?![\/\\])/.test(next) ? next : "/");
    } catch (err) { SS.showError(err); }
  });
});
