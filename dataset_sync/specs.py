"""Spec: one model, a filter, and what to do with its rows on load."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldError, ValidationError
from django.db import DatabaseError, models

from dataset_sync.errors import InvalidSpecError

#: The keys of a spec, in the spelling of feincms3-data, whose dict specs are accepted as they are.
SPEC_KEYS = frozenset(
    {"model", "filter", "delete_missing", "ignore_missing_m2m", "save_as_new", "defer_values"}
)


#: The types each flag may have in a spec dict, and how messages describe them.
_SHAPES: dict[str, tuple[tuple[type, ...], str]] = {
    "delete_missing": ((bool, Mapping), "true, false or a dict"),
    "save_as_new": ((bool,), "true or false"),
    "ignore_missing_m2m": ((list, tuple), "a list of field names"),
    "defer_values": ((list, tuple), "a list of field names"),
}


@dataclass(frozen=True)
class Spec:
    """Selects rows of one model (``filter``) and says what loading them does.

    ``delete_missing`` makes the loader delete rows on the target that match ``filter`` but are
    not in the dump. ``model`` is a label (``"app.model"``) or a model class.
    """

    model: str
    filter: Mapping[str, Any] = field(default_factory=dict)
    delete_missing: bool | Mapping[str, Any] = False
    ignore_missing_m2m: tuple[str, ...] = ()
    save_as_new: bool = False
    defer_values: tuple[str, ...] = ()

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
        object.__setattr__(self, "ignore_missing_m2m", tuple(self.ignore_missing_m2m))
        object.__setattr__(self, "defer_values", tuple(self.defer_values))

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
        for key in ("delete_missing", "ignore_missing_m2m", "save_as_new", "defer_values"):
            if value := getattr(self, key):
                data[key] = list(value) if isinstance(value, tuple) else value
        return data

    def refuse_unsupported(self) -> None:
        """Refuse feincms3-data flags whose behaviour is not implemented yet.

        Loading such a spec as if the flag were absent would silently do something else
        (overwrite rows instead of copying them, for ``save_as_new``), so it is an error.
        """
        for key in ("ignore_missing_m2m", "save_as_new", "defer_values"):
            if getattr(self, key):
                raise InvalidSpecError(
                    f"Spec for {self.model} uses '{key}', which dataset_sync does not support"
                    " yet. Remove the flag from the dataset."
                )
        if isinstance(self.delete_missing, Mapping) and self.delete_missing.get("map"):
            raise InvalidSpecError(
                f"Spec for {self.model} uses 'delete_missing' with 'map', which dataset_sync"
                " does not support yet. Use delete_missing=True."
            )

    def get_model(self) -> type[models.Model]:
        """The model class; InvalidSpecError when the label names no installed model."""
        try:
            return apps.get_model(self.model)
        except (LookupError, ValueError):
            raise InvalidSpecError(
                f"Spec model '{self.model}' is not an installed model."
            ) from None

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
        ) as exc:
            raise InvalidSpecError(
                f"Spec for {self.model}: the filter {dict(self.filter)!r} cannot be used on the"
                f" target ({type(exc).__name__}: {str(exc).strip()})."
            ) from exc

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
