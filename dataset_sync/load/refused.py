"""Naming the row behind a write that the database refused.

Rows are written in bulk, so when the database refuses a batch (a CHECK constraint, a NOT
NULL column, a value too long for its column) its message names a statement or a line of
COPY's input, and may run over several lines; it does not name the dumped row.
:func:`first_refused` finds the first row the database refuses by writing parts of the
failed batch again, each in a savepoint, and :func:`refused_row` words one line naming the
row and the field or constraint, with the first line of the database's own message.

Only a batch that failed is written again: the batches that succeed pay nothing for this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import DatabaseError, models, transaction

from dataset_sync.errors import LoadIntegrityError
from dataset_sync.load.backends import Refusal
from dataset_sync.load.convert import describe

Item = TypeVar("Item")

#: What a refused row's message tells the user to do.
HINT = "Correct the row on the source and dump it again, or change the target's schema to take it."


def first_refused(
    items: Sequence[Item], write: Callable[[Sequence[Item]], object], using: str
) -> tuple[Item, Exception] | None:
    """The first of ``items`` that the database refuses when they are written in order, with
    the error it gives for it; None if it takes them all now.

    Bisects: the first half is written in a savepoint, and kept if the database takes it
    (then the culprit is in the second half), or rolled back; about log2(n) tries, fewer
    than n rows written in all. Call it in a transaction that is rolled back afterwards:
    the rows before the culprit stay written.
    """

    def refusal(part: Sequence[Item]) -> Exception | None:
        try:
            with transaction.atomic(using=using):
                write(part)
        # ArithmeticError: a decimal the backend cannot quantize, raised while the
        # parameters are built (Django 4.2).
        except (DatabaseError, ArithmeticError) as exc:
            return exc
        return None

    pending = list(items)
    while len(pending) > 1:
        half = pending[: len(pending) // 2]
        pending = half if refusal(half) is not None else pending[len(half) :]
    if pending and (exc := refusal(pending)) is not None:
        return pending[0], exc
    return None


def refused_row(
    model: type[models.Model], pk: Any, values: dict[str, Any], refusal: Refusal
) -> LoadIntegrityError:
    """The error for the row ``pk`` of ``model`` (its dumped key), with ``values`` by
    attname, that the database refused as ``refusal`` says: one line naming the field or
    the constraint."""
    meta = model._meta
    column = refusal.column if refusal.table in (None, meta.db_table) else None
    if column is None and refusal.constraint is not None:
        # MariaDB's check of a JSON column is named after the table and the column.
        table, _dot, column = refusal.constraint.rpartition(".")
        column = column if table == meta.db_table else None
    field = next((field for field in meta.local_concrete_fields if field.column == column), None)
    if field is None and refusal.constraint is None:
        # PostgreSQL does not say which column a value is too long for, outside COPY.
        field = next(
            (
                field
                for field in meta.local_concrete_fields
                if isinstance(field, models.CharField)
                and field.max_length is not None
                and isinstance(values.get(field.attname), str)
                and len(values[field.attname]) > field.max_length
            ),
            None,
        )
    if field is not None:
        what = f"field '{field.name}' was refused by the target database"
    elif refusal.constraint is not None:
        what = f"constraint '{refusal.constraint}' of the target database refused the row"
    else:
        what = "the target database refused the row"
    return LoadIntegrityError(f"{describe(model, pk)}: {what} ({refusal.message}). {HINT}")


def refused_link(
    model: type[models.Model], name: str, pair: tuple[Any, Any], refusal: Refusal
) -> LoadIntegrityError:
    """The error for the link (pk, related pk) of the many-to-many field ``name`` that the
    database refused."""
    field: Any = model._meta.get_field(name)
    pk, other = pair
    return LoadIntegrityError(
        f"{describe(model, pk)}: its link to {describe(field.related_model, other)} in field"
        f" '{name}' was refused by the target database ({refusal.message}). {HINT}"
    )


def refused_rows(
    model: type[models.Model], pks: Sequence[Any], refusal: Refusal
) -> LoadIntegrityError:
    """The error for rows of which none was refused alone: the database refused them
    together, for a reason no row shows by itself."""
    first, last = (min(pks, key=repr), max(pks, key=repr)) if pks else (None, None)
    return LoadIntegrityError(
        f"{model._meta.label_lower}: the target database refused rows with pk {first!r} to"
        f" {last!r} ({refusal.message}). {HINT}"
    )
