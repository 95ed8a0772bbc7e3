"""Unique values that move between rows, and naming the row a duplicate value clashes with.

Between two loads a unique value can move: two dumped rows swap their names, or a row is
deleted and created again on the source with the same name under a new key. Written as they
come, such rows would break the unique constraint for a moment. :class:`UniqueValues` frees
the values a batch is about to take, and when the database still refuses a batch, finds the
row and field behind the refusal for the message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import models
from django.db.models import Q

from dataset_sync.errors import LoadIntegrityError
from dataset_sync.load.backends import Backend
from dataset_sync.load.convert import Row, RowConverter, describe
from dataset_sync.load.refused import refused_rows

Model = type[models.Model]
#: Deletes those of the given rows that a delete_missing spec would delete anyway.
DeleteIfStale = Callable[[Model, list[Any]], object]


def unique_field_sets(model: Model) -> list[tuple[models.Field[Any, Any], ...]]:
    """The field combinations the database keeps unique for ``model``'s own table."""
    meta = model._meta
    local = {field.name: field for field in meta.local_concrete_fields}
    sets: list[tuple[models.Field[Any, Any], ...]] = [
        (field,) for field in local.values() if field.unique and not field.primary_key
    ]
    names = [*meta.unique_together, *(c.fields for c in meta.total_unique_constraints)]
    for group in names:
        if all(name in local for name in group):
            sets.append(tuple(local[name] for name in group))
    return sets


class UniqueValues:
    """Frees unique values for one model's dumped rows as they are written.

    ``dumped`` holds the dumped keys written under themselves; ``delete_if_stale`` deletes
    rows that a ``delete_missing`` spec would delete anyway.
    """

    def __init__(
        self,
        converter: RowConverter,
        backend: Backend,
        using: str,
        dumped: set[Any],
        delete_if_stale: DeleteIfStale,
    ) -> None:
        self.converter = converter
        self.backend = backend
        self.using = using
        self.dumped = dumped
        self.delete_if_stale = delete_if_stale
        self.sets = unique_field_sets(converter.model)
        # Dumped rows taken out of the table early to free a unique value another dumped row
        # needs (values swapped between rows); each is inserted again in its own batch, with
        # these values for the fields the dump does not carry.
        self.vacated: dict[Any, dict[str, Any]] = {}
        # The dumped rows written so far, kept only where unique values may have to move.
        self.seen: set[Any] = set()

    def make_room(self, rows: list[Row], existing: dict[Any, tuple[Any, ...]]) -> None:
        """Free the unique values these rows are about to take from other rows.

        A row on the target that holds such a value and that a delete_missing spec would
        delete anyway (a row deleted and created again on the source) is deleted now,
        through the collector, rather than after the writes. A row that holds it and is
        itself in the dump (unique values swapped or shifted between rows) is taken out of
        the table and inserted again with its new values; the foreign keys pointing at it
        are checked only at the end of the load, so they do not notice. Any other holder is
        left alone, and the write fails with a message naming both rows.
        """
        if not self.sets:
            return
        self.seen.update(row.pk for row in rows)
        attnames = [column.attname for column in self.converter.by_name.values()]
        unique_sets = [[field.attname for field in fields] for fields in self.sets]
        pending = list(rows)
        while pending:
            holders: dict[Any, tuple[Any, ...]] = {}
            for names in unique_sets:
                wanted: dict[tuple[Any, ...], Any] = {}
                for row in pending:
                    if not all(name in row.values for name in names):
                        continue
                    key = tuple(row.values[name] for name in names)
                    current = existing.get(row.pk)
                    if None in key or (
                        current is not None
                        and key == tuple(current[attnames.index(name)] for name in names)
                    ):
                        continue
                    wanted[key] = row.pk
                for pk, values in self._holders(names, list(wanted), attnames).items():
                    key = tuple(values[attnames.index(name)] for name in names)
                    # A case-insensitive collation can match a row's own old spelling.
                    if wanted.get(key) != pk:
                        holders[pk] = values
            stale = [pk for pk in holders if pk not in self.dumped]
            if stale:
                self.delete_if_stale(self.converter.model, stale)
            # A dumped row already written holds its final value: that is a duplicate in the
            # dump itself, which the write reports.
            vacate = [
                pk
                for pk in holders
                if pk in self.dumped
                and pk not in self.vacated
                and (pk in existing or pk not in self.seen)
            ]
            if not vacate:
                return
            self._vacate(vacate, holders, attnames)
            # Vacated rows of this batch are inserted again, and want their values in turn.
            for pk in vacate:
                existing.pop(pk, None)
            pending = [row for row in rows if row.pk in set(vacate)]

    def _holders(
        self, names: list[str], keys: list[tuple[Any, ...]], attnames: list[str]
    ) -> dict[Any, tuple[Any, ...]]:
        """The rows holding any of ``keys`` in the fields ``names``, with all their values."""
        found: dict[Any, tuple[Any, ...]] = {}
        manager = self.converter.model._base_manager.using(self.using)
        step = self.backend.max_list if len(names) == 1 else self.backend.max_or_terms
        for start in range(0, len(keys), step):
            chunk = keys[start : start + step]
            if len(names) == 1:
                condition = Q(**{f"{names[0]}__in": [key[0] for key in chunk]})
            else:
                condition = Q()
                for key in chunk:
                    condition |= Q(**dict(zip(names, key, strict=True)))
            for pk, *values in manager.filter(condition).values_list(
                self.converter.pk.attname, *attnames
            ):
                found[pk] = tuple(values)
        return found

    def _vacate(
        self, pks: list[Any], values: dict[Any, tuple[Any, ...]], attnames: list[str]
    ) -> None:
        for pk in pks:
            self.vacated[pk] = dict(zip(attnames, values[pk], strict=True))
        pk_column = self.converter.pk_column
        self.backend.delete(
            self.converter.model._meta.db_table,
            [pk_column.column],
            [[pk_column.db(pk)] for pk in pks],
        )

    def explain(self, exc: Exception, rows: Sequence[Row]) -> LoadIntegrityError:
        """Name the row and field behind a database error, looking for duplicated values;
        failing that, the rows of the batch."""
        duplicate = self.duplicate(rows)
        if duplicate is not None:
            return duplicate
        return refused_rows(
            self.converter.model, [row.dumped for row in rows], self.backend.refusal(exc)
        )

    def duplicate(self, rows: Sequence[Row]) -> LoadIntegrityError | None:
        """The error naming a row of ``rows`` whose unique values another row of them, or a
        row of the target, holds; None when there is none."""
        converter = self.converter
        model = converter.model
        for fields in self.sets:
            seen: dict[tuple[Any, ...], Any] = {}
            for row in rows:
                if not all(field.attname in row.values for field in fields):
                    continue
                key = tuple(row.values[field.attname] for field in fields)
                if None in key:
                    continue
                if key in seen:
                    return self._duplicate(row.pk, fields, key, seen[key])
                seen[key] = row.pk
            if not seen:
                continue
            condition = Q()
            for key in seen:
                condition |= Q(
                    **{field.attname: value for field, value in zip(fields, key, strict=True)}
                )
            clashes = (
                model._base_manager.using(self.using)
                .filter(condition)
                .exclude(pk__in=[row.pk for row in rows])
                .values_list(converter.pk.attname, *(field.attname for field in fields))
            )
            for other_pk, *values in clashes[:1]:
                key = tuple(values)
                return self._duplicate(seen[key], fields, key, other_pk)
        return None

    def _duplicate(
        self, pk: Any, fields: tuple[models.Field[Any, Any], ...], key: tuple[Any, ...], other: Any
    ) -> LoadIntegrityError:
        model = self.converter.model
        if len(fields) == 1:
            what = f"field '{fields[0].name}' value {key[0]!r}"
        else:
            names = ", ".join(f"'{field.name}'" for field in fields)
            what = f"fields {names} values {key!r}"
        if other in self.dumped:
            # Only a dump taken while the source changed holds one value twice.
            return LoadIntegrityError(
                f"{describe(model, pk)}: {what} would duplicate {describe(model, other)}, which"
                " the dump holds with the same value; the source changed while it was dumped."
                " Dump it again."
            )
        return LoadIntegrityError(
            f"{describe(model, pk)}: {what} would duplicate {describe(model, other)}, which is"
            " not in the dump. Add that row to the dataset with delete_missing, or change it on"
            " the target."
        )

    def copied_duplicate(self, rows: Sequence[Row]) -> LoadIntegrityError | None:
        """The error naming a row saved as new whose unique values a row of the target
        holds; None when there is none."""
        model = self.converter.model
        manager = model._base_manager.using(self.using)
        for fields in self.sets:
            for row in rows:
                values = {field.attname: row.values.get(field.attname) for field in fields}
                if None in values.values():
                    continue
                for other in manager.filter(**values).values_list("pk", flat=True)[:1]:
                    names = ", ".join(f"'{field.name}'" for field in fields)
                    return LoadIntegrityError(
                        f"{describe(model, row.pk)} is saved as new, but its {names}"
                        f" {tuple(values.values())!r} would duplicate {describe(model, other)}"
                        " on the target. A copy cannot repeat unique values; drop save_as_new"
                        " for this model, or change the values."
                    )
        return None
