"""Every SQL statement the loader builds, behind one small interface, per database.

:class:`Backend` is the portable way, and works everywhere: ``executemany()`` for inserts,
updates and deletes, ``IN (%s, ...)`` lists for lookups. The vendor classes replace what
costs far more on their database when done the portable way (COPY and one array parameter
on PostgreSQL with psycopg 3), and take the load's locks the way their database offers
(see :mod:`dataset_sync.load.lock`). Statements the ORM builds (filters, the collector's
deletions) are not here; statements built from strings are nowhere else. Each database's
errors are read here too (:meth:`Backend.refusal`): what the first line says, and which
column, constraint and table it names.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.management.color import no_style
from django.db import DatabaseError, models
from django.db.backends.base.base import BaseDatabaseWrapper

#: The name every load's lock goes by; the database name is added where locks are server-wide.
LOCK_NAME = "dataset_sync.load"
#: PostgreSQL's advisory locks take a 64-bit key; this one is derived from LOCK_NAME.
ADVISORY_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)

Params = Sequence[Any]


@dataclass(frozen=True)
class Refusal:
    """What the database said when it refused a statement: the first line of its message,
    and the column, constraint and table it named, where it names them."""

    message: str
    column: str | None = None
    constraint: str | None = None
    table: str | None = None


class LockNotGranted(Exception):  # noqa: N818 - a signal to lock.py, not an error
    """The load's lock was not granted within the timeout."""


class Backend:
    """The portable statements; each method runs on ``connection``."""

    #: At most this many conditions joined by OR in one query (SQLite limits expression
    #: depth; the others are only kept from parsing huge statements).
    max_or_terms = 100

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.quote = connection.ops.quote_name
        limit = connection.features.max_query_params
        #: The most values one ``IN`` list may hold.
        self.max_list = min(limit, 1000) if limit else 1000

    # Rows.

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Params]) -> None:
        """Insert ``rows`` (database parameters, in ``columns`` order) into ``table``."""
        names = ", ".join(self.quote(column) for column in columns)
        placeholders = ", ".join(["%s"] * len(columns))
        self._many(f"INSERT INTO {self.quote(table)} ({names}) VALUES ({placeholders})", rows)

    def update(self, table: str, columns: Sequence[str], key: str, rows: Sequence[Params]) -> None:
        """Set ``columns`` of the rows whose ``key`` column matches; each row of ``rows`` is
        the new values in ``columns`` order, then the key."""
        assignments = ", ".join(f"{self.quote(column)} = %s" for column in columns)
        self._many(
            f"UPDATE {self.quote(table)} SET {assignments} WHERE {self.quote(key)} = %s", rows
        )

    def delete(self, table: str, columns: Sequence[str], rows: Sequence[Params]) -> None:
        """Delete the rows of ``table`` whose ``columns`` equal one of ``rows``."""
        condition = " AND ".join(f"{self.quote(column)} = %s" for column in columns)
        self._many(f"DELETE FROM {self.quote(table)} WHERE {condition}", rows)

    def select(
        self, table: str, columns: Sequence[str], where: str, values: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """The ``columns`` of the rows of ``table`` whose ``where`` column is one of ``values``,
        as the driver returns them."""
        select = (
            f"SELECT {', '.join(self.quote(column) for column in columns)}"
            f" FROM {self.quote(table)} WHERE "
        )
        found: list[tuple[Any, ...]] = []
        with self.connection.cursor() as cursor:
            for condition, params in self.in_list(where, values):
                cursor.execute(select + condition, params)
                found.extend(cursor.fetchall())
        return found

    def in_list(self, column: str, values: Sequence[Any]) -> list[tuple[str, list[Any]]]:
        """Conditions that together match ``column`` against ``values``, with parameters."""
        return [
            (f"{self.quote(column)} IN ({', '.join(['%s'] * len(chunk))})", list(chunk))
            for chunk in (
                values[start : start + self.max_list]
                for start in range(0, len(values), self.max_list)
            )
        ]

    def reset_sequences(self, models_: Sequence[type[models.Model]]) -> None:
        """Move the sequences of ``models_`` past their largest primary keys, never lower.

        SQLite's and MariaDB's counters move past an inserted key by themselves, and never
        back; Django has no statements for them.
        """
        with self.connection.cursor() as cursor:
            for sql in self.connection.ops.sequence_reset_sql(no_style(), list(models_)):
                cursor.execute(sql)

    def _many(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            with self.connection.cursor() as cursor:
                cursor.executemany(sql, rows)

    # Locks (see dataset_sync.load.lock).

    @contextlib.contextmanager
    def load_lock(self, timeout: float | None) -> Iterator[None]:
        """The database-wide load lock where it lives outside transactions; held around one."""
        yield

    def lock_tables(self, timeout: float | None, tables: Sequence[str]) -> None:
        """Take the load lock (where it is transactional) and lock ``tables`` against writers,
        first thing in the load's transaction; LockNotGranted after ``timeout`` seconds."""

    def is_lock_timeout(self, exc: DatabaseError) -> bool:
        """Whether ``exc`` is the database giving up waiting for a lock."""
        return False

    # Errors.

    def refusal(self, exc: Exception) -> Refusal:
        """What ``exc``, an error of a statement, says: its first line (a database's message
        may add lines of detail), and what it names, for a message of one line."""
        lines = str(exc).strip().splitlines()
        return Refusal(lines[0].strip() if lines else type(exc).__name__)


class PostgreSQL(Backend):
    """A transaction-level advisory lock; with psycopg 3, COPY and ``= ANY(%s)`` as well.

    Through psycopg's client-side cursors, executemany() costs tens of microseconds per row
    and a query with a thousand placeholders is parsed anew each time; COPY and one array
    parameter avoid both.
    """

    #: lock_not_available
    _LOCK_NOT_AVAILABLE = "55P03"

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        self.psycopg3 = is_psycopg3

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Params]) -> None:
        if not self.psycopg3:
            super().insert(table, columns, rows)
            return
        names = ", ".join(self.quote(column) for column in columns)
        sql = f"COPY {self.quote(table)} ({names}) FROM STDIN"

        def copy(sql: str, rows: Sequence[Params], many: bool, context: dict[str, Any]) -> None:
            with self.connection.wrap_database_errors, context["cursor"].copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)

        with self.connection.cursor() as cursor:
            # Through connection.execute_wrapper() like every other statement, so that what
            # wraps statements (query counters, instrumentation) sees COPY too.
            executor: Any = copy
            for wrapper in reversed(self.connection.execute_wrappers):
                executor = functools.partial(wrapper, executor)
            executor(sql, rows, True, {"connection": self.connection, "cursor": cursor})

    def reset_sequences(self, models_: Sequence[type[models.Model]]) -> None:
        # Django's statements set a sequence to the largest key, which lowers one that the
        # target moved up on purpose (to keep its own rows' keys clear of the source's).
        with self.connection.cursor() as cursor:
            for model in models_:
                pk: Any = model._meta.pk
                table, column = model._meta.db_table, self.quote(pk.column)
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, pk.column])
                (sequence,) = cursor.fetchone()
                if sequence is None:
                    continue  # not a serial or identity column
                # ">=": a sequence never used yet hands out its last_value next.
                cursor.execute(
                    f"SELECT setval(%s, MAX({column})) FROM {self.quote(table)}"
                    f" HAVING MAX({column}) >= (SELECT last_value FROM {sequence})",
                    [sequence],
                )

    def in_list(self, column: str, values: Sequence[Any]) -> list[tuple[str, list[Any]]]:
        if not self.psycopg3:
            return super().in_list(column, values)
        # An empty array has no type PostgreSQL can infer, and matches nothing anyway.
        return [(f"{self.quote(column)} = ANY(%s)", [list(values)])] if values else []

    def lock_tables(self, timeout: float | None, tables: Sequence[str]) -> None:
        with self.connection.cursor() as cursor:
            if timeout == 0:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_KEY])
                if not cursor.fetchone()[0]:
                    raise LockNotGranted
                wait = "1ms"  # lock_timeout 0 would mean no limit at all
            else:
                wait = "0" if timeout is None else f"{max(1, math.ceil(timeout * 1000))}ms"
            # The limit applies to taking the locks only; the load's own statements may wait.
            cursor.execute("SELECT current_setting('lock_timeout')")
            previous = cursor.fetchone()[0]
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [wait])
            if timeout != 0:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_KEY])
            if tables:
                names = ", ".join(self.quote(table) for table in tables)
                cursor.execute(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE")
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])

    def is_lock_timeout(self, exc: DatabaseError) -> bool:
        cause: Any = exc.__cause__
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        return bool(code == self._LOCK_NOT_AVAILABLE)

    #: Where COPY names the column whose value it could not take ("value too long").
    _COPY_COLUMN = re.compile(r"^COPY [^,]+, line \d+, column (.+?): ")

    def refusal(self, exc: Exception) -> Refusal:
        # The driver's diagnostics name the column, constraint and table; the message's
        # further lines (DETAIL, CONTEXT) repeat the row's values, a row of COPY's input.
        diag: Any = getattr(exc.__cause__, "diag", None)
        if diag is None or not diag.message_primary:
            return super().refusal(exc)
        column = diag.column_name
        if column is None and (match := self._COPY_COLUMN.match(diag.context or "")):
            column = match.group(1)
        return Refusal(diag.message_primary, column, diag.constraint_name, diag.table_name)


class MySQL(Backend):
    """A named lock (``GET_LOCK``) around the transaction; ``SELECT ... FOR UPDATE`` on tables.

    A dead connection releases a named lock too.
    """

    #: Lock wait timeout exceeded.
    _LOCK_WAIT_TIMEOUT = 1205

    @contextlib.contextmanager
    def load_lock(self, timeout: float | None) -> Iterator[None]:
        name = self._lock_name()
        with self.connection.cursor() as cursor:
            # A year stands in for "as long as it takes": MariaDB has no infinite GET_LOCK.
            wait = 31536000 if timeout is None else timeout
            cursor.execute("SELECT GET_LOCK(%s, %s)", [name, wait])
            if cursor.fetchone()[0] != 1:
                raise LockNotGranted
        try:
            yield
        finally:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT RELEASE_LOCK(%s)", [name])

    def _lock_name(self) -> str:
        # Named locks are server-wide: the database name keeps loads into others apart.
        name = f"{LOCK_NAME}:{self.connection.settings_dict.get('NAME')}"
        if len(name) > 64:
            name = f"{LOCK_NAME}:{hashlib.sha256(name.encode()).hexdigest()[:40]}"
        return name

    def lock_tables(self, timeout: float | None, tables: Sequence[str]) -> None:
        if not tables:
            return
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT @@SESSION.innodb_lock_wait_timeout")
            previous = cursor.fetchone()[0]
            if timeout is not None:
                # InnoDB waits whole seconds, at least one.
                wait = max(1, math.ceil(timeout))
                cursor.execute("SET SESSION innodb_lock_wait_timeout = %s", [wait])
            try:
                # Locking every row and gap (the supremum included) keeps other transactions
                # from inserting, updating or deleting rows of these tables until the end;
                # unlike LOCK TABLES, it leaves the transaction and other tables alone.
                for table in tables:
                    cursor.execute(f"SELECT COUNT(*) FROM {self.quote(table)} FOR UPDATE")
            finally:
                if timeout is not None:
                    cursor.execute("SET SESSION innodb_lock_wait_timeout = %s", [previous])

    def is_lock_timeout(self, exc: DatabaseError) -> bool:
        cause: Any = exc.__cause__
        return bool(getattr(cause, "args", (None,))[0] == self._LOCK_WAIT_TIMEOUT)

    _COLUMN = re.compile(r"[Cc]olumn '([^']+)'")
    #: A check constraint (MariaDB, MySQL), a foreign key, a unique index.
    _CONSTRAINT = re.compile(
        r"CONSTRAINT `([^`]+)`|[Cc]heck constraint '([^']+)'|for key '(?:[^'.]+\.)?([^']+)'"
    )

    def refusal(self, exc: Exception) -> Refusal:
        # The driver's errors are (code, message); str() of one is the tuple's.
        args = exc.args
        if len(args) != 2 or not isinstance(args[1], str):
            return super().refusal(exc)
        message = args[1].strip().splitlines()[0] if args[1].strip() else str(args[0])
        column = match.group(1) if (match := self._COLUMN.search(message)) else None
        constraint = None
        if match := self._CONSTRAINT.search(message):
            constraint = next(group for group in match.groups() if group)
        return Refusal(message, column, constraint)


class SQLite(Backend):
    """The database's write lock, taken first in the transaction as ``BEGIN IMMEDIATE`` would;
    it covers every table."""

    #: The longest busy timeout (milliseconds), standing in for "as long as it takes".
    _FOREVER = 2**31 - 1

    def lock_tables(self, timeout: float | None, tables: Sequence[str]) -> None:
        if not tables:
            return
        with self.connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            previous = cursor.fetchone()[0]
            wait = self._FOREVER if timeout is None else math.ceil(timeout * 1000)
            cursor.execute(f"PRAGMA busy_timeout = {int(wait)}")
            try:
                # A write that changes nothing takes the write lock; it must come before any
                # read, or SQLite could not wait for the lock.
                cursor.execute(f"DELETE FROM {self.quote(tables[0])} WHERE 0 = 1")
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {int(previous)}")

    def is_lock_timeout(self, exc: DatabaseError) -> bool:
        return "database is locked" in str(exc)

    _FAILED = re.compile(r"(NOT NULL|UNIQUE|CHECK) constraint failed: (.+)")

    def refusal(self, exc: Exception) -> Refusal:
        refusal = super().refusal(exc)
        match = self._FAILED.fullmatch(refusal.message)
        if match is None:
            return refusal
        kind, names = match.groups()
        if kind == "CHECK":
            return Refusal(refusal.message, constraint=names)
        # table.column, or several of them for a unique constraint on several columns.
        table, _dot, column = names.split(", ")[0].rpartition(".")
        return Refusal(refusal.message, column, table=table or None)


_VENDORS: dict[str, type[Backend]] = {
    "postgresql": PostgreSQL,
    "mysql": MySQL,
    "sqlite": SQLite,
}


def backend(connection: BaseDatabaseWrapper) -> Backend:
    """The statements for ``connection``'s database; the portable ones for other vendors."""
    return _VENDORS.get(connection.vendor, Backend)(connection)
