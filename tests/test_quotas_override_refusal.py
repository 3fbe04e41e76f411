"""An override of an unknown quota, refused through the worker's API: the 404 names the quotas
the (unscoped operator) token may see and how to list them, never the worker's config file."""

from __future__ import annotations

from typing import cast

import httpx

from spendstream.auth.roles import Principal, Role
from spendstream.config import Settings
from spendstream.periods import utc_now
from spendstream.producers.admission import AdmissionView
from spendstream.quotas.config import load_quotas
from spendstream.quotas.http import quota_router
from spendstream.quotas.overrides import OverrideRequest, apply_override
from spendstream.quotas.store import QuotaStore
from tests.support.http_app import ServedApp, TokenAuthenticator

WORKER_CONFIG = "/srv/secret-place/worker.toml"


def test_an_unknown_quota_is_a_404_naming_the_quotas_not_the_config_file() -> None:
    quota = {"name": "q-user", "scope": {"team": "support"}, "group_by": ["user"]}
    settings = Settings(quotas=[{**quota, "limit": "20", "per": "day"}])
    quotas = load_quotas(settings, WORKER_CONFIG)
    store = cast(QuotaStore, None)  # the name is judged before the store is used

    def override(request: OverrideRequest) -> dict[str, object]:
        done = apply_override(store, quotas, request, utc_now())
        return {"override_id": done.override_id}

    operator = TokenAuthenticator({"ops": Principal("oncall", Role.OPERATOR)})
    with ServedApp(operator, quota_router(AdmissionView(stale_after_s=60), override)) as served:
        body = {"quota": "nope", "key": "user=racer1", "limit": "20", "duration": "2h"}
        refused = httpx.post(
            f"{served.url}/api/v1/quotas/overrides",
            json=body,
            headers={"Authorization": "Bearer ops"},
        )
    assert refused.status_code == 404
    detail = refused.json()["detail"]
    assert "no quota named 'nope' (quotas: q-user;" in detail
    assert "spendstream quotas list" in detail
    assert "secret-place" not in detail and "worker.toml" not in detail
