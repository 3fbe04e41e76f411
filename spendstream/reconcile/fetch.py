"""Fetching cost and usage reports from the providers' admin APIs (httpx, tenacity retries).

Every report is read page by page (``has_more`` / ``next_page`` sent back as ``page``) in daily
buckets. A 429 waits for its ``retry-after`` (seconds) before retrying; 5xx answers and
connection errors retry with exponential back-off; other 4xx fail at once with the provider's
message. The admin key is sent in a header and never logged (only paths and attempt counts are).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from spendstream.config import DEFAULT_ADMIN_URLS, ProviderAccountSettings
from spendstream.errors import SpendstreamError, UnavailableError
from spendstream.logs import get_logger
from spendstream.reconcile.lines import Kind, ReportError

log = get_logger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
PAGE_LIMIT = 31  # daily buckets per page: the largest limit every endpoint accepts


@dataclass(frozen=True)
class Endpoint:
    """One report: its path, fixed query (group-by lists as repeated parameters) and kind."""

    name: str
    path: str
    params: tuple[tuple[str, str], ...]
    kind: Kind


ENDPOINTS: dict[str, tuple[Endpoint, ...]] = {
    "openai": (
        Endpoint(
            "costs",
            "/v1/organization/costs",
            (("group_by", "line_item"), ("group_by", "project_id"), ("group_by", "api_key_id")),
            "cost",
        ),
        Endpoint(
            "usage-completions",
            "/v1/organization/usage/completions",
            tuple(("group_by", name) for name in ("model", "project_id", "api_key_id", "batch")),
            "usage",
        ),
        Endpoint(
            "usage-embeddings",
            "/v1/organization/usage/embeddings",
            (("group_by", "model"), ("group_by", "project_id"), ("group_by", "api_key_id")),
            "usage",
        ),
    ),
    "anthropic": (
        Endpoint(
            "cost_report",
            "/v1/organizations/cost_report",
            (("group_by[]", "workspace_id"), ("group_by[]", "description")),
            "cost",
        ),
        Endpoint(
            "usage_report",
            "/v1/organizations/usage_report/messages",
            tuple(
                ("group_by[]", name)
                for name in ("model", "workspace_id", "service_tier", "context_window")
            ),
            "usage",
        ),
    ),
}


class FetchError(SpendstreamError):
    """The provider refused the request (the message says what it answered)."""


class RetryableStatus(UnavailableError):
    """A 429 or 5xx answer; ``retry_after`` is the provider's requested wait, if any."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}", retry_after)
        self.status = status
        self.retry_after = retry_after


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the provider asks us to wait: ``retry-after`` (seconds), else OpenAI's
    ``x-ratelimit-reset-requests`` / ``-tokens`` (``"1s"``, ``"6m0s"``, ``"20ms"``); None when
    absent or unreadable (an HTTP date): exponential back-off then."""
    value = response.headers.get("retry-after")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        text = response.headers.get(name, "")
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text.strip():
            return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    return None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RetryableStatus | httpx.TransportError)


class AdminClient:
    """Reads one provider's reports. ``transport`` lets tests bypass the network stack."""

    def __init__(
        self,
        provider: str,
        settings: ProviderAccountSettings,
        backoff_s: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if provider not in ENDPOINTS:
            raise FetchError(f"no admin API for {provider!r}: use openai or anthropic")
        if settings.admin_key is None:
            raise FetchError(
                f"no admin key for {provider}: set [reconcile.{provider}] admin_key "
                f"(or SPENDSTREAM_RECONCILE__{provider.upper()}__ADMIN_KEY)"
            )
        self.provider = provider
        self.settings = settings
        key = settings.admin_key.get_secret_value()
        headers = (
            {"Authorization": f"Bearer {key}"}
            if provider == "openai"
            else {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
        )
        self.http = httpx.Client(
            base_url=settings.base_url or DEFAULT_ADMIN_URLS[provider],
            headers=headers,
            timeout=settings.timeout_s,
            transport=transport,
        )
        self.backoff = wait_exponential(multiplier=backoff_s, max=60 * backoff_s)
        self.attempts = 0  # requests sent, retries included (for logs and tests)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return exc.retry_after
        return float(self.backoff(state))

    def _get(self, path: str, params: list[tuple[str, str]]) -> Any:
        self.attempts += 1
        response = self.http.get(path, params=tuple(params))
        if response.status_code == 429 or response.status_code >= 500:
            log.warning("admin API busy; retrying", path=path, status=response.status_code)
            raise RetryableStatus(response.status_code, retry_after(response))
        if response.status_code >= 400:
            raise FetchError(
                f"{self.provider} {path}: HTTP {response.status_code}: {response.text[:300]}"
            )
        return json.loads(response.content, parse_float=Decimal)

    def get(self, path: str, params: list[tuple[str, str]]) -> Any:
        """One page, retried on 429 (after retry-after), 5xx and connection errors."""
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            reraise=True,
        )
        try:
            return retrying(self._get, path, params)
        except RetryableStatus as exc:
            raise FetchError(
                f"{self.provider} {path}: still HTTP {exc.status} after "
                f"{self.settings.max_attempts} attempts"
            ) from None
        except httpx.TransportError as exc:
            raise FetchError(f"{self.provider} {path}: {exc}") from None

    def pages(self, endpoint: Endpoint, since: datetime, until: datetime) -> Iterator[Any]:
        """Every page of ``endpoint`` for daily buckets in ``[since, until)``."""
        if self.provider == "openai":
            window = [
                ("start_time", str(int(since.timestamp()))),
                ("end_time", str(int(until.timestamp()))),
            ]
        else:
            window = [("starting_at", _rfc3339(since)), ("ending_at", _rfc3339(until))]
        params = [*window, ("bucket_width", "1d"), ("limit", str(PAGE_LIMIT)), *endpoint.params]
        page_token: str | None = None
        while True:
            page = self.get(endpoint.path, params + ([("page", page_token)] if page_token else []))
            if not isinstance(page, dict):
                raise ReportError(f"{self.provider} {endpoint.path}: expected a JSON object")
            yield page
            page_token = page.get("next_page")
            if not page.get("has_more") or not page_token:
                return

    def reports(self, since: datetime, until: datetime) -> Iterator[tuple[Endpoint, list[Any]]]:
        """``(endpoint, pages)`` for each of the provider's cost and usage reports."""
        for endpoint in ENDPOINTS[self.provider]:
            yield endpoint, list(self.pages(endpoint, since, until))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
