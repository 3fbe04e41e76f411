"use strict";
// Where to go after logging in: a path on this site, else "/". Never "//host", "/\\host" or
// "/\t/host" (browsers drop tabs and newlines from URLs: that is "//host"); the server refuses
// the same (pages.SAME_SITE_PATH), and the URL must still resolve to this origin.
function sameSitePath(next) {
  if (!next || !/^\/(?![\/\\])[^\u0000-\u0020\u007f\\]*$/.test(next)) return "/";
  const url = new URL(next, location.origin);
  return url.origin === location.origin ? url.pathname + url.search + url.hash : "/";
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = document.getElementById("token").value.trim();
    try {
      await SS.call("/login", { method: "POST", body: {}, noRedirect: true,
        headers: { Authorization: "Bearer " + token } });
      location.assign(sameSitePath(new URLSearchParams(location.search).get("next")));
    } catch (err) { SS.showError(err); }
  });
});
