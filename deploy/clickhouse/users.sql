-- Least-privilege ClickHouse users for spendstream (docker-compose.yml; docs/alerts-security.md).
-- Rendered and run once, at the first start of an empty ClickHouse volume, by
-- initdb/10-spendstream-users.sh, which substitutes the two passwords from the environment
-- (SPENDSTREAM_WRITER_PASSWORD, SPENDSTREAM_READER_PASSWORD). Statements end with ";" lines.

CREATE DATABASE IF NOT EXISTS spendstream;

-- The worker: runs migrations (creates and upgrades its tables) and writes the ledger, rollups
-- and alert state. No DROP, no access management, no other database, no SYSTEM, no table
-- functions (file(), url(), remote() need the READ/WRITE source grants, not given).
CREATE USER IF NOT EXISTS spendstream_writer
    IDENTIFIED WITH sha256_password BY '${SPENDSTREAM_WRITER_PASSWORD}'
    DEFAULT DATABASE spendstream;
GRANT CREATE DATABASE, CREATE TABLE, CREATE VIEW, ALTER TABLE, ALTER VIEW, INSERT, SELECT
    ON spendstream.* TO spendstream_writer;

-- Grafana, the HTTP API's reads and analysts: SELECT on spendstream only, readonly = 1 enforced
-- by a constant profile (no setting changes, no writes, no temporary tables), with bounds.
CREATE SETTINGS PROFILE IF NOT EXISTS spendstream_readonly SETTINGS
    readonly = 1 CONST,
    max_execution_time = 30,
    max_result_rows = 1000000,
    max_result_bytes = 200000000,
    max_memory_usage = 4000000000;
CREATE USER IF NOT EXISTS spendstream_reader
    IDENTIFIED WITH sha256_password BY '${SPENDSTREAM_READER_PASSWORD}'
    DEFAULT DATABASE spendstream
    SETTINGS PROFILE 'spendstream_readonly';
GRANT SELECT ON spendstream.* TO spendstream_reader;
