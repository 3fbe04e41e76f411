"""Agent runs, sessions and steps from the span tree of one OTLP export (docs/agents.md).

OpenTelemetry's GenAI agent conventions put each agent invocation in an ``invoke_agent`` span;
the model calls it makes (``chat``, ``embeddings``, ...) and its tools (``execute_tool``) are
its descendants. For a model-call span this module finds the nearest ``invoke_agent`` ancestor
*within the same export* and derives:

==========================================  =================================================
span tree                                   event
==========================================  =================================================
the ``invoke_agent`` ancestor               ``run_id = "otel-<trace>-<agent span>"``
its (or the span's) ``gen_ai.agent.name``   ``agent``
``gen_ai.conversation.id`` (span, then up)  ``session_id``
order of the run's model calls by start     ``step`` (1, 2, ...), only when the agent span is
                                            in the export (the run's calls are then too)
the trace; the parent span                  ``trace_id``; ``parent = "otel-<trace>-<span>"``
``gen_ai.tool.name``                        ``tool``
``spendstream.customer`` (span, resource)   ``customer``
==========================================  =================================================

An SDK's batch processor exports a span when it *ends*, so a run's model calls can leave in an
earlier export than their agent span: those calls carry ``trace_id`` and ``parent`` but no
``run_id``. Group each trace into one export with the Collector's ``groupbytrace`` processor
(docs/ingest.md) to get every call's run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spendstream.ingest.otlp import SpanRecord

AGENT_OPERATION = "invoke_agent"
CUSTOMER_ATTRIBUTE = "spendstream.customer"
_MAX_DEPTH = 64  # a parent chain longer than this is cut (and a cycle cannot loop)


def _text(attributes: Mapping[str, Any], name: str) -> str:
    value = attributes.get(name)
    return value.strip() if isinstance(value, str) else ""


def span_event_id(trace_id: str, span_id: str) -> str:
    """The event id (and run or parent id) of one span: ``otel-<trace>-<span>``."""
    return f"otel-{trace_id}-{span_id}"


class SpanTree:
    """The spans of one export by id, to walk a model call's ancestors."""

    def __init__(self, spans: Sequence[SpanRecord]) -> None:
        self.by_id = {(span.trace_id, span.span_id): span for span in spans}
        self.steps: dict[str, dict[str, int]] = {}  # agent span id -> model span id -> step
        for span in sorted(spans, key=lambda s: (s.start_ns, s.index)):
            agent = self.agent_of(span)
            if agent is not None and span.attributes.get("gen_ai.operation.name") not in (
                AGENT_OPERATION,
                "execute_tool",
            ):
                numbered = self.steps.setdefault(agent.span_id, {})
                numbered[span.span_id] = len(numbered) + 1

    def ancestors(self, span: SpanRecord) -> list[SpanRecord]:
        """The span's ancestors present in the export, nearest first."""
        found: list[SpanRecord] = []
        current = span
        while current.parent_span_id and len(found) < _MAX_DEPTH:
            parent = self.by_id.get((current.trace_id, current.parent_span_id))
            if parent is None:
                break
            found.append(parent)
            current = parent
        return found

    def agent_of(self, span: SpanRecord) -> SpanRecord | None:
        for ancestor in self.ancestors(span):
            if ancestor.attributes.get("gen_ai.operation.name") == AGENT_OPERATION:
                return ancestor
        return None

    def fields(self, span: SpanRecord) -> dict[str, Any]:
        """The agent fields of a model-call span's event (absent ones left out)."""
        fields: dict[str, Any] = {"trace_id": span.trace_id}
        if span.parent_span_id:
            fields["parent"] = span_event_id(span.trace_id, span.parent_span_id)
        lineage = [span, *self.ancestors(span)]
        agent = self.agent_of(span)
        if agent is not None:
            fields["run_id"] = span_event_id(agent.trace_id, agent.span_id)
            step = self.steps.get(agent.span_id, {}).get(span.span_id)
            if step is not None:
                fields["step"] = step
        name = _text(span.attributes, "gen_ai.agent.name") or (
            _text(agent.attributes, "gen_ai.agent.name") if agent is not None else ""
        )
        if name:
            fields["agent"] = name
        for key, attribute in (
            ("session_id", "gen_ai.conversation.id"),
            ("customer", CUSTOMER_ATTRIBUTE),
        ):
            value = next((v for s in lineage if (v := _text(s.attributes, attribute))), "")
            value = value or _text(span.resource, attribute)
            if value:
                fields[key] = value
        tool = _text(span.attributes, "gen_ai.tool.name")
        if tool:
            fields["tool"] = tool
        return fields


__all__ = ["CUSTOMER_ATTRIBUTE", "SpanTree", "span_event_id"]
