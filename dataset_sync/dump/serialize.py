"""Rows to Django's serializer representation, without a model instance per row.

Django's python serializer builds an instance for every row and asks each field for its
value; that is most of what ``dumpdata`` spends its time on. :class:`RowSerializer` reads
plain ``values_list()`` rows and applies the same per-field rules, once worked out per field,
so its output is the serializer's, byte for byte (``use_natural_foreign_keys=True``), for
every field type: values of "protected" types (None, numbers, dates and times, Decimal)
pass through as they are, everything else goes through the field's own
``value_to_string()``, which is handed a stand-in object holding just that value.

Data rules (``rules.py``) change what is read for a field: an expression the database computes
instead of the column, nothing at all for a constant, and a Python step on what was read. The
rows are then serialized as if the database held the rules' values.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from django.db import connections, models
from django.utils.encoding import is_protected_type

from dataset_sync.dump.kinds import Constant, Rule
from dataset_sync.dump.references import References
from dataset_sync.identity import Identities

Converter = Callable[[Any], Any]


class _Value:
    """Stands in for a model instance when a field converts one value to a string."""

    def __init__(self, attname: str, value: Any) -> None:
        setattr(self, attname, value)


#: Exact types of the values that the serializer writes as they are ("protected" types).
_PROTECTED = frozenset(
    {type(None), bool, int, float, decimal.Decimal, datetime.datetime, datetime.date, datetime.time}
)


def _plain(field: Any) -> Converter:
    attname = field.attname

    def convert(value: Any) -> Any:
        if is_protected_type(value):
            return value
        return field.value_to_string(_Value(attname, value))

    return convert


def _unchanged(field: Any) -> frozenset[type]:
    """Exact types of the values that ``_plain(field)`` returns unchanged.

    Protected types, and strings where the field's ``value_to_string()`` is ``str()``.
    """
    if type(field).value_to_string is models.Field.value_to_string:
        return _PROTECTED | {str}
    return _PROTECTED


#: What the rows of a model need after they are read: per field, the index of the value read
#: for it (None: nothing is read), a step computing the value dumped, and a constant.
_Step = tuple[int | None, Callable[[Any, Any], Any] | None, Any]


class RowSerializer:
    """Serializes the rows of one model, a batch at a time.

    Foreign keys and many-to-many links are written as ``references`` names related rows:
    primary keys, natural keys (content types), or declared identities, looked up once per
    batch. A row of a model with a declared identity carries it as ``"identity"``, and a
    generic foreign key's object id is written as the identity of the row it names when that
    row's model declares one. ``rules`` maps field names to the data rules that replace their
    values.
    """

    def __init__(
        self,
        model: type[models.Model],
        using: str,
        rules: Mapping[str, Rule] | None = None,
        references: References | None = None,
    ) -> None:
        concrete = model._meta.concrete_model
        assert concrete is not None
        meta = concrete._meta
        assert meta.pk is not None
        self.using = using
        self.label = str(model._meta)
        self.queryset = model._base_manager.using(using)
        self.pk = meta.pk
        # Relation attributes are loosely typed in django-stubs; fields stay Any here.
        self.fields: list[Any] = [field for field in meta.local_fields if field.serialize]  # type: ignore[attr-defined]
        self.m2m: list[Any] = [
            field
            for field in meta.local_many_to_many
            if field.serialize and field.remote_field.through._meta.auto_created  # type: ignore[attr-defined,union-attr]
        ]
        self.selects = self._plan(rules or {})
        self._convert_pk = _plain(self.pk)
        self._pk_unchanged = _unchanged(self.pk)
        self.references = references or References(Identities({}), using)
        self._converters = [
            None if self._looked_up(field) else _plain(field) for field in self.fields
        ]
        self._unchanged = [_unchanged(field) for field in self.fields]
        self.model = model
        #: Whether rows carry their identity.
        self._identified = self.references.identities.identity(model).matched
        by_name = {field.name: index for index, field in enumerate(self.fields)}
        # Imported here: this module is imported before the app registry is ready.
        from django.contrib.contenttypes.fields import GenericForeignKey

        #: (content type field index, object id field index, object id field) per generic
        #: foreign key whose two fields are serialized.
        self._generic = [
            (by_name[gfk.ct_field], by_name[gfk.fk_field], self.fields[by_name[gfk.fk_field]])
            for gfk in meta.private_fields
            if isinstance(gfk, GenericForeignKey)
            and gfk.ct_field in by_name
            and gfk.fk_field in by_name
        ]

    def _plan(self, rules: Mapping[str, Rule]) -> list[Any]:
        """What the query reads: the key, then per field its column or what its rule reads."""
        vendor = connections[self.using].vendor
        selects: list[Any] = [self.pk.attname]
        steps: list[_Step] = []
        for field in self.fields:
            rule = rules.get(field.name)
            column = rule.column(field, vendor) if rule is not None else None
            if column is None:
                selects.append(field.attname)
                steps.append((len(selects) - 1, None, None))
            elif isinstance(column, Constant):
                steps.append((None, None, column.value))
            else:
                if column.select is not None:
                    selects.append(column.select)
                index = len(selects) - 1 if column.select is not None else None
                steps.append((index, column.convert, None))
        #: None when every field is read as it is, so rows need no rework.
        self._steps = steps if rules else None
        return selects

    def _scrub(self, batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Rows as the serializer expects them (key, then one value per field), rules applied.

        Column by column: a rule's step is one comprehension over the batch.
        """
        if self._steps is None or not batch:
            return batch
        read = list(zip(*batch, strict=True))
        pks = read[0]
        columns: list[Any] = [pks]
        for index, convert, constant in self._steps:
            values: Any = itertools.repeat(constant) if index is None else read[index]
            if convert is not None:
                # A constant's values repeat for ever; the keys say how many rows there are.
                values = [convert(value, pk) for value, pk in zip(values, pks, strict=False)]
            columns.append(values)
        return list(zip(*columns, strict=False))

    def _looked_up(self, field: Any) -> bool:
        return field.remote_field is not None and not self.references.written_as_pk(
            field.related_model
        )

    def rows(self, queryset: models.QuerySet[Any], batch_size: int) -> Iterator[dict[str, Any]]:
        """Serialize the rows of ``queryset`` (ordered by pk), each row once.

        Batches are keyed on the primary key rather than one long cursor, so memory stays
        flat on every backend (MySQL's client otherwise buffers a whole result set).
        """
        values = queryset.values_list(*self.selects)
        last: Any = None
        while True:
            page = values if last is None else values.filter(pk__gt=last)
            batch: list[tuple[Any, ...]] = []
            fetched = 0
            for row in page[:batch_size]:
                fetched += 1
                # A filter across a multi-valued relation repeats rows; they are adjacent.
                if row[0] != last:
                    last = row[0]
                    batch.append(row)
            yield from self._serialize(self._scrub(batch))
            if fetched < batch_size:
                return

    def _serialize(self, batch: list[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
        if not batch:
            return
        natural = self._resolve_natural_keys(batch)
        links = self._links([row[0] for row in batch])
        own = self.references.of(self.model, [row[0] for row in batch]) if self._identified else {}
        # Generic foreign keys whose object ids name rows by identity in this batch.
        translated = [
            (index, field, found)
            for (_ct, index, field), found in zip(
                self._generic, self._generic_identities(batch), strict=True
            )
            if found
        ]
        identified = self._identified
        label = self.label
        columns = list(zip(self.fields, self._converters, self._unchanged, strict=True))
        for row in batch:
            fields: dict[str, Any] = {}
            for (field, convert, unchanged), value in zip(columns, row[1:], strict=True):
                if convert is None:
                    fields[field.name] = None if value is None else natural[field.attname][value]
                elif type(value) in unchanged:
                    fields[field.name] = value
                else:
                    fields[field.name] = convert(value)
            for field in self.m2m:
                fields[field.name] = links[field.name].get(row[0], [])
            for index, field, found in translated:
                if (reference := found.get(row[1 + index])) is not None:
                    fields[field.name] = reference
            pk = row[0] if type(row[0]) in self._pk_unchanged else self._convert_pk(row[0])
            if identified:
                yield {"model": label, "pk": pk, "identity": own[row[0]], "fields": fields}
            else:
                yield {"model": label, "pk": pk, "fields": fields}

    def _generic_identities(self, batch: list[tuple[Any, ...]]) -> list[dict[Any, Any]]:
        """Per generic foreign key: object id as read -> the identity of the row it names,
        for rows of models that declare one."""
        from django.contrib.contenttypes.models import ContentType

        found: list[dict[Any, Any]] = []
        types = ContentType.objects.db_manager(self.using)
        identities = self.references.identities
        for ct_index, id_index, _field in self._generic:
            by_type: dict[Any, set[Any]] = {}
            for row in batch:
                if row[1 + ct_index] is not None and row[1 + id_index] is not None:
                    by_type.setdefault(row[1 + ct_index], set()).add(row[1 + id_index])
            references: dict[Any, Any] = {}
            for type_id, object_ids in by_type.items():
                model = types.get_for_id(type_id).model_class()
                if model is None or not identities.identity(model).matched:
                    continue
                pk: Any = model._meta.pk
                keys = {pk.to_python(object_id): object_id for object_id in object_ids}
                for key, reference in self.references.of(model, keys).items():
                    references[keys[key]] = reference
            found.append(references)
        return found

    def _resolve_natural_keys(self, batch: list[tuple[Any, ...]]) -> dict[str, dict[Any, Any]]:
        """Per looked-up foreign key: value as read -> the reference written."""
        resolved: dict[str, dict[Any, Any]] = {}
        for index, (field, convert) in enumerate(
            zip(self.fields, self._converters, strict=True), start=1
        ):
            if convert is None:
                resolved[field.attname] = self.references.of(
                    field.related_model,
                    {row[index] for row in batch},
                    field.target_field.attname,
                )
        return resolved

    def _links(self, pks: list[Any]) -> dict[str, dict[Any, list[Any]]]:
        """Many-to-many targets per row, in the order Django's serializer lists them."""
        links: dict[str, dict[Any, list[Any]]] = {}
        for field in self.m2m:
            through = field.remote_field.through
            source = through._meta.get_field(field.m2m_field_name()).attname
            target_field: Any = through._meta.get_field(field.m2m_reverse_field_name())
            target = target_field.attname
            pairs = list(
                through._base_manager.using(self.using)
                .filter(**{f"{source}__in": pks})
                .order_by(source, target)
                .values_list(source, target)
            )
            related = field.related_model
            if not self.references.written_as_pk(related):
                keys = self.references.of(
                    related,
                    {target_pk for _source_pk, target_pk in pairs},
                    target_field.target_field.attname,
                )
                convert: Converter = keys.__getitem__
            else:
                convert = _plain(related._meta.pk)
            by_row: dict[Any, list[Any]] = {}
            for source_pk, target_pk in pairs:
                by_row.setdefault(source_pk, []).append(convert(target_pk))
            links[field.name] = by_row
        return links
