"""FOCUS bill rows shaped as the clouds export them (column names and value forms from their
documentation: AWS Data Exports "FOCUS 1.0 with AWS columns", Microsoft Cost Management's
"FOCUS cost and usage details file schema", Google Cloud's FOCUS BigQuery export), and writers.

- AWS: opaque ``SkuId``; the model in ``x_UsageType`` (``USE1-NovaPro-input-tokens``);
  ``x_ServiceCode`` ``AmazonBedrock``; ``SubAccountId`` a 12-digit account; daily periods.
- Azure: the meter in ``x_SkuMeterName`` (``gpt 4o 0513 Input global Tokens``); FOCUS 1.0
  (before release r2) writes times without seconds (``2026-10-02T00:00Z``); ``SubAccountId`` a
  subscription path; units as ``1K Tokens``.
- Google Cloud: opaque ``SkuId`` (``1A2B-3C4D-5E6F``); the SKU description in
  ``ChargeDescription``; hourly periods in Pacific time (``-07:00``).
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

AWS_ACCOUNT = "123456789012"


def aws_row(
    day: str, meter: str, tokens: int, cost: Decimal, unit: str = "1000 Tokens"
) -> dict[str, Any]:
    """A Bedrock line: ``meter`` e.g. ``USE1-NovaPro-input-tokens``; quantity in ``unit``."""
    scale = {"1000 Tokens": 1000, "Tokens": 1, "1M Tokens": 1_000_000}[unit]
    return {
        "BilledCost": str(cost),
        "BillingCurrency": "USD",
        "BillingAccountId": AWS_ACCOUNT,
        "ChargeCategory": "Usage",
        "ChargeDescription": f"Amazon Bedrock {meter}",
        "ChargePeriodStart": f"{day}T00:00:00Z",
        "ChargePeriodEnd": f"{day}T00:00:00Z",
        "ConsumedQuantity": str(Decimal(tokens) / scale),
        "ConsumedUnit": unit,
        "ProviderName": "AWS",
        "ServiceName": "Amazon Bedrock",
        "SkuId": "8X4KQ2ZP9D7N3TRM",
        "SkuPriceId": "8X4KQ2ZP9D7N3TRM.JRTCKXETXF.6YS6EN2CT7",
        "SubAccountId": AWS_ACCOUNT,
        "x_ServiceCode": "AmazonBedrock",
        "x_UsageType": meter,
        "x_Operation": "InvokeModelInference",
    }


# What every line of a cloud's AI service carries (provider, service, SKU, sub-account).
CLOUDS: dict[str, dict[str, str]] = {
    "azure": {
        "ProviderName": "Microsoft",
        "ServiceName": "Azure OpenAI Service",
        "SkuId": "DZH318Z0BQ4L",
        "SubAccountId": "/subscriptions/00000000-0000-0000-0000-000000000000",
    },
    "gcp": {
        "ProviderName": "Google Cloud",
        "ServiceName": "Vertex AI",
        "SkuId": "1A2B-3C4D-5E6F",
        "SubAccountId": "my-project-123",
    },
}


def usage_row(
    cloud: str, moment: str, description: str, cost: Decimal, quantity: str, unit: str, **extra: str
) -> dict[str, Any]:
    """One usage line of ``cloud`` (a key of :data:`CLOUDS`), with its own ``x_`` columns."""
    return {
        "BilledCost": str(cost),
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "ChargeDescription": description,
        "ChargePeriodStart": moment,
        "ConsumedQuantity": quantity,
        "ConsumedUnit": unit,
        **CLOUDS[cloud],
        **extra,
    }


def azure_row(moment: str, meter: str, thousands: Decimal, cost: Decimal) -> dict[str, Any]:
    """An Azure OpenAI line: ``meter`` e.g. ``gpt 4o 0513 Input global Tokens``."""
    extra = {"x_SkuMeterName": meter, "x_SkuDescription": f"Azure OpenAI {meter}"}
    return usage_row("azure", moment, meter, cost, str(thousands), "1K Tokens", **extra)


def gcp_row(moment: str, description: str, tokens: int, cost: Decimal) -> dict[str, Any]:
    """A Vertex AI line: ``description`` e.g. ``Gemini 2.0 Flash Input Text Tokens``."""
    return usage_row("gcp", moment, description, cost, str(tokens), "Tokens")


def write_bill(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
