"""The delete stage: rows that a ``delete_missing`` spec selects on the target but that the
dump lacks are deleted, through Django's collector.

The collector makes CASCADE, SET_NULL and PROTECT behave as in ``Model.delete()``; every row
it deletes or updates beyond the stale rows themselves is counted (``cascaded``,
``cascade_updated``) and logged by key. Deletions run after the writes, so that a row can be
re-parented before its old parent goes, and children before parents, so that a parent's
deletion cascades to as little as possible. A deletion that would reach rows no spec
selects, deleting or updating them, is refused unless allowed (see ``guards.py``); the rows
are deleted all the same first, so that the refusal can name every row it would take, and
the refusal rolls them back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.db import models
from django.db.models.deletion import Collector, ProtectedError, RestrictedError

from dataset_sync.errors import DeletionGuardError, DeletionProtectedError
from dataset_sync.load.convert import describe
from dataset_sync.load.guards import Outside, Reach, rows_outside
from dataset_sync.load.keys import TargetKeys
from dataset_sync.load.order import delete_order
from dataset_sync.load.read import VerifiedDump
from dataset_sync.report import LoadReport
from dataset_sync.specs import Spec

Model = type[models.Model]


class Deleter:
    """Deletes what one dump's ``delete_missing`` specs no longer hold, counting in ``report``."""

    def __init__(
        self,
        dump: VerifiedDump,
        keys: TargetKeys,
        using: str,
        allow_cascade: bool,
        report: LoadReport,
        log: Callable[[str], Any] | None,
        chunk: int,
    ) -> None:
        self.dump = dump
        self.keys = keys
        self.using = using
        self.allow_cascade = allow_cascade
        self.report = report
        self.log = log
        self.chunk = chunk
        #: Rows that deletions reached, deleting or updating them, that no spec selects.
        self.outside = Outside()
        self._refused_from = ""

    def delete_missing(self) -> None:
        """Delete, for every ``delete_missing`` spec, the rows it selects that the dump lacks."""
        specs = [spec for spec in self.dump.specs if spec.delete_missing]
        order = delete_order({spec.concrete_model() for spec in specs})
        specs.sort(key=lambda spec: order.index(spec.concrete_model()))
        for spec in specs:
            # A proxy's rows are dumped, and counted, as its concrete model's.
            model = spec.concrete_model()
            written = self.keys.written(model)
            stale = [
                pk
                for pk in self.keys.delete_filter(spec)
                .queryset(self.using)
                .values_list("pk", flat=True)
                .iterator()
                if pk not in written
            ]
            for start in range(0, len(stale), self.chunk):
                self._delete(spec, model, stale[start : start + self.chunk])
        self._refuse_cascades_outside()

    def delete_if_stale(self, model: Model, pks: list[Any]) -> set[Any]:
        """Delete now those of ``pks`` that :meth:`delete_missing` would delete later.

        For the write stage: rows that hold a unique value a dumped row needs, such as a row
        deleted and created again on the source with the same name. Returns the keys deleted.
        """
        deleted: set[Any] = set()
        for spec, selected in self._stale_by_spec(model, pks):
            stale = [pk for pk in selected if pk not in deleted]
            if stale:
                self._delete(spec, model, stale)
                deleted.update(stale)
        return deleted

    def _stale_by_spec(self, model: Model, pks: list[Any]) -> Iterator[tuple[Spec, list[Any]]]:
        """Per delete_missing spec of ``model``: those of ``pks`` it selects and the dump lacks."""
        written = self.keys.written(model)
        for spec in self.dump.specs:
            if spec.delete_missing and spec.concrete_model() is model:
                queryset = self.keys.delete_filter(spec).queryset(self.using).filter(pk__in=pks)
                yield (
                    spec,
                    [pk for pk in queryset.values_list("pk", flat=True) if pk not in written],
                )

    def _delete(self, spec: Spec, model: Model, pks: list[Any]) -> None:
        label = model._meta.label_lower
        # Deleting a multi-table inheritance child deletes its parent rows too. Those that a
        # delete_missing spec of the parent selects were due for deletion themselves.
        stale_parents = {
            parent._meta.label_lower: self._count_stale(parent, pks)
            for parent in model._meta.get_parent_list()
        }
        manager = model._base_manager.using(self.using)
        queryset = manager.filter(pk__in=pks)
        # A child whose parent row the dump holds (the source has the object, but no longer as
        # this kind of child) goes alone; the parent row stays, as the dump wrote it.
        parents = model._meta.get_parent_list()
        written = self.keys.written(parents[-1]) if parents else set()
        kept = [pk for pk in pks if pk in written]
        # What QuerySet.delete() does, with a look at the collected rows before deleting.
        collector = Collector(using=self.using, origin=queryset)
        try:
            if kept:
                collector.collect(manager.filter(pk__in=kept), keep_parents=True)
            others = [pk for pk in pks if pk not in written]
            if others:
                collector.collect(manager.filter(pk__in=others))
        except (ProtectedError, RestrictedError) as exc:
            blocking = sorted({f"{obj._meta.label_lower}(pk={obj.pk!r})" for obj in exc.args[1]})
            raise DeletionProtectedError(
                f"{label}: cannot delete rows missing from the dump"
                f" ({', '.join(f'pk={pk!r}' for pk in pks[:5])}); they are protected by"
                f" {', '.join(blocking[:5])}. Add those rows to the dataset or delete them first."
            ) from exc
        reach = Reach.of(collector)
        if not (self.allow_cascade or spec.allow_cascade is True):
            outside = rows_outside(reach, model, self.dump.specs, self.using, self.chunk)
            outside = outside.only(lambda label: not spec.allows_cascade_to(label))
            self.outside.add(outside)
            if outside and not self._refused_from:
                self._refused_from = describe(model, pks[0])
        _total, per_model = collector.delete()
        for deleted_label, count in per_model.items():
            deleted_label = deleted_label.lower()
            if deleted_label == label:
                self.report.add(label, deleted=count)
            else:
                stale = min(stale_parents.get(deleted_label, 0), count)
                self.report.add(deleted_label, deleted=stale, cascaded=count - stale)
        for related, updated in reach.updated.items():
            self.report.add(related._meta.label_lower, cascade_updated=len(updated))
        if self.log:
            self._log(model, pks, reach)

    def _log(self, model: Model, pks: list[Any], reach: Reach) -> None:
        """Every row the deletion of ``pks`` took or changed, by key."""
        assert self.log is not None
        for pk in pks:
            self.log(f"deleted {describe(model, pk)}")
        # A multi-table inheritance object's parent rows and many-to-many links go with it.
        own = {model, *model._meta.get_parent_list()}
        for related, deleted in sorted(reach.deleted.items(), key=_by_label):
            if related not in own and not related._meta.auto_created:
                for pk in sorted(deleted):
                    self.log(f"deleted {describe(related, pk)} by cascade")
        for related, updated in sorted(reach.updated.items(), key=_by_label):
            for pk, fields in sorted(updated.items()):
                self.log(
                    f"updated {describe(related, pk)} by cascade ({', '.join(sorted(fields))})"
                )

    def _count_stale(self, model: Model, pks: list[Any]) -> int:
        """How many of ``pks`` a delete_missing spec of ``model`` selects and the dump lacks."""
        stale: set[Any] = set()
        for _spec, selected in self._stale_by_spec(model, pks):
            stale.update(selected)
        return len(stale)

    def _refuse_cascades_outside(self) -> None:
        if self.outside:
            raise DeletionGuardError(
                f"deleting the rows missing from the dump (starting with {self._refused_from})"
                f" would cascade to rows outside the dataset: {self.outside.describe()}. Add"
                " those models to the dataset, or allow it with --allow-cascade or the spec's"
                " allow_cascade."
            )


def _by_label(item: tuple[Model, Any]) -> str:
    return item[0]._meta.label_lower
