"""OTLP trace exports as the OpenTelemetry Collector's Kafka exporter writes them, decoded.

One Kafka record holds one ``ExportTraceServiceRequest`` (``resourceSpans`` → ``scopeSpans`` →
``spans``), encoded as

- ``otlp_proto``: the protobuf message (the exporter's default), or
- ``otlp_json``: OTLP/JSON — lowerCamelCase keys, trace and span ids as hex strings (not base64),
  64-bit integers (``intValue``, ``startTimeUnixNano``) as decimal strings, enums as integers.
  Numbers are also accepted where strings are expected, as OTLP/JSON receivers must, and so
  are base64 ids and enum names (protobuf's generic JSON mapping, written by some tools).

``auto`` tells them apart by the first byte: a protobuf request starts with field 1 (``0x0A``), a
JSON one with ``{``. Decoding yields flat :class:`SpanRecord` values (attributes as Python
values) so the GenAI conversion does not care which encoding carried the span.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from spendstream.errors import InputError
from spendstream.jsonbody import JsonBodyError, decode_json

Encoding = Literal["auto", "otlp_proto", "otlp_json"]
STATUS_ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR
STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": STATUS_ERROR}
# Message content (current conventions, then OpenLLMetry's gen_ai.prompt.N / gen_ai.completion.N).
CONTENT_ATTRIBUTE_PREFIXES = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.prompt",
    "gen_ai.completion",
)


class OtlpDecodeError(InputError, ValueError):
    """A record that is not an OTLP trace export in the expected encoding."""


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span with its resource's attributes; ids in lowercase hex, times in Unix ns."""

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    index: int  # position of the span in the export (for dead letters)
    parent_span_id: str = ""  # lowercase hex; "" for a root span
    # Why the span could not be read (its other fields then empty): dead-lettered alone.
    problem: str = ""

    def summary(self) -> dict[str, Any]:
        """A JSON-able view of the span for dead letters and logs, without message content
        (prompts and completions that instrumentations may capture stay out of the DLQ)."""
        attributes = {
            name: value
            for name, value in self.attributes.items()
            if not name.startswith(CONTENT_ATTRIBUTE_PREFIXES)
        }
        return {
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "parentSpanId": self.parent_span_id,
            "name": self.name,
            "startTimeUnixNano": str(self.start_ns),
            "endTimeUnixNano": str(self.end_ns),
            "status": {"code": self.status_code, "message": self.status_message},
            "attributes": attributes,
            "resource": self.resource,
        }


def decode_spans(payload: bytes, encoding: Encoding = "auto") -> Iterator[SpanRecord]:
    """Every span of one exported record, in order; raises :class:`OtlpDecodeError`."""
    if encoding == "auto":
        encoding = "otlp_json" if payload.lstrip()[:1] == b"{" else "otlp_proto"
    if encoding == "otlp_json":
        return _json_spans(payload)
    return _proto_spans(payload)


# -- protobuf ------------------------------------------------------------------------------------


def _proto_spans(payload: bytes) -> Iterator[SpanRecord]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
    except DecodeError as exc:
        raise OtlpDecodeError(f"not an OTLP protobuf trace export ({exc})") from None
    return _walk_proto(request)


def _walk_proto(request: ExportTraceServiceRequest) -> Iterator[SpanRecord]:
    index = 0
    for resource_spans in request.resource_spans:
        resource = _proto_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield SpanRecord(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    name=span.name,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    status_code=span.status.code,
                    status_message=span.status.message,
                    attributes=_proto_attributes(span.attributes),
                    resource=resource,
                    index=index,
                    parent_span_id=span.parent_span_id.hex(),
                )
                index += 1


def _proto_attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _proto_value(pair.value) for pair in pairs}


def _proto_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {pair.key: _proto_value(pair.value) for pair in value.kvlist_value.values}
    return getattr(value, kind)


# -- OTLP/JSON -----------------------------------------------------------------------------------


def _json_spans(payload: bytes) -> Iterator[SpanRecord]:
    try:
        request = decode_json(payload)  # bounded: nesting, integer size (a RecursionError else)
    except JsonBodyError as exc:
        raise OtlpDecodeError(f"not OTLP/JSON ({exc})") from None
    if not isinstance(request, dict) or not isinstance(request.get("resourceSpans", []), list):
        raise OtlpDecodeError("not an OTLP/JSON trace export (expected {'resourceSpans': [...]})")
    return _walk_json(request)


def _walk_json(request: dict[str, Any]) -> Iterator[SpanRecord]:
    index = 0
    for resource_spans in request.get("resourceSpans") or ():
        resource = _json_attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans") or ():
            for span in scope_spans.get("spans") or ():
                try:
                    yield _json_span(span, resource, index)
                except Exception as exc:  # this span alone: the others still convert
                    problem = f"span {index} is not an OTLP span ({type(exc).__name__}: {exc})"
                    yield SpanRecord("", "", "", 0, 0, 0, "", {}, {}, index, problem=problem)
                index += 1


def _json_span(span: dict[str, Any], resource: dict[str, Any], index: int) -> SpanRecord:
    status = span.get("status") or {}
    return SpanRecord(
        trace_id=_json_id(span.get("traceId")),
        span_id=_json_id(span.get("spanId")),
        name=str(span.get("name", "")),
        start_ns=_json_int(span.get("startTimeUnixNano")),
        end_ns=_json_int(span.get("endTimeUnixNano")),
        status_code=_json_status(status.get("code")),
        status_message=str(status.get("message", "")),
        attributes=_json_attributes(span.get("attributes")),
        resource=resource,
        index=index,
        parent_span_id=_json_id(span.get("parentSpanId")),
    )


def _json_id(value: Any) -> str:
    """OTLP/JSON ids are hex; protobuf's generic JSON mapping writes base64 (accepted too)."""
    if not isinstance(value, str):
        return ""
    try:
        bytes.fromhex(value)
        return value.lower()
    except ValueError:
        pass
    try:
        return base64.b64decode(value, validate=True).hex()
    except ValueError:
        return ""


def _json_status(value: Any) -> int:
    """Status codes are integers in OTLP/JSON; enum names are accepted too."""
    if isinstance(value, str) and not value.isdigit():
        return STATUS_NAMES.get(value.upper(), 0)
    return _json_int(value)


def _json_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _json_attributes(pairs: Any) -> dict[str, Any]:
    if not isinstance(pairs, list):
        return {}
    return {
        str(pair.get("key")): _json_value(pair.get("value"))
        for pair in pairs
        if isinstance(pair, dict)
    }


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        raw = value["intValue"]
        # int64 travels as a string; a malformed one stays a string (the converter reports it).
        try:
            return int(raw)
        except (TypeError, ValueError, OverflowError):  # 1e400 parses as infinity
            return raw
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        return [_json_value(item) for item in (value["arrayValue"] or {}).get("values") or ()]
    if "kvlistValue" in value:
        return _json_attributes((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"] or "")
    return None


__all__ = ["Encoding", "OtlpDecodeError", "SpanRecord", "decode_spans"]
