"""Named datasets: registration, ``name:args`` parsing and lookup."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS
from django.utils.module_loading import autodiscover_modules, import_string

from dataset_sync import conf
from dataset_sync.errors import (
    DatasetArgumentsError,
    InvalidSpecError,
    UnknownDatasetError,
    UntrustedDumpError,
)
from dataset_sync.specs import Spec, SpecLike, to_spec

#: ``specs(args)``, or ``specs(args, using=alias)`` for a function that reads the database.
SpecsFunction = Callable[..., Iterable[SpecLike]]
Mapper = Callable[[dict[str, Any]], dict[str, Any]]
#: Called as ``hook(using=..., dataset=..., args=..., report=...)`` once a dump of the dataset
#: is written, before the load's checks and commit; more keyword arguments may come.
Hook = Callable[..., Any]


@dataclass(frozen=True)
class Dataset:
    """A name, a function from the argument string to specs, and optional dump-time rewrites.

    ``rules`` maps ``"app_label.model.field"``, field names or field classes to data rules
    (``dataset_sync.rules``) for the fields of every spec. ``mappers`` maps a model label to
    a function that rewrites each serialized object of that model (``{"model": ..., "pk":
    ..., "fields": {...}}``) before it is written to the dump, after the rules. ``after_write``
    are hooks a load of the dataset calls once its rows are written and deleted, before the
    checks and the commit, in the load's transaction: to repair what lives outside the rows
    (a tree's child counts, a cache).
    """

    name: str
    specs_function: SpecsFunction
    mappers: Mapping[str, Mapper] = field(default_factory=dict)
    rules: Mapping[Any, Any] = field(default_factory=dict)
    after_write: tuple[Hook, ...] = ()
    #: The arguments ``manage.py check`` evaluates the dataset with.
    check_args: str = ""

    @property
    def reads_database(self) -> bool:
        """Whether the dataset function takes ``using``: its filter values may come from the
        database it is evaluated on, and so differ between two databases."""
        return _takes_using(self.specs_function)

    def specs(self, args: str = "", using: str = DEFAULT_DB_ALIAS) -> list[Spec]:
        """The specs for ``args``, evaluated on the database ``using``; DatasetArgumentsError
        when the function rejects the arguments.

        A function that takes a ``using`` argument (or ``**kwargs``) gets the alias, so that
        it can read filter values from that database; one that takes only ``args``, as
        feincms3-data's do, is called with them alone.
        """
        try:
            if self.reads_database:
                specs = list(self.specs_function(args, using=using))
            else:
                specs = list(self.specs_function(args))
        except (ValueError, TypeError, LookupError) as exc:
            raise DatasetArgumentsError(
                f"Dataset '{self.name}' rejected the arguments {args!r}: {exc}."
                f" Check what follows '{self.name}:'."
            ) from exc
        try:
            resolved = [to_spec(spec) for spec in specs]
        except InvalidSpecError as exc:
            raise InvalidSpecError(f"Dataset '{self.name}': {exc}") from exc
        for spec in resolved:
            # A value its field cannot hold ("oops" for a UUID) comes from the arguments: the
            # filter is built, not run, so that it fails here rather than mid-dump.
            try:
                spec.get_model()._base_manager.filter(**spec.filter)
            except ValidationError as exc:
                reason = " ".join(exc.messages)
            except (ValueError, TypeError) as exc:
                reason = str(exc)
            else:
                continue
            raise DatasetArgumentsError(
                f"Dataset '{self.name}' rejected the arguments {args!r}: the {spec.model} spec's"
                f" filter {spec.filter!r} cannot select rows ({reason}). Check what follows"
                f" '{self.name}:'."
            )
        return resolved


_registered: dict[str, Dataset] = {}


@functools.cache
def _takes_using(function: SpecsFunction) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a callable whose signature Python cannot tell
        return False
    return any(
        parameter.name == "using" or parameter.kind is inspect.Parameter.VAR_KEYWORD
        for parameter in parameters
    )


def register(
    name: str,
    *,
    mappers: Mapping[str, Mapper] | None = None,
    rules: Mapping[Any, Any] | None = None,
    after_write: Iterable[Hook] = (),
    check_args: str = "",
) -> Callable[[SpecsFunction], SpecsFunction]:
    """Register the decorated function as the dataset ``name``.

    Put registrations in a ``datasets.py`` module of an installed app; those modules are
    imported when a dataset is first looked up, the way ``admin.py`` modules are. ``rules``
    are the dataset's data rules, ``after_write`` its hooks (see :class:`Dataset`);
    ``manage.py check`` reports mistakes in them, evaluating the dataset with ``check_args``
    (a dataset that needs arguments, ``"1"`` say, is checked only when given some).
    """

    def decorator(function: SpecsFunction) -> SpecsFunction:
        _registered[name] = Dataset(
            name, function, dict(mappers or {}), rules or {}, tuple(after_write), check_args
        )
        return function

    return decorator


def unregister(name: str) -> Dataset:
    """Remove the dataset ``name`` that ``register()`` added, and return it.

    The ``datasets.py`` modules are imported first, so a registration that one of them makes
    is found and stays removed (those modules run only once). Datasets of the
    DATASET_SYNC_DATASETS setting are not registrations: remove them from the setting.
    UnknownDatasetError when ``name`` is not registered, since a silent no-op would hide a
    misspelt name.
    """
    autodiscover_modules("datasets")
    try:
        return _registered.pop(name)
    except KeyError:
        known = ", ".join(sorted(_registered)) or "none"
        raise UnknownDatasetError(
            f"Cannot unregister dataset '{name}': it is not registered"
            f" (registered datasets: {known})."
        ) from None


def datasets() -> dict[str, Dataset]:
    """Every dataset: those of ``datasets.py`` modules, then those of DATASET_SYNC_DATASETS."""
    autodiscover_modules("datasets")
    found = dict(_registered)
    if path := conf.datasets_setting():
        for name, declaration in import_string(path)().items():
            found[name] = Dataset(
                name,
                declaration["specs"],
                dict(declaration.get("mappers") or {}),
                declaration.get("rules") or {},
                tuple(declaration.get("after_write") or ()),
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


def declared_specs(
    dataset: str | None, args: str, dumped: Sequence[Spec], using: str = DEFAULT_DB_ALIAS
) -> list[Spec]:
    """This database's own specs for a dump of ``dataset`` with ``args``, evaluated on
    ``using``.

    A dump is a destructive instruction, so the loader does not take its specs on trust: they
    must equal what the local declaration returns for the same arguments, and the local specs
    are the ones used. A dataset that reads the database (:attr:`Dataset.reads_database`)
    may have other filter values here than where it was dumped, so its specs are compared
    without them: models, flags and filter lookups. UntrustedDumpError names the difference,
    or says that the dump names no dataset, or one that is not declared here.
    """
    override = "or load with --trust-dump-specs to use the dump's specs."
    if dataset is None:
        raise UntrustedDumpError(
            "the dump names no dataset (it was written from specs, or by"
            " feincms3-data), so this database cannot check what it may delete. Load it with"
            " --trust-dump-specs if you trust the dump's specs."
        )
    known = datasets()
    if dataset not in known:
        names = ", ".join(sorted(known)) or "none are registered"
        raise UntrustedDumpError(
            f"the dump is of dataset '{dataset}', which this database does not declare"
            f" (known datasets: {names}). Declare it here, {override}"
        )
    declared = known[dataset].specs(args, using)
    values = not known[dataset].reads_database
    theirs = [_canonical(spec, values) for spec in dumped]
    ours = [_canonical(spec, values) for spec in declared]
    if theirs != ours:
        only_theirs = [spec for spec in theirs if spec not in ours]
        only_ours = [spec for spec in ours if spec not in theirs]
        differences = [
            *([f"in the dump only: {'; '.join(only_theirs)}"] if only_theirs else []),
            *([f"declared here only: {'; '.join(only_ours)}"] if only_ours else []),
        ] or ["the same specs in another order"]
        name = f"{dataset}:{args}" if args else dataset
        raise UntrustedDumpError(
            f"the dump's specs differ from what dataset '{name}' declares here:"
            f" {', '.join(differences)}. Deploy the same declaration on both sides, {override}"
        )
    return declared


#: What a comparison shows for a filter value that comes from the database.
FROM_DATABASE = "<from the database>"


def _canonical(spec: Spec, values: bool = True) -> str:
    # Through JSON, as in a dump header: a tuple and a list of the same ids compare equal.
    data = spec.as_dict()
    if not values and "filter" in data:
        data["filter"] = dict.fromkeys(data["filter"], FROM_DATABASE)
    return json.dumps(data, cls=DjangoJSONEncoder, sort_keys=True)
