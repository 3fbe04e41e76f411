"""Guardrails: quotas and rate limits decided from the ledger, answered to apps before each call.

Faust-free. Public API: :func:`config.load_quotas` (``[[quotas]]`` and budgets' ``block_at``),
:class:`engine.QuotaEngine` (ledger usage → decisions and transitions),
:class:`service.QuotaService` (observer + quota thread; ``is_leader`` gates the periodic pass),
:class:`publisher.KafkaDecisionPublisher`, :func:`overrides.apply_override`,
:func:`http.quota_router` (``POST /api/v1/admit``) and :data:`schema.MIGRATIONS` (300).
The wire models live in :mod:`spendstream.decisions` so the SDK reads them without this part.
See docs/guardrails.md.
"""
