"""``spendstream send``: publish JSON-lines events, reporting every bad line without stopping."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from spendstream.events import EventError, parse_event
from spendstream.producers.recorder import Recorder


class LineError(BaseModel):
    line: int  # 1-based
    reason: str


class SendReport(BaseModel):
    accepted: int = 0
    blank: int = 0
    stamped: int = 0  # accepted lines that had neither event_id nor event_time
    errors: list[LineError] = []

    @property
    def ok(self) -> bool:
        return not self.errors


def send_json_lines(recorder: Recorder, lines: Iterable[str]) -> SendReport:
    """Validate each line as a UsageEvent (JSON object) and record the valid ones.

    Blank lines are skipped. Recorder-level and scoped tags are merged in as for ``record()``.
    A line with neither ``event_id`` nor ``event_time`` is a new call, as ``record()`` takes it:
    it gets a new id and the current time (so sending the same line again counts it again).
    Call ``recorder.flush()`` afterwards to wait for delivery.
    """
    report = SendReport()
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            report.blank += 1
            continue
        try:
            event = parse_event(text.encode(), stamp_new=True)
        except EventError as exc:
            report.errors.append(LineError(line=number, reason=exc.reason))
            continue
        if recorder.record(event) is None:
            report.errors.append(LineError(line=number, reason="dropped by the recorder (see log)"))
        else:
            report.accepted += 1
            report.stamped += not {"event_id", "event_time"} & event.model_fields_set
    return report
