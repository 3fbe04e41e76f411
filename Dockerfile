# The spendstream worker image (production: real Kafka and a ClickHouse server, see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY spendstream ./spendstream
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 6066
ENTRYPOINT ["spendstream"]
CMD ["worker"]
