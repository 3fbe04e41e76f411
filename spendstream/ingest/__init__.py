"""Ingest from the ecosystem: OpenTelemetry GenAI spans, HTTP, and (in the SDK) gateway callbacks.

Public surface:

- :mod:`.otlp` — decode OTLP trace exports as the OpenTelemetry Collector's Kafka exporter writes
  them (``otlp_proto``, ``otlp_json``) into :class:`~.otlp.SpanRecord` values.
- :mod:`.genai` — :class:`~.genai.SpanConverter`: GenAI spans to usage events (pure).
- :mod:`.publisher` — :class:`~.publisher.KafkaEventPublisher`: events to the usage topic,
  returning only once the broker acknowledged them.
- :mod:`.http` — :func:`~.http.ingest_router`: ``POST /api/v1/events``.

Layering: above ``events``/``config``/``auth``/``producers``, below ``stream`` and ``worker``
(which wire the span agent and the router). Nothing here imports Faust or ClickHouse.
"""
