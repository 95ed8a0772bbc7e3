"""The references a dumped row holds, resolved to the rows they name on the target.

A foreign key, a many-to-many link or a generic foreign key's object id that names a row by
identity or natural key (a :class:`~dataset_sync.load.convert.Reference`) is looked up on the
target, a batch at a time (``match.py``). A reference that names a row of the dump not
written yet (a cycle, a self reference) is written for now with the target's current value
and corrected after the batch that writes the row it names, or at the end of the load. A
reference that names a row neither in the dump nor on the target follows its spec's
``missing_references`` policy: ``refuse`` (the default), ``set_null``, or ``keep`` the
target's current value; for links, ``ignore_missing_m2m``.

References by primary key are checked at the end of the load (``finish.py``), except for
foreign keys with a policy, which are checked here, a batch at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from django.db import models

from dataset_sync.errors import LoadIntegrityError
from dataset_sync.identity import NATURAL_KEY, root
from dataset_sync.load.convert import Reference, Row, RowConverter, describe
from dataset_sync.load.keys import TargetKeys
from dataset_sync.load.match import frozen
from dataset_sync.load.spool import Selection

Model = type[models.Model]


class _Keep:
    """The target's current value, filled in once the current row has been read."""

    def __repr__(self) -> str:
        return "KEEP"


#: Stands for the target's current value of a field (None for a row the target lacks).
KEEP: Any = _Keep()


@dataclass(slots=True)
class Holder:
    """What correcting a reference needs of the row that holds it, once that row is written:
    keeping the whole row until the end of the load would hold every row of a self
    referencing model in memory."""

    pk: Any
    dumped: Any


@dataclass(slots=True)
class Pending:
    """A reference to a row of the dump that was not on the target when its holder was
    written; corrected once that row is written, or at the end of the load."""

    row: Row | Holder
    model: Model
    #: A foreign key's attname, or a many-to-many field's name (``many``).
    field: str
    many: bool
    reference: Reference
    policy: str


def way_out(field: Any) -> str:
    """The end of a refusal of a reference to a row that exists nowhere: what the spec may
    declare instead, where the field allows it."""
    if field.many_to_many:
        return f", or list '{field.name}' in the spec's ignore_missing_m2m to drop such links"
    if field.is_relation and field.null:
        return (
            f", or declare what to do with it in the spec's missing_references"
            f" ('{field.name}': 'set_null' or 'keep')"
        )
    return ""


class ReferenceResolver:
    """Resolves the references of one dump's rows, a batch at a time."""

    def __init__(self, keys: TargetKeys, selection: Selection, using: str, chunk: int) -> None:
        self.keys = keys
        self.matcher = keys.matcher
        self.selection = selection
        self.using = using
        self.chunk = chunk
        #: Pending references by the (base model, identity or natural key) they name.
        self._waiting: dict[tuple[Model, Hashable], list[Pending]] = defaultdict(list)
        #: Pending references whose rows are now written, to be corrected after the batch.
        self._ready: list[Pending] = []
        #: Pending references of the batch being written, still holding their rows.
        self._fresh: list[Pending] = []
        #: Whether the last batch resolved got a KEEP value.
        self.kept = False
        self._policies: dict[Model, set[str]] = {}

    def resolve(self, model: Model, rows: list[Row], converter: RowConverter) -> bool:
        """Replace the references of ``rows`` by target values, or by what their policy says;
        True when some value is now :data:`KEEP`.

        Only the columns and links that ``converter`` says may hold references are looked
        at. Called before the rows' own keys are looked up, so messages name rows by their
        dumped keys.
        """
        self.kept = False
        fields = converter.fields_by_attname
        generic: list[tuple[Row, str]] = []
        for attname in converter.referring:
            holders = []
            for row in rows:
                value = row.values.get(attname)
                if type(value) is Reference:
                    if value.model is None:
                        generic.append((row, attname))
                    else:
                        holders.append(row)
            if holders:
                self._foreign_keys(model, fields[attname], holders)
        for attname in self._with_policies(model):
            self._checked(model, fields[attname], rows)
        if generic:
            self._generic(model, generic)
        for name in converter.referring_links:
            holders = [
                row
                for row in rows
                if any(type(target) is Reference for target in row.m2m.get(name, ()))
            ]
            if holders:
                self._links(model, name, holders)
        return self.kept

    def _policy(self, model: Model, row: Row, name: str) -> str:
        return self.selection.spec_for(model, row.dumped).missing_references.get(name, "refuse")

    def _with_policies(self, model: Model) -> set[str]:
        """Foreign keys (attnames) for which a spec of ``model`` declares a policy other than
        ``refuse``."""
        if model not in self._policies:
            self._policies[model] = {
                model._meta.get_field(name).attname  # type: ignore[union-attr]
                for spec in self.selection.specs_of(model)
                for name, policy in spec.missing_references.items()
                if policy != "refuse"
            }
        return self._policies[model]

    def _foreign_keys(self, model: Model, field: Any, rows: list[Row]) -> None:
        related = field.related_model
        attname = field.attname
        found = self.matcher.resolve(
            related, [row.values[attname].key for row in rows], field.target_field.attname
        )
        for row in rows:
            reference = row.values[attname]
            value = found.get(frozen(reference.key))
            if value is not None:
                row.values[attname] = value
            else:
                row.values[attname] = self._unresolved(model, row, field.name, attname, reference)

    def _unresolved(
        self, model: Model, row: Row, name: str, attname: str, reference: Reference
    ) -> Any:
        """The value written for a foreign key whose row the target does not have (yet)."""
        policy = self._policy(model, row, name)
        target = reference.model
        assert target is not None
        if self.keys.dumped(target._meta.concrete_model or target):
            # Perhaps written later in this load: corrected once it is.
            self._wait(Pending(row, model, attname, False, reference, policy))
            self.kept = True
            return KEEP
        if policy == "refuse":
            raise self.missing(model, row.pk, name, reference)
        self.kept = policy == "keep" or self.kept
        return None if policy == "set_null" else KEEP

    def missing(self, model: Model, pk: Any, name: str, reference: Reference) -> LoadIntegrityError:
        """The refusal of a reference to a row that is neither in the dump nor on the target."""
        target = reference.model
        assert target is not None
        related = target._meta.label_lower
        if self.keys.identities.reference(target).kind == NATURAL_KEY:
            first = (
                "Migrate the target"
                if target._meta.app_label == "contenttypes"
                else f"Add {related} to the dataset"
            )
            return LoadIntegrityError(
                f"{describe(model, pk)}: field '{name}' points at the {related} with natural key"
                f" {reference.key!r}, which the target does not have. {first}, or create that"
                f" {related} there first{way_out(model._meta.get_field(name))}."
            )
        return LoadIntegrityError(
            f"{describe(model, pk)}: field '{name}' points at the {related} with identity"
            f" {reference.key!r}, which is neither in the dump nor on the target. Add {related}"
            " to the dataset or create the row on the target first"
            f"{way_out(model._meta.get_field(name))}."
        )

    def _checked(self, model: Model, field: Any, rows: list[Row]) -> None:
        """Apply each row's policy to the values of a foreign key by primary key that name no
        row, neither in the dump nor on the target."""
        related = field.related_model
        in_dump = self.keys.dumped(related._meta.concrete_model or related)
        target = field.target_field.attname
        wanted = list(
            {
                value
                for row in rows
                if (value := row.values.get(field.attname)) is not None
                and type(value) is not Reference
                and value is not KEEP
                and value not in in_dump
            }
        )
        existing: set[Any] = set()
        manager = related._base_manager.using(self.using)
        for start in range(0, len(wanted), self.chunk):
            existing.update(
                manager.filter(**{f"{target}__in": wanted[start : start + self.chunk]}).values_list(
                    target, flat=True
                )
            )
        missing = set(wanted) - existing
        for row in rows:
            if row.values.get(field.attname) in missing:
                policy = self._policy(model, row, field.name)
                if policy != "refuse":
                    row.values[field.attname] = None if policy == "set_null" else KEEP
                    self.kept = policy == "keep" or self.kept

    def _generic(self, model: Model, holders: list[tuple[Row, str]]) -> None:
        """Object ids of generic foreign keys, named by the identity of the row they name."""
        from django.contrib.contenttypes.models import ContentType

        meta: Any = model._meta
        # Per object id attname: its field, and the attname of its content type field.
        generic: dict[str, tuple[Any, str]] = {
            meta.get_field(gfk.fk_field).attname: (
                meta.get_field(gfk.fk_field),
                meta.get_field(gfk.ct_field).attname,
            )
            for gfk in meta.private_fields
            if hasattr(gfk, "fk_field") and hasattr(gfk, "ct_field")
        }
        types = ContentType.objects.db_manager(self.using)
        by_model: dict[tuple[Model, str], list[Row]] = defaultdict(list)
        for row, attname in holders:
            field, ct_attname = generic[attname]
            type_id = row.values.get(ct_attname)
            target = types.get_for_id(type_id).model_class() if type_id is not None else None
            if target is None:
                raise LoadIntegrityError(
                    f"{describe(model, row.pk)}: field '{field.name}' names a row by identity"
                    f" {row.values[attname].key!r}, but its content type names no model"
                    " installed here."
                )
            row.values[attname].model = target
            by_model[(target, attname)].append(row)
        for (target, attname), rows in by_model.items():
            field = generic[attname][0]
            found = self.matcher.resolve(target, [row.values[attname].key for row in rows])
            for row in rows:
                reference = row.values[attname]
                key = found.get(frozen(reference.key))
                if key is not None:
                    row.values[attname] = field.to_python(key)
                else:
                    row.values[attname] = self._unresolved(
                        model, row, field.name, attname, reference
                    )

    def _links(self, model: Model, name: str, rows: list[Row]) -> None:
        field: Any = model._meta.get_field(name)
        related = field.related_model
        references = [
            target for row in rows for target in row.m2m[name] if type(target) is Reference
        ]
        found = self.matcher.resolve(
            related, [reference.key for reference in references], field.target_field.attname
        )
        in_dump = bool(self.keys.dumped(related._meta.concrete_model or related))
        for row in rows:
            lenient = name in self.selection.spec_for(model, row.dumped).ignore_missing_m2m
            targets = set()
            for target in row.m2m[name]:
                if type(target) is not Reference:
                    targets.add(target)
                elif (key := found.get(frozen(target.key))) is not None:
                    targets.add(key)
                elif in_dump:
                    policy = "drop" if lenient else "refuse"
                    self._wait(Pending(row, model, name, True, target, policy))
                elif not lenient:
                    raise self.missing(model, row.pk, name, target)
            row.m2m[name] = targets

    def drop_missing_links(self, model: Model, rows: list[Row]) -> set[tuple[str, Any]]:
        """``ignore_missing_m2m``: keep only links by primary key to rows in the dump or on
        the target (links by identity are resolved, or dropped, in :meth:`resolve`).

        Returns (field name, pk) of the links it filtered. Links to rows that exist now but that
        a ``delete_missing`` spec deletes later go with those rows, through the database's
        cascade on the link table, so they must not be checked at the end of the load.
        """
        lenient: dict[str, list[Row]] = {}
        for row in rows:
            for name in self.selection.spec_for(model, row.dumped).ignore_missing_m2m:
                if name in row.m2m:
                    lenient.setdefault(name, []).append(row)
        filtered: set[tuple[str, Any]] = set()
        for name, holders in lenient.items():
            field: Any = model._meta.get_field(name)
            related = field.related_model
            in_dump = self.keys.dumped(related._meta.concrete_model)
            wanted = list(
                {
                    pk
                    for row in holders
                    for pk in row.m2m[name]
                    if type(pk) is not Reference and pk not in in_dump
                }
            )
            existing: set[Any] = set()
            manager = related._base_manager.using(self.using)
            for start in range(0, len(wanted), self.chunk):
                chunk = wanted[start : start + self.chunk]
                existing.update(manager.filter(pk__in=chunk).values_list("pk", flat=True))
            for row in holders:
                row.m2m[name] = {
                    pk
                    for pk in row.m2m[name]
                    if type(pk) is Reference or pk in in_dump or pk in existing
                }
                filtered.add((name, row.pk))
        return filtered

    def _wait(self, pending: Pending) -> None:
        target = pending.reference.model
        assert target is not None
        self._waiting[(root(target), frozen(pending.reference.key))].append(pending)
        self._fresh.append(pending)

    def written(self, model: Model, rows: list[Row]) -> None:
        """After a batch of ``model``'s rows is written: the references pending on those rows
        are ready to be corrected, and the references the batch left pending keep only their
        holders' keys."""
        if self._waiting:
            base = root(model)
            for row in rows:
                if row.identity is not None:
                    ready = self._waiting.pop((base, frozen(row.identity)), None)
                    if ready:
                        self._ready.extend(ready)
        for pending in self._fresh:
            pending.row = Holder(pending.row.pk, pending.row.dumped)
        self._fresh.clear()

    def corrections(self, final: bool) -> tuple[list[tuple[Pending, Any]], list[Pending]]:
        """The pending references the target now has (each with its value), and those it still
        lacks: after a batch, of the references to the rows it wrote; once every row is
        written (``final``), of them all."""
        group = self._ready
        self._ready = []
        if final:
            group.extend(pending for waiting in self._waiting.values() for pending in waiting)
            self._waiting.clear()
        resolved, unresolved = self._look_up(group)
        if not final:
            # Not found although its row was written: left for the end of the load.
            for pending in unresolved:
                self._wait(pending)
            self._fresh.clear()
            unresolved = []
        return resolved, unresolved

    def _look_up(self, pendings: list[Pending]) -> tuple[list[tuple[Pending, Any]], list[Pending]]:
        resolved: list[tuple[Pending, Any]] = []
        unresolved: list[Pending] = []
        groups: dict[tuple[Model, str, bool], list[Pending]] = defaultdict(list)
        for pending in pendings:
            target = pending.reference.model
            assert target is not None
            if pending.many:
                field: Any = pending.model._meta.get_field(pending.field)
            else:
                field = next(
                    f
                    for f in pending.model._meta.local_concrete_fields
                    if f.attname == pending.field
                )
            # A generic foreign key's object id names the row by its primary key.
            relation = field.remote_field is not None
            attname = field.target_field.attname if relation else target._meta.pk.attname
            groups[(target, attname, pending.many)].append(pending)
        for (target, attname, _many), group in groups.items():
            found: dict[Hashable, Any] = self.matcher.resolve(
                target, [pending.reference.key for pending in group], attname
            )
            for pending in group:
                value = found.get(frozen(pending.reference.key))
                if value is None:
                    unresolved.append(pending)
                else:
                    resolved.append((pending, value))
        return resolved, unresolved
