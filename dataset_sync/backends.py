"""Per-vendor fast paths behind one small interface, with a portable default.

The loader asks a :class:`Backend` for two things that cost far more on some databases
than on others when done the portable way: inserting many rows into one table, and
matching a column against a list of values. Every other statement is plain SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper


class Backend:
    """The portable way: executemany() for inserts, ``IN (%s, ...)`` for lists."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.quote = connection.ops.quote_name
        limit = connection.features.max_query_params
        #: The most values one ``IN`` list may hold.
        self.max_list = min(limit, 1000) if limit else 1000

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (database parameters, in ``columns`` order) into ``table``."""
        names = ", ".join(self.quote(column) for column in columns)
        sql = (
            f"INSERT INTO {self.quote(table)} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
        )
        with self.connection.cursor() as cursor:
            cursor.executemany(sql, rows)

    def in_list(self, column: str, values: Sequence[Any]) -> list[tuple[str, list[Any]]]:
        """Conditions that together match ``column`` against ``values``, with parameters."""
        return [
            (
                f"{self.quote(column)} IN ({', '.join(['%s'] * len(chunk))})",
                list(chunk),
            )
            for chunk in (
                values[start : start + self.max_list]
                for start in range(0, len(values), self.max_list)
            )
        ]


class PostgreSQL(Backend):
    """COPY for inserts and ``= ANY(%s)`` for lists, with psycopg 3.

    Through psycopg's client-side cursors, executemany() costs tens of microseconds per
    row and a query with a thousand placeholders is parsed anew each time; COPY and one
    array parameter avoid both. COPY statements do not pass through
    ``connection.execute_wrapper()``.
    """

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        names = ", ".join(self.quote(column) for column in columns)
        with (
            self.connection.cursor() as cursor,
            self.connection.wrap_database_errors,
            cursor.copy(f"COPY {self.quote(table)} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def in_list(self, column: str, values: Sequence[Any]) -> list[tuple[str, list[Any]]]:
        # An empty array has no type PostgreSQL can infer, and matches nothing anyway.
        return [(f"{self.quote(column)} = ANY(%s)", [list(values)])] if values else []


def backend(connection: BaseDatabaseWrapper) -> Backend:
    """The fast paths for ``connection``'s database, or the portable ones."""
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        if is_psycopg3:
            return PostgreSQL(connection)
    return Backend(connection)
