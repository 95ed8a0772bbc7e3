"""Renamed models and fields: a dump written before a rename loads into a database migrated
after it.

During the release that renames a model or a field, production still writes the old names
while stage, running that release, has only the new ones. The loading side declares the
renames for that transition, old to new, by the labels models have on this database::

    DATASET_SYNC_MODEL_RENAMES = {"shop.part": "shop.component"}
    DATASET_SYNC_RENAMES = {"shop.component": {"label": "title"}}

(a renamed model's fields under its new label), and the loader reads the dump as if it had
been written with the new names: its schema record, its specs and header, its objects, and
the references in them that name a model by its label (content types' natural keys, and what
holds one). Once both sides run the release, the declarations change nothing and can go.

The file itself is never changed: its digest and signature are checked as it was written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from dataset_sync import conf, schema
from dataset_sync.errors import InvalidSpecError
from dataset_sync.format import Header
from dataset_sync.identity import NATURAL_KEY, PK, Identities, root

Model = type[models.Model]

#: Spec keys that hold field names: lists of them, or dicts keyed by them.
_FIELD_LISTS = ("defer_values", "ignore_missing_m2m")
_FIELD_KEYS = ("rules", "missing_references")
#: Where a model's natural key holds an app label and a model name, the two parts of a label:
#: a content type's is (app_label, model), a permission's (codename, app_label, model).
_LABELS_IN_NATURAL_KEYS = {"contenttypes.contenttype": 0, "auth.permission": 1}


def declared_problems() -> list[str]:
    """What keeps the declared renames (DATASET_SYNC_MODEL_RENAMES, DATASET_SYNC_RENAMES)
    from working on this database, one sentence each; ``manage.py check`` reports them."""
    problems: list[str] = []
    try:
        model_renames = conf.model_renames_setting()
    except InvalidSpecError as exc:
        problems.append(str(exc))
        model_renames = {}
    targets: dict[str, str] = {}
    for old, new in sorted(model_renames.items()):
        if _model(old) is not None:
            problems.append(
                f"DATASET_SYNC_MODEL_RENAMES: '{old}' is still a model here; only a label that no"
                " installed model has any more can be renamed."
            )
        if _model(new) is None:
            problems.append(
                f"DATASET_SYNC_MODEL_RENAMES: '{new}', which '{old}' is renamed to, is not an"
                " installed model."
            )
        elif new in targets:
            problems.append(
                f"DATASET_SYNC_MODEL_RENAMES: '{targets[new]}' and '{old}' are both renamed to"
                f" '{new}'; the rows of two models cannot load into one."
            )
        targets.setdefault(new, old)
    try:
        field_renames = conf.renames_setting()
    except InvalidSpecError as exc:
        return [*problems, str(exc)]
    for label, fields in sorted(field_renames.items()):
        model = _model(label)
        if model is None and label in model_renames:
            problems.append(
                f"DATASET_SYNC_RENAMES: '{label}' is renamed to {model_renames[label]}"
                f" (DATASET_SYNC_MODEL_RENAMES); declare its fields under"
                f" '{model_renames[label]}'."
            )
            continue
        if model is None:
            problems.append(f"DATASET_SYNC_RENAMES: '{label}' is not an installed model.")
            continue
        names = {field.name for field in model._meta.get_fields()}
        for old, new in fields.items():
            if new not in names:
                problems.append(
                    f"DATASET_SYNC_RENAMES: {label} has no field '{new}' to load '{old}' into."
                )
            if old in names:
                problems.append(
                    f"DATASET_SYNC_RENAMES: {label} still has a field '{old}'; only a name the"
                    " model no longer has can be renamed."
                )
    return problems


class Renames:
    """Renamed models (old label to the label here) and fields, per model label here: old
    field name to new."""

    def __init__(
        self,
        renames: Mapping[str, Mapping[str, str]],
        models_: Mapping[str, str] | None = None,
        reported: Iterable[str] | None = None,
    ) -> None:
        self._renames = {label: dict(fields) for label, fields in renames.items() if fields}
        self._models = dict(models_ or {})
        #: The old labels whose renames the report lists: those the dump has.
        self._reported = set(self._models if reported is None else reported)
        self._labels: _Labels | None = None
        #: The field renames per label a dump names, worked out once per label.
        self._by_label: dict[str, dict[str, str]] = {}

    @classmethod
    def for_dump(cls, header: Header) -> Renames:
        """The declared renames that apply to a dump with ``header``.

        A field rename applies where the dump's schema record has the old name and not the
        new one. A model rename applies unless the record names the new label (as a model,
        or as the model a relation points to): a dump written before the rename names the
        old label, or neither when only content types name the model, and there reading the
        old label as the new one is all the rename can do. To a dump without a record
        (written before it existed), every rename applies. InvalidSpecError, one line, when
        the declarations cannot work (the system check says so first).
        """
        if problems := declared_problems():
            raise InvalidSpecError(" ".join(problems))
        record = header.schema
        named = None if record is None else _named(record)
        renamed_models = {
            old: new
            for old, new in conf.model_renames_setting().items()
            if named is None or new not in named
        }
        reported = [old for old in renamed_models if named is None or old in named]
        applied: dict[str, dict[str, str]] = {}
        for label, renames in conf.renames_setting().items():
            if record is None:
                applied[label] = dict(renames)
                continue
            # The record's models under their labels here: a renamed model's fields are
            # declared under its new label.
            fields: dict[str, Any] = {}
            for dumped, fingerprints in record["models"].items():
                if renamed_models.get(dumped, dumped) == label:
                    fields = fingerprints
            applied[label] = {
                old: new for old, new in renames.items() if old in fields and new not in fields
            }
        return cls(applied, renamed_models, reported)

    def __bool__(self) -> bool:
        return bool(self._renames or self._models)

    def drift(self) -> list[schema.Drift]:
        """A Drift for each rename, for the report."""
        return [
            *(
                schema.Drift("model_renamed", new.split(".")[0], new, detail=old)
                for old, new in sorted(self._models.items())
                if old in self._reported
            ),
            *(
                schema.Drift("field_renamed", label.split(".")[0], label, new, detail=old)
                for label, renames in sorted(self._renames.items())
                for old, new in renames.items()
            ),
        ]

    def header(self, header: Header) -> Header:
        """``header`` as if it had been written with the new names."""
        if not self:
            return header
        return dataclasses.replace(
            header,
            specs=[self._spec(spec) for spec in header.specs],
            rules=self._keyed(header.rules),
            identities=self._identities(header.identities),
            schema=None if header.schema is None else self._record(header.schema),
        )

    def objects(self, batch: list[dict[str, Any]], identities: Identities) -> None:
        """Rename the models and fields of the dumped objects in place, and the labels that
        their references hold (see :class:`_Labels`); ``identities`` are this database's."""
        if not self:
            return
        if self._models and self._labels is None:
            self._labels = _Labels(self._models, identities)
        labels = self._labels
        for data in batch:
            label = data["model"] = self._label(data["model"])
            renames = self._of(label)
            if renames and isinstance(data.get("fields"), dict):
                data["fields"] = {
                    renames.get(name, name): value for name, value in data["fields"].items()
                }
            if labels is not None and isinstance(data.get("fields"), dict):
                labels.rename_in(data)

    def _label(self, label: str) -> str:
        return self._models.get(label.lower(), label)

    def _of(self, label: str) -> dict[str, str]:
        """The field renames of the model ``label`` names here (a proxy's are its concrete
        model's)."""
        renames = self._by_label.get(label)
        if renames is None:
            renames = self._renames.get(label)
            model = _model(label) if renames is None else None
            if model is not None:
                concrete = model._meta.concrete_model or model
                renames = self._renames.get(concrete._meta.label_lower)
            renames = self._by_label[label] = renames or {}
        return renames

    def _spec(self, spec: Any) -> Any:
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), str):
            return spec
        spec = dict(spec)
        label = spec["model"] = self._label(spec["model"])
        if isinstance(spec.get("filter"), dict):
            spec["filter"] = {
                self._lookup(label, lookup): value for lookup, value in spec["filter"].items()
            }
        delete_missing = spec.get("delete_missing")
        if isinstance(delete_missing, dict) and isinstance(delete_missing.get("map"), list):
            spec["delete_missing"] = {
                **delete_missing,
                "map": [self._map_entry(label, entry) for entry in delete_missing["map"]],
            }
        fields = self._of(label)
        if not fields:
            return spec
        for key in _FIELD_LISTS:
            if isinstance(spec.get(key), list):
                spec[key] = [fields.get(name, name) for name in spec[key]]
        for key in _FIELD_KEYS:
            if isinstance(spec.get(key), dict):
                spec[key] = {fields.get(name, name): value for name, value in spec[key].items()}
        identity = spec.get("identity")
        if isinstance(identity, str):
            spec["identity"] = fields.get(identity, identity)
        elif isinstance(identity, list):
            spec["identity"] = [fields.get(name, name) for name in identity]
        return spec

    def _map_entry(self, label: str, entry: Any) -> Any:
        """A delete_missing map entry, (filter lookup, model label), under the new names."""
        if not (isinstance(entry, list) and len(entry) == 2):
            return entry
        lookup, mapped = entry
        if isinstance(lookup, str):
            lookup = self._lookup(label, lookup)
        if isinstance(mapped, str):
            mapped = self._label(mapped)
        return [lookup, mapped]

    def _lookup(self, label: str, lookup: str) -> str:
        """A filter lookup of the model ``label`` names, each field on its path under its new
        name; a reverse relation from a renamed model under the new model's name."""
        parts = lookup.split("__")
        model = _model(label)
        for index, part in enumerate(parts):
            if model is None:
                break
            name = self._of(model._meta.label_lower).get(part, part)
            field = _field(model, name) or self._reverse(model, name)
            if field is None:
                break  # a lookup or transform, or "pk": the path ends here
            parts[index] = field.name
            model = field.related_model if field.is_relation else None
        return "__".join(parts)

    def _reverse(self, model: Model, name: str) -> Any:
        """The reverse relation that was called ``name`` before its model was renamed: by
        default, reverse relations are called after the model that holds the relation."""
        for old, new in self._models.items():
            if old.split(".")[1] != name:
                continue
            field = _field(model, new.split(".")[1])
            if field is not None and field.auto_created and field.related_model is _model(new):
                return field
        return None

    def _keyed(
        self, by_model: dict[str, dict[str, Any]] | None
    ) -> dict[str, dict[str, Any]] | None:
        if by_model is None:
            return None
        renamed: dict[str, dict[str, Any]] = {}
        for label, fields in by_model.items():
            new = self._label(label)
            renamed[new] = {self._of(new).get(name, name): value for name, value in fields.items()}
        return renamed

    def _record(self, record: dict[str, Any]) -> dict[str, Any]:
        """The schema record under the new names. A renamed field's column went with its name
        (RenameField renames both), so the old column is left out of the comparison; a
        renamed model's columns stay (RenameModel renames its table), and so do the foreign
        keys to it, whose related model is now the new one."""
        models_: dict[str, dict[str, Any]] = {}
        for label, fields in record["models"].items():
            new = self._label(label)
            renames = self._of(new)
            models_[new] = {
                renames.get(name, name): {
                    key: self._label(value) if key == "to" and isinstance(value, str) else value
                    for key, value in fingerprint.items()
                    if not (name in renames and key == "column")
                }
                for name, fingerprint in fields.items()
            }
        # An app that is gone from this database because its models moved to other apps:
        # its migrations describe what this database no longer has.
        migrations = {
            app: names
            for app, names in record["migrations"].items()
            if not self._moved_away(app, record["models"])
        }
        return {**record, "migrations": migrations, "models": models_}

    def _moved_away(self, app: str, dumped: dict[str, Any]) -> bool:
        """Whether ``app`` is not installed here and every model of it the dump has was
        renamed into another app."""
        try:
            apps.get_app_config(app)
        except LookupError:
            own = [label for label in dumped if label.split(".")[0] == app]
            return bool(own) and all(
                label in self._models and self._models[label].split(".")[0] != app for label in own
            )
        return False

    def _identities(self, identities: dict[str, Any] | None) -> dict[str, Any] | None:
        if identities is None:
            return None
        renamed: dict[str, Any] = {}
        for label, identity in identities.items():
            new = self._label(label)
            fields = self._of(new)
            renamed[new] = (
                [fields.get(name, name) for name in identity]
                if isinstance(identity, list)
                else identity
            )
        return renamed


@dataclass
class _Plan:
    """What in an object of one model may name a renamed model by its label."""

    model: Model
    #: (field name, related model, many-to-many) of the relations whose references may.
    relations: list[tuple[str, Model, bool]]
    #: Whether the object's own identity may.
    identity: bool
    #: (content type field, object id field) of its generic foreign keys.
    generic: list[tuple[str, str]]


class _Labels:
    """Renames model labels in the references a dumped object holds.

    A reference names a model by its label where it is a content type's natural key
    (``["shop", "part"]``, a generic foreign key's content type), a natural key holding one
    (a permission's), or a declared identity with such a component. Which references can
    is worked out once per model, from this database's identities, which are the dump's.
    """

    def __init__(self, renamed: Mapping[str, str], identities: Identities) -> None:
        self._renamed = renamed
        self._identities = identities
        self._holds: dict[Model, bool] = {}
        self._plans: dict[str, _Plan | None] = {}

    def rename_in(self, data: dict[str, Any]) -> None:
        plan = self._plan(data["model"])
        if plan is None:
            return
        fields = data["fields"]
        if plan.model._meta.label_lower == "contenttypes.contenttype":
            # The content types themselves, when a dataset holds them.
            renamed = self._renamed_parts([fields.get("app_label"), fields.get("model")])
            if renamed is not None:
                fields["app_label"], fields["model"] = renamed
        for name, related, many in plan.relations:
            value = fields.get(name)
            if many and isinstance(value, list):
                fields[name] = [self.reference(related, each) for each in value]
            elif value is not None:
                fields[name] = self.reference(related, value)
        if plan.identity and "identity" in data:
            data["identity"] = self.reference(plan.model, data["identity"])
        for ct_field, fk_field in plan.generic:
            # The object id names its row by identity when that row's model declares one.
            content_type, object_id = fields.get(ct_field), fields.get(fk_field)
            if isinstance(content_type, list) and isinstance(object_id, list):
                target = _model(".".join(map(str, content_type)))
                if target is not None and self.holds(target):
                    fields[fk_field] = self.reference(target, object_id)

    def reference(self, model: Model, value: Any) -> Any:
        """``value``, a reference to a row of ``model`` as a dump writes it, with the labels
        of renamed models in it renamed."""
        if not isinstance(value, list):
            return value
        identity = self._identities.reference(model)
        if identity.kind == NATURAL_KEY:
            at = _LABELS_IN_NATURAL_KEYS.get(root(model)._meta.label_lower)
            if at is None:
                return value
            renamed = self._renamed_parts(value[at : at + 2])
            return value if renamed is None else [*value[:at], *renamed, *value[at + 2 :]]
        if identity.kind == PK or len(value) != len(identity.fields):
            return value
        fields: list[Any] = [root(model)._meta.get_field(name) for name in identity.fields]
        return [
            self.reference(field.related_model, part)
            if field.is_relation and self.holds(field.related_model)
            else part
            for field, part in zip(fields, value, strict=True)
        ]

    def _renamed_parts(self, parts: list[Any]) -> list[str] | None:
        """The new (app label, model name) for an old one, or None."""
        if len(parts) != 2 or not all(isinstance(part, str) for part in parts):
            return None
        new = self._renamed.get(f"{parts[0]}.{parts[1]}".lower())
        return None if new is None else new.split(".")

    def holds(self, model: Model) -> bool:
        """Whether a reference to a row of ``model`` may hold a model's label."""
        if model not in self._holds:
            self._holds[model] = False  # a cycle of identities adds nothing
            identity = self._identities.reference(model)
            if identity.kind == NATURAL_KEY:
                held = root(model)._meta.label_lower in _LABELS_IN_NATURAL_KEYS
            elif identity.kind == PK:
                held = False
            else:
                meta = root(model)._meta
                fields: list[Any] = [meta.get_field(name) for name in identity.fields]
                held = any(
                    field.is_relation and self.holds(field.related_model) for field in fields
                )
            self._holds[model] = held
        return self._holds[model]

    def _plan(self, label: str) -> _Plan | None:
        if label not in self._plans:
            self._plans[label] = self._planned(label)
        return self._plans[label]

    def _planned(self, label: str) -> _Plan | None:
        model = _model(label)
        if model is None:
            return None  # the spooler refuses the object
        concrete = model._meta.concrete_model or model
        meta = concrete._meta
        every: list[Any] = [*meta.local_fields, *meta.local_many_to_many]
        relations = [
            (field.name, field.related_model, bool(field.many_to_many))
            for field in every
            if field.is_relation
            and isinstance(field.related_model, type)
            and self.holds(field.related_model)
        ]
        generic = [
            (gfk.ct_field, gfk.fk_field)
            for gfk in meta.private_fields
            if hasattr(gfk, "fk_field") and hasattr(gfk, "ct_field")
        ]
        identity = self._identities.identity(concrete).matched and self.holds(concrete)
        if not (relations or generic or identity or label == "contenttypes.contenttype"):
            return None
        return _Plan(concrete, relations, identity, generic)


def _named(record: dict[str, Any]) -> set[str]:
    """The model labels a schema record names: its models, and the models their relations
    point to."""
    named = set(record["models"])
    for fields in record["models"].values():
        named.update(
            fingerprint["to"]
            for fingerprint in fields.values()
            if isinstance(fingerprint.get("to"), str)
        )
    return named


def _model(label: str) -> Model | None:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        return None


def _field(model: Model, name: str) -> Any:
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
