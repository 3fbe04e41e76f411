# The spendstream worker image (production: real Kafka and a ClickHouse server, see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY spendstream ./spendstream
# The worker extra (Faust, clickhouse-connect, Apprise, the CLI); `.` alone is the SDK.
RUN pip install --no-cache-dir '.[worker]'
# Local state (Faust's datadir, the CLI's spool) goes under $XDG_STATE_HOME, writable by nobody.
ENV XDG_STATE_HOME=/var/lib/spendstream
RUN mkdir -p /var/lib/spendstream && chown nobody /var/lib/spendstream
USER nobody
EXPOSE 6066
ENTRYPOINT ["spendstream"]
CMD ["worker"]
