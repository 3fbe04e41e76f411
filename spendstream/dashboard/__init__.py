"""The web dashboard: server-rendered page shells whose figures come from the JSON API.

:func:`spendstream.dashboard.pages.dashboard_router` serves the pages at ``/`` (login, logout,
static files); :func:`spendstream.dashboard.http.session_router` adds the two small API routes
the pages need (who am I, how fresh is the data) under ``/api/v1``. Both are mounted by
``spendstream.api`` and wired by the worker and ``spendstream serve``.
"""
