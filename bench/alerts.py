"""Stage 4, alert latency: from publishing the event that crosses a budget threshold to the
Slack webhook post arriving at a local HTTP server (127.0.0.1), through the real worker.

One budget (``team = "latency"``) has thresholds 1 %, 2 %, … and a limit just under 100 event
costs, so every trial event crosses exactly one new threshold and fires exactly one alert.
Trials run one after another (the next event is sent once the previous post arrived), so no
alerts are grouped. The publish is timed from before ``send`` (kafka-python, acks=all,
linger 0) to the HTTP server's receipt of the post.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from bench.worker import write_worker_config
from spendstream.embedded import free_port
from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from tests.support.worker import WorkerProcess

TEAM = "latency"


class WebhookClock:
    """Receives webhook posts on 127.0.0.1 and records when each arrived (``time.time()``)."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.arrived = threading.Condition()
        self.port = free_port()
        clock = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with clock.arrived:
                    clock.arrivals.append(time.time())
                    clock.arrived.notify_all()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout_s: float) -> float:
        """The arrival time of post number ``count`` (1-based); TimeoutError if late."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.arrivals) >= count, timeout_s):
                raise TimeoutError(f"webhook post {count} did not arrive in {timeout_s}s")
            return self.arrivals[count - 1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def trial_event(index: int) -> UsageEvent:
    return UsageEvent(
        event_id=f"latency-{index}-{time.time_ns()}",
        provider="openai",
        model="gpt-4o",
        input_tokens=1_000,
        output_tokens=100,
        tags={"team": TEAM, "env": "prod"},
    )


def budget_config(trials: int, webhook: WebhookClock, group_wait: str) -> str:
    cost = default_pricer().rate(trial_event(0)).cost_total
    limit = (cost * 100 - cost / 1000).quantize(Decimal("1e-10"))
    thresholds = ", ".join(str(k) for k in range(1, trials + 1))
    return f"""
[alerts]
slack_webhook_base = "http://127.0.0.1:{webhook.port}/services"
group_wait = "{group_wait}"

[alerts.channels]
bench-slack = "slack://T000/B000/XXXXXXXX"

[[budgets]]
name = "bench-latency"
scope = {{ team = "{TEAM}" }}
limit = "{limit}"
thresholds = [{thresholds}]
forecast = false
channels = ["bench-slack"]
"""


def alert_latencies(bootstrap: str, work_dir: Path, trials: int, group_wait: str) -> list[float]:
    """Latency in milliseconds of each of ``trials`` threshold alerts."""
    work_dir.mkdir(parents=True, exist_ok=True)
    webhook = WebhookClock()
    topic = f"bench.alerts.{time.time_ns()}"
    config = write_worker_config(
        work_dir / "spendstream.toml",
        bootstrap,
        f"chdb://{work_dir / 'clickhouse'}",
        topic,
        extra=budget_config(trials, webhook, group_wait),
    )
    worker = WorkerProcess(config, work_dir / "worker.log").start()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        warm_up = trial_event(0).model_copy(update={"tags": {"team": "warm-up"}})
        producer.send(topic, warm_up.to_json_bytes()).get(10)
        worker.wait_for_ledger_count(1, timeout_s=60)  # the consumer group has joined
        latencies = []
        for index in range(1, trials + 1):
            payload = trial_event(index).to_json_bytes()
            sent = time.time()
            producer.send(topic, payload).get(10)
            latencies.append((webhook.wait_for(index, timeout_s=60) - sent) * 1000)
            time.sleep(0.1)
        return latencies
    finally:
        producer.close()
        worker.stop()
        webhook.close()
