"""The load lock: two loads into one database never interleave.

A load holds a database-wide lock for its whole transaction, taken before it reads anything,
so a second load (an overlapping cron run) waits until the first has committed or rolled
back, or gives up after its lock timeout with a LockTimeoutError. Each database uses its own
locking:

- PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``), released by the
  commit or rollback itself.
- MySQL and MariaDB: a named lock (``GET_LOCK``), taken before the transaction starts and
  released after it ends, on every exit path; a dead connection releases it too.
- SQLite: the database's write lock, taken by the transaction's first statement
  (``BEGIN IMMEDIATE`` semantics), waiting through the busy timeout.

The load also locks the tables it writes against writes by anyone else (reads go on), so an
application save either commits before the load reads the rows it compares, or waits until
the load has committed: PostgreSQL takes ``SHARE ROW EXCLUSIVE`` table locks, MySQL and
MariaDB lock every row and gap of those tables with ``SELECT ... FOR UPDATE``, and SQLite's
write lock already covers the whole database.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import DatabaseError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from dataset_sync.errors import LockTimeoutError

#: The name every load's lock goes by; the database name is added where locks are server-wide.
LOCK_NAME = "dataset_sync.load"
#: PostgreSQL's advisory locks take a 64-bit key; this one is derived from LOCK_NAME.
ADVISORY_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
#: SQLite's longest busy timeout (milliseconds), standing in for "wait as long as it takes".
_SQLITE_FOREVER = 2**31 - 1
#: PostgreSQL: lock_not_available; MySQL/MariaDB: lock wait timeout exceeded.
_PG_LOCK_NOT_AVAILABLE = "55P03"
_MYSQL_LOCK_WAIT_TIMEOUT = 1205


@contextlib.contextmanager
def locked_transaction(
    using: str, timeout: float | None, tables: Iterable[type[models.Model]]
) -> Iterator[None]:
    """A transaction on ``using`` that holds the load lock from its first statement to its end.

    ``timeout`` is how many seconds to wait for each lock (None: as long as it takes, 0:
    not at all); when one is not granted in time, LockTimeoutError, and nothing was written.
    ``tables`` are the models whose tables the load writes; writes to them by other
    connections wait until the transaction ends.
    """
    connection = connections[using]
    table_names = sorted({model._meta.db_table for model in tables})
    vendor = connection.vendor
    named = _named_lock(connection, timeout) if vendor == "mysql" else contextlib.nullcontext()
    with named, transaction.atomic(using=using):
        try:
            if vendor == "postgresql":
                _lock_postgresql(connection, timeout, table_names)
            elif vendor == "mysql":
                _lock_mysql_tables(connection, timeout, table_names)
            elif vendor == "sqlite":
                _lock_sqlite(connection, timeout, table_names)
        except DatabaseError as exc:
            if _is_lock_timeout(connection, exc):
                raise _timeout_error(connection, timeout) from exc
            raise
        yield


def _timeout_error(connection: BaseDatabaseWrapper, timeout: float | None) -> LockTimeoutError:
    name = connection.settings_dict.get("NAME")
    waited = "at once" if not timeout else f"after {timeout:g} seconds"
    return LockTimeoutError(
        f"Database '{connection.alias}' ({name}): another load, or a transaction writing the"
        f" same tables, holds the lock; gave up {waited}. Nothing was written. Run the load"
        " again when the other one has finished, or wait longer with --lock-timeout."
    )


def _is_lock_timeout(connection: BaseDatabaseWrapper, exc: DatabaseError) -> bool:
    cause: Any = exc.__cause__
    if connection.vendor == "postgresql":
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        return bool(code == _PG_LOCK_NOT_AVAILABLE)
    if connection.vendor == "mysql":
        return bool(getattr(cause, "args", (None,))[0] == _MYSQL_LOCK_WAIT_TIMEOUT)
    return connection.vendor == "sqlite" and "database is locked" in str(exc)


def _lock_postgresql(
    connection: BaseDatabaseWrapper, timeout: float | None, tables: list[str]
) -> None:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if timeout == 0:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_KEY])
            if not cursor.fetchone()[0]:
                raise _timeout_error(connection, timeout)
            wait = "1ms"  # lock_timeout 0 would mean no limit at all
        else:
            wait = "0" if timeout is None else f"{max(1, math.ceil(timeout * 1000))}ms"
        # The limit applies to taking the locks only; the load's own statements may wait on.
        cursor.execute("SELECT current_setting('lock_timeout')")
        previous = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [wait])
        if timeout != 0:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_KEY])
        if tables:
            names = ", ".join(quote(table) for table in tables)
            cursor.execute(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def _mysql_lock_name(connection: BaseDatabaseWrapper) -> str:
    # Named locks are server-wide: the database name keeps loads into other databases apart.
    name = f"{LOCK_NAME}:{connection.settings_dict.get('NAME')}"
    if len(name) > 64:
        name = f"{LOCK_NAME}:{hashlib.sha256(name.encode()).hexdigest()[:40]}"
    return name


@contextlib.contextmanager
def _named_lock(connection: BaseDatabaseWrapper, timeout: float | None) -> Iterator[None]:
    name = _mysql_lock_name(connection)
    with connection.cursor() as cursor:
        # A year stands in for "as long as it takes": MariaDB has no infinite GET_LOCK.
        cursor.execute("SELECT GET_LOCK(%s, %s)", [name, 31536000 if timeout is None else timeout])
        if cursor.fetchone()[0] != 1:
            raise _timeout_error(connection, timeout)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", [name])


def _lock_mysql_tables(
    connection: BaseDatabaseWrapper, timeout: float | None, tables: list[str]
) -> None:
    if not tables:
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
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
                cursor.execute(f"SELECT COUNT(*) FROM {quote(table)} FOR UPDATE")
        finally:
            if timeout is not None:
                cursor.execute("SET SESSION innodb_lock_wait_timeout = %s", [previous])


def _lock_sqlite(connection: BaseDatabaseWrapper, timeout: float | None, tables: list[str]) -> None:
    if not tables:
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        previous = cursor.fetchone()[0]
        wait = _SQLITE_FOREVER if timeout is None else math.ceil(timeout * 1000)
        cursor.execute(f"PRAGMA busy_timeout = {int(wait)}")
        try:
            # A write that changes nothing takes the write lock, as BEGIN IMMEDIATE would;
            # it must come before any read, or SQLite could not wait for the lock.
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(tables[0])} WHERE 0 = 1")
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {int(previous)}")
