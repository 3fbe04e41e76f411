#!/bin/bash
# Run by the clickhouse-server image on the first start of an empty volume
# (/docker-entrypoint-initdb.d): creates spendstream's writer and reader from users.sql, with
# the passwords taken from the environment (they are never written to a file).
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true  # bash 5.2: "&" in a replacement is literal
: "${SPENDSTREAM_WRITER_PASSWORD:?set SPENDSTREAM_WRITER_PASSWORD (see .env.example)}"
: "${SPENDSTREAM_READER_PASSWORD:?set SPENDSTREAM_READER_PASSWORD (see .env.example)}"
USERS_SQL=${SPENDSTREAM_USERS_SQL:-/spendstream/users.sql}

# A ClickHouse string literal body: backslashes and single quotes escaped.
literal() {
    local text=${1//\\/\\\\}
    printf '%s' "${text//\'/\\\'}"
}

sql=$(<"$USERS_SQL")
sql=${sql//'${SPENDSTREAM_WRITER_PASSWORD}'/$(literal "$SPENDSTREAM_WRITER_PASSWORD")}
sql=${sql//'${SPENDSTREAM_READER_PASSWORD}'/$(literal "$SPENDSTREAM_READER_PASSWORD")}
printf '%s\n' "$sql" | clickhouse client --user "${CLICKHOUSE_USER:-default}" \
    --password "${CLICKHOUSE_PASSWORD:-}" --multiquery
