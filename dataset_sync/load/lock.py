"""The load lock: two loads into one database never interleave, and nobody else writes the
tables a load writes while it runs.

A load holds a database-wide lock for its whole transaction, taken before the transaction
reads anything, so a second load (an overlapping cron run) waits until the first has
committed or rolled back, or gives up after its lock timeout with a LockTimeoutError:

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
write lock already covers the whole database. The statements are in
:mod:`dataset_sync.load.backends`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from django.db import DatabaseError, IntegrityError, connections, models, transaction

from dataset_sync.errors import CommitRefusedError, LockTimeoutError
from dataset_sync.load.backends import LockNotGranted, backend


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
    statements = backend(connections[using])
    table_names = sorted({model._meta.db_table for model in tables})
    committing = False
    try:
        with statements.load_lock(timeout), transaction.atomic(using=using):
            try:
                statements.lock_tables(timeout, table_names)
            except DatabaseError as exc:
                if statements.is_lock_timeout(exc):
                    raise LockNotGranted from exc
                raise
            yield
            committing = True
    except LockNotGranted as exc:
        raise _timeout_error(using, timeout) from exc
    except IntegrityError as exc:
        # A constraint the database checks only at commit; the load's own check found
        # nothing, so only the database's words say what.
        if not committing:
            raise
        raise CommitRefusedError(
            f"the target database refused to commit the load"
            f" ({statements.refusal(exc).message}); nothing was written."
        ) from exc


def _timeout_error(using: str, timeout: float | None) -> LockTimeoutError:
    name = connections[using].settings_dict.get("NAME")
    waited = "at once" if not timeout else f"after {timeout:g} seconds"
    return LockTimeoutError(
        f"Database '{using}' ({name}): another load, or a transaction writing the same"
        f" tables, holds the lock; gave up {waited}. Nothing was written. Run the load again"
        " when the other one has finished, or wait longer with --lock-timeout."
    )
