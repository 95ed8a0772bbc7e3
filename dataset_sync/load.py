"""load(): read dumps, verify them, and apply them to one database in one transaction.

A load runs in three phases:

1. *Read.* Each dump is read once as a stream. Its trailer (count and digest) is checked and
   its objects are spooled to one temporary file per model, so a truncated or edited file is
   refused before anything is written, and memory holds only primary keys.
2. *Write.* Models are written in an order derived from their relations (parents first; the
   spec order does not matter, and cycles are fine because constraints are checked at the
   end). Per batch: the existing rows are read, equal rows are left alone, new rows are
   inserted and changed rows updated in bulk, and many-to-many links are set to the dump's.
3. *Delete.* For each ``delete_missing`` spec, rows on the target that match its filter but
   are not in the dump are deleted through Django's collector, so CASCADE, SET_NULL and
   PROTECT behave as in ``Model.delete()``. Deletions run after the writes so a row can be
   re-parented before its old parent goes.

Then foreign keys are checked, sequences are reset, and the transaction commits; any error
rolls everything back.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import marshal
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, models, transaction
from django.db.models.deletion import ProtectedError, RestrictedError

from dataset_sync import conf
from dataset_sync.errors import (
    DatasetSyncError,
    DeletionProtectedError,
    InvalidSpecError,
    LoadIntegrityError,
    SchemaMismatchError,
)
from dataset_sync.format import DumpReader, Header, open_input
from dataset_sync.progress import OnBatch
from dataset_sync.specs import Spec
from dataset_sync.table import Table, describe, python_type
from dataset_sync.write import TableWriter

Progress = Callable[[str], Any]


@dataclass
class ModelCounts:
    """What a load did, or would do, to the rows of one model."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    cascaded: int = 0

    @property
    def written(self) -> int:
        return self.created + self.updated + self.deleted + self.cascaded


@dataclass
class LoadReport:
    """The outcome of :func:`load`: counts per model, in the order they were written."""

    sources: list[str]
    dry_run: bool = False
    counts: dict[str, ModelCounts] = field(default_factory=dict)
    headers: list[Header] = field(default_factory=list)
    duration: float = 0.0

    def model(self, label: str) -> ModelCounts:
        return self.counts.setdefault(label, ModelCounts())

    @property
    def changed(self) -> bool:
        return any(counts.written for counts in self.counts.values())

    def lines(self) -> list[str]:
        """One summary line per model, then a closing line for logs."""
        lines = []
        for label, counts in self.counts.items():
            parts = [
                f"{counts.created:,} created",
                f"{counts.updated:,} updated",
                f"{counts.unchanged:,} unchanged",
                f"{counts.deleted:,} deleted",
            ]
            if counts.cascaded:
                parts.append(f"{counts.cascaded:,} deleted by cascade")
            lines.append(f"{label}: {', '.join(parts)}")
        verb = "Would change" if self.dry_run else "Changed"
        if not self.changed:
            verb = "Dry run: nothing to change" if self.dry_run else "Nothing to change"
            lines.append(f"{verb} ({', '.join(self.sources)}).")
        else:
            total = sum(counts.written for counts in self.counts.values())
            suffix = "; dry run, nothing was written" if self.dry_run else ""
            lines.append(f"{verb} {total:,} rows ({', '.join(self.sources)}){suffix}.")
        return lines


DumpSource = str | Path | IO[str]


def load(
    *dumps: DumpSource,
    using: str = DEFAULT_DB_ALIAS,
    dry_run: bool = False,
    ignorenonexistent: bool = False,
    signals: bool = False,
    progress: Progress | None = None,
    on_batch: OnBatch | None = None,
) -> LoadReport:
    """Apply one or more dumps to the database ``using``, all in one transaction.

    New rows are inserted, changed rows updated, equal rows left alone; for every spec with
    ``delete_missing``, rows matching its filter but absent from the dump are deleted. Any
    error raises a DatasetSyncError and leaves the database exactly as it was. Under
    ``dry_run`` the same work is done and then rolled back, so the report (cascades
    included) is exactly what a real load would do.

    Rows are written in bulk, so by default no model signals are sent, as with
    ``bulk_create()``. With ``signals=True`` every row created or updated gets
    ``pre_save`` and ``post_save`` with ``raw=True``, as ``loaddata`` sends them; deleted
    rows get ``pre_delete`` and ``post_delete`` either way, from Django's collector.

    ``progress`` gets a line per object written or deleted; ``on_batch(label, done)`` is
    called after each batch read from a dump (labelled with its name) and written to a
    model (labelled with the model's), for a progress display.
    """
    started = time.monotonic()
    report = LoadReport(sources=[_name(dump) for dump in dumps], dry_run=dry_run)
    connection = connections[using]
    with _cyclic_gc_paused(), tempfile.TemporaryDirectory(prefix="dataset-sync-") as spool_dir:
        plans: list[_Plan] = []
        try:
            # Reading every dump before the transaction starts keeps a bad file from taking
            # locks; the spools of the dumps read before a bad one are closed all the same.
            for index, dump in enumerate(dumps):
                plans.append(_read(dump, Path(spool_dir) / str(index), on_batch))
            report.headers = [plan.header for plan in plans]
            with transaction.atomic(using=using), connection.constraint_checks_disabled():
                for plan in plans:
                    _Apply(
                        plan, using, ignorenonexistent, signals, report, progress, on_batch
                    ).run()
                if dry_run:
                    transaction.set_rollback(True, using=using)
        finally:
            for plan in plans:
                plan.close()
    report.duration = time.monotonic() - started
    return report


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the length of a load.

    A load allocates millions of short-lived rows, and keeps large sets of primary keys that
    every full collection walks again: a fifth of a reload went to collections that find
    nothing, since rows form no cycles and reference counting frees them.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _name(dump: DumpSource) -> str:
    if isinstance(dump, (str, Path)):
        return "<stdin>" if str(dump) == "-" else str(dump)
    return getattr(dump, "name", "<stream>")


class _Spool:
    """One model's parsed objects, kept on disk in batches between reading and writing.

    Batches are stored with ``marshal``: the objects were parsed from JSON once while the
    dump was verified, and hold only JSON's types, so they are never parsed again.
    """

    def __init__(self, path: Path, batch_size: int) -> None:
        self._file = open(path, "w+b")  # noqa: SIM115 - closed by _Plan.close()
        self._pending: list[dict[str, Any]] = []
        self._batch_size = batch_size

    def append(self, data: dict[str, Any]) -> None:
        self._pending.append(data)
        if len(self._pending) >= self._batch_size:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            # Length-prefixed: marshal.load() on a file reads in tiny pieces, loads() does not.
            payload = marshal.dumps(self._pending)
            self._file.write(len(payload).to_bytes(8, "big"))
            self._file.write(payload)
            self._pending = []

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        self._flush()
        self._file.seek(0)
        while size := int.from_bytes(self._file.read(8), "big"):
            yield marshal.loads(self._file.read(size))

    def close(self) -> None:
        self._file.close()


@dataclass
class _Plan:
    """A verified dump: its header, specs, and objects spooled per model."""

    name: str
    header: Header
    specs: list[Spec]
    spools: dict[type[models.Model], _Spool]
    pks: dict[type[models.Model], set[Any]]

    def close(self) -> None:
        for spool in self.spools.values():
            spool.close()


def _read(dump: DumpSource, spool_dir: Path, on_batch: OnBatch | None) -> _Plan:
    name = _name(dump)
    stream = open_input(str(dump)) if isinstance(dump, (str, Path)) else dump
    try:
        reader = DumpReader(stream, name)
        try:
            specs = [Spec.from_dict(spec) for spec in reader.header.specs]
            for spec in specs:
                spec.refuse_unsupported()
        except InvalidSpecError as exc:
            raise InvalidSpecError(f"{name}: {exc}") from exc
        for spec in specs:
            try:
                spec.get_model()
            except InvalidSpecError as exc:
                raise SchemaMismatchError(
                    f"{name}: {exc} Migrate the target or remove the model from the dataset."
                ) from exc
        spool_dir.mkdir()
        plan = _Plan(name, reader.header, specs, {}, defaultdict(set))
        try:
            _spool(reader, plan, spool_dir, on_batch)
        except BaseException:
            plan.close()
            raise
        return plan
    finally:
        if stream is not dump:
            if isinstance(stream, io.TextIOWrapper) and str(dump) == "-":
                # Closing this wrapper would close sys.stdin itself.
                stream.detach()
            else:
                stream.close()


def _spool(reader: DumpReader, plan: _Plan, spool_dir: Path, on_batch: OnBatch | None) -> None:
    # Per label: the model, its primary key field, and the JSON type that field takes as is.
    by_label: dict[str, tuple[type[models.Model], Any, type | None]] = {}
    read = 0
    for batch in reader.batches():
        read += len(batch)
        _spool_batch(batch, by_label, plan, spool_dir)
        if on_batch:
            on_batch(f"reading {plan.name}", read)


def _spool_batch(
    batch: list[dict[str, Any]],
    by_label: dict[str, tuple[type[models.Model], Any, type | None]],
    plan: _Plan,
    spool_dir: Path,
) -> None:
    for data in batch:
        label = data["model"]
        known = by_label.get(label)
        if known is None:
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError):
                raise SchemaMismatchError(
                    f"{plan.name}: {label}(pk={data['pk']!r}): unknown model; the target"
                    " has no such model. Migrate the target or remove the model from the dataset."
                ) from None
            # A proxy model's rows live in its concrete model's table.
            model = model._meta.concrete_model or model
            known = by_label[label] = (model, model._meta.pk, python_type(model._meta.pk))
        model, pk_field, pk_type = known
        pk = data["pk"]
        if type(pk) is not pk_type:
            try:
                pk = pk_field.to_python(pk)
            except ValidationError as exc:
                raise SchemaMismatchError(
                    f"{plan.name}: {label}(pk={data['pk']!r}): invalid primary key"
                    f" ({'; '.join(exc.messages)})."
                ) from None
        seen = plan.pks[model]
        if pk in seen:
            # Several specs selected this object; it is written once, as the first one did.
            continue
        seen.add(pk)
        spool = plan.spools.get(model)
        if spool is None:
            spool = plan.spools[model] = _Spool(spool_dir / label, conf.batch_size())
        spool.append(data)


def _write_order(model_set: set[type[models.Model]]) -> list[type[models.Model]]:
    """Models ordered so that each comes after those it points at, cycles broken stably."""

    def targets(model: type[models.Model]) -> set[type[models.Model]]:
        related: set[Any] = {
            f.related_model._meta.concrete_model
            for f in [*model._meta.concrete_fields, *model._meta.many_to_many]
            if f.is_relation and f.related_model is not None
        }
        return (related & model_set) - {model}

    pending = {model: targets(model) for model in model_set}
    ordered: list[type[models.Model]] = []
    while pending:
        ready = sorted(
            (model for model, deps in pending.items() if not deps),
            key=lambda model: model._meta.label_lower,
        )
        if not ready:
            # A cycle: take the model with the fewest unmet dependencies first.
            ready = [min(pending, key=lambda model: (len(pending[model]), model._meta.label_lower))]
        for model in ready:
            del pending[model]
            ordered.append(model)
            for deps in pending.values():
                deps.discard(model)
    return ordered


class _Apply:
    """Applies one verified dump inside the caller's transaction."""

    def __init__(
        self,
        plan: _Plan,
        using: str,
        ignorenonexistent: bool,
        signals: bool,
        report: LoadReport,
        progress: Progress | None,
        on_batch: OnBatch | None,
    ) -> None:
        self.plan = plan
        self.on_batch = on_batch
        self.signals = signals
        self.using = using
        self.connection = connections[using]
        self.ignorenonexistent = ignorenonexistent
        self.report = report
        self.progress = progress
        self.batch_size = conf.batch_size()
        self.created_models: set[type[models.Model]] = set()

    def run(self) -> None:
        order = _write_order(set(self.plan.spools))
        writers = []
        for model in order:
            table = Table(model, self.connection, self.ignorenonexistent, self.plan.name)
            writer = TableWriter(
                table,
                self.using,
                self.progress,
                dumped=self.plan.pks,
                delete_stale=functools.partial(self._delete_stale, model),
                signals=self.signals,
            )
            writers.append(writer)
            counts = self.report.model(model._meta.label_lower)
            done = 0
            for batch in self.plan.spools[model].batches():
                writer.write(batch, counts)
                done += len(batch)
                if self.on_batch:
                    self.on_batch(model._meta.label_lower, done)
            if counts.created:
                self.created_models.add(model)
            if self.progress:
                self.progress(f"{model._meta.label_lower}: {len(self.plan.pks[model]):,} objects")
        self._delete_missing()
        self._check_cascades(order)
        for writer in writers:
            writer.check_references()
        self._check_constraints()
        if self.created_models and not self.report.dry_run:
            self._reset_sequences()

    def _delete_missing(self) -> None:
        specs = [spec for spec in self.plan.specs if spec.delete_missing]
        # Children before parents, so a parent's deletion cascades to as little as possible;
        # models without objects in the dump have their place in that order too.
        order = _write_order({spec.get_model() for spec in specs})
        specs.sort(key=lambda spec: -order.index(spec.get_model()))
        for spec in specs:
            model = spec.get_model()
            dumped = self.plan.pks.get(model, set())
            stale = [
                pk
                for pk in spec.queryset(self.using).values_list("pk", flat=True).iterator()
                if pk not in dumped
            ]
            for start in range(0, len(stale), self.batch_size):
                self._delete(spec, model, stale[start : start + self.batch_size])

    def _delete_stale(self, model: type[models.Model], pks: list[Any]) -> set[Any]:
        """Delete now those of ``pks`` that the delete_missing pass would delete later.

        Used for rows that hold a unique value a dumped row needs, such as a row deleted and
        created again on the source with the same name.
        """
        deleted: set[Any] = set()
        dumped = self.plan.pks.get(model, set())
        for spec in self.plan.specs:
            if not spec.delete_missing or spec.get_model() is not model:
                continue
            stale = [
                pk
                for pk in spec.queryset(self.using).filter(pk__in=pks).values_list("pk", flat=True)
                if pk not in dumped and pk not in deleted
            ]
            if stale:
                self._delete(spec, model, stale)
                deleted.update(stale)
        return deleted

    def _delete(self, spec: Spec, model: type[models.Model], pks: list[Any]) -> None:
        label = model._meta.label_lower
        # Deleting a multi-table inheritance child deletes its parent rows too. Those that a
        # delete_missing spec of the parent selects were due for deletion themselves.
        stale_parents = {
            parent._meta.label_lower: self._stale_among(parent, pks)
            for parent in model._meta.get_parent_list()
        }
        try:
            _total, per_model = model._base_manager.using(self.using).filter(pk__in=pks).delete()
        except (ProtectedError, RestrictedError) as exc:
            blocking = sorted({f"{obj._meta.label_lower}(pk={obj.pk!r})" for obj in exc.args[1]})[
                :5
            ]
            raise DeletionProtectedError(
                f"{self.plan.name}: {label}: cannot delete rows missing from the dump"
                f" ({', '.join(f'pk={pk!r}' for pk in pks[:5])}); they are protected by"
                f" {', '.join(blocking)}. Add those rows to the dataset or delete them first."
            ) from exc
        for deleted_label, count in per_model.items():
            counts = self.report.model(deleted_label.lower())
            if deleted_label.lower() == label:
                counts.deleted += count
            else:
                stale = min(stale_parents.get(deleted_label.lower(), 0), count)
                counts.deleted += stale
                counts.cascaded += count - stale
        if self.progress:
            for pk in pks:
                self.progress(f"deleted {label}(pk={pk!r})")

    def _stale_among(self, model: type[models.Model], pks: list[Any]) -> int:
        """How many of ``pks`` a delete_missing spec of ``model`` selects and the dump lacks."""
        dumped = self.plan.pks.get(model, set())
        stale: set[Any] = set()
        for spec in self.plan.specs:
            if spec.delete_missing and spec.get_model() is model:
                selected = spec.queryset(self.using).filter(pk__in=pks)
                stale.update(pk for pk in selected.values_list("pk", flat=True) if pk not in dumped)
        return len(stale)

    def _check_cascades(self, order: Sequence[type[models.Model]]) -> None:
        """A cascade from a deleted row must not take a row the dump just wrote."""
        for model in order:
            if not self.report.model(model._meta.label_lower).cascaded:
                continue
            dumped = list(self.plan.pks[model])
            for start in range(0, len(dumped), self.batch_size):
                chunk = dumped[start : start + self.batch_size]
                present = set(
                    model._base_manager.using(self.using)
                    .filter(pk__in=chunk)
                    .values_list("pk", flat=True)
                )
                if missing := [pk for pk in chunk if pk not in present]:
                    raise LoadIntegrityError(
                        f"{self.plan.name}: {describe(model, missing[0])} is in the dump, but"
                        " deleting rows missing from the dump cascaded to it. Add the rows it"
                        " depends on to the dataset, or narrow the delete_missing filter."
                    )

    def _check_constraints(self) -> None:
        tables = [model._meta.db_table for model in self.plan.spools]
        try:
            self.connection.check_constraints(table_names=tables)
        except IntegrityError as exc:
            raise LoadIntegrityError(f"{self.plan.name}: {exc}") from exc

    def _reset_sequences(self) -> None:
        statements = self.connection.ops.sequence_reset_sql(
            no_style(), sorted(self.created_models, key=lambda model: model._meta.label_lower)
        )
        with self.connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


__all__ = ["DatasetSyncError", "LoadReport", "ModelCounts", "load"]
