"""Free SQL for the guard's tests (issue 24): hostile statements, each with the words its refusal
must contain, and analytics queries over the ledger that must still be answered."""

from __future__ import annotations

PARSE = "not one statement ClickHouse can parse"
OUTFILE = "INTO OUTFILE is not allowed"
FILE = "function file is not allowed"
ONLY_SELECT = "statements are not allowed: only SELECT or WITH"


def table(name: str) -> str:
    return f"table {name} is not allowed"


def table_function(name: str) -> str:
    return f"table function {name} is not allowed"


# (statement, what the refusal names). Comments, case, quoting, escapes, nesting, CTEs,
# subqueries in IN, view(), aliases, format(), lambdas, string literals that look like SQL.
HOSTILE: list[tuple[str, str]] = [
    # Reading files: the scalar file(), in every disguise.
    ("SELECT file('/etc/passwd')", FILE),
    ("SELECT file('/proc/self/environ')", FILE),
    ("SELECT CAST(file('/etc/passwd') AS Int64)", FILE),
    ("select FiLe('/etc/passwd')", "function FiLe is not allowed"),
    ("SELECT `file`('/etc/passwd')", FILE),
    ("SELECT \"file\"('/etc/passwd')", FILE),
    ("SELECT `fi\\x6ce`('/etc/passwd')", FILE),
    ("SELECT `\\u0066ile`('/etc/passwd')", "function \\u0066ile is not allowed"),
    ("SELECT \\u0066ile('/etc/passwd')", PARSE),
    ("SELECT ｆｉｌｅ('/etc/passwd')", PARSE),
    ("SELECT/**/file/**/('/etc/passwd')", FILE),
    ("SELECT 1 -- a comment\n, file('/etc/passwd')", FILE),
    ("SELECT 1 # a comment\n, file('/etc/passwd')", FILE),
    ("SELECT 1 /* ; DROP TABLE ledger */, file('/etc/passwd')", FILE),
    ("SELECT 'SELECT 1' AS q, file('/etc/passwd')", FILE),
    ("SELECT $$SELECT 1$$ || file('/etc/passwd')", FILE),
    ("SELECT 1 AS `a\n    Function sum`, file('/etc/passwd')", FILE),
    ("SELECT f FROM (SELECT file('/etc/passwd') AS f)", FILE),
    ("SELECT (SELECT file('/etc/passwd'))", FILE),
    ("WITH x AS (SELECT file('/proc/self/environ')) SELECT * FROM x", FILE),
    ("WITH file('/etc/passwd') AS f SELECT f", FILE),
    ("WITH (SELECT file('/etc/passwd')) AS f SELECT f", FILE),
    ("WITH RECURSIVE r AS (SELECT file('/etc/passwd') AS a) SELECT * FROM r", FILE),
    ("SELECT 1 WHERE 'a' IN (SELECT file('/etc/passwd'))", FILE),
    ("SELECT 1 WHERE 'a' IN (WITH y AS (SELECT file('/x')) SELECT * FROM y)", FILE),
    ("SELECT 1 UNION ALL SELECT file('/etc/passwd')", FILE),
    ("SELECT 1 INTERSECT SELECT file('/etc/passwd')", FILE),
    ("SELECT arrayMap(x -> file(x), ['/etc/passwd'])", FILE),
    ("SELECT * FROM ledger ARRAY JOIN arrayMap(x -> file(x), ['/x']) AS p", FILE),
    ("SELECT sumIf(file('/etc/passwd'), 1)", FILE),
    ("SELECT uniqMerge(s) FROM (SELECT uniqState(file('/x')) AS s)", FILE),
    ("SELECT quantiles(file('/x'))(1)", FILE),
    ("SELECT fileIf('/etc/passwd', 1)", "function fileIf is not allowed"),
    ("SELECT * APPLY(file) FROM (SELECT '/etc/passwd' AS p)", FILE),
    ("SELECT COLUMNS('team') APPLY(file) FROM ledger", FILE),
    ("SELECT * REPLACE(file('/x') AS team) FROM ledger", FILE),
    ("SELECT x FROM ledger ORDER BY file('/x')", FILE),
    ("SELECT * FROM ledger LIMIT 1 BY file('/x')", FILE),
    ("SELECT count() FROM ledger GROUP BY file('/x')", FILE),
    ("SELECT count() FROM ledger HAVING file('/x') = ''", FILE),
    ("SELECT team FROM ledger PREWHERE file('/x') = ''", FILE),
    ("SELECT team FROM ledger QUALIFY file('/x') = ''", FILE),
    ("SELECT * FROM numbers(10) LIMIT file('/x')", FILE),
    ("SELECT sum(1) OVER (PARTITION BY file('/x'))", FILE),
    ("SELECT 1 FROM (SELECT 1) WINDOW w AS (ORDER BY file('/x'))", FILE),
    ("SELECT * FROM numbers(3) AS n JOIN system.one ON file('/x') = ''", FILE),
    ("SELECT * FROM numbers(file('/x'))", FILE),
    ("SELECT number FROM numbers(3) ORDER BY number WITH FILL FROM file('/x')", FILE),
    ("SELECT * FROM numbers(3) WHERE number IN file('/x', 'TSV', 'a UInt64')", FILE),
    # Files as tables: chDB's default database reads FROM '<path>'.
    ("SELECT * FROM '/etc/passwd'", table("/etc/passwd")),
    ("SELECT * FROM `/etc/passwd`", table("/etc/passwd")),
    ('SELECT * FROM "/etc/passwd"', table("/etc/passwd")),
    ("SELECT * FROM `spendstream`.`../../etc/passwd`", table("spendstream.../../etc/passwd")),
    ("SELECT * FROM default.`/etc/passwd`", table("default./etc/passwd")),
    # Writing files, killing queries, changing settings, other statements.
    ("SELECT 'x' INTO OUTFILE '/tmp/pwn.pth' TRUNCATE", OUTFILE),
    ("SELECT 'x' INTO OUTFILE '/tmp/pwn' APPEND", OUTFILE),
    ("SELECT * FROM numbers(3) INTO OUTFILE '/tmp/x.pth' AND STDOUT", OUTFILE),
    ("EXPLAIN AST SELECT 1 INTO OUTFILE '/tmp/y'", OUTFILE),
    ("SELECT 1 FROM (SELECT 1 INTO OUTFILE '/tmp/z')", PARSE),
    ("KILL QUERY WHERE 1", "KILL " + ONLY_SELECT),
    ("kill query where query_id = 'x' SYNC", "KILL " + ONLY_SELECT),
    ("SELECT 1; KILL QUERY WHERE 1", PARSE),
    ("SELECT 'a'; SELECT file('/etc/passwd')", PARSE),
    ("SELECT 1 SETTINGS readonly = 0", "SETTINGS is not allowed"),
    ("SELECT 1 SETTINGS max_execution_time = 1000", "SETTINGS is not allowed"),
    ("EXPLAIN PLAN SELECT 1 SETTINGS readonly = 0", "SETTINGS is not allowed"),
    ("EXPLAIN PLAN readonly = 0 SELECT 1", "EXPLAIN option 'readonly' is not allowed"),
    ("SELECT 1 FORMAT JSON", "FORMAT is not allowed"),
    ("SELECT * FROM (SELECT 1 SETTINGS readonly = 0)", "SETTINGS is not allowed"),
    ("SELECT * FROM (SELECT 1 FORMAT TSV)", PARSE),
    ("EXPLAIN QUERY TREE SELECT 1", "EXPLAIN QUERY TREE is not allowed"),
    ("SET readonly = 0", "SET " + ONLY_SELECT),
    ("SYSTEM SHUTDOWN", "SYSTEM " + ONLY_SELECT),
    ("SYSTEM DROP DNS CACHE", "SYSTEM " + ONLY_SELECT),
    ("INSERT INTO ledger (event_id) VALUES ('x')", PARSE),
    ("INSERT INTO ledger SELECT * FROM ledger", "INSERT " + ONLY_SELECT),
    ("DROP TABLE ledger", "DROP/TRUNCATE " + ONLY_SELECT),
    ("TRUNCATE TABLE auth_tokens", "DROP/TRUNCATE " + ONLY_SELECT),
    ("ALTER TABLE ledger DELETE WHERE 1", "ALTER " + ONLY_SELECT),
    ("CREATE TABLE t (a String) ENGINE = Memory", "CREATE " + ONLY_SELECT),
    ("CREATE FUNCTION f AS x -> x", "CreateSQLFunctionQuery " + ONLY_SELECT),
    ("CREATE USER intruder IDENTIFIED WITH no_password", PARSE),
    ("USE system", "USE " + ONLY_SELECT),
    ("SHOW TABLES", ONLY_SELECT),
    ("DESCRIBE TABLE ledger", PARSE),
    ("EXPLAIN SELECT file('/etc/passwd')", FILE),
    ("SELECT * FROM (EXPLAIN SELECT 1)", table_function("viewExplain")),
    # Identifier parameters substitute names after the check.
    ("SELECT * FROM {t:Identifier}", "not allowed"),
    ("SELECT * FROM ledger WHERE team = {t:Identifier}", "Identifier parameters"),
    # Table functions (every one is also enumerated from system.table_functions).
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", table_function("file")),
    ("SELECT * FROM FILE('/etc/passwd', 'LineAsString')", table_function("FILE")),
    ("SELECT * FROM view(SELECT file('/etc/passwd'))", table_function("view")),
    ("SELECT * FROM view(SELECT 1)", table_function("view")),
    ("SELECT * FROM format(TSV, 'a\\nb')", table_function("format")),
    ("SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')", table_function("url")),
    ("SELECT * FROM remote('127.0.0.1', system.one)", table_function("remote")),
    ("SELECT 1 FROM (SELECT * FROM remoteSecure('127.0.0.1', system.one))", "remoteSecure"),
    ("SELECT * FROM cluster('default', system.one)", table_function("cluster")),
    ("SELECT * FROM s3('http://x/y', 'CSV')", table_function("s3")),
    ("SELECT * FROM hdfs('hdfs://x/y', 'CSV')", table_function("hdfs")),
    ("SELECT * FROM executable('id', 'TSV', 'a String')", table_function("executable")),
    ("SELECT * FROM input('a String')", table_function("input")),
    ("SELECT * FROM merge('system', '.*')", table_function("merge")),
    ("SELECT * FROM dictionary('d')", table_function("dictionary")),
    ("SELECT * FROM python(x)", table_function("python")),
    ("SELECT * FROM mysql('h:3306', 'db', 't', 'u', 'p')", table_function("mysql")),
    ("SELECT * FROM postgresql('h:5432', 'db', 't', 'u', 'p')", table_function("postgresql")),
    ("SELECT * FROM jdbc('x', 'y')", table_function("jdbc")),
    ("SELECT * FROM odbc('x', 'y')", table_function("odbc")),
    ("SELECT * FROM sqlite('/x.db', 't')", table_function("sqlite")),
    ("SELECT * FROM loop(numbers(3))", table_function("loop")),
    ("SELECT * FROM mergeTreeIndex(spendstream, ledger)", table_function("mergeTreeIndex")),
    ("SELECT * FROM viewIfPermitted(SELECT 1 ELSE null('a Int'))", "viewIfPermitted"),
    ("SELECT * FROM ledger AS l JOIN url('http://x', 'CSV', 'a String') AS u ON 1", "url"),
    ("SELECT * FROM zeros(3), file('/x')", table_function("file")),
    ("SELECT 1 WHERE 1 GLOBAL NOT IN (SELECT * FROM url('http://x', 'CSV', 'a String'))", "url"),
    ("SELECT * FROM generateRandom('a Int8')", table_function("generateRandom")),
    # Tables outside the database and the allowed system tables.
    ("SELECT * FROM system.processes", table("system.processes")),
    ("SELECT query FROM system.query_log", table("system.query_log")),
    ("SELECT * FROM system.users", table("system.users")),
    ("SELECT * FROM system.settings", table("system.settings")),
    ("SELECT * FROM system.zookeeper WHERE path = '/'", table("system.zookeeper")),
    ("SELECT * FROM system.`one`, `system`.`processes`", table("system.processes")),
    ("SELECT * FROM spendstream.ledger AS a JOIN system.errors AS e ON 1", table("system.errors")),
    ("SELECT * FROM default.secrets", table("default.secrets")),
    ("SELECT * FROM INFORMATION_SCHEMA.TABLES", table("INFORMATION_SCHEMA.TABLES")),
    ("SELECT 1 IN system.users", table("system.users")),
    ("SELECT 1 FROM ledger WHERE team GLOBAL IN system.users", table("system.users")),
    ("SELECT x FROM (SELECT 1 AS x) AS system WHERE x IN system.grants", table("system.grants")),
    ("SELECT 1 WHERE 1 IN (SELECT 1 FROM system.query_log)", table("system.query_log")),
    (
        "SELECT * FROM ledger WHERE (team, app) IN (SELECT user, query FROM system.processes)",
        "processes",
    ),
    # Functions that reach the host, settings, dictionaries, tables by name, services.
    ("SELECT hostName()", "function hostName is not allowed"),
    ("SELECT FQDN()", "function FQDN is not allowed"),
    ("SELECT getSetting('max_memory_usage')", "function getSetting is not allowed"),
    ("SELECT sleep(3)", "function sleep is not allowed"),
    ("SELECT sleepEachRow(1) FROM numbers(3)", "function sleepEachRow is not allowed"),
    ("SELECT joinGet('db.t', 'v', 1)", "function joinGet is not allowed"),
    ("SELECT hasColumnInTable('system', 'users', 'name')", "function hasColumnInTable"),
    ("SELECT dictGet('d', 'a', 1)", "function dictGet is not allowed"),
    ("SELECT dictGetString('d', 'a', 1)", "function dictGetString is not allowed"),
    ("SELECT aiGenerate('hi')", "function aiGenerate is not allowed"),
    ("SELECT catboostEvaluate('/m.bin', 1)", "function catboostEvaluate is not allowed"),
    ("SELECT filesystemAvailable()", "function filesystemAvailable is not allowed"),
    ("SELECT showCertificate()", "function showCertificate is not allowed"),
    ("SELECT generateSerialID('x')", "function generateSerialID is not allowed"),
    ("SELECT arrayReduce('sum', [1])", "function arrayReduce is not allowed"),
    ("SELECT initializeAggregation('sumState', 1)", "function initializeAggregation"),
    ("SELECT currentUser()", "function currentUser is not allowed"),
    ("SELECT chdb()", "function chdb is not allowed"),
]

# Real analytics over the ledger: joins, window functions, arrays, quantiles, FINAL, WITH,
# subqueries, combinators, parameters. Each must pass the guard and give the answer the
# unguarded query gives.
ANALYTICS: list[str] = [
    "SELECT team, count() AS calls, sum(cost_total) AS cost FROM ledger FINAL "
    "GROUP BY team ORDER BY team",
    "WITH daily AS (SELECT toStartOfDay(event_time) AS day, team, sum(cost_total) AS cost "
    "FROM ledger GROUP BY day, team) SELECT day, team, cost, sum(cost) OVER (PARTITION BY team "
    "ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM daily "
    "ORDER BY team, day",
    "SELECT model, quantiles(0.5, 0.9, 0.99)(input_tokens) AS q, quantileExact(0.5)(input_tokens)"
    ", uniqExact(user) FROM ledger GROUP BY model ORDER BY model",
    "SELECT l.team, l.model, t.calls FROM ledger AS l INNER JOIN (SELECT team, count() AS calls "
    "FROM ledger GROUP BY team) AS t ON l.team = t.team ORDER BY l.event_id LIMIT 20",
    "SELECT arrayJoin([1, 2, 3]) AS x, arrayMap(y -> y * 2, [1, 2]) AS doubled, "
    "arrayFilter((a, b) -> a > b, [1, 2], [2, 1]) AS kept",
    "SELECT team, sumIf(cost_total, provider = 'openai') AS openai, countIf(output_tokens > 100)"
    ", avgOrNull(input_tokens), sumArrayIf([input_tokens], priced) FROM ledger GROUP BY team "
    "HAVING count() > 0 ORDER BY team",
    "SELECT event_id FROM ledger WHERE team IN (SELECT team FROM ledger WHERE model LIKE 'gpt%') "
    "AND event_id NOT IN ('a', 'b') ORDER BY event_id",
    "SELECT event_id, row_number() OVER w, rank() OVER w, lagInFrame(input_tokens) OVER w "
    "FROM ledger WINDOW w AS (PARTITION BY team ORDER BY event_time, event_id) "
    "ORDER BY event_id",
    "SELECT CASE WHEN input_tokens > 25000 THEN 'big' ELSE 'small' END AS size, "
    "CASE model WHEN 'gpt-4o' THEN 1 ELSE 2 END AS m, multiIf(batch, 'b', 'o') AS mode, "
    "count() FROM ledger GROUP BY size, m, mode ORDER BY size, m, mode",
    "SELECT team, arraySort(groupArray(model)) AS models, length(topK(3)(model)), "
    "argMax(event_id, (input_tokens, event_id)) FROM ledger GROUP BY team ORDER BY team",
    "SELECT team, tags['feature'] AS feature, sum(input_tokens) FROM ledger "
    "GROUP BY GROUPING SETS ((team), (team, feature)) ORDER BY team, feature, 3",
    "SELECT team, event_id FROM ledger QUALIFY row_number() OVER (PARTITION BY team "
    "ORDER BY event_id) = 1 ORDER BY team",
    "SELECT DISTINCT team FROM ledger ORDER BY team",
    "SELECT count() FROM spendstream.ledger FINAL",
    "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name",
    "SELECT * FROM (SELECT number FROM numbers(5) UNION ALL SELECT dummy FROM system.one) "
    "ORDER BY number",
    "SELECT toStartOfInterval(event_time, INTERVAL 6 HOUR) AS slot, dateDiff('hour', "
    "min(event_time), max(event_time)) FROM ledger GROUP BY slot ORDER BY slot",
    "SELECT exists(SELECT 1 FROM ledger WHERE team = 'search'), 1 IN (1, 2)",
    "SELECT COUNT(*), SUM(input_tokens), MAX(output_tokens), lower(any(team)) FROM ledger",
    "WITH x AS MATERIALIZED (SELECT count() AS n FROM ledger) SELECT a, n FROM x, "
    "(SELECT 1) AS t(a)",
    "SELECT team, count() AS n, count(DISTINCT model), sumMap(map(model, input_tokens)), "
    "argMinIf(event_id, (input_tokens, event_id), batch), sumResample(0, 60000, 30000)("
    "input_tokens, input_tokens) FROM ledger GROUP BY ROLLUP(team) ORDER BY team, n",
    "SELECT * EXCEPT (event_id, ingested_at) REPLACE (1 AS request_count) FROM ledger "
    "ORDER BY event_id LIMIT 3 OFFSET 2",
    "SELECT trim(BOTH ' ' FROM ' x '), substring('abc' FROM 1 FOR 2), position('a' IN 'abc'), "
    "'a' REGEXP 'a', 1 BETWEEN 0 AND 2, NULL IS NULL, 1::Int64, DATE '2020-01-01', "
    "EXTRACT(DAY FROM DATE '2020-01-02')",
    "SELECT toIPv6('::1') AS v6, toIPv4('10.0.0.1') AS v4, toUUID("
    "'61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS id, map('a', 1) AS m, (1, 'x') AS t, "
    "toDate32('2020-01-01') AS d32, CAST('a' AS Enum8('a' = 1)) AS e",
]
