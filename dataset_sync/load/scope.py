"""The dataset's rows on the target: a load writes none outside them.

Comparing a dump's specs with the target's declaration is not enough: without a signing key
anyone can add objects to a dump and recompute its digest. So the objects themselves are
checked against the specs the load runs, at three points of the pipeline:

- while the dump is read (``spool.py``): every object is of a model that a spec names, so a
  row of another model (a superuser) is refused before the transaction starts;
- before anything is written: every dumped row that the target holds already is one the
  dataset selects there, so no row outside it is overwritten or re-parented into it (after
  a re-parenting the filter would select it, and delete_missing would then take its old
  children);
- once the rows are written, the deletions and the hooks done: every row of the dump is one the
  dataset selects, so none was created outside it.

Copies (``save_as_new``) are exempt from the row checks: they are inserted under new keys,
so they overwrite nothing, and the filter selected their originals, not them. Each check
asks the database once per model and batch of keys, never per row, and not at all for a
model that some spec selects whole (it has no filter).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import models

from dataset_sync.errors import OutsideDatasetError
from dataset_sync.format import Header
from dataset_sync.load.convert import describe
from dataset_sync.report import LoadReport
from dataset_sync.specs import Spec

if TYPE_CHECKING:
    # keys.py reads the spool, which asks the scope about every model it spools.
    from dataset_sync.load.keys import TargetKeys

Model = type[models.Model]


Filters = dict[Model, list[dict[str, Any]]]


def _filters(specs: Iterable[Spec]) -> Filters:
    found: Filters = {}
    for spec in specs:
        found.setdefault(spec.concrete_model(), []).append(dict(spec.filter))
    return found


class Scope:
    """What the specs a load runs select, asked a batch of keys at a time.

    ``again`` evaluates the dataset on the target once more, for a dataset whose filter
    values come from the database: the rows the load wrote must belong to the dataset as it
    reads then (the revisions of a page the dump created), while the rows that were on the
    target before, and what the load deletes, are judged by the specs evaluated before
    anything was written, which the dump cannot change.
    """

    def __init__(
        self, specs: Iterable[Spec], header: Header, again: Callable[[], list[Spec]] | None = None
    ) -> None:
        self._filters = _filters(specs)
        self._again = again
        if header.dataset:
            name = f"{header.dataset}:{header.args}" if header.args else header.dataset
            self.dataset = f"dataset '{name}'"
        else:
            self.dataset = "the dump's dataset"

    def refuse_model(self, model: Model, pk: Any) -> None:
        """A dumped object of ``model`` is refused unless a spec names the model."""
        if model not in self._filters:
            label = model._meta.label_lower
            raise OutsideDatasetError(
                f"{describe(model, pk)}: the dump holds rows of {label}, but no spec of"
                f" {self.dataset} names that model here, so a load must not write them. Dump"
                " the dataset again with the declaration this database has."
            )

    def refuse_overwrites(self, keys: TargetKeys, using: str, chunk: int) -> None:
        """Before anything is written: no dumped row may land on a target row that the
        dataset does not select."""
        for model in self._checked(keys.models(), self._filters):
            pks = sorted(keys.same_key(model))
            for start in range(0, len(pks), chunk):
                batch = pks[start : start + chunk]
                unselected = self._unselected(model, batch, using, self._filters)
                if not unselected:
                    continue
                held = set(
                    model._base_manager.using(using)
                    .filter(pk__in=unselected)
                    .values_list("pk", flat=True)
                )
                if outside := [pk for pk in unselected if pk in held]:
                    way_out = (
                        "; if it is this database's own row, declare an identity for"
                        f" {model._meta.label_lower} (DATASET_SYNC_IDENTITIES), so that rows"
                        " are matched by what they are"
                        if not keys.identified(model)
                        else ""
                    )
                    raise OutsideDatasetError(
                        f"{describe(model, outside[0])} is in the dump, but on this database it"
                        f" is outside {self.dataset} (which {_selects(model, self._filters)}),"
                        " so a load must not overwrite it. If it is the source's row (it moved"
                        f" into the dataset there), load with --adopt{way_out}."
                    )

    def refuse_written(self, keys: TargetKeys, report: LoadReport, using: str, chunk: int) -> None:
        """Once the rows are written and the deletions done: the dataset selects every row
        of the dump. Models the load wrote no row of were checked before the writes."""
        filters = _filters(self._again()) if self._again is not None else self._filters
        for model in self._checked(keys.models(), filters):
            counts = report.counts.get(model._meta.label_lower)
            if counts is None or not (counts.created or counts.updated):
                continue
            # After the writes, the keys of every row but the copies, new rows included.
            pks = sorted(keys.same_key(model))
            for start in range(0, len(pks), chunk):
                if outside := self._unselected(model, pks[start : start + chunk], using, filters):
                    raise OutsideDatasetError(
                        f"{describe(model, outside[0])} is in the dump, but once written,"
                        f" {self.dataset} does not select it on this database"
                        f" (it {_selects(model, filters)}), so a load must not write it. Dump"
                        " the dataset again; if its filter depends on rows outside it, make"
                        " those the same on both sides."
                    )

    def _checked(self, models_: Iterable[Model], filters: Filters) -> list[Model]:
        """The models whose rows some filter may leave out (no spec of the model selects all
        of its rows), in a stable order."""
        return sorted(
            (model for model in models_ if model not in filters or all(filters[model])),
            key=lambda model: model._meta.label_lower,
        )

    def _unselected(
        self, model: Model, pks: Sequence[Any], using: str, filters: Filters
    ) -> list[Any]:
        """Those of ``pks`` that no spec of ``model`` selects on ``using``, in order."""
        if model not in filters:
            return list(pks)
        either = functools.reduce(operator.or_, (models.Q(**lookups) for lookups in filters[model]))
        selected = set(
            model._base_manager.using(using).filter(either, pk__in=pks).values_list("pk", flat=True)
        )
        return [pk for pk in pks if pk not in selected]


def _selects(model: Model, filters: Filters) -> str:
    if model not in filters:
        return f"has no spec of {model._meta.label_lower}"
    either = " or ".join(repr(lookups) for lookups in filters[model])
    return f"selects {model._meta.label_lower} by {either}"
