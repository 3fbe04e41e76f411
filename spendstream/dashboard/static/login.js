"use strict";
// Where to go after logging in: a normalised path on this site, else "/". The same rule as the
// server's (pages.SAME_SITE_PATH): non-empty segments (no "//host" anywhere), no dot segments
// ("/.//host" and "/a/..//host" resolve to "//host"), no backslash, space or control character
// (browsers drop tabs: "/\t/host" is "//host") nor their %-forms in the path.
const SEGMENT = "(?!(?:\\.|%2e){1,2}(?:[/?#]|$))" +
  "(?:[^\\u0000-\\u0020\\u007f\\\\/?#%]|%(?![01]|20|2e|5c|7f)[0-9a-f]{2})+";
const SAME_SITE_PATH = new RegExp(
  `^/(?:${SEGMENT}(?:/${SEGMENT})*/?)?(?:[?#][^\\u0000-\\u0020\\u007f\\\\]*)?$`, "i");
function sameSitePath(next) {
  if (!next || !SAME_SITE_PATH.test(next)) return "/";
  const url = new URL(next, location.origin);
  return url.origin === location.origin ? url.pathname + url.search + url.hash : "/";
}
// Navigate only to an absolute URL re-checked against this origin: a relative "//host" that got
// past the rule would resolve to another origin here, and goes to "/" instead.
function goSameSite(path) {
  const url = new URL(path, location.origin);
  location.assign(url.origin === location.origin ? url.href : location.origin + "/");
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = document.getElementById("token").value.trim();
    try {
      await SS.call("/login", { method: "POST", body: {}, noRedirect: true,
        headers: { Authorization: "Bearer " + token } });
      goSameSite(sameSitePath(new URLSearchParams(location.search).get("next")));
    } catch (err) { SS.showError(err); }
  });
});
