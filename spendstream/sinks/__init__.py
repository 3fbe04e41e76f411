"""ClickHouse sinks: the event ledger (source of truth), rollups, and the queries over them.

Everything goes through clickhouse-connect; the DSN picks embedded chDB (``chdb://dir``) or a
server (``http://host:8123``).
"""
