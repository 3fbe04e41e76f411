"""Overrides and resets of one quota key, audited (who, when, why) in ``quota_overrides``.

- ``override``: the key's limit becomes ``limit`` (in the quota's unit) until ``now + duration``;
  then the configured limit applies again (the evaluating worker's next pass re-decides).
- ``reset``: usage counted so far this period is forgiven (the baseline is the key's usage now);
  it ends with the period.

The CLI POSTs an :class:`OverrideRequest` to the running worker's ``/quotas/overrides`` page, or
writes it directly when no worker holds the chDB directory; both end in :func:`apply_override`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from spendstream.config.models import SpelledDuration
from spendstream.decisions import group_key
from spendstream.moments import shifted
from spendstream.quotas.config import QuotaConfig, Quotas
from spendstream.quotas.store import Override, QuotaStore


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["override", "reset"] = "override"
    quota: str
    key: str = ""
    limit: Annotated[Decimal, Field(ge=0)] | None = None
    duration: SpelledDuration = Field(default="1h", validate_default=True)
    reason: str = ""
    by: str = ""


def normalize_key(quota: QuotaConfig, key: str) -> str:
    """``user=alice`` (any order, ``-`` or "" for a quota without group_by) as its group key;
    ValueError names the expected form."""
    expected = ",".join(f"{name}=VALUE" for name in quota.group_by) or '"" (no group_by)'
    if not quota.group_by:
        if key.strip() in ("", "-"):
            return ""
        raise ValueError(f"quota {quota.name!r} has no group_by: its key is {expected}")
    values: dict[str, str] = {}
    for part in key.split(","):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in quota.group_by:
            raise ValueError(f"key {key!r} does not fit quota {quota.name!r}: write {expected}")
        values[name.strip()] = value
    if set(values) != set(quota.group_by):
        raise ValueError(f"key {key!r} does not fit quota {quota.name!r}: write {expected}")
    return group_key(tuple(quota.group_by), values)


def apply_override(
    store: QuotaStore, quotas: Quotas, request: OverrideRequest, now: datetime
) -> Override:
    """Record the override or reset. KeyError: no such quota; ValueError: bad key or limit."""
    quota = quotas.quota(request.quota)
    key = normalize_key(quota, request.key)
    start, end = quota.bounds(now)
    if request.action == "override":
        if request.limit is None:
            raise ValueError("an override needs a limit (--limit, in the quota's unit)")
        if request.duration <= timedelta(0):
            raise ValueError("an override needs a positive duration (--for 2h)")
        limit, baseline, until = request.limit, Decimal(0), shifted(now, request.duration)
    else:
        used = store.usage(quota, start, end, keys=[key])[key]
        limit, baseline, until = None, used, end
    override = Override(
        override_id=uuid.uuid4().hex,
        quota=quota.name,
        key=key,
        kind="limit" if request.action == "override" else "reset",
        limit=limit,
        baseline=baseline,
        until=until,
        reason=request.reason,
        created_by=request.by,
        created_at=now,
    )
    store.put_override(override)
    return override
