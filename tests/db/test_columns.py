"""The SQL of calsvc/db against the migrated schema: a column a migration renames or drops
fails here, not in the first request that reads it; and the event queries return the
columns Event.from_row reads by position, in its order."""
from __future__ import annotations

import ast
import datetime as dt
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import asyncpg

import calsvc.db
from calsvc.db import events
from calsvc.models import ROW_COLUMNS

MODULES = [importlib.import_module(f"calsvc.db.{m.name}") for m in pkgutil.iter_modules(calsvc.db.__path__)]

# A statement, after any `--` comment lines (not a command tag such as "UPDATE 1")
STATEMENT = re.compile(r"\s*(?:--[^\n]*\n\s*)*(?:SELECT|WITH|INSERT|UPDATE|DELETE)\b(?!\s+\d+$)")
# What a statement is written with: literals, names, `+` and f-strings
PLAIN = (ast.Expression, ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.Add, ast.JoinedStr, ast.FormattedValue)


def statements() -> list[tuple[str, str]]:
    """(module:line, text) of each statement written in calsvc/db: every string expression
    (a literal, or literals joined by `+` or an f-string with module-level names such as
    EVENT_COLUMNS) that opens with a statement's keyword. One built from a function's own
    values (list_visible's) is not among them."""
    found = []
    for module in MODULES:
        tree = ast.parse(Path(module.__file__).read_text())
        parts = {id(child) for node in ast.walk(tree) if isinstance(node, (ast.BinOp, ast.JoinedStr))
                 for child in ast.walk(node) if child is not node}
        for node in ast.walk(tree):
            if id(node) in parts or not isinstance(node, (ast.Constant, ast.BinOp, ast.JoinedStr)):
                continue
            expression = ast.Expression(node)
            if not all(isinstance(n, PLAIN) for n in ast.walk(expression)):
                continue
            try:
                text = eval(compile(expression, module.__file__, "eval"), vars(module))
            except NameError:
                continue
            if isinstance(text, str) and STATEMENT.match(text):
                found.append((f"{module.__name__}:{node.lineno}", text))
    return found


def column_lists(sql: str) -> Iterator[tuple[str, list[str]]]:
    """(table, columns) of each INSERT column list and each UPDATE's SET targets in `sql`."""
    for m in re.finditer(r"\bINSERT INTO (\w+)(?:\s+AS\s+\w+)?\s*\(([^)]*)\)", sql):
        yield m[1], [c.strip() for c in m[2].split(",")]
    for m in re.finditer(r"\bUPDATE\s+(?!SET\b)(\w+)(?:\s+(?:AS\s+)?(?!SET\b)\w+)?\s+SET\s+(.*?)"
                         r"(?=\bFROM\b|\bWHERE\b|\bRETURNING\b|$)", sql, re.S):
        yield m[1], re.findall(r"(?:^|,)\s*(\w+)\s*=", m[2])


async def test_every_statement_prepares_against_the_schema(database_url):
    """PostgreSQL parses and plans each statement against the migrated schema (it runs none);
    list_visible, which builds its statement per call, runs once per shape."""
    found = statements()
    assert len(found) > 40, [where for where, _ in found]
    conn = await asyncpg.connect(database_url)
    failed = []
    try:
        for where, sql in found:
            try:
                await conn.prepare(sql)
            except asyncpg.PostgresError as exc:
                failed.append(f"{where}: {exc}")
        now = dt.datetime.now(dt.UTC)
        for window in (None, (None, now), (now, None), (now, now)):
            assert await events.list_visible(conn, 1, role="owner", window=window, q="x", after=(now, 1), limit=1) == []
        assert await events.list_visible(conn, 1, role=None, window=None, q=None, after=None, limit=1) == []
    finally:
        await conn.close()
    assert not failed, "\n".join(failed)


async def test_event_queries_return_the_columns_event_from_row_reads(database_url):
    """Event.from_row reads by position: every statement that selects EVENT_COLUMNS or
    CALENDAR_COLUMNS returns ROW_COLUMNS one after the other, in that order."""
    found = [(where, sql) for where, sql in statements()
             if events.EVENT_COLUMNS in sql or events.CALENDAR_COLUMNS in sql]
    assert len(found) >= 7, [where for where, _ in found]
    conn = await asyncpg.connect(database_url)
    try:
        returned = {where: tuple(a.name for a in (await conn.prepare(sql)).get_attributes()) for where, sql in found}
    finally:
        await conn.close()
    n = len(ROW_COLUMNS)
    wrong = [f"{where}: {', '.join(names)}" for where, names in returned.items()
             if not any(names[i:i + n] == ROW_COLUMNS for i in range(len(names)))]
    assert not wrong, "\n".join(wrong)


async def test_column_lists_name_columns_of_their_tables(database_url):
    """The columns named by the event select lists, by every INSERT column list and by every
    UPDATE ... SET are columns of their table (information_schema.columns)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'")
    finally:
        await conn.close()
    schema = {(r["table_name"], r["column_name"]) for r in rows}
    lists = [(where, table, columns) for where, sql in statements() for table, columns in column_lists(sql)]
    lists += [(f"calsvc.db.events.{name}", "events", re.findall(r"\be\.(\w+)", columns))
              for name, columns in (("EVENT_COLUMNS", events.EVENT_COLUMNS),
                                    ("CALENDAR_COLUMNS", events.CALENDAR_COLUMNS))]
    written = {table for _, table, _ in lists}
    assert written >= {"users", "events", "event_permissions", "event_versions", "event_access_changes",
                       "idempotency_keys", "notifications", "refresh_tokens", "token_families"}, written
    missing = [f"{where}: {table}.{column}" for where, table, columns in lists for column in columns
               if (table, column) not in schema]
    assert not missing, "\n".join(missing)
