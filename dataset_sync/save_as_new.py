"""``save_as_new``: objects inserted under new primary keys, and every reference remapped.

An object whose governing spec sets ``save_as_new`` is inserted as a new row; the database
hands out its primary key. Foreign keys and many-to-many links of every dumped object that
point at such an object are rewritten to the new key. A multi-table inheritance child whose
parent row is new is new itself: its primary key is the new parent's.

A reference to a new object that is not inserted yet (a cycle, a self reference to a later
row) is written with the old key as a placeholder, since constraints are checked only at the
end of the load, and rewritten once every row is in (:meth:`NewKeys.finish`). Links to such
objects are added then.

``delete_missing`` keeps the new rows and not the old ones; its dict form
``{"map": [(lookup, model)]}`` rewrites the named filter values to the new keys, and fails
when a value has no new key rather than deleting by the wrong ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import DatabaseError, models, transaction

from dataset_sync.errors import InvalidSpecError, LoadIntegrityError
from dataset_sync.flags import Governing
from dataset_sync.specs import Spec
from dataset_sync.table import Row, describe
from dataset_sync.write import TableWriter
from dataset_sync.write import _unique_field_sets as unique_field_sets

Model = type[models.Model]


def parent_row_model(model: Model) -> Model | None:
    """The model whose row a multi-table inheritance child's primary key points at."""
    pk: Any = model._meta.pk
    if pk is not None and pk.remote_field is not None and pk.remote_field.parent_link:
        related: Model = pk.related_model
        return related._meta.concrete_model or related
    return None


class NewKeys:
    """The objects of one load that get new primary keys, and their old-to-new key maps."""

    def __init__(
        self,
        dumped: Mapping[Model, set[Any]],
        governing: Governing,
        using: str,
        source: str,
    ) -> None:
        self.using = using
        self.source = source
        #: Old primary keys of the objects inserted as new rows, per model.
        self.new: dict[Model, set[Any]] = {}
        #: Old primary key -> new primary key, per model, once inserted.
        self.keys: dict[Model, dict[Any, Any]] = {}
        # (model, old row pk, attname, related model, old target pk): placeholders to rewrite.
        self._fixes: list[tuple[Model, Any, str, Model, Any]] = []
        # (model, old row pk, m2m field, related model, old target pk): links to add at the end.
        self._links: list[tuple[Model, Any, Any, Model, Any]] = []
        copied = {model for model in dumped if governing.any_spec(model, "save_as_new")}
        # Parents come before their children, whose keys follow their parents'.
        for model in sorted(dumped, key=lambda model: len(model._meta.get_parent_list())):
            parent = parent_row_model(model)
            inherited = self.new.get(parent, set()) if parent is not None else set()
            if model not in copied and not inherited:
                continue
            new = set()
            for pk in dumped[model]:
                if pk in inherited:
                    new.add(pk)
                elif governing.spec_for(model, pk).save_as_new:
                    if parent is not None:
                        raise InvalidSpecError(
                            f"{source}: {describe(model, pk)} is to be saved as new, but its"
                            f" primary key is its {parent._meta.label_lower} row, which is not"
                            f" saved as new. Give the {parent._meta.label_lower} spec"
                            " save_as_new too."
                        )
                    new.add(pk)
            if new:
                self.new[model] = new
                self.keys[model] = {}

    def __bool__(self) -> bool:
        return bool(self.new)

    def is_new(self, model: Model, pk: Any) -> bool:
        return pk in self.new.get(model, ())

    def final_pk(self, model: Model, pk: Any) -> Any:
        """The primary key a dumped object has on the target after this load."""
        return self.keys.get(model, {}).get(pk, pk)

    def kept(self, model: Model, dumped: set[Any]) -> set[Any]:
        """The primary keys delete_missing keeps: the dumped ones, new ones instead of old."""
        new = self.new.get(model)
        if not new:
            return dumped
        return (dumped - new) | set(self.keys[model].values())

    def remap(self, model: Model, rows: list[Row]) -> None:
        """Rewrite the references of ``rows`` to new objects; placeholders where not yet known."""
        parent = parent_row_model(model)
        relations: list[tuple[str, Model]] = []
        for field in model._meta.local_concrete_fields:
            related: Any = field.related_model
            if field.remote_field is not None and not field.primary_key:
                target = related._meta.concrete_model
                if target in self.new:
                    relations.append((field.attname, target))
        m2m: list[tuple[str, Model]] = []
        for field in model._meta.local_many_to_many:
            target = field.related_model._meta.concrete_model
            if target in self.new:
                m2m.append((field.name, target))
        for row in rows:
            for attname, target in relations:
                value = row.values.get(attname)
                if value is None or value not in self.new[target]:
                    continue
                if value in self.keys[target]:
                    row.values[attname] = self.keys[target][value]
                else:
                    self._fixes.append((model, row.pk, attname, target, value))
            for name, target in m2m:
                if name not in row.m2m:
                    continue
                mapped = set()
                for value in row.m2m[name]:
                    if value not in self.new[target]:
                        mapped.add(value)
                    elif value in self.keys[target]:
                        mapped.add(self.keys[target][value])
                    else:
                        self._links.append((model, row.pk, name, target, value))
                row.m2m[name] = mapped
            # Placeholders above are recorded under the old key, which final_pk() maps.
            if parent is not None and row.pk in self.new.get(model, ()):
                self.keys[model][row.pk] = row.pk = self.keys[parent][row.pk]

    def write(self, writer: TableWriter, batch: list[dict[str, Any]], counts: Any) -> None:
        """Write a batch: objects kept under their keys by ``writer``, new ones by insert()."""
        model = writer.table.model
        if model not in self.new or parent_row_model(model) is not None:
            # A new multi-table child's key is its new parent's: prepare() sets it.
            writer.write(batch, counts)
            return
        pk, new_pks = writer.table.pk, self.new[model]
        is_new = [pk.to_python(data["pk"]) in new_pks for data in batch]
        new = [data for data, flag in zip(batch, is_new, strict=True) if flag]
        if len(new) < len(batch):
            writer.write(
                [data for data, flag in zip(batch, is_new, strict=True) if not flag], counts
            )
        if new:
            rows = [writer.table.convert(data) for data in new]
            if writer.prepare is not None:
                writer.prepare(rows)
            self.insert(writer, rows, counts)

    def insert(self, writer: TableWriter, rows: list[Row], counts: Any) -> None:
        """Insert new objects (not multi-table children: their keys are known) under new keys."""
        table = writer.table
        model = table.model
        objs = [model(**row.values) for row in rows]
        try:
            with transaction.atomic(using=self.using):
                for obj in objs:
                    # raw, as loaddata saves: no parents, no auto_now, the dumped values as
                    # they are; the database hands out the primary key.
                    obj.save_base(raw=True, force_insert=True, using=self.using)
        except DatabaseError as exc:
            raise self._explain(model, rows, exc) from exc
        for row, obj in zip(rows, objs, strict=True):
            self.keys[model][row.pk] = obj.pk
            # Placeholders were recorded under the old key; the row now has its new one.
            row.pk = obj.pk
        counts.created += len(rows)
        writer.adopt(rows)

    def _explain(self, model: Model, rows: list[Row], exc: DatabaseError) -> LoadIntegrityError:
        """Name the row whose unique values a new object would repeat."""
        manager = model._base_manager.using(self.using)
        for fields in unique_field_sets(model):
            for row in rows:
                values = {field.attname: row.values.get(field.attname) for field in fields}
                if None in values.values():
                    continue
                for other in manager.filter(**values).values_list("pk", flat=True)[:1]:
                    names = ", ".join(f"'{field.name}'" for field in fields)
                    return LoadIntegrityError(
                        f"{self.source}: {describe(model, row.pk)} is saved as new, but its"
                        f" {names} {tuple(values.values())!r} would duplicate"
                        f" {describe(model, other)} on the target. A copy cannot repeat unique"
                        " values; drop save_as_new for this model, or change the values."
                    )
        return LoadIntegrityError(
            f"{self.source}: {model._meta.label_lower}: the database refused the objects saved"
            f" as new: {str(exc).strip()}"
        )

    def finish(self, writers: Iterable[TableWriter]) -> None:
        """Rewrite placeholders and add deferred links, now that every new key is known."""
        for model, row_pk, attname, target, old in self._fixes:
            model._base_manager.using(self.using).filter(pk=self.final_pk(model, row_pk)).update(
                **{attname: self.keys[target][old]}
            )
        by_field: dict[tuple[Model, str], list[tuple[Any, Any]]] = {}
        for model, row_pk, name, target, old in self._links:
            by_field.setdefault((model, name), []).append(
                (self.final_pk(model, row_pk), self.keys[target][old])
            )
        for (model, name), pairs in by_field.items():
            field: Any = model._meta.get_field(name)
            through = field.remote_field.through
            source = through._meta.get_field(field.m2m_field_name()).attname
            target_name = through._meta.get_field(field.m2m_reverse_field_name()).attname
            through._base_manager.using(self.using).bulk_create(
                [through(**{source: pk, target_name: other}) for pk, other in pairs]
            )
        # The placeholders' old keys were recorded as references; the new keys exist.
        for writer in writers:
            for key, holders in writer.references.items():
                related = self._reference_target(writer, key)
                if related is not None:
                    for old in self.new[related]:
                        holders.pop(old, None)

    def _reference_target(self, writer: TableWriter, key: str) -> Model | None:
        table = writer.table
        if key.startswith("m2m:"):
            related: Any = table.m2m[key[4:]].related_model
        else:
            related = next(f for f in table.fields.values() if f.attname == key).related_model
        target = related._meta.concrete_model
        return target if target in self.new else None

    def mapped(self, spec: Spec) -> Spec:
        """``spec`` with the filter values its ``delete_missing`` map names rewritten."""
        if not spec.delete_missing_map:
            return spec
        filter_ = dict(spec.filter)
        for lookup, label in spec.delete_missing_map:
            named = Spec(label).get_model()
            model: Model = named._meta.concrete_model or named
            pk: Any = model._meta.pk
            keys = self.keys.get(model)
            values = filter_[lookup]
            many = isinstance(values, (list, tuple, set, frozenset))
            converted = [pk.to_python(value) for value in (values if many else [values])]
            missing = [value for value in converted if keys is None or value not in keys]
            if missing:
                raise InvalidSpecError(
                    f"{self.source}: the delete_missing map of the {spec.model} spec rewrites"
                    f" '{lookup}' to new keys of {label}, but {describe(model, missing[0])}"
                    " was not saved as new in this load, so rows cannot be matched. Give the"
                    f" {label} spec save_as_new, or drop the map."
                )
            assert keys is not None
            mapped = [keys[value] for value in converted]
            filter_[lookup] = mapped if many else mapped[0]
        return dataclasses.replace(spec, filter=filter_, delete_missing=True)
