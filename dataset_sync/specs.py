"""Spec: one model, a filter, and what to do with its rows on load."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import FieldError, ValidationError
from django.db import DatabaseError, models

from dataset_sync.errors import InvalidSpecError
from dataset_sync.identity import Identity
from dataset_sync.identity import check as check_identity

if TYPE_CHECKING:
    from dataset_sync.dump.rules import Rule

#: The keys of a spec: feincms3-data's, whose dict specs are accepted as they are,
#: ``allow_cascade`` and ``rules``.
SPEC_KEYS = frozenset(
    {
        "model",
        "filter",
        "delete_missing",
        "ignore_missing_m2m",
        "save_as_new",
        "defer_values",
        "allow_cascade",
        "rules",
        "identity",
        "missing_references",
    }
)

#: What a load does with a foreign key whose row is neither in the dump nor on the target.
MISSING_REFERENCE_POLICIES = ("refuse", "set_null", "keep")

_Q_OPTIONS = frozenset({"_connector", "_negated"})
#: Lookups whose cost no timeout of the loader bounds: a regular expression such as
#: ``^(a+)+$`` can backtrack for ever, and on SQLite it runs in Python, where no statement
#: timeout reaches it. A dump's own specs may not use them (see ``runaway_lookups()``).
RUNAWAY_LOOKUPS = frozenset({"regex", "iregex"})


#: The types each flag may have in a spec dict, and how messages describe them.
_SHAPES: dict[str, tuple[tuple[type, ...], str]] = {
    "delete_missing": ((bool, Mapping), "true, false or a dict"),
    "save_as_new": ((bool,), "true or false"),
    "allow_cascade": ((bool, list, tuple), "true, false or a list of model labels"),
    "ignore_missing_m2m": ((list, tuple), "a list of field names"),
    "defer_values": ((list, tuple), "a list of field names"),
    "rules": ((Mapping,), "a dict of field names to rules"),
    "identity": ((str, list, tuple), "'pk', 'natural_key', or a field name or list of them"),
    "missing_references": ((Mapping,), "a dict of field names to 'refuse', 'set_null' or 'keep'"),
}


@dataclass(frozen=True)
class Spec:
    """Selects rows of one model (``filter``) and says what loading them does.

    ``delete_missing`` makes the loader delete rows on the target that match ``filter`` but are
    not in the dump. ``allow_cascade`` lets those deletions cascade to rows that no spec of
    the dataset selects (otherwise the load is refused): to any, or to rows of the models it
    lists (labels or classes). ``rules`` maps field names of the
    model to data rules (``dataset_sync.rules``), which the dumper applies to this spec's
    rows. ``identity`` says how its rows are recognised on the target (see
    :mod:`dataset_sync.identity`); ``missing_references`` what a load does with a foreign key
    whose row is neither in the dump nor on the target: ``refuse`` (the default),
    ``set_null`` or ``keep`` (the target's current value). ``model`` is a label
    (``"app.model"``) or a model class.
    """

    model: str
    filter: Mapping[str, Any] = field(default_factory=dict)
    delete_missing: bool | Mapping[str, Any] = False
    ignore_missing_m2m: tuple[str, ...] = ()
    save_as_new: bool = False
    defer_values: tuple[str, ...] = ()
    allow_cascade: bool | tuple[str, ...] = False
    rules: Mapping[str, Rule] = field(default_factory=dict)
    identity: str | tuple[str, ...] | None = None
    missing_references: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        model: Any = self.model
        if isinstance(model, type) and issubclass(model, models.Model):
            object.__setattr__(self, "model", model._meta.label_lower)
        elif isinstance(model, str):
            object.__setattr__(self, "model", model.lower())
        else:
            raise InvalidSpecError(f"Spec model {model!r} must be a label like 'app.model'.")
        if not isinstance(self.filter, Mapping):
            raise InvalidSpecError(f"Spec for {self.model}: 'filter' must be a dict of lookups.")
        for key in self.filter:
            # Q() takes these two as options, not lookups; a dump must not be able to pass them.
            if not isinstance(key, str) or key in _Q_OPTIONS:
                raise InvalidSpecError(
                    f"Spec for {self.model}: filter key {key!r} is not a field lookup."
                )
        object.__setattr__(self, "ignore_missing_m2m", tuple(self.ignore_missing_m2m))
        object.__setattr__(self, "defer_values", tuple(self.defer_values))
        if isinstance(self.allow_cascade, (list, tuple)):
            object.__setattr__(self, "allow_cascade", self._cascade_labels())
        object.__setattr__(self, "rules", self._rules())
        if self.identity is not None:
            identity = Identity.parse(self.identity, f"Spec for {self.model}")
            object.__setattr__(self, "identity", identity.fields or identity.kind)
        policies = self.missing_references
        if not isinstance(policies, Mapping) or not all(
            isinstance(name, str) and policy in MISSING_REFERENCE_POLICIES
            for name, policy in policies.items()
        ):
            raise InvalidSpecError(
                f"Spec for {self.model}: 'missing_references' must map foreign key names to"
                f" {', '.join(map(repr, MISSING_REFERENCE_POLICIES))}, not {policies!r}."
            )
        object.__setattr__(self, "missing_references", dict(policies))
        if isinstance(self.delete_missing, Mapping):
            # An empty dict is falsy, and deletes nothing, as in feincms3-data.
            value = self._delete_missing_map() if self.delete_missing else False
            object.__setattr__(self, "delete_missing", value)

    def _cascade_labels(self) -> tuple[str, ...]:
        labels = []
        for model in self.allow_cascade:  # type: ignore[union-attr]
            if isinstance(model, type) and issubclass(model, models.Model):
                labels.append(model._meta.label_lower)
            elif isinstance(model, str):
                labels.append(model.lower())
            else:
                raise InvalidSpecError(
                    f"Spec for {self.model}: 'allow_cascade' lists {model!r}; list model labels"
                    " like 'app.model'."
                )
        return tuple(sorted(set(labels)))

    def allows_cascade_to(self, label: str) -> bool:
        """Whether this spec's deletions may reach rows of the model ``label`` outside the
        dataset."""
        if isinstance(self.allow_cascade, tuple):
            return label in self.allow_cascade
        return self.allow_cascade

    def _rules(self) -> dict[str, Rule]:
        # Imported here: the dump package imports this module.
        from dataset_sync.dump.rules import to_rule

        if not isinstance(self.rules, Mapping):
            raise InvalidSpecError(
                f"Spec for {self.model}: 'rules' must be a dict of field names to rules."
            )
        rules = {}
        for name, value in self.rules.items():
            rule = to_rule(value)
            if not isinstance(name, str) or rule is None:
                raise InvalidSpecError(
                    f"Spec for {self.model}: 'rules' entry {name!r}: {value!r} must map a field"
                    " name to a rule, a rule name or a function."
                )
            rules[name] = rule
        return rules

    def _delete_missing_map(self) -> dict[str, Any]:
        """``{"map": [(lookup, model label), ...]}`` from the dict form of delete_missing."""
        assert isinstance(self.delete_missing, Mapping)
        if unknown := sorted(set(self.delete_missing) - {"map"}):
            raise InvalidSpecError(
                f"Spec for {self.model}: 'delete_missing' has unknown keys {', '.join(unknown)};"
                " use True, or a dict with 'map'."
            )
        entries = []
        for entry in self.delete_missing.get("map") or ():
            try:
                lookup, model = entry
            except (TypeError, ValueError):
                raise InvalidSpecError(
                    f"Spec for {self.model}: 'delete_missing' map entry {entry!r} must be a"
                    " pair (lookup, model), like ('parent__in', 'app.parent')."
                ) from None
            if isinstance(model, type) and issubclass(model, models.Model):
                model = model._meta.label_lower
            if lookup not in self.filter or not isinstance(model, str):
                raise InvalidSpecError(
                    f"Spec for {self.model}: 'delete_missing' map entry {entry!r} must name a"
                    " lookup of the spec's filter and a model label."
                )
            entries.append((lookup, model.lower()))
        return {"map": entries}

    @property
    def delete_missing_map(self) -> list[tuple[str, str]]:
        """The (filter lookup, model label) pairs whose values are remapped to new keys."""
        if isinstance(self.delete_missing, Mapping):
            return list(self.delete_missing["map"])
        return []

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spec:
        """Build a spec from a feincms3-data style dict, rejecting unknown keys."""
        if not isinstance(data, Mapping):
            raise InvalidSpecError(f"Spec {data!r} must be a dict or a Spec.")
        if data.get("model") is None:
            raise InvalidSpecError(f"Spec {dict(data)!r} has no 'model' key.")
        if unknown := sorted(set(data) - SPEC_KEYS):
            raise InvalidSpecError(
                f"Spec for {data['model']} has unknown keys {', '.join(unknown)};"
                f" use {', '.join(sorted(SPEC_KEYS))}."
            )
        # A dump's header is read as a spec too, so every value's shape is checked here.
        for key, (types, shape) in _SHAPES.items():
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, types) or (
                isinstance(value, (list, tuple)) and not all(isinstance(v, str) for v in value)
            ):
                raise InvalidSpecError(
                    f"Spec for {data['model']}: '{key}' must be {shape}, not {value!r}."
                )
        return cls(**{key: value for key, value in data.items() if value is not None})

    def as_dict(self) -> dict[str, Any]:
        """The spec as written into a dump header: feincms3-data's shape, defaults left out."""
        data: dict[str, Any] = {"model": self.model}
        if self.filter:
            data["filter"] = dict(self.filter)
        for key in ("ignore_missing_m2m", "save_as_new", "defer_values", "allow_cascade"):
            if value := getattr(self, key):
                data[key] = list(value) if isinstance(value, tuple) else value
        if self.delete_missing_map:
            data["delete_missing"] = {"map": [list(entry) for entry in self.delete_missing_map]}
        elif self.delete_missing:
            data["delete_missing"] = True
        if self.rules:
            data["rules"] = {name: rule.name for name, rule in self.rules.items()}
        if self.identity is not None:
            data["identity"] = (
                list(self.identity) if isinstance(self.identity, tuple) else self.identity
            )
        if self.missing_references:
            data["missing_references"] = dict(self.missing_references)
        return data

    def check_flags(self) -> None:
        """Refuse flags naming fields the model does not have, or that cannot take the flag."""
        model = self.get_model()
        m2m = {field.name for field in model._meta.many_to_many}
        for name in self.ignore_missing_m2m:
            if name not in m2m:
                raise InvalidSpecError(
                    f"Spec for {self.model}: 'ignore_missing_m2m' names '{name}', which is not"
                    f" a many-to-many field of {self.model}."
                )
        for label in self.allow_cascade if isinstance(self.allow_cascade, tuple) else ():
            try:
                apps.get_model(label)
            except (LookupError, ValueError):
                raise InvalidSpecError(
                    f"Spec for {self.model}: 'allow_cascade' lists '{label}', which is not an"
                    " installed model."
                ) from None
        for _lookup, label in self.delete_missing_map:
            try:
                apps.get_model(label)
            except (LookupError, ValueError):
                raise InvalidSpecError(
                    f"Spec for {self.model}: the delete_missing map names '{label}', which is"
                    " not an installed model."
                ) from None
        local = {field.name: field for field in model._meta.local_concrete_fields}
        # A proxy's rows are its concrete model's, and so are the fields rules name.
        concrete = model._meta.concrete_model or model
        own = {field.name for field in concrete._meta.local_concrete_fields}
        for name in self.rules:
            if name not in own:
                raise InvalidSpecError(
                    f"Spec for {self.model}: 'rules' names '{name}', which is not a field of"
                    f" {self.model}'s own table."
                )
        for name in self.defer_values:
            if not isinstance(local.get(name), (models.CharField, models.TextField)):
                raise InvalidSpecError(
                    f"Spec for {self.model}: 'defer_values' names '{name}', which is not a text"
                    f" field of {self.model}'s own table; only text fields can hold the"
                    " throwaway values."
                )
        for name, policy in self.missing_references.items():
            relation = local.get(name)
            if relation is None or not relation.many_to_one:
                raise InvalidSpecError(
                    f"Spec for {self.model}: 'missing_references' names '{name}', which is not a"
                    f" foreign key of {self.model}'s own table."
                )
            if policy == "set_null" and not relation.null:
                raise InvalidSpecError(
                    f"Spec for {self.model}: 'missing_references' sets '{name}' to NULL, but"
                    " the field is not nullable; use 'refuse' or 'keep'."
                )
        if self.identity is not None:
            identity = Identity.parse(self.identity, f"Spec for {self.model}")
            if problem := check_identity(model, identity):
                raise InvalidSpecError(problem)
            if identity.matched and self.save_as_new:
                raise InvalidSpecError(
                    f"Spec for {self.model}: save_as_new copies rows under new keys, and an"
                    " identity matches them with rows on the target; declare one or the other."
                )

    def get_model(self) -> type[models.Model]:
        """The model class; InvalidSpecError when the label names no installed model."""
        try:
            return apps.get_model(self.model)
        except (LookupError, ValueError):
            raise InvalidSpecError(
                f"Spec model '{self.model}' is not an installed model."
            ) from None

    def concrete_model(self) -> type[models.Model]:
        """The model whose table holds this spec's rows: a proxy's concrete model."""
        model = self.get_model()
        return model._meta.concrete_model or model

    def check_filter(self, using: str) -> None:
        """Run the filter once on ``using``; InvalidSpecError when it cannot be run there.

        A dump's specs come from a file, so their lookups and values may name fields the model
        lacks, have the wrong type, or make the database refuse the query.
        """
        try:
            self.queryset(using).exists()
        except (
            FieldError,
            ValidationError,
            ValueError,
            TypeError,
            OverflowError,
            DatabaseError,
            # Values nested hundreds deep: Django resolves them recursively (Python 3.13).
            RecursionError,
        ) as exc:
            raise InvalidSpecError(
                f"Spec for {self.model}: the filter {dict(self.filter)!r} cannot be used on the"
                f" target ({type(exc).__name__}: {str(exc).strip()})."
            ) from exc

    def runaway_lookups(self) -> list[str]:
        """The filter's keys whose lookup may run for ever (``RUNAWAY_LOOKUPS``), found without
        running the filter; keys that name no field are left to :meth:`check_filter`."""
        query = self.get_model()._base_manager.all().query
        found = []
        for key in self.filter:
            try:
                lookups, _parts, _expression = query.solve_lookup_type(key)
            except FieldError:
                continue
            if lookups and lookups[-1] in RUNAWAY_LOOKUPS:
                found.append(key)
        return found

    def queryset(self, using: str) -> models.QuerySet[Any]:
        """The rows this spec selects on ``using``, ordered by primary key."""
        return self.get_model()._base_manager.using(using).filter(**self.filter).order_by("pk")


SpecLike = Spec | Mapping[str, Any]


def to_spec(spec: SpecLike) -> Spec:
    """Accept a Spec or a feincms3-data style dict."""
    return spec if isinstance(spec, Spec) else Spec.from_dict(spec)


def specs_for_models(
    models_: Iterable[type[models.Model]], spec: Mapping[str, Any] | None = None
) -> list[Spec]:
    """One spec per model, each with the keys of ``spec`` (e.g. ``{"delete_missing": True}``)."""
    return [Spec.from_dict({**(spec or {}), "model": model._meta.label_lower}) for model in models_]


def specs_for_app_models(app_label: str, spec: Mapping[str, Any] | None = None) -> list[Spec]:
    """Specs for every model of an installed app."""
    return specs_for_models(apps.get_app_config(app_label).get_models(), spec)


def specs_for_derived_models(
    model: type[models.Model], spec: Mapping[str, Any] | None = None
) -> list[Spec]:
    """Specs for every concrete subclass of ``model`` (multi-table inheritance children)."""

    def subclasses(cls: type[models.Model]) -> Iterable[type[models.Model]]:
        for subclass in cls.__subclasses__():
            yield subclass
            yield from subclasses(subclass)

    concrete = (cls for cls in subclasses(model) if not cls._meta.abstract and not cls._meta.proxy)
    return specs_for_models(concrete, spec)
