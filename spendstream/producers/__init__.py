"""Producer SDK: record one LLM usage event per call, delivered to Kafka or spooled to disk.

>>> from spendstream.producers import Recorder, tags
>>> recorder = Recorder(bootstrap_servers="127.0.0.1:9092")  # spool: ~/.local/state/spendstream
>>> with tags(team="search"):
...     recorder.record(provider="openai", model="gpt-4o", usage=response)
"""

from spendstream.decisions import Decision, QuotaExceeded
from spendstream.producers.extractors import ExtractedUsage, UsageExtractionError, extract_usage
from spendstream.producers.lines import LineError, SendReport, send_json_lines
from spendstream.producers.options import RecorderOptions
from spendstream.producers.prompts import prompt_hash
from spendstream.producers.recorder import Guard, Recorder
from spendstream.producers.stats import RecorderStats, StatsCollector
from spendstream.producers.tags import TagMerger, current_scopes, tags

__all__ = [
    "Decision",
    "ExtractedUsage",
    "Guard",
    "LineError",
    "QuotaExceeded",
    "Recorder",
    "RecorderOptions",
    "RecorderStats",
    "SendReport",
    "StatsCollector",
    "TagMerger",
    "UsageExtractionError",
    "current_scopes",
    "extract_usage",
    "prompt_hash",
    "send_json_lines",
    "tags",
]
