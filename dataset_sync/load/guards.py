"""Guards against surprising deletions: a limit on how many rows a load may delete, and
cascades that would reach rows outside the dataset.

A dump is a destructive instruction that usually runs unattended; a truncated export on the
source must not wipe the target, and deleting a row must not silently take rows the dataset
never declared along with it. ``delete.py`` deletes; this module decides what is too much.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models.deletion import Collector
from django.template.defaultfilters import pluralize

from dataset_sync.errors import DeletionGuardError
from dataset_sync.load.read import VerifiedDump
from dataset_sync.specs import Spec

_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


@dataclass(frozen=True)
class DeleteLimit:
    """At most ``rows`` deleted rows, or at most ``percent`` of the rows that the dumps'
    ``delete_missing`` specs select on the target. Cascaded rows count too."""

    rows: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> DeleteLimit:
        """``"100"`` or ``"5%"``; ValueError for anything else."""
        match = _LIMIT.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a number of rows (100) or a percentage (5%)")
        number, percent = match.groups()
        if percent:
            return cls(percent=float(number))
        if "." in number:
            raise ValueError(f"{text!r}: a number of rows must be a whole number")
        return cls(rows=int(number))

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else f"{self.rows}"

    def check(self, deleting: int, selected: int) -> None:
        """Raise DeletionGuardError if deleting ``deleting`` of ``selected`` rows is too many."""
        if self.rows is not None:
            allowed = self.rows
        else:
            assert self.percent is not None
            allowed = int(selected * self.percent / 100)
        if deleting > allowed:
            raise DeletionGuardError(
                f"the load would delete {deleting:,} row{pluralize(deleting)}, more than"
                f" --max-delete {self} allows ({selected:,} row{pluralize(selected)} here match"
                " the dataset's delete_missing specs); nothing was changed. Check the dump (a"
                " truncated export looks like this), or raise the limit."
            )


def rows_outside(
    collector: Collector,
    model: type[models.Model],
    specs: Iterable[Spec],
    using: str,
    batch_size: int,
) -> dict[str, int]:
    """Rows a collected deletion of ``model`` reaches that no spec of the dump selects.

    Counted per model label. The deleted model's own rows, its multi-table inheritance
    parents (the same objects) and its many-to-many links are part of what is deleted, not
    cascades.
    """
    reached: dict[type[models.Model], set[Any]] = defaultdict(set)
    for related, instances in collector.data.items():
        reached[related].update(instance.pk for instance in instances)
    for queryset in collector.fast_deletes:
        reached[queryset.model].update(queryset.values_list("pk", flat=True))
    own = {model, *model._meta.get_parent_list()}
    selecting: Mapping[type[models.Model], list[Spec]] = _specs_by_model(specs)
    outside: dict[str, int] = {}
    for related, pks in reached.items():
        if related in own or related._meta.auto_created or not pks:
            continue
        covered: set[Any] = set()
        ordered = sorted(pks)
        for spec in selecting.get(related, []):
            for start in range(0, len(ordered), batch_size):
                chunk = ordered[start : start + batch_size]
                selected = spec.queryset(using).filter(pk__in=chunk)
                covered.update(selected.values_list("pk", flat=True))
        if count := len(pks - covered):
            outside[related._meta.label_lower] = count
    return outside


def _specs_by_model(specs: Iterable[Spec]) -> dict[type[models.Model], list[Spec]]:
    found: dict[type[models.Model], list[Spec]] = defaultdict(list)
    for spec in specs:
        found[spec.concrete_model()].append(spec)
    return found


def check_planned_deletions(dumps: Sequence[VerifiedDump], using: str, limit: DeleteLimit) -> int:
    """Refuse, before anything is written, dumps that would delete more than ``limit``.

    Returns how many rows the delete_missing specs select on the target, the base of a
    percentage limit. Cascades are only known once the rows are deleted; the limit is
    checked again then, with them.
    """
    selected_total = stale_total = 0
    for dump in dumps:
        selected: dict[type[models.Model], set[Any]] = defaultdict(set)
        for spec in dump.specs:
            if spec.delete_missing:
                rows = spec.queryset(using).values_list("pk", flat=True).iterator()
                # Dumped keys are kept per concrete model; a proxy's rows are its model's.
                selected[spec.concrete_model()].update(rows)
        for model, pks in selected.items():
            selected_total += len(pks)
            stale_total += len(pks - dump.keys.get(model, set()))
    limit.check(stale_total, selected_total)
    return selected_total
