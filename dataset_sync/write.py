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


def describe(model: type[models.Model], pk: Any) -> str:
    """How messages name a row: ``app.model(pk=42)``."""
    return f"{model._meta.label_lower}(pk={pk!r})"


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
        return Row(pk, values, m2m)

    def _value(self, field: Any, raw: Any) -> Any:
        if raw is None:
            return None
        if field.remote_field is not None:
            related = field.related_model
            assert isinstance(related, type)
            if isinstance(raw, list):
                return self._natural_key(related, raw, field.target_field.attname)
            return field.target_field.to_python(raw)
        return field.to_python(raw)

    def _targets(self, field: Any, raw: Any, pk: Any) -> set[Any]:
        if not isinstance(raw, list):
            raise ValidationError(f"expected a list of related keys, got {raw!r}")
        related = field.related_model
        assert isinstance(related, type)
        target = field.target_field
        return {
            self._natural_key(related, value, target.attname)
            if isinstance(value, list)
            else target.to_python(value)
            for value in raw
        }

    def _natural_key(self, related: type[models.Model], key: list[Any], attname: str) -> Any:
        cache_key = (related, tuple(json.dumps(part) for part in key))
        if cache_key not in self._natural_keys:
            manager = related._default_manager.db_manager(self.connection.alias)
            try:
                obj = manager.get_by_natural_key(*key)  # type: ignore[attr-defined]
            except ObjectDoesNotExist:
                raise LoadIntegrityError(
                    f"{self.source}: {self.label}: the natural key {key!r} names no"
                    f" {related._meta.label_lower} on the target. Create it there first."
                ) from None
            self._natural_keys[cache_key] = getattr(obj, attname)
        return self._natural_keys[cache_key]

    def db_value(self, field: models.Field[Any, Any], value: Any) -> Any:
        return field.get_db_prep_save(value, self.connection)


class TableWriter:
    """Applies batches of dumped rows to one table, writing only what differs."""

    def __init__(self, table: Table, using: str, progress: Progress | None) -> None:
        self.table = table
        self.using = using
        self.connection = connections[using]
        self.progress = progress
        self.quote = self.connection.ops.quote_name
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
        inserts = [row for row in rows if row.pk not in existing]
        updates = [row for row in rows if row.pk in existing and self._differs(row, existing)]
        try:
            with transaction.atomic(using=self.using):
                self._insert(inserts)
                self._update(updates)
        except DatabaseError as exc:
            raise self._explain(exc, inserts + updates) from exc
        linked = self._link(rows)
        updated = {row.pk for row in updates} | (linked - {row.pk for row in inserts})
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
                    else row.values.get(field.attname, defaults.get(field.attname)),
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
        return LoadIntegrityError(
            f"{table.source}: {describe(table.model, pk)}: {what} would duplicate"
            f" {describe(table.model, other)}. Add that row to the dataset with delete_missing,"
            " or change it on the target."
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
