"""Where a call was served, read from the SDK client or the response (no provider SDK imported).

Fills the optional event fields ``platform`` and ``region`` (see :mod:`spendstream.events`) where
the client or the response knows them; the worker's pricer reads the model id first and uses
these for what the id does not say (docs/pricing.md "Platforms and regions").

==========================================  ==============================================
client or response                          fields
==========================================  ==============================================
boto3 ``bedrock-runtime`` client            platform ``bedrock``, region ``meta.region_name``
``AnthropicBedrock`` (``aws_region``)       platform ``bedrock``, region ``aws_region``
``AnthropicVertex`` (``region``)            platform ``vertex``, region ``region``
google-genai ``Client(vertexai=True)``      platform ``vertex``
``AzureOpenAI`` / Azure endpoints           platform ``azure`` (the data zone is a property of
                                            the deployment: put it in the model id,
                                            ``azure/eu/gpt-4o``, or pass ``region="eu"``)
response with ``prompt_filter_results``     platform ``azure`` (only Azure OpenAI adds them)
==========================================  ==============================================
"""

from __future__ import annotations

from typing import Any

from spendstream.producers.unit_extractors import get

AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


def client_placement(client: Any) -> dict[str, str]:
    """``{"platform": ..., "region": ...}`` (either may be absent) for an SDK client."""
    if client is None:
        return {}
    meta = getattr(client, "meta", None)
    service = getattr(getattr(meta, "service_model", None), "service_name", None)
    if service in ("bedrock-runtime", "bedrock"):
        return _fields("bedrock", getattr(meta, "region_name", None))
    kind = type(client).__name__.lower()
    if "bedrock" in kind:
        return _fields("bedrock", getattr(client, "aws_region", None))
    if "vertex" in kind:
        return _fields("vertex", getattr(client, "region", None))
    if getattr(client, "vertexai", None) is True:
        return _fields("vertex", None)
    base_url = str(getattr(client, "base_url", "") or "").lower()
    host = base_url.split("://", 1)[-1].split("/", 1)[0]
    if "azure" in kind or host.endswith(AZURE_HOSTS):
        return _fields("azure", None)
    return {}


def response_placement(response: Any) -> dict[str, str]:
    """The platform a response shows it came from (Azure OpenAI's content-filter results)."""
    if isinstance(response, list | tuple):
        return next((found for found in map(response_placement, response) if found), {})
    if get(response, "prompt_filter_results") is not None:
        return {"platform": "azure"}
    return {}


def _fields(platform: str, region: object) -> dict[str, str]:
    fields = {"platform": platform}
    if isinstance(region, str) and region.strip():
        fields["region"] = region.strip().lower()
    return fields
