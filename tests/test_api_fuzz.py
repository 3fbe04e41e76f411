"""Schemathesis fuzzes the worker's whole API from its own OpenAPI document: every generated
request (valid and invalid by the schema), sent without a token and with a token of each role,
is answered below 500. A real worker over real chDB and Tansu (tests/support/api_env.py).

Bounded for CI on two cores: EXAMPLES_PER_OPERATION requests per operation and mode, each sent
with every credential (~1,200 requests, about 20 s), derandomised (every run sends the same
requests, so a failure reproduces), no shrinking phase. Operations are walked with
``APIOperation.as_strategy``: schemathesis' pytest loader (``from_fixture``) fails on pytest 9
(``Function._nodeid``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.support.api_env import ApiEnv, start_env

pytestmark = pytest.mark.integration

# Requests with wrong or malformed credentials would otherwise trip the failure brake (429).
# The quota mounts admission and overrides, so their routes are fuzzed too.
CONFIG = """
[api]
max_auth_failures = 1000000

[[quotas]]
name = "alpha-cap"
scope = { team = "alpha" }
limit = "1000000"
"""
ROLES = (None, "service", "viewer-all", "viewer-alpha", "operator-alpha", "admin-alpha", "admin")
EXAMPLES_PER_OPERATION = 8


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[ApiEnv]:
    yield from start_env(tmp_path_factory.mktemp("fuzz"), migrated_template, CONFIG)


@pytest.fixture(scope="module")
def document(env: ApiEnv) -> dict[str, Any]:
    answer = env.call("GET", "/openapi.json", token=env.tokens["admin"])
    assert answer.status_code == 200, answer.text
    paths = answer.json()["paths"]
    assert len(paths) >= 20 and "/api/v1/events" in paths and "/api/v1/sql" in paths
    return dict(answer.json())


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.heavy
def test_no_generated_request_gets_a_5xx(
    env: ApiEnv, document: dict[str, Any], mode: GenerationMode
) -> None:
    """``mode``: requests that fit the schema, or that break it (wrong types, missing fields)."""
    failures: list[str] = []
    sent: Counter[str] = Counter()
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        operation = result.ok()
        try:
            fuzz(env, operation, mode, sent, failures)
        except Unsatisfiable:  # nothing in the operation's schema to break (no input)
            assert mode == GenerationMode.NEGATIVE, operation.label
    assert len(sent) >= (20 if mode == GenerationMode.POSITIVE else 10), sent
    assert sum(sent.values()) >= len(sent) * len(ROLES)
    assert not failures, "\n\n".join(failures)


def fuzz(
    env: ApiEnv, operation: Any, mode: GenerationMode, sent: Counter[str], failures: list[str]
) -> None:
    """Each generated request of ``operation``, once per role: counted in ``sent`` by
    operation, a 5xx answer added to ``failures``."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        for role in ROLES:
            headers = {"Authorization": f"Bearer {env.tokens[role]}"} if role else {}
            response = case.call(base_url=env.worker.url, headers=headers, timeout=60)
            sent[operation.label] += 1
            if response.status_code >= 500:
                failures.append(
                    f"{role or 'no token'}: {response.status_code} {response.text[:300]}\n"
                    f"{case.as_curl_command(headers=headers)}"
                )

    send()
