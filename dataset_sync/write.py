"""Writing one model's dumped rows in bulk: convert, compare, insert, update, link.

A :class:`Table` knows how a model's serialized fields map onto its own database table (for a
multi-table inheritance child, only the child's table: the parent's rows come as objects of
the parent model). A :class:`TableWriter` applies batches of dumped objects to that table:
it reads the existing rows once per batch and writes only what differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import DatabaseError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q

from dataset_sync.errors import LoadIntegrityError, SchemaMismatchError

Progress = Callable[[str], Any]
#: Deletes those of the given rows that a delete_missing spec would delete anyway; returns
#: the primary keys it deleted.
DeleteStale = Callable[[list[Any]], set[Any]]


def describe(model: type[models.Model], pk: Any) -> str:
    """How messages name a row: ``app.model(pk=42)``."""
    return f"{model._meta.label_lower}(pk={pk!r})"


class _MissingNaturalKeyError(Exception):
    """A natural key in the dump names no row on the target; convert() adds where it was."""

    def __init__(self, related: type[models.Model], key: list[Any]) -> None:
        super().__init__(related, key)
        self.related = related
        self.key = key


@dataclass
class Row:
    """One dumped object, converted: primary key, column values, many-to-many targets."""

    pk: Any
    values: dict[str, Any]
    m2m: dict[str, set[Any]]


class Table:
    """How the serialized form of one model maps onto its table."""

    def __init__(
        self,
        model: type[models.Model],
        connection: BaseDatabaseWrapper,
        ignorenonexistent: bool,
        source: str,
    ) -> None:
        meta = model._meta
        self.model = model
        self.label = meta.label_lower
        self.connection = connection
        self.ignorenonexistent = ignorenonexistent
        self.source = source
        assert meta.pk is not None
        self.pk: models.Field[Any, Any] = meta.pk
        self.fields: dict[str, models.Field[Any, Any]] = {
            field.name: field for field in meta.local_concrete_fields if field is not meta.pk
        }
        # Relation attributes are loosely typed in django-stubs; these stay Any.
        self.m2m: dict[str, Any] = {
            field.name: field
            for field in meta.local_many_to_many
            if field.remote_field.through._meta.auto_created  # type: ignore[union-attr]
        }
        self.columns = [self.pk, *self.fields.values()]
        self._natural_keys: dict[tuple[type[models.Model], tuple[Any, ...]], Any] = {}

    def convert(self, data: dict[str, Any]) -> Row:
        """Turn a serialized object into Python values, as Django's deserializer would."""
        pk = self.pk.to_python(data["pk"])
        try:
            self._in_range(self.pk, pk)
        except ValidationError as exc:
            raise SchemaMismatchError(
                f"{self.source}: {describe(self.model, pk)}: invalid primary key"
                f" ({'; '.join(exc.messages)})."
            ) from None
        values: dict[str, Any] = {}
        m2m: dict[str, set[Any]] = {}
        for name, raw in data.get("fields", {}).items():
            field = self.fields.get(name)
            try:
                if field is not None:
                    values[field.attname] = self._value(field, raw)
                elif name in self.m2m:
                    m2m[name] = self._targets(self.m2m[name], raw, pk)
                elif not self.ignorenonexistent:
                    raise SchemaMismatchError(
                        f"{self.source}: {describe(self.model, pk)}: the dump has a field"
                        f" '{name}' that the target model lacks. Migrate the target, or pass"
                        " --ignorenonexistent to skip such fields."
                    )
            except ValidationError as exc:
                raise SchemaMismatchError(
                    f"{self.source}: {describe(self.model, pk)}: field '{name}' has an invalid"
                    f" value {raw!r} ({'; '.join(exc.messages)})."
                ) from None
            except _MissingNaturalKeyError as exc:
                related = exc.related._meta.label_lower
                raise LoadIntegrityError(
                    f"{self.source}: {describe(self.model, pk)}: field '{name}' points at the"
                    f" {related} with natural key {exc.key!r}, which the target does not have."
                    f" Migrate the target, or create that {related} there first."
                ) from None
        return Row(pk, values, m2m)

    def _value(self, field: Any, raw: Any) -> Any:
        if raw is None:
            return None
        if field.remote_field is not None:
            related = field.related_model
            assert isinstance(related, type)
            if isinstance(raw, list):
                return self._natural_key(related, raw, field.target_field.attname)
            return self._in_range(field.target_field, _to_python(field.target_field, raw))
        return self._in_range(field, _to_python(field, raw))

    def _targets(self, field: Any, raw: Any, pk: Any) -> set[Any]:
        if not isinstance(raw, list):
            raise ValidationError(f"expected a list of related keys, got {raw!r}")
        related = field.related_model
        assert isinstance(related, type)
        target = field.target_field
        return {
            self._natural_key(related, value, target.attname)
            if isinstance(value, list)
            else self._in_range(target, _to_python(target, value))
            for value in raw
        }

    def _in_range(self, field: Any, value: Any) -> Any:
        """Refuse an integer the database cannot store: a value error, not a driver crash."""
        while field.remote_field is not None:  # a multi-table inheritance child's pk
            field = field.target_field
        ops = self.connection.ops
        kind = field.get_internal_type()
        if isinstance(value, int) and kind in ops.integer_field_ranges:
            low, high = ops.integer_field_range(kind)
            # No limit (SQLite, before Django 5.0) still means what the driver can bind.
            low, high = (-(2**63) if low is None else low), (2**63 - 1 if high is None else high)
            if not low <= value <= high:
                raise ValidationError(f"{value} is out of range ({low} to {high})")
            if kind.endswith("AutoField"):
                try:
                    ops.validate_autopk_value(value)  # MySQL refuses 0
                except ValueError as exc:
                    raise ValidationError(str(exc)) from None
        return value

    def _natural_key(self, related: type[models.Model], key: list[Any], attname: str) -> Any:
        cache_key = (related, tuple(json.dumps(part) for part in key))
        if cache_key not in self._natural_keys:
            manager = related._default_manager.db_manager(self.connection.alias)
            if not hasattr(manager, "get_by_natural_key"):
                raise ValidationError(
                    f"expected a primary key; {related._meta.label_lower} has no natural keys"
                )
            try:
                obj = manager.get_by_natural_key(*key)
            except ObjectDoesNotExist:
                raise _MissingNaturalKeyError(related, key) from None
            self._natural_keys[cache_key] = getattr(obj, attname)
        return self._natural_keys[cache_key]

    def db_value(self, field: models.Field[Any, Any], value: Any) -> Any:
        return field.get_db_prep_save(value, self.connection)


class TableWriter:
    """Applies batches of dumped rows to one table, writing only what differs."""

    def __init__(
        self,
        table: Table,
        using: str,
        progress: Progress | None,
        dumped: set[Any] | None = None,
        delete_stale: DeleteStale | None = None,
    ) -> None:
        self.table = table
        self.using = using
        self.connection = connections[using]
        self.progress = progress
        #: Every primary key of this model in the dump, and what deletes stale rows early.
        self.dumped: set[Any] = dumped or set()
        self.delete_stale = delete_stale
        self.quote = self.connection.ops.quote_name
        # Dumped rows taken out of the table early to free a unique value another dumped row
        # needs (values swapped between rows); each is inserted again in its own batch, with
        # these values for the fields the dump does not carry.
        self.vacated: dict[Any, dict[str, Any]] = {}
        self.seen_pks: set[Any] = set()
        # Every value a foreign key of a dumped row holds, with the first row holding it,
        # so that a dangling reference is reported by model, primary key and field.
        self.references: dict[str, dict[Any, Any]] = {
            field.attname: {}
            for field in table.fields.values()
            if field.remote_field is not None and field.db_constraint  # type: ignore[attr-defined]
        }
        self.written_pks: set[Any] = set()

    def write(self, batch: list[dict[str, Any]], counts: Any) -> None:
        table = self.table
        rows = [table.convert(data) for data in batch]
        for row in rows:
            for attname, holders in self.references.items():
                value = row.values.get(attname)
                if value is not None:
                    holders.setdefault(value, row.pk)
        existing = self._existing(rows)
        self.seen_pks.update(row.pk for row in rows)
        try:
            with transaction.atomic(using=self.using):
                self._make_room(rows, existing)
                inserts = [row for row in rows if row.pk not in existing]
                updates = [
                    row for row in rows if row.pk in existing and self._differs(row, existing)
                ]
                self._insert(inserts)
                self._update(updates)
        except DatabaseError as exc:
            raise self._explain(exc, rows) from exc
        # A vacated row inserted again was there before the load: it counts as updated.
        reinserted = {row.pk for row in inserts if self.vacated.pop(row.pk, None) is not None}
        inserts = [row for row in inserts if row.pk not in reinserted]
        linked = self._link(rows)
        updated = {row.pk for row in updates} | reinserted | (linked - {row.pk for row in inserts})
        counts.created += len(inserts)
        counts.updated += len(updated)
        counts.unchanged += len(rows) - len(inserts) - len(updated)
        self.written_pks.update(row.pk for row in inserts)
        self.written_pks.update(updated)
        if self.progress:
            for row in inserts:
                self.progress(f"created {describe(table.model, row.pk)}")
            for pk in sorted(updated, key=repr):
                self.progress(f"updated {describe(table.model, pk)}")

    def _existing(self, rows: list[Row]) -> dict[Any, tuple[Any, ...]]:
        table = self.table
        attnames = [field.attname for field in table.fields.values()]
        queryset = table.model._base_manager.using(self.using).filter(
            pk__in=[row.pk for row in rows]
        )
        return {
            values[0]: values[1:]
            for values in queryset.values_list(table.pk.attname, *attnames).iterator()
        }

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
        unique_sets = [
            [field.attname for field in fields] for fields in _unique_field_sets(self.table.model)
        ]
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
            cursor.executemany(sql, [[table.db_value(table.pk, pk)] for pk in pks])

    def _differs(self, row: Row, existing: dict[Any, tuple[Any, ...]]) -> bool:
        current = existing[row.pk]
        return any(
            attname in row.values and row.values[attname] != value
            for attname, value in zip(
                (field.attname for field in self.table.fields.values()), current, strict=True
            )
        )

    def _insert(self, rows: list[Row]) -> None:
        if not rows:
            return
        table = self.table
        columns = table.columns
        defaults = {
            field.attname: field.get_default() for field in columns if field is not table.pk
        }
        sql = (
            f"INSERT INTO {self.quote(table.model._meta.db_table)}"
            f" ({', '.join(self.quote(_column(field)) for field in columns)})"
            f" VALUES ({', '.join(['%s'] * len(columns))})"
        )
        params = [
            [
                table.db_value(
                    field,
                    row.pk
                    if field is table.pk
                    else row.values.get(
                        field.attname,
                        self.vacated.get(row.pk, defaults).get(field.attname),
                    ),
                )
                for field in columns
            ]
            for row in rows
        ]
        with self.connection.cursor() as cursor:
            cursor.executemany(sql, params)

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
                [table.db_value(field, row.values[field.attname]) for field in fields]
                + [table.db_value(table.pk, row.pk)]
                for row in group
            ]
            with self.connection.cursor() as cursor:
                cursor.executemany(sql, params)

    def _link(self, rows: list[Row]) -> set[Any]:
        """Set many-to-many links to exactly the dump's; return the pks whose links changed."""
        changed: set[Any] = set()
        for name, field in self.table.m2m.items():
            dumped = [row for row in rows if name in row.m2m]
            if not dumped:
                continue
            through = field.remote_field.through
            source: Any = through._meta.get_field(field.m2m_field_name())
            target: Any = through._meta.get_field(field.m2m_reverse_field_name())
            current: dict[Any, set[Any]] = {row.pk: set() for row in dumped}
            pairs = (
                through._base_manager.using(self.using)
                .filter(**{f"{source.attname}__in": list(current)})
                .values_list(source.attname, target.attname)
            )
            for source_pk, target_pk in pairs.iterator():
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
            table = self.quote(through._meta.db_table)
            columns = (self.quote(source.column), self.quote(target.column))
            try:
                with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                    if add:
                        cursor.executemany(
                            f"INSERT INTO {table} ({columns[0]}, {columns[1]}) VALUES (%s, %s)",
                            add,
                        )
                    if remove:
                        cursor.executemany(
                            f"DELETE FROM {table} WHERE {columns[0]} = %s AND {columns[1]} = %s",
                            remove,
                        )
            except DatabaseError as exc:
                raise LoadIntegrityError(
                    f"{self.table.source}: {self.table.label}: setting '{name}' failed: {exc}"
                ) from exc
            changed.update(pk for pk, _target in add)
            changed.update(pk for pk, _target in remove)
            for pk, target_pk in add:
                self.references.setdefault(f"m2m:{name}", {}).setdefault(target_pk, pk)
            for row in dumped:
                for target_pk in row.m2m[name]:
                    self.references.setdefault(f"m2m:{name}", {}).setdefault(target_pk, row.pk)
        return changed

    def _explain(self, exc: DatabaseError, rows: list[Row]) -> LoadIntegrityError:
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


def _to_python(field: Any, raw: Any) -> Any:
    """``field.to_python(raw)``; a value of a type the field cannot take is a ValidationError.

    Some fields raise TypeError for JSON of the wrong type (a list for a date, say), which
    a dump from a file may hold.
    """
    try:
        return field.to_python(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from None


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
