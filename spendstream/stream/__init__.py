"""The Faust stream: validate, deduplicate and price usage events, then write the ledger."""
