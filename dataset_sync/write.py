"""Writing one model's dumped rows in bulk: compare, insert, update, link.

A :class:`TableWriter` applies batches of dumped objects to one table (see
:mod:`dataset_sync.table` for how they are converted): it reads the existing rows once per
batch and writes only what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from typing import Any

from django.db import DatabaseError, connections, models, transaction
from django.db.models import Q
from django.db.models.signals import post_save, pre_save

from dataset_sync.errors import LoadIntegrityError
from dataset_sync.table import Column, Row, Table, describe, select

Progress = Callable[[str], Any]
#: Deletes those of the given rows that a delete_missing spec would delete anyway; returns
#: the primary keys it deleted.
DeleteStale = Callable[[list[Any]], set[Any]]
#: A many-to-many link: the primary keys of both ends.
Pair = tuple[Any, Any]
#: Adjusts converted rows before they are compared and written (the specs' load flags).
Prepare = Callable[[list[Row]], None]


class TableWriter:
    """Applies batches of dumped rows to one table, writing only what differs."""

    def __init__(
        self,
        table: Table,
        using: str,
        progress: Progress | None,
        dumped: Mapping[type[models.Model], set[Any]] | None = None,
        delete_stale: DeleteStale | None = None,
        signals: bool = False,
        prepare: Prepare | None = None,
        unchecked_links: Container[tuple[str, Any]] = frozenset(),
    ) -> None:
        self.table = table
        self.signals = signals
        self.using = using
        self.connection = connections[using]
        self.progress = progress
        dumped = dumped or {}
        #: Every primary key of this model in the dump, and what deletes stale rows early.
        self.dumped: set[Any] = dumped.get(table.model, set())
        self.delete_stale = delete_stale
        self.prepare = prepare
        # (field name, pk) of links that prepare() filtered to rows that exist
        # (ignore_missing_m2m); a row deleted later takes such links along, so they are not
        # checked at the end.
        self.unchecked_links = unchecked_links
        self.quote = self.connection.ops.quote_name
        # Dumped rows taken out of the table early to free a unique value another dumped row
        # needs (values swapped between rows); each is inserted again in its own batch, with
        # these values for the fields the dump does not carry.
        self.vacated: dict[Any, dict[str, Any]] = {}
        # The dumped rows written so far, kept only where unique values may have to move.
        self.unique_sets = _unique_field_sets(table.model)
        self.seen_pks: set[Any] = set()
        # The values that foreign keys of dumped rows hold, with the first row holding each,
        # so that a dangling reference is reported by model, primary key and field. Values
        # naming rows of the dump are left out: those rows are written by this load, and a
        # cascade that took one fails it. What remains is usually nothing.
        self.references: dict[str, dict[Any, Any]] = {}
        self.in_dump: dict[str, set[Any]] = {}
        relations: list[tuple[str, Any]] = [
            (field.attname, field)
            for field in table.fields.values()
            if field.remote_field is not None and field.db_constraint  # type: ignore[attr-defined]
        ]
        relations += [(f"m2m:{name}", field) for name, field in table.m2m.items()]
        for key, field in relations:
            related = field.related_model._meta
            self.references[key] = {}
            self.in_dump[key] = (
                dumped.get(related.concrete_model, set())
                if field.target_field == related.pk
                else set()
            )

    def write(self, batch: list[dict[str, Any]], counts: Any) -> None:
        table = self.table
        rows = [table.convert(data) for data in batch]
        if self.prepare is not None:
            self.prepare(rows)
        self._record_references(rows)
        existing = table.existing([row.pk for row in rows])
        if self.unique_sets:
            self.seen_pks.update(row.pk for row in rows)
        try:
            with transaction.atomic(using=self.using):
                self._make_room(rows, existing)
                inserts = [row for row in rows if row.pk not in existing]
                updates = [
                    row for row in rows if row.pk in existing and self._differs(row, existing)
                ]
                links = self._link_changes(rows)
                # A vacated row inserted again was there before the load: it counts as updated.
                reinserted = {row.pk for row in inserts if row.pk in self.vacated}
                created = [row for row in inserts if row.pk not in reinserted]
                created_pks = {row.pk for row in created}
                linked = {pk for _name, add, remove in links for pk, _target in (*add, *remove)}
                updated = {row.pk for row in updates} | reinserted | (linked - created_pks)
                instances = self._pre_save(rows, created_pks, updated) if self.signals else []
                self._insert(inserts)
                self._update(updates)
        # ArithmeticError: a decimal the backend cannot quantize to the column's digits
        # (Django 4.2), raised while the parameters are built.
        except (DatabaseError, ArithmeticError) as exc:
            raise self._explain(exc, rows) from exc
        for pk in reinserted:
            del self.vacated[pk]
        self._link(links)
        for instance, was_created in instances:
            post_save.send(
                table.model,
                instance=instance,
                created=was_created,
                raw=True,
                using=self.using,
                update_fields=None,
            )
        counts.created += len(created)
        counts.updated += len(updated)
        counts.unchanged += len(rows) - len(created) - len(updated)
        if self.progress:
            for row in created:
                self.progress(f"created {describe(table.model, row.pk)}")
            for pk in sorted(updated, key=repr):
                self.progress(f"updated {describe(table.model, pk)}")

    def adopt(self, rows: list[Row]) -> None:
        """Check and link rows that were inserted elsewhere (objects saved as new)."""
        self._record_references(rows)
        self._link(self._link_changes(rows))

    def _record_references(self, rows: list[Row]) -> None:
        for attname, holders in self.references.items():
            in_dump = self.in_dump[attname]
            for row in rows:
                value = row.values.get(attname)
                if value is not None and value not in in_dump:
                    holders.setdefault(value, row.pk)

    def _make_room(self, rows: list[Row], existing: dict[Any, tuple[Any, ...]]) -> None:
        """Free the unique values these rows are about to take from other rows.

        A row on the target that holds such a value and that a delete_missing spec would
        delete anyway (a row deleted and created again on the source) is deleted now,
        through the collector, rather than after the writes. A row that holds it and is
        itself in the dump (unique values swapped or shifted between rows) is taken out of
        the table and inserted again with its new values; the foreign keys pointing at it
        are checked only at the end of the load, so they do not notice. Any other holder is
        left alone, and the write fails with a message naming both rows.
        """
        attnames = [field.attname for field in self.table.fields.values()]
        unique_sets = [[field.attname for field in fields] for fields in self.unique_sets]
        pending = list(rows)
        while pending and unique_sets:
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
            if stale and self.delete_stale is not None:
                self.delete_stale(stale)
            # A dumped row already written holds its final value: that is a duplicate in the
            # dump itself, which the write reports.
            vacate = [
                pk
                for pk in holders
                if pk in self.dumped
                and pk not in self.vacated
                and (pk in existing or pk not in self.seen_pks)
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
        manager = self.table.model._base_manager.using(self.using)
        # Small chunks: SQLite limits how deep an OR of conditions may nest.
        step = 500 if len(names) == 1 else 100
        for start in range(0, len(keys), step):
            chunk = keys[start : start + step]
            if len(names) == 1:
                condition = Q(**{f"{names[0]}__in": [key[0] for key in chunk]})
            else:
                condition = Q()
                for key in chunk:
                    condition |= Q(**dict(zip(names, key, strict=True)))
            for pk, *values in manager.filter(condition).values_list(
                self.table.pk.attname, *attnames
            ):
                found[pk] = tuple(values)
        return found

    def _vacate(
        self, pks: list[Any], values: dict[Any, tuple[Any, ...]], attnames: list[str]
    ) -> None:
        table = self.table
        for pk in pks:
            self.vacated[pk] = dict(zip(attnames, values[pk], strict=True))
        sql = (
            f"DELETE FROM {self.quote(table.model._meta.db_table)}"
            f" WHERE {self.quote(_column(table.pk))} = %s"
        )
        with self.connection.cursor() as cursor:
            cursor.executemany(sql, [[table.pk_db(pk)] for pk in pks])

    def _differs(self, row: Row, existing: dict[Any, tuple[Any, ...]]) -> bool:
        current = existing[row.pk]
        attnames = self.table.attnames
        # A row with every field, in the table's order, compares in one step.
        if tuple(row.values) == attnames:
            return tuple(row.values.values()) != current
        return any(
            attname in row.values and row.values[attname] != value
            for attname, value in zip(attnames, current, strict=True)
        )

    def _insert(self, rows: list[Row]) -> None:
        if not rows:
            return
        table = self.table
        columns = table.columns
        defaults = {column.attname: column.field.get_default() for column in columns[1:]}
        pk_db = table.pk_column.db
        # Per column: the types whose values are their own parameters, and the conversion.
        plan = [(column.attname, column.db_types, column.to_db) for column in columns[1:]]
        params = []
        for row in rows:
            values = row.values
            if len(values) < len(plan):
                # Fields the dump does not carry: a vacated row's own, or the defaults.
                values = {**self.vacated.get(row.pk, defaults), **values}
            params.append(
                [
                    pk_db(row.pk),
                    *[
                        value if type(value) in db_types else to_db(value)
                        for attname, db_types, to_db in plan
                        for value in (values[attname],)
                    ],
                ]
            )
        table.backend.insert(
            table.model._meta.db_table, [column.column for column in columns], params
        )

    def _update(self, rows: list[Row]) -> None:
        table = self.table
        groups: dict[tuple[str, ...], list[Row]] = {}
        for row in rows:
            groups.setdefault(tuple(row.values), []).append(row)
        fields_by_attname = {field.attname: field for field in table.fields.values()}
        for attnames, group in groups.items():
            if not attnames:
                continue
            fields = [fields_by_attname[attname] for attname in attnames]
            sql = (
                f"UPDATE {self.quote(table.model._meta.db_table)} SET"
                f" {', '.join(f'{self.quote(_column(field))} = %s' for field in fields)}"
                f" WHERE {self.quote(_column(table.pk))} = %s"
            )
            params = [
                [table.by_name[field.name].db(row.values[field.attname]) for field in fields]
                + [table.pk_db(row.pk)]
                for row in group
            ]
            with self.connection.cursor() as cursor:
                cursor.executemany(sql, params)

    def _link_changes(self, rows: list[Row]) -> list[tuple[str, list[Pair], list[Pair]]]:
        """Per many-to-many field: the links to add and to remove to match the dump's."""
        changes = []
        for name, field in self.table.m2m.items():
            dumped = [row for row in rows if name in row.m2m]
            if not dumped:
                continue
            source, target = self._link_columns(field)
            current: dict[Any, set[Any]] = {row.pk: set() for row in dumped}
            pairs = select(
                self.table.backend,
                field.remote_field.through,
                [source, target],
                source,
                list(current),
            )
            for source_pk, target_pk in pairs:
                current[source_pk].add(target_pk)
            add = [
                (row.pk, target_pk)
                for row in dumped
                for target_pk in sorted(row.m2m[name] - current[row.pk], key=repr)
            ]
            remove = [
                (row.pk, target_pk)
                for row in dumped
                for target_pk in sorted(current[row.pk] - row.m2m[name], key=repr)
            ]
            changes.append((name, add, remove))
            holders = self.references[f"m2m:{name}"]
            in_dump = self.in_dump[f"m2m:{name}"]
            for row in dumped:
                if (name, row.pk) in self.unchecked_links:
                    continue
                for target_pk in row.m2m[name] - in_dump:
                    holders.setdefault(target_pk, row.pk)
        return changes

    def _link_columns(self, field: Any) -> tuple[Column, Column]:
        through = field.remote_field.through._meta
        return (
            Column(through.get_field(field.m2m_field_name()), self.connection),
            Column(through.get_field(field.m2m_reverse_field_name()), self.connection),
        )

    def _link(self, changes: list[tuple[str, list[Pair], list[Pair]]]) -> None:
        """Add and remove the links :meth:`_link_changes` found."""
        for name, add, remove in changes:
            if not add and not remove:
                continue
            field = self.table.m2m[name]
            source, target = self._link_columns(field)
            through = field.remote_field.through._meta.db_table
            columns = (self.quote(source.column), self.quote(target.column))
            try:
                with transaction.atomic(using=self.using):
                    if add:
                        self.table.backend.insert(
                            through,
                            [source.column, target.column],
                            [(source.db(pk), target.db(other)) for pk, other in add],
                        )
                    if remove:
                        with self.connection.cursor() as cursor:
                            cursor.executemany(
                                f"DELETE FROM {self.quote(through)}"
                                f" WHERE {columns[0]} = %s AND {columns[1]} = %s",
                                [(source.db(pk), target.db(other)) for pk, other in remove],
                            )
            except DatabaseError as exc:
                raise LoadIntegrityError(
                    f"{self.table.source}: {self.table.label}: setting '{name}' failed: {exc}"
                ) from exc

    def _pre_save(
        self, rows: list[Row], created: set[Any], updated: set[Any]
    ) -> list[tuple[models.Model, bool]]:
        """Send pre_save for the rows about to be written; return their instances for post_save.

        Receivers get instances built from the dumped values, as loaddata's do.
        """
        instances = [
            (self.table.model(pk=row.pk, **row.values), row.pk in created)
            for row in rows
            if row.pk in created or row.pk in updated
        ]
        for instance, _created in instances:
            pre_save.send(
                self.table.model, instance=instance, raw=True, using=self.using, update_fields=None
            )
        return instances

    def _explain(self, exc: Exception, rows: list[Row]) -> LoadIntegrityError:
        """Name the row and field behind a database error, looking for duplicated keys."""
        table = self.table
        for fields in _unique_field_sets(table.model):
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
                table.model._base_manager.using(self.using)
                .filter(condition)
                .exclude(pk__in=[row.pk for row in rows])
                .values_list(table.pk.attname, *(field.attname for field in fields))
            )
            for other_pk, *values in clashes[:1]:
                key = tuple(values)
                return self._duplicate(seen[key], fields, key, other_pk)
        pks = [row.pk for row in rows]
        first, last = (min(pks, key=repr), max(pks, key=repr)) if pks else (None, None)
        return LoadIntegrityError(
            f"{table.source}: {table.label}: the database refused rows with pk {first!r} to"
            f" {last!r}: {str(exc).strip()}"
        )

    def _duplicate(
        self, pk: Any, fields: tuple[models.Field[Any, Any], ...], key: tuple[Any, ...], other: Any
    ) -> LoadIntegrityError:
        table = self.table
        if len(fields) == 1:
            what = f"field '{fields[0].name}' value {key[0]!r}"
        else:
            names = ", ".join(f"'{field.name}'" for field in fields)
            what = f"fields {names} values {key!r}"
        if other in self.dumped:
            # Only a dump taken while the source changed holds one value twice.
            return LoadIntegrityError(
                f"{table.source}: {describe(table.model, pk)}: {what} would duplicate"
                f" {describe(table.model, other)}, which the dump holds with the same value;"
                " the source changed while it was dumped. Dump it again."
            )
        return LoadIntegrityError(
            f"{table.source}: {describe(table.model, pk)}: {what} would duplicate"
            f" {describe(table.model, other)}, which is not in the dump. Add that row to the"
            " dataset with delete_missing, or change it on the target."
        )

    def check_references(self) -> None:
        """Every foreign key of a dumped row must point at a row that exists now."""
        table = self.table
        for key, holders in self.references.items():
            if not holders:
                continue
            if key.startswith("m2m:"):
                name = key[4:]
                field: Any = table.m2m[name]
            else:
                field = next(f for f in table.fields.values() if f.attname == key)
                name = field.name
            related = field.related_model
            target = field.target_field.attname
            values = list(holders)
            found: set[Any] = set()
            for start in range(0, len(values), 1000):
                chunk = values[start : start + 1000]
                found.update(
                    related._base_manager.using(self.using)
                    .filter(**{f"{target}__in": chunk})
                    .values_list(target, flat=True)
                )
            missing = [value for value in values if value not in found]
            if missing:
                value = missing[0]
                raise LoadIntegrityError(
                    f"{table.source}: {describe(table.model, holders[value])}: field '{name}'"
                    f" points at {describe(related, value)}, which is neither in the dump nor"
                    f" in the target database. Add {related._meta.label_lower} to the dataset"
                    " or create the row on the target first."
                )


def _column(field: models.Field[Any, Any]) -> str:
    assert field.column is not None
    return field.column


def _unique_field_sets(model: type[models.Model]) -> list[tuple[models.Field[Any, Any], ...]]:
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
