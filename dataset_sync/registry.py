"""Named datasets: registration, ``name:args`` parsing and lookup."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.module_loading import autodiscover_modules, import_string

from dataset_sync import conf
from dataset_sync.errors import DatasetArgumentsError, InvalidSpecError, UnknownDatasetError
from dataset_sync.specs import Spec, SpecLike, to_spec

SpecsFunction = Callable[[str], Iterable[SpecLike]]
Mapper = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Dataset:
    """A name, a function from the argument string to specs, and optional dump-time mappers.

    ``mappers`` maps a model label to a function that rewrites each serialized object of that
    model (``{"model": ..., "pk": ..., "fields": {...}}``) before it is written to the dump.
    """

    name: str
    specs_function: SpecsFunction
    mappers: Mapping[str, Mapper] = field(default_factory=dict)

    def specs(self, args: str = "") -> list[Spec]:
        """The specs for ``args``; DatasetArgumentsError when the function rejects them."""
        try:
            specs = list(self.specs_function(args))
        except (ValueError, TypeError, LookupError) as exc:
            raise DatasetArgumentsError(
                f"Dataset '{self.name}' rejected the arguments {args!r}: {exc}."
                f" Check what follows '{self.name}:'."
            ) from exc
        try:
            return [to_spec(spec) for spec in specs]
        except InvalidSpecError as exc:
            raise InvalidSpecError(f"Dataset '{self.name}': {exc}") from exc


_registered: dict[str, Dataset] = {}


def register(
    name: str, *, mappers: Mapping[str, Mapper] | None = None
) -> Callable[[SpecsFunction], SpecsFunction]:
    """Register the decorated function as the dataset ``name``.

    Put registrations in a ``datasets.py`` module of an installed app; those modules are
    imported when a dataset is first looked up, the way ``admin.py`` modules are.
    """

    def decorator(function: SpecsFunction) -> SpecsFunction:
        _registered[name] = Dataset(name, function, dict(mappers or {}))
        return function

    return decorator


def datasets() -> dict[str, Dataset]:
    """Every dataset: those of ``datasets.py`` modules, then those of DATASET_SYNC_DATASETS."""
    autodiscover_modules("datasets")
    found = dict(_registered)
    if path := conf.datasets_setting():
        for name, declaration in import_string(path)().items():
            found[name] = Dataset(
                name, declaration["specs"], dict(declaration.get("mappers") or {})
            )
    return found


def parse(text: str) -> tuple[str, str]:
    """Split ``"name:args"`` into the name and the argument string."""
    name, _colon, args = text.partition(":")
    return name, args


def get_dataset(name: str) -> Dataset:
    """The dataset ``name``; UnknownDatasetError lists the names that exist."""
    found = datasets()
    try:
        return found[name]
    except KeyError:
        known = ", ".join(sorted(found)) or "none are registered"
        raise UnknownDatasetError(f"Unknown dataset '{name}'; known datasets: {known}.") from None
