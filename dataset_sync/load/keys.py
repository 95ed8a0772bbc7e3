"""Where each dumped row lands on the target.

A dumped object is written under its own primary key (the default identity), under the key
of the target row that has its identity (a model that declares one, see
:mod:`dataset_sync.identity`), or under a new key that the database allocates: a row with an
identity the target does not have, or a copy (``save_as_new``). A multi-table inheritance
child lands where its parent row does. :class:`TargetKeys` knows, per batch, which rows have
which target key and which need one, and afterwards which target rows the dump wrote; the
write stage consults it for every batch.

Copies are referenced by their dumped keys in other dumped rows; those references are
rewritten to the copies' new keys (:meth:`TargetKeys.rewrite`). A reference to a copy not
inserted yet (a cycle, a self reference to a later row) is written with the dumped key as a
placeholder, since constraints are checked only at the end of the load, and corrected once
every row is in (:meth:`TargetKeys.placeholders`).

Also here: the refusal of a multi-table inheritance child whose row the target holds as
another child.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import models

from dataset_sync.errors import InconsistentModelError, InvalidSpecError, SchemaMismatchError
from dataset_sync.identity import Identities, root
from dataset_sync.load.convert import Row, describe
from dataset_sync.load.match import Matcher, frozen
from dataset_sync.load.spool import Selection, SpooledObjects
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

    #: The row holding the reference (its pk is the row's target key once written).
    row: Row
    model: Model
    #: A foreign key's attname, or a many-to-many field's name (``many``).
    field: str
    many: bool
    #: The referenced model and its dumped key.
    target: Model
    dumped: Any


class TargetKeys:
    """The target key of every dumped row: its own, its identity's, or a new one."""

    def __init__(
        self,
        dumped: Mapping[Model, set[Any]],
        selection: Selection,
        identities: Identities,
        matcher: Matcher,
    ) -> None:
        self._dumped = dumped
        self.identities = identities
        self.matcher = matcher
        #: Dumped primary keys of the rows copied under new keys (save_as_new), per model.
        self.new: dict[Model, set[Any]] = {}
        #: Dumped key -> target key of those copies, per model, once known.
        self._keys: dict[Model, dict[Any, Any]] = {}
        #: Target keys of the rows of models matched by identity, as the load finds them.
        self._identified: dict[Model, set[Any]] = {}
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

    def keyed_by_target(self) -> list[Model]:
        """The models of the dump whose rows get their keys from the target: matched by
        identity, or copied under new keys (``save_as_new``)."""
        return [model for model in self.models() if self.identified(model) or model in self.new]

    def identified(self, model: Model) -> bool:
        """Whether rows of ``model`` are matched by identity rather than by their key."""
        return self.identities.identity(model).matched

    def match(self, objects: SpooledObjects) -> None:
        """Find, before anything is written, the target rows that dumped rows of models with
        an identity are: so that deletions and unique values know them from the start.

        An identity that the dump holds twice, or that a dumped row lacks, is bad input.
        """
        for model in objects.spools:
            if not self.identified(model):
                continue
            found = self._identified.setdefault(model, set())
            for batch in objects.batches(model):
                identities = [self._identity_of(model, data) for data in batch]
                matched = self.matcher.resolve(root(model), identities)
                for identity in identities:
                    key = matched.get(frozen(identity))
                    if key is None:
                        continue
                    if key in found:
                        raise SchemaMismatchError(
                            f"{model._meta.label_lower}: the dump holds identity {identity!r}"
                            " more than once; dump it again."
                        )
                    found.add(key)

    def _identity_of(self, model: Model, data: Mapping[str, Any]) -> list[Any]:
        identity = data.get("identity")
        if not isinstance(identity, list):
            declared = self.identities.identity(model).describe()
            raise SchemaMismatchError(
                f"{describe(model, data.get('pk'))}: the row has no identity, but this database"
                f" matches {model._meta.label_lower} rows by {declared}. Declare the same"
                " identity where the dump is made, and dump it again."
            )
        return identity

    def locate(self, model: Model, rows: list[Row]) -> None:
        """Give the rows of a model with an identity the keys of their target rows; mark
        those the target does not have as new."""
        if not self.identified(model):
            return
        identities = [
            self._identity_of(model, {"pk": row.pk, "identity": row.identity}) for row in rows
        ]
        matched = self.matcher.resolve(root(model), identities)
        found = self._identified.setdefault(model, set())
        child = parent_row_model(model) is not None
        for row, identity in zip(rows, identities, strict=True):
            key = matched.get(frozen(identity))
            if key is not None:
                row.pk = key
                found.add(key)
            elif child:
                parent = root(model)._meta.label_lower
                raise SchemaMismatchError(
                    f"{describe(model, row.pk)}: identity {identity!r} names no {parent} row,"
                    f" neither in the dump nor on the target; add {parent} to the dataset."
                )
            else:
                row.new = True

    def same_key(self, model: Model) -> set[Any]:
        """The target keys of ``model``'s dumped rows known before anything is written: their
        dumped keys, or the keys of the target rows that have their identities."""
        if self.identified(model):
            return self._identified.get(model, set())
        new = self.new.get(model)
        return self.dumped(model) - new if new else self.dumped(model)

    def written(self, model: Model) -> set[Any]:
        """The target keys of the dumped rows of ``model``: what delete_missing keeps."""
        if self.identified(model):
            # The set itself, which grows as rows are written: callers may keep it.
            return self._identified.setdefault(model, set())
        dumped = self.dumped(model)
        new = self.new.get(model)
        if not new:
            return dumped
        return (dumped - new) | set(self._keys[model].values())

    def rewrite(self, model: Model, rows: list[Row]) -> None:
        """Rewrite the references of ``rows`` to copies; placeholders where the copies' keys
        are not known yet. A child of a copied parent row takes the parent's new key; the
        other copies are marked new."""
        if not self.new:
            return
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
        copied = self.new.get(model, set())
        for row in rows:
            for attname, target in relations:
                value = row.values.get(attname)
                if value is None or value not in self.new[target]:
                    continue
                if value in self._keys[target]:
                    row.values[attname] = self._keys[target][value]
                else:
                    self._placeholders.append(
                        Placeholder(row, model, attname, False, target, value)
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
                            Placeholder(row, model, name, True, target, value)
                        )
                row.m2m[name] = linked
            if row.pk in copied:
                if parent is not None:
                    # Known already: the parent row was copied first.
                    self._keys[model][row.pk] = row.pk = self._keys[parent][row.pk]
                else:
                    row.new = True

    def split(self, model: Model, rows: list[Row]) -> tuple[list[Row], list[Row]]:
        """``rows`` whose target key is known, and those that need one from the database."""
        if model not in self.new and not self.identified(model):
            return rows, []
        return [row for row in rows if not row.new], [row for row in rows if row.new]

    def allocated(self, model: Model, rows: list[Row], keys: list[Any]) -> None:
        """Record the keys the database gave ``rows`` (inserted as new), and set them."""
        found = self._identified.setdefault(model, set()) if self.identified(model) else None
        for row, key in zip(rows, keys, strict=True):
            if found is not None:
                found.add(key)
            else:
                self._keys[model][row.pk] = key
            row.pk = key
            row.new = False

    def placeholders(self) -> Iterator[tuple[Placeholder, Any]]:
        """Every placeholder, with the value it should hold; once every row is written."""
        for placeholder in self._placeholders:
            yield placeholder, self._keys[placeholder.target][placeholder.dumped]

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
    stale. Copies get fresh keys, and cannot land on another child's row; rows matched by
    identity land on the keys found for them.
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
