"""Where each dumped row lands on the target, and how references follow it.

A dumped object is written under its own primary key, or, when the spec that selected it
sets ``save_as_new``, under a new key that the database allocates. A multi-table inheritance
child whose parent row gets a new key gets that key too. :class:`TargetKeys` knows which
rows need new keys and, once the write stage has inserted them, maps each dumped key to the
key on the target; the write stage consults it for every batch and rewrites the foreign keys
and many-to-many links of every dumped row through it.

A reference to a new row that is not inserted yet (a cycle, a self reference to a later row)
is written with the dumped key as a placeholder, since constraints are checked only at the
end of the load, and corrected once every row is in (:meth:`TargetKeys.placeholders`); such
links are added then.

Also here: what happens to references the target cannot resolve (``ignore_missing_m2m``),
and the refusal of a multi-table inheritance child whose row the target holds as another
child.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import models

from dataset_sync.errors import InconsistentModelError, InvalidSpecError
from dataset_sync.load.convert import Row, describe
from dataset_sync.load.spool import Selection
from dataset_sync.specs import Spec

Model = type[models.Model]


def parent_row_model(model: Model) -> Model | None:
    """The model whose row a multi-table inheritance child's primary key points at."""
    pk: Any = model._meta.pk
    if pk is not None and pk.remote_field is not None and pk.remote_field.parent_link:
        related: Model = pk.related_model
        return related._meta.concrete_model or related
    return None


@dataclass(frozen=True)
class Placeholder:
    """A reference written with a dumped key that was to get a new key not yet known."""

    #: The model and target key of the row holding the reference.
    model: Model
    pk: Any
    #: A foreign key's attname, or a many-to-many field's name (``many``).
    field: str
    many: bool
    #: The referenced model and its dumped key.
    target: Model
    dumped: Any


class TargetKeys:
    """The target key of every dumped row: its own, or one the database allocates."""

    def __init__(self, dumped: Mapping[Model, set[Any]], selection: Selection) -> None:
        self._dumped = dumped
        #: Dumped primary keys of the rows inserted under new keys, per model.
        self.new: dict[Model, set[Any]] = {}
        #: Dumped key -> target key of those rows, per model, once known.
        self._keys: dict[Model, dict[Any, Any]] = {}
        self._placeholders: list[Placeholder] = []
        copied = {model for model in dumped if selection.any_spec(model, "save_as_new")}
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
                elif selection.spec_for(model, pk).save_as_new:
                    if parent is not None:
                        raise InvalidSpecError(
                            f"{describe(model, pk)} is to be saved as new, but its primary key"
                            f" is its {parent._meta.label_lower} row, which is not saved as"
                            f" new. Give the {parent._meta.label_lower} spec save_as_new too."
                        )
                    new.add(pk)
            if new:
                self.new[model] = new
                self._keys[model] = {}

    def models(self) -> list[Model]:
        """The models with rows in the dump."""
        return [model for model, keys in self._dumped.items() if keys]

    def dumped(self, model: Model) -> set[Any]:
        """The dumped keys of ``model``, whatever key their rows get on the target."""
        return self._dumped.get(model, set())

    def needs_new_key(self, model: Model, pk: Any) -> bool:
        """Whether the dumped row ``pk`` of ``model`` is inserted under a new key."""
        return pk in self.new.get(model, ())

    def same_key(self, model: Model) -> set[Any]:
        """The dumped keys of ``model`` that are written under themselves."""
        new = self.new.get(model)
        return self.dumped(model) - new if new else self.dumped(model)

    def target_key(self, model: Model, pk: Any) -> Any:
        """The key that the dumped row ``pk`` of ``model`` has on the target after the load."""
        return self._keys.get(model, {}).get(pk, pk)

    def written(self, model: Model) -> set[Any]:
        """The target keys of the dumped rows of ``model``: what delete_missing keeps."""
        dumped = self.dumped(model)
        new = self.new.get(model)
        if not new:
            return dumped
        return (dumped - new) | set(self._keys[model].values())

    def rewrite(self, model: Model, rows: list[Row]) -> None:
        """Rewrite the references of ``rows`` to rows with new keys; placeholders where those
        keys are not known yet. A child of a new parent row takes the parent's new key."""
        parent = parent_row_model(model)
        relations = [
            (field.attname, target)
            for field in model._meta.local_concrete_fields
            if field.remote_field is not None and not field.primary_key
            for target in [_concrete(field.related_model)]
            if target in self.new
        ]
        links = [
            (field.name, target)
            for field in model._meta.local_many_to_many
            for target in [_concrete(field.related_model)]
            if target in self.new
        ]
        for row in rows:
            for attname, target in relations:
                value = row.values.get(attname)
                if value is None or value not in self.new[target]:
                    continue
                if value in self._keys[target]:
                    row.values[attname] = self._keys[target][value]
                else:
                    self._placeholders.append(
                        Placeholder(model, row.pk, attname, False, target, value)
                    )
            for name, target in links:
                if name not in row.m2m:
                    continue
                linked = set()
                for value in row.m2m[name]:
                    if value not in self.new[target]:
                        linked.add(value)
                    elif value in self._keys[target]:
                        linked.add(self._keys[target][value])
                    else:
                        self._placeholders.append(
                            Placeholder(model, row.pk, name, True, target, value)
                        )
                row.m2m[name] = linked
            if parent is not None and row.pk in self.new.get(model, ()):
                # Placeholders above hold the dumped key, which target_key() maps.
                self._keys[model][row.pk] = row.pk = self._keys[parent][row.pk]

    def split(self, model: Model, rows: list[Row]) -> tuple[list[Row], list[Row]]:
        """``rows`` whose target key is known, and those that need one from the database."""
        new = self.new.get(model)
        if not new or parent_row_model(model) is not None:
            # A new multi-table child's key is its new parent's: rewrite() set it.
            return rows, []
        return [row for row in rows if row.pk not in new], [row for row in rows if row.pk in new]

    def allocated(self, model: Model, rows: list[Row], keys: list[Any]) -> None:
        """Record the keys the database gave ``rows`` (inserted as new), and set them."""
        for row, key in zip(rows, keys, strict=True):
            self._keys[model][row.pk] = key
            # Placeholders hold the dumped key, which target_key() maps.
            row.pk = key

    def placeholders(self) -> Iterator[tuple[Placeholder, Any, Any]]:
        """Every placeholder, with the target key of its row and the value it should hold;
        once every row is written."""
        for placeholder in self._placeholders:
            yield (
                placeholder,
                self.target_key(placeholder.model, placeholder.pk),
                self._keys[placeholder.target][placeholder.dumped],
            )

    def delete_filter(self, spec: Spec) -> Spec:
        """``spec`` with the filter values its ``delete_missing`` map names rewritten to the
        target keys of rows saved as new."""
        if not spec.delete_missing_map:
            return spec
        filter_ = dict(spec.filter)
        for lookup, label in spec.delete_missing_map:
            model = Spec(label).concrete_model()
            pk: Any = model._meta.pk
            keys = self._keys.get(model)
            values = filter_[lookup]
            many = isinstance(values, (list, tuple, set, frozenset))
            converted = [pk.to_python(value) for value in (values if many else [values])]
            missing = [value for value in converted if keys is None or value not in keys]
            if missing:
                raise InvalidSpecError(
                    f"the delete_missing map of the {spec.model} spec rewrites '{lookup}' to new"
                    f" keys of {label}, but {describe(model, missing[0])} was not saved as new"
                    f" in this load, so rows cannot be matched. Give the {label} spec"
                    " save_as_new, or drop the map."
                )
            assert keys is not None
            mapped = [keys[value] for value in converted]
            filter_[lookup] = mapped if many else mapped[0]
        return dataclasses.replace(spec, filter=filter_, delete_missing=True)


def _concrete(model: Any) -> Model:
    concrete: Model = model._meta.concrete_model
    return concrete


def drop_missing_links(
    rows: list[Row], model: Model, selection: Selection, keys: TargetKeys, using: str, chunk: int
) -> set[tuple[str, Any]]:
    """``ignore_missing_m2m``: keep only links to rows in the dump or on the target.

    Returns (field name, pk) of the links it filtered. Links to rows that exist now but that
    a ``delete_missing`` spec deletes later go with those rows, through the database's
    cascade on the link table, so they must not be checked at the end of the load.
    """
    lenient: dict[str, list[Row]] = {}
    for row in rows:
        for name in selection.spec_for(model, row.pk).ignore_missing_m2m:
            if name in row.m2m:
                lenient.setdefault(name, []).append(row)
    filtered: set[tuple[str, Any]] = set()
    for name, holders in lenient.items():
        field: Any = model._meta.get_field(name)
        related = field.related_model
        in_dump = keys.dumped(_concrete(related))
        wanted = list({pk for row in holders for pk in row.m2m[name] if pk not in in_dump})
        existing: set[Any] = set()
        manager = related._base_manager.using(using)
        for start in range(0, len(wanted), chunk):
            existing.update(
                manager.filter(pk__in=wanted[start : start + chunk]).values_list("pk", flat=True)
            )
        for row in holders:
            row.m2m[name] = {pk for pk in row.m2m[name] if pk in in_dump or pk in existing}
            filtered.add((name, row.pk))
    return filtered


def siblings(model: Model) -> list[tuple[Model, Model]]:
    """(parent, child) for the other children of ``model``'s parents, which share its keys."""
    return [
        (parent, relation.related_model)
        for parent in model._meta.parents
        for relation in parent._meta.related_objects
        if relation.parent_link and relation.related_model is not model
    ]


def refuse_sibling_children(keys: TargetKeys, using: str, chunk: int) -> None:
    """InconsistentModelError when a dumped child exists on the target as another child.

    A child of a multi-table inheritance parent shares its primary key with the parent row.
    If the target holds that parent row with another child (an ``Event`` where the dump has
    an ``Article`` with the same key), writing the dumped child would leave one parent row
    with two children; deleting the other child would delete the shared parent row with it,
    and Django allows a parent with several children, so the loader cannot tell which one is
    stale. Rows saved as new get fresh keys, and cannot land on another child's row.
    """
    for model in sorted(keys.models(), key=lambda model: model._meta.label_lower):
        pks = list(keys.same_key(model))
        for parent, sibling in siblings(model):
            also_dumped = keys.same_key(sibling)
            for start in range(0, len(pks), chunk):
                found = sorted(
                    sibling._base_manager.using(using)
                    .filter(pk__in=pks[start : start + chunk])
                    .values_list("pk", flat=True)
                )
                if clash := [pk for pk in found if pk not in also_dumped]:
                    raise InconsistentModelError(
                        f"{describe(model, clash[0])} exists on the target as"
                        f" {describe(sibling, clash[0])}, another child of the same"
                        f" {parent._meta.label_lower} row; loading it would make one object"
                        f" both. Delete that {sibling._meta.label_lower} on the target first."
                    )
