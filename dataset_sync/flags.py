"""The load flags of specs: which spec governs each dumped object, and what its flags do.

A model may have several specs, with different flags. Each object is written once, under
the flags of the first spec that selected it; the dump's trailer (``spec_counts``) says which
spec that was. feincms3-data's dumps have no trailer: there, as in feincms3-data, the first
spec of a model governs all of its objects, except that they are all saved as new when any
spec of the model says so.

``ignore_missing_m2m`` and ``defer_values`` are applied here, to rows converted by
:class:`~dataset_sync.write.Table` before they are written.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import DatabaseError, models, transaction
from django.utils.crypto import get_random_string

from dataset_sync.errors import LoadIntegrityError
from dataset_sync.specs import Spec
from dataset_sync.table import Row, describe

Model = type[models.Model]
#: The flags by which two specs of one model can differ in what loading an object does.
_LOAD_FLAGS = ("ignore_missing_m2m", "save_as_new", "defer_values")


def concrete(spec: Spec) -> Model:
    """The model whose table holds a spec's rows (a proxy's concrete model)."""
    model = spec.get_model()
    return model._meta.concrete_model or model


def varying_models(specs: Iterable[Spec]) -> set[Model]:
    """Models with several specs whose load flags differ: their objects need attributing."""
    flags: dict[Model, set[tuple[Any, ...]]] = {}
    for spec in specs:
        flags.setdefault(concrete(spec), set()).add(
            tuple(getattr(spec, name) for name in _LOAD_FLAGS)
        )
    return {model for model, variants in flags.items() if len(variants) > 1}


class Governing:
    """Which spec's flags apply to each dumped object."""

    def __init__(
        self,
        specs: list[Spec],
        spec_counts: list[int] | None,
        ordinals: Mapping[Model, Mapping[Any, int]],
    ) -> None:
        self.specs = specs
        # Without spec_counts, as in feincms3-data: the flags of a model's first spec, but
        # save_as_new when any spec of the model sets it.
        self._first: dict[Model, Spec] = {}
        for spec in specs:
            first = self._first.setdefault(concrete(spec), spec)
            if spec.save_as_new and not first.save_as_new:
                self._first[concrete(spec)] = dataclasses.replace(first, save_as_new=True)
        self._ends = list(itertools.accumulate(spec_counts)) if spec_counts else None
        self._ordinals = ordinals

    def spec_for(self, model: Model, pk: Any) -> Spec:
        """The spec whose flags govern the object ``pk`` of ``model``."""
        ordinals = self._ordinals.get(model)
        if ordinals is not None and self._ends is not None and pk in ordinals:
            return self.specs[bisect.bisect_right(self._ends, ordinals[pk])]
        first = self._first.get(model)
        # A hand-made dump may hold objects of a model it has no spec for: no flags apply.
        return first if first is not None else Spec(model._meta.label_lower)

    def any_spec(self, model: Model, flag: str) -> bool:
        """Whether some spec of ``model`` sets ``flag``."""
        return any(getattr(spec, flag) and concrete(spec) is model for spec in self.specs)


def drop_missing_links(
    rows: list[Row],
    model: Model,
    governing: Governing,
    dumped: Mapping[Model, set[Any]],
    using: str,
) -> set[tuple[str, Any]]:
    """``ignore_missing_m2m``: keep only links to rows in the dump or on the target.

    Returns (field name, pk) of the links it filtered. Links to rows that exist now but that
    a ``delete_missing`` spec deletes later go with those rows, through the database's
    cascade on the link table, so they must not be checked at the end of the load.
    """
    lenient: dict[str, list[Row]] = {}
    for row in rows:
        for name in governing.spec_for(model, row.pk).ignore_missing_m2m:
            if name in row.m2m:
                lenient.setdefault(name, []).append(row)
    filtered: set[tuple[str, Any]] = set()
    for name, holders in lenient.items():
        field: Any = model._meta.get_field(name)
        related = field.related_model
        in_dump = dumped.get(related._meta.concrete_model, set())
        wanted = list({pk for row in holders for pk in row.m2m[name] if pk not in in_dump})
        existing: set[Any] = set()
        manager = related._base_manager.using(using)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            existing.update(manager.filter(pk__in=chunk).values_list("pk", flat=True))
        for row in holders:
            row.m2m[name] = {pk for pk in row.m2m[name] if pk in in_dump or pk in existing}
            filtered.add((name, row.pk))
    return filtered


class DeferredValues:
    """``defer_values``: throwaway unique values first, the real ones after the deletions.

    Only a value that differs from what the row holds on the target is deferred, so that
    loading the same dump again still writes nothing.
    """

    def __init__(self) -> None:
        self._values = (f"{get_random_string(20)}-{number}" for number in itertools.count())
        #: (model, pk) -> {attname: real value}
        self.pending: dict[tuple[Model, Any], dict[str, Any]] = {}

    def defer(
        self,
        rows: list[Row],
        model: Model,
        governing: Governing,
        using: str,
        is_new: Callable[[Model, Any], bool],
    ) -> None:
        """Swap deferred values for throwaway ones; keyed by the dumped primary key."""
        deferred = {row.pk: governing.spec_for(model, row.pk).defer_values for row in rows}
        names = sorted({name for names in deferred.values() for name in names})
        if not names:
            return
        attnames = [model._meta.get_field(name).attname for name in names]  # type: ignore[union-attr]
        current = {
            pk: dict(zip(attnames, values, strict=True))
            for pk, *values in model._base_manager.using(using)
            .filter(pk__in=list(deferred))
            .values_list("pk", *attnames)
        }
        for row in rows:
            for name in deferred[row.pk]:
                attname = model._meta.get_field(name).attname  # type: ignore[union-attr]
                if attname not in row.values:
                    continue
                # A row saved as new has no current values: the row under its dumped key
                # is another one.
                if not is_new(model, row.pk) and (
                    current.get(row.pk, {}).get(attname, object()) == row.values[attname]
                ):
                    continue
                self.pending.setdefault((model, row.pk), {})[attname] = row.values[attname]
                row.values[attname] = next(self._values)

    def restore(self, using: str, source: str, final_pk: Callable[[Model, Any], Any]) -> None:
        """Write the real values, now that the deletions have freed them."""
        for (model, dumped_pk), values in self.pending.items():
            pk = final_pk(model, dumped_pk)
            manager = model._base_manager.using(using)
            try:
                with transaction.atomic(using=using):
                    manager.filter(pk=pk).update(**values)
            except DatabaseError as exc:
                raise self._clash(model, pk, values, using, source) from exc
        self.pending.clear()

    def _clash(
        self, model: Model, pk: Any, values: dict[str, Any], using: str, source: str
    ) -> LoadIntegrityError:
        manager = model._base_manager.using(using)
        for attname, value in values.items():
            other = manager.filter(**{attname: value}).exclude(pk=pk).values_list("pk", flat=True)
            for other_pk in other[:1]:
                return LoadIntegrityError(
                    f"{source}: {describe(model, pk)}: deferred field '{attname}' value"
                    f" {value!r} would duplicate {describe(model, other_pk)}, which is still"
                    " there after the deletions. Add that row to the dataset with"
                    " delete_missing, or change it on the target."
                )
        return LoadIntegrityError(
            f"{source}: {describe(model, pk)}: the database refused the deferred values of"
            f" {', '.join(sorted(values))}."
        )
