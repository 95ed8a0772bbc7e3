"""Identity: which row on the target is "the same" as a row of the source.

By default a row is its primary key, which is right when the environments share their keys
(a stage cloned from production and only ever loaded into) or when keys are random (UUIDs).
Where the environments create rows of their own, keys diverge, and a model declares what a
row is instead: fields that a total unique constraint covers (a slug, a UUID field, Wagtail's
``("translation_key", "locale")``), or its natural key (``natural_key()`` and the manager's
``get_by_natural_key()``).

Identities are declared once per model for the project (``DATASET_SYNC_IDENTITIES``) or on a
spec (``identity=``); every declaration of a model must agree, and a multi-table inheritance
child is the row of its base model, so it has the base model's identity. The dump records
the identities it was written with, writes each row's identity beside it and every reference
to a row of such a model as that row's identity; the loader matches them on the target.

References to models that declare nothing are written as Django's ``dumpdata
--natural-foreign`` writes them: as natural keys where the model has ``natural_key()``
(content types, users), as primary keys otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models

from dataset_sync import conf
from dataset_sync.errors import InvalidSpecError

Model = type[models.Model]

PK = "pk"
NATURAL_KEY = "natural_key"


@dataclass(frozen=True)
class Identity:
    """How rows of one model are recognised: ``pk``, ``natural_key`` or ``fields``."""

    kind: str
    #: The fields, for ``kind == "fields"``, in the order identities list their values.
    fields: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: Any, where: str) -> Identity:
        """``"pk"``, ``"natural_key"``, or a field name or list of field names."""
        if value in (PK, NATURAL_KEY):
            return cls(value)
        if isinstance(value, str):
            value = (value,)
        if (
            isinstance(value, (list, tuple))
            and value
            and all(isinstance(name, str) and name for name in value)
        ):
            return cls("fields", tuple(value))
        raise InvalidSpecError(
            f"{where}: identity {value!r} must be 'pk', 'natural_key', or a field name or list"
            " of field names that a unique constraint covers."
        )

    @property
    def matched(self) -> bool:
        """Whether rows are matched by what they are rather than by their primary key."""
        return self.kind != PK

    def as_json(self) -> Any:
        """The form dump headers and spec dicts use."""
        return list(self.fields) if self.kind == "fields" else self.kind

    def describe(self) -> str:
        return f"({', '.join(self.fields)})" if self.kind == "fields" else self.kind


def root(model: Model) -> Model:
    """The model whose table holds the rows of ``model``'s multi-table inheritance family."""
    concrete = model._meta.concrete_model or model
    parents = concrete._meta.get_parent_list()
    return parents[-1] if parents else concrete


class Identities:
    """The identity of every model, from the project's declarations and a dataset's specs.

    ``declared`` maps model labels to identities. Models without a declaration are matched
    by primary key; a multi-table inheritance child takes its base model's.
    """

    def __init__(self, declared: Mapping[str, Identity]) -> None:
        self.declared = dict(declared)

    @classmethod
    def of(cls, specs: Iterable[Any] = ()) -> Identities:
        """The project's declarations (DATASET_SYNC_IDENTITIES), then those of ``specs``.

        InvalidSpecError when two declarations of one model differ.
        """
        declared: dict[str, Identity] = {}
        for label, value in conf.identities_setting().items():
            declared[_label(label)] = Identity.parse(value, f"DATASET_SYNC_IDENTITIES[{label!r}]")
        for spec in specs:
            if spec.identity is None:
                continue
            label = root(spec.get_model())._meta.label_lower
            identity = Identity.parse(spec.identity, f"Spec for {spec.model}")
            if declared.setdefault(label, identity) != identity:
                raise InvalidSpecError(
                    f"Spec for {spec.model}: identity {identity.describe()} differs from"
                    f" {declared[label].describe()}, declared for {label} elsewhere; every"
                    " declaration of a model must agree."
                )
        for label, identity in declared.items():
            if problem := check(apps.get_model(label), identity):
                raise InvalidSpecError(problem)
        return cls(declared)

    def identity(self, model: Model) -> Identity:
        """How rows of ``model`` are matched on the target."""
        return self.declared.get(root(model)._meta.label_lower, Identity(PK))

    def reference(self, model: Model) -> Identity:
        """What a reference to a row of ``model`` is written as."""
        identity = self.identity(model)
        undeclared = root(model)._meta.label_lower not in self.declared
        if identity.kind == PK and undeclared and hasattr(model, "natural_key"):
            return Identity(NATURAL_KEY)
        return identity

    def as_json(self) -> dict[str, Any]:
        """The declared identities other than ``pk``, for a dump header."""
        return {
            label: identity.as_json()
            for label, identity in sorted(self.declared.items())
            if identity.matched
        }


def _label(label: Any) -> str:
    if isinstance(label, type) and issubclass(label, models.Model):
        return root(label)._meta.label_lower
    try:
        model = apps.get_model(str(label))
    except (LookupError, ValueError):
        raise InvalidSpecError(
            f"DATASET_SYNC_IDENTITIES names '{label}', which is not an installed model."
        ) from None
    return root(model)._meta.label_lower


def check(model: Model, identity: Identity) -> str | None:
    """What is wrong with ``identity`` for ``model``, or None.

    Fields must exist on the base model's own table and be covered by a total unique
    constraint (``unique=True``, ``unique_together``, or a ``UniqueConstraint`` without a
    condition), so that at most one row has each identity; a natural key needs
    ``natural_key()`` and ``get_by_natural_key()``.
    """
    base = root(model)
    label = base._meta.label_lower
    if identity.kind == NATURAL_KEY:
        manager = base._default_manager
        if not hasattr(base, "natural_key") or not hasattr(manager, "get_by_natural_key"):
            return (
                f"{label}: identity natural_key needs {base.__name__}.natural_key() and its"
                " default manager's get_by_natural_key()."
            )
        return None
    if identity.kind != "fields":
        return None
    local = {field.name: field for field in base._meta.local_concrete_fields}
    for name in identity.fields:
        if name not in local:
            return f"{label}: identity field '{name}' is not a field of {label}'s own table."
        if local[name].primary_key:
            return f"{label}: identity field '{name}' is the primary key; use identity 'pk'."
    covered = {
        frozenset([field.name])
        for field in local.values()
        if field.unique and not field.primary_key
    }
    covered.update(frozenset(group) for group in base._meta.unique_together)
    covered.update(frozenset(c.fields) for c in base._meta.total_unique_constraints)
    if not any(group <= set(identity.fields) for group in covered):
        return (
            f"{label}: identity {identity.describe()} is not covered by a unique constraint, so"
            " several rows could have it. Add one (unique=True, unique_together or a"
            " UniqueConstraint without a condition), or choose other fields."
        )
    return None
