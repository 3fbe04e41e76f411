"""Free SQL allowed only by ClickHouse's own parse of the statement (issue 24).

``readonly=1`` is not enough on chDB: in-process, the scalar ``file('/etc/passwd')``,
``SELECT ... INTO OUTFILE`` and ``KILL QUERY`` still run (and ``FROM '/path'`` reads a file in
chDB's default database). So before free SQL runs, :class:`SqlGuard` asks ClickHouse to parse
it, ``SELECT parseQueryToJSON({statement:String})`` (the statement travels as a bound value, is
only parsed, never run), and walks the JSON tree. It accepts exactly one ``SELECT``/``WITH``
statement (``EXPLAIN`` optional), whose every node type and clause is known, every function and
table function is in :mod:`spendstream.sinks.sql_allowlist`, and every table is in the
configured database or an allowed ``system`` table. Anything else, an unknown node or clause
included, is refused: :class:`SqlRefused` names what.

The same function parses on chDB and on a server, so the check is the same on both. Comments,
case, escapes and string literals cannot mislead it: they are resolved by the parser that will
run the statement. Query parameters must be ``{name:Type}`` placeholders (bound by the server,
so the text checked is the text run) and never ``Identifier``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from spendstream.errors import InputError
from spendstream.sinks import sql_allowlist as allow
from spendstream.sinks.access import Reader
from spendstream.sinks.errors import QueryError

Node = dict[str, Any]

PARSE_SQL = "SELECT parseQueryToJSON({statement:String})"

# Flags of statements (true when INTO OUTFILE is used; absent or false otherwise).
OUTFILE_FLAGS = ("is_outfile_append", "is_outfile_truncate", "is_into_outfile_with_stdout")

# The keys each node type may carry; any other key (a clause we did not review) is refused.
# Child nodes are under these keys; scalar attributes are inert flags and names.
NODE_KEYS: dict[str, frozenset[str]] = {
    kind: frozenset(keys.split())
    for kind, keys in {
        "SelectWithUnionQuery": "union_mode list_of_modes list_of_selects "
        + " ".join(OUTFILE_FLAGS),
        "SelectQuery": "with select tables prewhere where group_by having window qualify order_by "
        "limit_by_offset limit_by_length limit_by limit_offset limit_length interpolate distinct "
        "group_by_with_totals group_by_with_rollup group_by_with_cube group_by_with_constant_keys "
        "group_by_with_grouping_sets group_by_all order_by_all limit_with_ties recursive_with",
        "ExpressionList": "children",
        "Subquery": "children alias cte_name",
        "WithElement": "name subquery aliases is_materialized",
        "Function": "name arguments parameters alias is_operator window_name window_definition "
        "is_window_function kind nulls_action is_lambda_function",
        "Identifier": "name name_parts alias children",
        "Literal": "value alias",
        "QueryParameter": "name param_type alias",
        "Asterisk": "transformers",
        "QualifiedAsterisk": "qualifier transformers",
        "ColumnsRegexpMatcher": "pattern transformers",
        "ColumnsListMatcher": "column_list transformers",
        "QualifiedColumnsRegexpMatcher": "qualifier pattern transformers",
        "QualifiedColumnsListMatcher": "qualifier column_list transformers",
        "ColumnsTransformerList": "children",
        "ColumnsApplyTransformer": "func_name parameters column_name_prefix lambda lambda_arg",
        "ColumnsExceptTransformer": "children is_strict pattern",
        "ColumnsReplaceTransformer": "children is_strict",
        "ColumnsReplaceTransformerReplacement": "name children",
        "TablesInSelectQuery": "children",
        "TablesInSelectQueryElement": "table_expression table_join array_join",
        "TableExpression": "database_and_table_name table_function subquery final sample_size "
        "sample_offset column_aliases",
        "TableIdentifier": "name name_parts alias children",
        "TableJoin": "locality strictness kind using_expression_list on_expression",
        "ArrayJoin": "kind expression_list",
        "SampleRatio": "numerator denominator",
        "OrderByElement": "direction nulls_direction nulls_direction_was_explicitly_specified "
        "with_fill collation fill_from fill_to fill_step fill_staleness children expression",
        "WindowDefinition": "parent_window_name partition_by order_by frame_is_default "
        "frame_type frame_begin_type frame_begin_offset frame_begin_preceding frame_end_type "
        "frame_end_offset frame_end_preceding",
        "WindowListElement": "name definition",
        "InterpolateElement": "column expr",
    }.items()
}

EXPLAIN_KINDS = frozenset(
    {"EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN", "EXPLAIN PIPELINE", "EXPLAIN ESTIMATE"}
)
EXPLAIN_OPTIONS = frozenset(
    {"header", "description", "actions", "indexes", "json", "sorting", "graph", "compact"}
)

# Names of what a refused key or statement is in SQL, for the message.
CLAUSE_NAMES = {
    "out_file": "INTO OUTFILE",
    "format_ast": "FORMAT",
    "settings": "SETTINGS",
    "compression": "INTO OUTFILE ... COMPRESSION",
    "KillQueryQuery": "KILL",
    "SystemQuery": "SYSTEM",
    "SetQuery": "SET",
    "InsertQuery": "INSERT",
    "CreateQuery": "CREATE",
    "DropQuery": "DROP/TRUNCATE",
    "AlterQuery": "ALTER",
    "RenameQuery": "RENAME",
    "UseQuery": "USE",
}

# Functions whose second argument may name a table (x IN db.table).
IN_FUNCTIONS = frozenset(
    name.casefold()
    for base in ("in", "notIn", "nullIn", "notNullIn")
    for name in (base, "global" + base[0].upper() + base[1:])
)


class SqlRefused(InputError, ValueError):
    """Free SQL the guard refuses; the message names what (``function file is not allowed``)."""


def function_allowed(name: str) -> bool:
    """An allowlisted scalar, aggregate or window function, or an allowlisted aggregate with
    combinators (``sumIf``, ``uniqExactState``, ``quantilesMerge``, ``sumArrayIf``).

    Case-insensitive: ClickHouse resolves some names in any case (``COUNT``), and none of its
    functions differs only by case from an allowed one without being its alias (checked by
    tests/test_sql_guard.py against ``system.functions``).
    """
    folded = name.casefold()
    return folded in _FOLDED_FUNCTIONS or _aggregate_allowed(folded)


def _aggregate_allowed(folded: str) -> bool:
    if folded in _FOLDED_AGGREGATES:
        return True
    return any(
        folded.endswith(suffix) and _aggregate_allowed(folded[: -len(suffix)])
        for suffix in _FOLDED_COMBINATORS
        if len(folded) > len(suffix)
    )


_FOLDED_FUNCTIONS = frozenset(name.casefold() for name in allow.FUNCTIONS)
_FOLDED_AGGREGATES = frozenset(name.casefold() for name in allow.AGGREGATE_FUNCTIONS)
_FOLDED_TABLE_FUNCTIONS = frozenset(name.casefold() for name in allow.TABLE_FUNCTIONS)
_FOLDED_COMBINATORS = tuple(c.casefold() for c in allow.AGGREGATE_COMBINATORS)


@dataclass
class _Walk:
    """One check: the database unqualified names resolve to, and the parameters seen."""

    database: str
    parameters: set[str] = field(default_factory=set)

    def statement(self, tree: Node) -> None:
        kind = tree.get("type")
        if kind == "ExplainQuery":
            self.explain(tree)
        elif kind == "SelectWithUnionQuery":
            self.node(tree)
        else:
            what = CLAUSE_NAMES.get(str(kind), str(kind))
            raise SqlRefused(f"{what} statements are not allowed: only SELECT or WITH")

    def explain(self, tree: Node) -> None:
        unknown = set(tree) - {"type", "kind", "query", "settings", *OUTFILE_FLAGS}
        if unknown:
            raise SqlRefused(f"{_clause(sorted(unknown)[0])} is not allowed")
        if tree.get("kind") not in EXPLAIN_KINDS:
            raise SqlRefused(f"{tree.get('kind')} is not allowed")
        self.outfile(tree)
        for change in (tree.get("settings") or {}).get("changes", []):
            if change.get("name") not in EXPLAIN_OPTIONS:
                raise SqlRefused(f"EXPLAIN option {change.get('name')!r} is not allowed")
        query = tree.get("query")
        if not isinstance(query, dict) or query.get("type") != "SelectWithUnionQuery":
            raise SqlRefused("EXPLAIN is allowed only of a SELECT or WITH statement")
        self.node(query)

    def outfile(self, tree: Node) -> None:
        if any(tree.get(flag) for flag in OUTFILE_FLAGS):
            raise SqlRefused("INTO OUTFILE is not allowed")

    def node(self, tree: Any, slot: str = "") -> None:
        """Check ``tree`` (a node, a list of nodes or a scalar) found under key ``slot``."""
        if isinstance(tree, list):
            for item in tree:
                self.node(item, slot)
            return
        if not isinstance(tree, dict):
            return
        kind = str(tree.get("type"))
        keys = NODE_KEYS.get(kind)
        if keys is None:
            what = CLAUSE_NAMES.get(kind, kind)
            raise SqlRefused(f"{what} is not allowed in free SQL")
        unknown = set(tree) - keys - {"type"}
        if unknown:
            raise SqlRefused(f"{_clause(sorted(unknown)[0])} is not allowed")
        self.outfile(tree)
        self.names(kind, tree, slot)
        for key, value in tree.items():
            if kind == "Literal" and key == "value":
                continue  # a value, not a node (its text is data)
            self.node(value, f"{kind}.{key}")

    def names(self, kind: str, tree: Node, slot: str) -> None:
        """The checks on what a node names: functions, tables, parameters."""
        if kind == "Function":
            name = str(tree.get("name"))
            if slot == "TableExpression.table_function":
                if name.casefold() not in _FOLDED_TABLE_FUNCTIONS:
                    raise SqlRefused(f"table function {name} is not allowed")
            else:
                self.function(name)
                if name.casefold() in IN_FUNCTIONS:
                    self.in_operand(tree)
        elif kind == "ColumnsApplyTransformer" and "func_name" in tree:
            self.function(str(tree["func_name"]))
        elif kind == "TableIdentifier":
            self.table(tree)
        elif kind == "QueryParameter":
            if "identifier" in str(tree.get("param_type", "")).casefold():
                raise SqlRefused(
                    f"parameter {tree.get('name')}: Identifier parameters are not allowed"
                )
            self.parameters.add(str(tree.get("name")))

    def function(self, name: str) -> None:
        if not function_allowed(name):
            raise SqlRefused(f"function {name} is not allowed")

    def in_operand(self, tree: Node) -> None:
        """``x IN db.table`` reads a table: check it like one."""
        arguments = (tree.get("arguments") or {}).get("children") or []
        if len(arguments) == 2 and arguments[1].get("type") == "Identifier":
            self.table(arguments[1])

    def table(self, tree: Node) -> None:
        parts = [str(p) for p in tree.get("name_parts") or [tree.get("name", "")]]
        shown = ".".join(parts)
        if len(parts) == 1 and _plain(parts[0]):
            return  # this database (the session's), a CTE, or in `x IN name` an alias
        if len(parts) == 2 and all(_plain(p) for p in parts):
            database, table = parts
            if database == self.database:
                return
            if database == "system" and table in allow.SYSTEM_TABLES:
                return
        raise SqlRefused(
            f"table {shown} is not allowed: only tables of {self.database} and "
            f"system.{{{','.join(sorted(allow.SYSTEM_TABLES))}}}"
        )


def _plain(name: str) -> bool:
    """A table name of letters, digits and underscores (never a path: chDB reads
    ``FROM '/etc/passwd'`` as a file in its default database)."""
    return bool(name) and name.replace("_", "a").isascii() and name.replace("_", "a").isalnum()


def _clause(key: str) -> str:
    return CLAUSE_NAMES.get(key, f"clause {key!r}")


def check_tree(tree: Node, database: str, parameters: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`SqlRefused` unless ``tree`` (``parseQueryToJSON`` of one statement) is an
    allowed query over ``database``."""
    walk = _Walk(database)
    walk.statement(tree)
    if parameters and not walk.parameters:
        # Without a {name:Type} placeholder clickhouse-connect would format the values into
        # the text on the client, after this check: refuse rather than run unchecked text.
        raise SqlRefused("parameters need {name:Type} placeholders in the query")


class SqlGuard:
    """Checks free SQL before it runs: ``parse`` returns ClickHouse's JSON parse of a statement
    (see :func:`reader_parser`); ``database`` is the one unqualified names resolve to."""

    def __init__(self, parse: Callable[[str], str], database: str) -> None:
        self.parse = parse
        self.database = database

    def check(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Raise :class:`SqlRefused` naming what is not allowed; return when allowed."""
        text = self.parse(sql)
        try:
            tree = json.loads(text)
            if not isinstance(tree, dict):
                raise SqlRefused("not a statement")
            check_tree(tree, self.database, parameters)
        except RecursionError:
            raise SqlRefused("the statement is nested too deeply to check") from None


class ParseFailed(SqlRefused):
    """ClickHouse could not parse the statement (or parse it to JSON)."""


def reader_parser(reader: Reader) -> Callable[[str], str]:
    """``parseQueryToJSON`` through ``reader`` (chDB or a server). A statement ClickHouse
    cannot parse (a syntax error, several statements) raises :class:`ParseFailed`."""

    def parse(sql: str) -> str:
        try:
            result = reader.query(PARSE_SQL, {"statement": sql})
        except OperationalError:
            raise  # ClickHouse unreachable: not the statement's fault
        except (DatabaseError, QueryError) as exc:  # readers map the driver's (sinks.errors)
            raise ParseFailed(f"not one statement ClickHouse can parse: {_reason(exc)}") from None
        return str(result.rows[0][0])

    return parse


def _reason(exc: Exception) -> str:
    """ClickHouse's reason, without the statement it echoes (``In scope SELECT ...``)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.partition(" In scope SELECT parseQueryToJSON(")[0].rstrip(" :.")
    return (text.partition("DB::Exception: ")[2] or text)[:300]
