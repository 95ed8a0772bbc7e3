"""Guards against surprising deletions: a limit on how many rows a load may delete, and
cascades that would reach rows outside the dataset.

A dump is a destructive instruction that usually runs unattended; a truncated export on the
source must not wipe the target, and deleting a row must not silently take rows the dataset
never declared along with it, or change their foreign keys. ``delete.py`` deletes;
this module decides what is too much.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, models
from django.db.models.deletion import Collector
from django.template.defaultfilters import pluralize

from dataset_sync.errors import DeletionGuardError
from dataset_sync.load.backends import backend
from dataset_sync.load.keys import TargetKeys
from dataset_sync.load.match import Matcher
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


@dataclass
class Reach:
    """The rows a collected deletion reaches, per model: those it deletes, and those that an
    ``on_delete`` of ``SET_NULL``, ``SET_DEFAULT`` or ``SET()`` updates (with the fields it
    sets), rows it deletes anyway left out."""

    deleted: dict[type[models.Model], set[Any]]
    updated: dict[type[models.Model], dict[Any, set[str]]]

    @classmethod
    def of(cls, collector: Collector) -> Reach:
        """Read what ``collector`` collected; before it deletes, while the rows still match."""
        deleted: dict[type[models.Model], set[Any]] = defaultdict(set)
        for related, instances in collector.data.items():
            deleted[related].update(instance.pk for instance in instances)
        for queryset in collector.fast_deletes:
            deleted[queryset.model].update(queryset.values_list("pk", flat=True))
        updated: dict[type[models.Model], dict[Any, set[str]]] = defaultdict(dict)
        for (relation, _value), collected in collector.field_updates.items():
            rows: Any
            for rows in collected:
                if isinstance(rows, models.QuerySet):
                    model, pks = rows.model, list(rows.values_list("pk", flat=True))
                else:
                    instances = list(rows)
                    if not instances:
                        continue
                    model, pks = type(instances[0]), [instance.pk for instance in instances]
                model = model._meta.concrete_model or model
                for pk in pks:
                    if pk not in deleted.get(model, ()):
                        updated[model].setdefault(pk, set()).add(relation.name)
        return cls(dict(deleted), {model: pks for model, pks in updated.items() if pks})


@dataclass
class Outside:
    """Rows outside the dataset that deletions reach, counted per model label."""

    deleted: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    #: The fields that on_delete handlers set, per model label.
    fields: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def __bool__(self) -> bool:
        return bool(self.deleted or self.updated)

    def add(self, other: Outside) -> None:
        self.deleted.update(other.deleted)
        self.updated.update(other.updated)
        for label, fields in other.fields.items():
            self.fields[label].update(fields)

    def only(self, keep: Callable[[str], bool]) -> Outside:
        """The rows of the models whose labels ``keep`` accepts."""
        return Outside(
            Counter({label: n for label, n in self.deleted.items() if keep(label)}),
            Counter({label: n for label, n in self.updated.items() if keep(label)}),
            defaultdict(set, {label: f for label, f in self.fields.items() if keep(label)}),
        )

    def describe(self) -> str:
        """``2 testapp.choice, 1 testapp.author updated (favorite_question)``."""
        parts = [f"{count:,} {label}" for label, count in sorted(self.deleted.items())]
        parts.extend(
            f"{count:,} {label} updated ({', '.join(sorted(self.fields[label]))})"
            for label, count in sorted(self.updated.items())
        )
        return ", ".join(parts)


def rows_outside(
    reach: Reach,
    model: type[models.Model],
    specs: Iterable[Spec],
    using: str,
    batch_size: int,
) -> Outside:
    """The rows a collected deletion of ``model`` reaches that no spec of the dump selects.

    The deleted model's own rows, its multi-table inheritance parents (the same objects) and
    its many-to-many links are part of what is deleted, not cascades.
    """
    own = {model, *model._meta.get_parent_list()}
    selecting: Mapping[type[models.Model], list[Spec]] = _specs_by_model(specs)
    outside = Outside()
    for related, pks in reach.deleted.items():
        if related in own or related._meta.auto_created or not pks:
            continue
        if count := len(_unselected(related, pks, selecting, using, batch_size)):
            outside.deleted[related._meta.label_lower] = count
    for related, fields in reach.updated.items():
        if unselected := _unselected(related, set(fields), selecting, using, batch_size):
            label = related._meta.label_lower
            outside.updated[label] = len(unselected)
            for pk in unselected:
                outside.fields[label].update(fields[pk])
    return outside


def _unselected(
    model: type[models.Model],
    pks: set[Any],
    selecting: Mapping[type[models.Model], list[Spec]],
    using: str,
    batch_size: int,
) -> set[Any]:
    covered: set[Any] = set()
    ordered = sorted(pks)
    for spec in selecting.get(model, []):
        for start in range(0, len(ordered), batch_size):
            chunk = ordered[start : start + batch_size]
            selected = spec.queryset(using).filter(pk__in=chunk)
            covered.update(selected.values_list("pk", flat=True))
    return pks - covered


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
        kept = _kept(dump, using, selected)
        for model, pks in selected.items():
            selected_total += len(pks)
            stale_total += len(pks - kept(model))
    limit.check(stale_total, selected_total)
    return selected_total


def _kept(
    dump: VerifiedDump, using: str, models_: Iterable[type[models.Model]]
) -> Callable[[type[models.Model]], set[Any]]:
    """The target keys of the rows of a model that the dump keeps: its dumped keys, or for a
    model matched by identity, the keys of the target rows that have the dump's identities."""
    if not any(dump.identities.identity(model).matched for model in models_):
        return lambda model: dump.keys.get(model, set())
    statements = backend(connections[using])
    matcher = Matcher(dump.identities, using, statements.max_list, statements.max_or_terms)
    keys = TargetKeys(dump.keys, dump.selection, dump.identities, matcher)
    keys.match(dump.objects)
    return keys.same_key
