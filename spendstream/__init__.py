"""spendstream: FinOps for Generative AI.

An event's path: ``producers`` (SDK, Kafka) -> ``stream`` (Faust: validate, price, window)
-> ``sinks`` (ClickHouse ledger and rollups) -> ``alerts`` (budgets to Slack and email).
"""

__version__ = "0.1.0"
