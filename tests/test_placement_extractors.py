"""The SDK fills ``platform`` and ``region`` from clients and responses that know them (duck-typed
stand-ins shaped like boto3, anthropic, google-genai and openai objects; no provider SDK)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from spendstream.events import UsageEvent
from spendstream.pricing import default_pricer
from spendstream.producers import extract_usage
from spendstream.producers.placement import client_placement, response_placement


class AnthropicBedrock:
    aws_region = "eu-central-1"


class AnthropicVertex:
    region = "europe-west1"


class AzureOpenAI:
    base_url = "https://contoso.openai.azure.com/openai/"


EU_WEST = {"region": "eu-west-1"}


def boto3_client(service: str, region: str) -> Any:
    service_model = SimpleNamespace(service_name=service)
    return SimpleNamespace(meta=SimpleNamespace(service_model=service_model, region_name=region))


@pytest.mark.parametrize(
    ("client", "fields"),
    [
        (boto3_client("bedrock-runtime", "eu-west-1"), {"platform": "bedrock", **EU_WEST}),
        (boto3_client("s3", "eu-west-1"), {}),
        (AnthropicBedrock(), {"platform": "bedrock", "region": "eu-central-1"}),
        (AnthropicVertex(), {"platform": "vertex", "region": "europe-west1"}),
        (SimpleNamespace(vertexai=True), {"platform": "vertex"}),
        (AzureOpenAI(), {"platform": "azure"}),
        (SimpleNamespace(base_url="https://x.cognitiveservices.azure.com/"), {"platform": "azure"}),
        (SimpleNamespace(base_url="https://api.openai.com/v1/"), {}),
        (None, {}),
    ],
)  # fmt: skip
def test_clients_say_where_the_call_went(client: Any, fields: dict[str, str]) -> None:
    assert client_placement(client) == fields


AZURE_RESPONSE = {
    "model": "gpt-4o-2024-11-20",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    "choices": [{"finish_reason": "stop", "message": {"content": "hi"}}],
    "usage": {"prompt_tokens": 1_000, "completion_tokens": 100},
}


def test_an_azure_response_is_recognised_by_its_content_filter_results() -> None:
    extracted = extract_usage(AZURE_RESPONSE, "openai")
    assert extracted.platform == "azure"
    assert extracted.event_fields()["platform"] == "azure"
    plain = {key: value for key, value in AZURE_RESPONSE.items() if key != "prompt_filter_results"}
    assert "platform" not in extract_usage(plain, "openai").event_fields()
    assert response_placement([{"id": 1}, AZURE_RESPONSE]) == {"platform": "azure"}


def test_extracted_placement_prices_the_call_where_it_ran() -> None:
    fields = {
        **extract_usage(AZURE_RESPONSE, "openai").event_fields(),
        **client_placement(AzureOpenAI()),
    }
    zone = UsageEvent(provider="openai", model="gpt-4o", region="eu", **fields)
    rating = default_pricer().rate(zone)
    assert (rating.platform, rating.region) == ("azure", "eu")
    # 1,000 input at $2.75 and 100 output at $11 per million: the EU data zone, 10 % above base
    assert rating.cost_total * 1_000_000 == 1_000 * Decimal("2.75") + 100 * 11
