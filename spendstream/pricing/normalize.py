"""Model- and provider-name normalisation: what an app reports -> a catalog name.

Resolution never guesses: a name is tried as-is first, then after each documented rewrite in
turn, and the first candidate that is a catalog name or alias wins. When none is, the model is
reported unknown.

Rewrites, applied cumulatively in this order (after lowercasing and trimming):

1. path prefixes: everything up to the last ``/`` (``openai/gpt-4o``, ``models/gemini-2.5-flash``,
   Bedrock ARNs ``arn:aws:bedrock:...:foundation-model/anthropic.claude-...``)
2. ``@version`` suffixes (Vertex AI ``claude-sonnet-4-5@20250929``)
3. Bedrock cross-region profile prefixes: ``us.``, ``eu.``, ``apac.``, ``global.``, ...
4. Bedrock vendor prefixes: ``anthropic.``, ``meta.``, ``amazon.``, ``mistral.``, ``cohere.``, ...
5. Bedrock ``:N`` / ``:NNNk`` suffixes (``-v1:0``, ``:0:200k``)
6. ``-vN`` version suffixes (``-v1``; tried after the name with it, so ``titan-embed-text-v2`` wins)
7. ``-latest`` (``claude-3-5-sonnet-latest``, ``mistral-large-latest``)
8. dated snapshots: ``-YYYYMMDD``, ``-YYYY-MM-DD``, ``-MMDD``/``-YYMM`` (4 digits), ``-NNN``
   (Gemini ``-001``)
"""

from __future__ import annotations

import re
from collections.abc import Callable

_Rewrite = Callable[[str], str]


def _sub(pattern: str) -> _Rewrite:
    compiled = re.compile(pattern)
    return lambda name: compiled.sub("", name, count=1)


REWRITES: tuple[tuple[str, _Rewrite], ...] = (
    ("path prefix", lambda name: name.rsplit("/", 1)[-1]),
    ("@version", lambda name: name.split("@", 1)[0] if not name.startswith("@") else name),
    ("region profile", _sub(r"^(?:us|eu|apac|ap|global|us-gov|jp|au|ca)\.")),
    ("vendor prefix", _sub(r"^(?:anthropic|meta|amazon|mistral|cohere|ai21|deepseek|writer)\.")),
    ("bedrock :N suffix", _sub(r"(?::\d+k?)+$")),
    ("-vN suffix", _sub(r"-v\d+$")),
    ("-latest", _sub(r"-latest$")),
    ("date -YYYYMMDD", _sub(r"-\d{8}$")),
    ("date -YYYY-MM-DD", _sub(r"-\d{4}-\d{2}-\d{2}$")),
    ("snapshot -NNNN", _sub(r"-\d{4}$")),
    ("version -NNN", _sub(r"-\d{3}$")),
)


def model_candidates(raw: str) -> list[str]:
    """Names to try for ``raw``, most specific first (the raw name, then each rewrite)."""
    name = raw.strip().lower()
    candidates = [name]
    for _label, rewrite in REWRITES:
        rewritten = rewrite(name)
        if rewritten and rewritten != name:
            name = rewritten
            candidates.append(name)
    return candidates


def provider_key(raw: str) -> str:
    """Lowercased, trimmed provider name (aliases are resolved against the catalog)."""
    return raw.strip().lower()


# OpenTelemetry's well-known ``gen_ai.provider.name`` values whose provider we know under another
# name -> the name our events carry (the catalog provider, or the platform name where the platform
# is billed apart: ``azure``, ``vertex_ai``). Both names price alike (the catalog aliases them
# and they say the same platform); storing one keeps reconcile, budgets and filters on one name.
OTEL_PROVIDER_NAMES: dict[str, str] = {
    "aws.bedrock": "bedrock",
    "azure.ai.openai": "azure",
    "gcp.vertex_ai": "vertex_ai",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "mistral_ai": "mistral",
}


def stored_provider(reported: str) -> str:
    """The provider name stored for a span's ``gen_ai.provider.name`` (unchanged unless it is
    one of :data:`OTEL_PROVIDER_NAMES`)."""
    return OTEL_PROVIDER_NAMES.get(provider_key(reported), reported)


def provider_names(name: str) -> tuple[str, ...]:
    """``name`` and every OpenTelemetry name stored as it (rows ingested before spans' names
    were mapped keep theirs), ``name`` first."""
    home = stored_provider(name)
    others = [other for other, ours in OTEL_PROVIDER_NAMES.items() if ours == home]
    return tuple(dict.fromkeys([name, home, *others]))
