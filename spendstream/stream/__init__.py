"""The Faust stream: validate, deduplicate and price usage events; write the ledger; window spend."""
