"""Secrets in configuration values: moved to :mod:`spendstream.redaction` (importable without the
settings model, for the CLI's quick settings read); kept here for existing imports."""

from spendstream.redaction import ADDRESS_SCHEMES, REDACTED, redact_text, redact_url, url_secrets

__all__ = ["ADDRESS_SCHEMES", "REDACTED", "redact_text", "redact_url", "url_secrets"]
