"""load(): read dumps, verify them, and apply them to one database in one transaction.

A load runs in three phases:

1. *Read.* Each dump is read once as a stream. Its specs must be what this database's own
   registry declares for the dump's dataset and arguments (unless the caller trusts the
   dump), its trailer (count, digest and, with a signing key, signature) is checked, and its
   objects are spooled to one temporary file per model, so a truncated, edited or foreign
   file is refused before anything is written, and memory holds only primary keys.
2. *Write.* Models are written in an order derived from their relations (parents first; the
   spec order does not matter, and cycles are fine because constraints are checked at the
   end). Per batch: the existing rows are read, equal rows are left alone, new rows are
   inserted and changed rows updated in bulk, and many-to-many links are set to the dump's.
3. *Delete.* For each ``delete_missing`` spec, rows on the target that match its filter but
   are not in the dump are deleted through Django's collector, so CASCADE, SET_NULL and
   PROTECT behave as in ``Model.delete()``. Deletions run after the writes so a row can be
   re-parented before its old parent goes. A deletion that would cascade to rows no spec
   selects, or more deletions than ``max_delete`` allows, is refused (see ``guards.py``).

Then foreign keys are checked, sequences are reset, and the transaction commits; any error
rolls everything back.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import itertools
import json
import marshal
import operator
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, models, transaction
from django.db.models.deletion import Collector, ProtectedError, RestrictedError

from dataset_sync import conf, flags, inheritance, locking, registry
from dataset_sync.dump import rules
from dataset_sync.errors import (
    EXIT_BAD_INPUT,
    EXIT_LOCK_TIMEOUT,
    EXIT_REFUSED,
    DatasetSyncError,
    DeletionGuardError,
    DeletionProtectedError,
    InvalidSpecError,
    LoadIntegrityError,
    SchemaMismatchError,
)
from dataset_sync.format import DumpReader, Header, open_input
from dataset_sync.guards import DeleteLimit, rows_outside
from dataset_sync.progress import OnBatch
from dataset_sync.save_as_new import NewKeys
from dataset_sync.specs import Spec
from dataset_sync.table import Row, Table, describe, python_type
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

    def as_dict(self, exit_code: int = 0, error: DatasetSyncError | None = None) -> dict[str, Any]:
        """The report as plain data (``loaddata-spec --json``), with the run's outcome.

        ``status`` is ``changed``, ``unchanged``, or for a failed load ``bad_input``,
        ``refused`` or ``lock_timeout`` (by ``exit_code``); nothing was written unless it
        is ``changed`` and ``dry_run`` is false.
        """
        if error is None:
            status = "changed" if self.changed else "unchanged"
        else:
            status = _FAILURES.get(exit_code, "bad_input")
        models = {label: asdict(counts) for label, counts in self.counts.items()}
        totals = {key: sum(counts[key] for counts in models.values()) for key in _ACTIONS}
        return {
            "status": status,
            "exit_code": exit_code,
            "error": None
            if error is None
            else {"type": type(error).__name__, "message": str(error)},
            "dry_run": self.dry_run,
            "sources": self.sources,
            "datasets": [
                {"dataset": header.dataset, "args": header.args} for header in self.headers
            ],
            "models": models,
            "totals": totals,
            "duration": round(self.duration, 3),
        }

    def summary_line(self, exit_code: int = 0, error: DatasetSyncError | None = None) -> str:
        """The outcome as one ``key=value`` line for log aggregators, failed loads included."""
        data = self.as_dict(exit_code, error)
        fields: dict[str, Any] = {
            "status": data["status"],
            "exit_code": exit_code,
            "dataset": ",".join(
                f"{d['dataset']}:{d['args']}" if d["args"] else str(d["dataset"])
                for d in data["datasets"]
            ),
            "source": ",".join(self.sources),
            **data["totals"],
            "dry_run": str(self.dry_run).lower(),
            "duration": f"{self.duration:.3f}s",
        }
        if error is not None:
            fields["error"] = type(error).__name__
        return "dataset_sync.load " + " ".join(
            f"{key}={_logfmt(value)}" for key, value in fields.items()
        )


_ACTIONS = ("created", "updated", "unchanged", "deleted", "cascaded")
_FAILURES = {
    EXIT_BAD_INPUT: "bad_input",
    EXIT_REFUSED: "refused",
    EXIT_LOCK_TIMEOUT: "lock_timeout",
}


def _logfmt(value: Any) -> str:
    text = str(value)
    if not text or any(char in text for char in ' "=\\'):
        return json.dumps(text, ensure_ascii=False)
    return text


DumpSource = str | Path | IO[str]


def load(
    *dumps: DumpSource,
    using: str = DEFAULT_DB_ALIAS,
    dry_run: bool = False,
    ignorenonexistent: bool = False,
    trust_dump_specs: bool = False,
    allow_cascade: bool = False,
    max_delete: DeleteLimit | None = None,
    signals: bool = False,
    progress: Progress | None = None,
    lock_timeout: float | None = None,
    on_batch: OnBatch | None = None,
) -> LoadReport:
    """Apply one or more dumps to the database ``using``, all in one transaction.

    New rows are inserted, changed rows updated, equal rows left alone; for every spec with
    ``delete_missing``, rows matching its filter but absent from the dump are deleted. Any
    error raises a DatasetSyncError (carrying the report so far as ``report``) and leaves
    the database exactly as it was. Under ``dry_run`` the same work is done and then rolled
    back, so the report (cascades included) is exactly what a real load would do.

    A dump is loaded with the specs this database declares for its dataset and arguments;
    ``trust_dump_specs`` loads the dump's own specs instead, for dumps that name no dataset
    or an intentional override. ``allow_cascade`` allows deletions to cascade to rows no
    spec selects; ``max_delete`` limits how many rows the load may delete.

    Rows are written in bulk, so by default no model signals are sent, as with
    ``bulk_create()``. With ``signals=True`` every row created or updated gets
    ``pre_save`` and ``post_save`` with ``raw=True``, as ``loaddata`` sends them; deleted
    rows get ``pre_delete`` and ``post_delete`` either way, from Django's collector.

    The transaction holds the database's load lock (see :mod:`dataset_sync.locking`), so a
    second load into the same database waits for this one; ``lock_timeout`` is how many
    seconds it waits at most (None: as long as it takes) before LockTimeoutError.

    ``progress`` gets a line per object written or deleted; ``on_batch(label, done)`` is
    called after each batch read from a dump (labelled with its name) and written to a
    model (labelled with the model's), for a progress display.
    """
    started = time.monotonic()
    report = LoadReport(sources=[_name(dump) for dump in dumps], dry_run=dry_run)
    connection = connections[using]
    try:
        with _cyclic_gc_paused(), tempfile.TemporaryDirectory(prefix="dataset-sync-") as spool_dir:
            plans: list[_Plan] = []
            try:
                # Reading every dump before the transaction starts keeps a bad file from
                # taking locks; the spools of the dumps read before a bad one are closed.
                for index, dump in enumerate(dumps):
                    plans.append(
                        _read(dump, Path(spool_dir) / str(index), using, trust_dump_specs, on_batch)
                    )
                report.headers = [plan.header for plan in plans]
                tables = _written_models(plans)
                with (
                    locking.locked_transaction(using, lock_timeout, tables),
                    connection.constraint_checks_disabled(),
                ):
                    selected = _check_planned_deletions(plans, using, max_delete)
                    for plan in plans:
                        _Apply(
                            plan,
                            using,
                            ignorenonexistent,
                            allow_cascade,
                            signals,
                            report,
                            progress,
                            on_batch,
                        ).run()
                    if max_delete is not None:
                        deleted = sum(c.deleted + c.cascaded for c in report.counts.values())
                        max_delete.check(deleted, selected, _sources(plans))
                    if dry_run:
                        transaction.set_rollback(True, using=using)
            finally:
                for plan in plans:
                    plan.close()
    except DatasetSyncError as exc:
        report.duration = time.monotonic() - started
        exc.report = report
        raise
    report.duration = time.monotonic() - started
    return report


def _sources(plans: Sequence[_Plan]) -> str:
    return ", ".join(plan.name for plan in plans)


def _check_planned_deletions(plans: Sequence[_Plan], using: str, limit: DeleteLimit | None) -> int:
    """Refuse, before anything is written, dumps that would delete more than ``limit``.

    Returns how many rows the delete_missing specs select on the target, the base of a
    percentage limit. Cascades are only known once the rows are deleted; the limit is
    checked again then, with them.
    """
    if limit is None:
        return 0
    selected_total = stale_total = 0
    for plan in plans:
        selected: dict[type[models.Model], set[Any]] = defaultdict(set)
        for spec in plan.specs:
            if spec.delete_missing:
                rows = spec.queryset(using).values_list("pk", flat=True).iterator()
                # Dumped keys are kept per concrete model; a proxy's rows are its model's.
                selected[flags.concrete(spec)].update(rows)
        for model, pks in selected.items():
            selected_total += len(pks)
            stale_total += len(pks - plan.pks.get(model, set()))
    limit.check(stale_total, selected_total, _sources(plans))
    return selected_total


def _written_models(plans: list[_Plan]) -> set[type[models.Model]]:
    """The models whose tables a load may write, parents and m2m tables included."""
    found: set[type[models.Model]] = set()
    for plan in plans:
        for model in [*plan.spools, *(spec.get_model() for spec in plan.specs)]:
            for each in [model, *model._meta.get_parent_list()]:
                found.add(each._meta.concrete_model or each)
                for m2m in each._meta.local_many_to_many:
                    through: Any = m2m.remote_field.through
                    if through._meta.auto_created:
                        found.add(through)
    return found


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

    def extend(self, objects: list[dict[str, Any]]) -> None:
        pending = self._pending
        pending.extend(objects)
        size = self._batch_size
        if len(pending) >= size:
            full = len(pending) - len(pending) % size
            for start in range(0, full, size):
                self._write(pending[start : start + size])
            self._pending = pending[full:]

    def _write(self, batch: list[dict[str, Any]]) -> None:
        # Length-prefixed: marshal.load() on a file reads in tiny pieces, loads() does not.
        payload = marshal.dumps(batch)
        self._file.write(len(payload).to_bytes(8, "big"))
        self._file.write(payload)

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        if self._pending:
            self._write(self._pending)
            self._pending = []
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
    #: Position in the dump of each object of a model whose specs' load flags differ.
    ordinals: dict[type[models.Model], dict[Any, int]] = field(default_factory=dict)
    spec_counts: list[int] | None = None

    def close(self) -> None:
        for spool in self.spools.values():
            spool.close()


def _read(
    dump: DumpSource,
    spool_dir: Path,
    using: str,
    trust_dump_specs: bool,
    on_batch: OnBatch | None,
) -> _Plan:
    name = _name(dump)
    stream = open_input(str(dump)) if isinstance(dump, (str, Path)) else dump
    try:
        reader = DumpReader(stream, name, conf.signing_key())
        try:
            specs = [Spec.from_dict(spec) for spec in reader.header.specs]
        except InvalidSpecError as exc:
            raise InvalidSpecError(f"{name}: {exc}") from exc
        if not trust_dump_specs:
            header = reader.header
            specs = registry.declared_specs(header.dataset, header.args, specs, name)
        for spec in specs:
            try:
                spec.get_model()
            except InvalidSpecError as exc:
                raise SchemaMismatchError(
                    f"{name}: {exc} Migrate the target or remove the model from the dataset."
                ) from exc
            try:
                spec.check_flags()
                if spec.delete_missing:
                    # The loader runs these filters to find rows to delete; try them first.
                    spec.check_filter(using)
            except InvalidSpecError as exc:
                raise InvalidSpecError(f"{name}: {exc}") from exc
        rules.require(reader.header, specs, name)
        spool_dir.mkdir()
        plan = _Plan(name, reader.header, specs, {}, defaultdict(set))
        plan.ordinals = {model: {} for model in flags.varying_models(specs)}
        try:
            _spool(reader, plan, spool_dir, on_batch)
        except BaseException:
            plan.close()
            raise
        plan.spec_counts = reader.spec_counts
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
        _spool_batch(batch, read, by_label, plan, spool_dir)
        read += len(batch)
        if on_batch:
            on_batch(f"reading {plan.name}", read)


def _spool_batch(
    batch: list[dict[str, Any]],
    first: int,
    by_label: dict[str, tuple[type[models.Model], Any, type | None]],
    plan: _Plan,
    spool_dir: Path,
) -> None:
    """Spool a batch of objects; ``first`` is the position of its first object in the dump.

    A dump holds its objects spec by spec, so a batch is a few runs of one model each; a
    run of new primary keys of the type they take as they are is spooled in one step.
    """
    position = first
    for label, objects in itertools.groupby(batch, key=operator.itemgetter("model")):
        run = list(objects)
        model, pk_type = _spool_model(label, run[0], by_label, plan)
        pks = [data["pk"] for data in run]
        seen = plan.pks[model]
        fresh = set(pks) if set(map(type, pks)) == {pk_type} else set()
        if len(fresh) == len(pks) and seen.isdisjoint(fresh):
            seen |= fresh
            if (ordinals := plan.ordinals.get(model)) is not None:
                ordinals.update(zip(pks, range(position, position + len(run)), strict=True))
            _spool_for(model, label, plan, spool_dir).extend(run)
        else:
            for ordinal, data in enumerate(run, start=position):
                _spool_object(data, ordinal, label, by_label, plan, spool_dir)
        position += len(run)


def _spool_model(
    label: str,
    data: dict[str, Any],
    by_label: dict[str, tuple[type[models.Model], Any, type | None]],
    plan: _Plan,
) -> tuple[type[models.Model], type | None]:
    """The model whose table holds objects labelled ``label``, and its key's JSON type."""
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
    return known[0], known[2]


def _spool_object(
    data: dict[str, Any],
    ordinal: int,
    label: str,
    by_label: dict[str, tuple[type[models.Model], Any, type | None]],
    plan: _Plan,
    spool_dir: Path,
) -> None:
    """Spool one object, unless an earlier spec already selected it."""
    model, pk_field, pk_type = by_label[label]
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
        return
    seen.add(pk)
    if (ordinals := plan.ordinals.get(model)) is not None:
        ordinals[pk] = ordinal
    _spool_for(model, label, plan, spool_dir).extend([data])


def _spool_for(model: type[models.Model], label: str, plan: _Plan, spool_dir: Path) -> _Spool:
    spool = plan.spools.get(model)
    if spool is None:
        spool = plan.spools[model] = _Spool(spool_dir / label, conf.batch_size())
    return spool


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
        allow_cascade: bool,
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
        self.allow_cascade = allow_cascade
        self.cascades_outside: Counter[str] = Counter()
        self.refused_from = ""
        self.report = report
        self.progress = progress
        self.batch_size = conf.batch_size()
        self.created_models: set[type[models.Model]] = set()
        self.governing = flags.Governing(plan.specs, plan.spec_counts, plan.ordinals)
        self.deferred = flags.DeferredValues()
        self.unchecked_links: set[tuple[str, Any]] = set()
        self.new_keys = NewKeys(plan.pks, self.governing, using, plan.name)

    def run(self) -> None:
        # Objects saved as new get fresh keys: they cannot land on another child's row.
        kept_keys = {model: self._not_new(model) for model in self.plan.pks}
        inheritance.check_siblings(kept_keys, self.using, self.plan.name)
        order = _write_order(set(self.plan.spools))
        writers = []
        for model in order:
            table = Table(model, self.connection, self.ignorenonexistent, self.plan.name)
            writer = TableWriter(
                table,
                self.using,
                self.progress,
                dumped=kept_keys,
                delete_stale=functools.partial(self._delete_stale, model),
                signals=self.signals,
                prepare=self._preparer(model),
                unchecked_links=self.unchecked_links,
            )
            writers.append(writer)
            counts = self.report.model(model._meta.label_lower)
            done = 0
            for batch in self.plan.spools[model].batches():
                if self.new_keys:
                    self.new_keys.write(writer, batch, counts)
                else:
                    writer.write(batch, counts)
                done += len(batch)
                if self.on_batch:
                    self.on_batch(model._meta.label_lower, done)
            if counts.created:
                self.created_models.add(model)
            if self.progress:
                self.progress(f"{model._meta.label_lower}: {len(self.plan.pks[model]):,} objects")
        if self.new_keys:
            # Before the deletions: a placeholder may hold the key of a row they delete.
            self.new_keys.finish(writers)
        self._delete_missing()
        self._refuse_cascades_outside()
        self.deferred.restore(self.using, self.plan.name, self.new_keys.final_pk)
        self._check_cascades(order)
        for writer in writers:
            writer.check_references()
        self._check_constraints()
        if self.created_models and not self.report.dry_run:
            self._reset_sequences()

    def _preparer(self, model: type[models.Model]) -> Callable[[list[Row]], None] | None:
        """What applies the load flags to ``model``'s rows; None when no flag concerns them."""
        specs = [spec for spec in self.plan.specs if flags.concrete(spec) is model]
        lenient = any(spec.ignore_missing_m2m for spec in specs)
        deferring = any(spec.defer_values for spec in specs)
        if not (lenient or deferring or self.new_keys):
            return None

        def prepare(rows: list[Row]) -> None:
            # ignore_missing_m2m and defer_values work on the dumped keys, so they go first.
            if lenient:
                self.unchecked_links.update(
                    flags.drop_missing_links(rows, model, self.governing, self.plan.pks, self.using)
                )
            if deferring:
                self.deferred.defer(rows, model, self.governing, self.using, self.new_keys.is_new)
            if self.new_keys:
                self.new_keys.remap(model, rows)

        return prepare

    def _not_new(self, model: type[models.Model]) -> set[Any]:
        """The dumped primary keys of ``model`` that are written under the same key."""
        new = self.new_keys.new.get(model)
        return self.plan.pks[model] - new if new else self.plan.pks[model]

    def _kept(self, model: type[models.Model]) -> set[Any]:
        """The primary keys of ``model`` that this load wrote, and delete_missing keeps."""
        return self.new_keys.kept(model, self.plan.pks.get(model, set()))

    def _delete_missing(self) -> None:
        specs = [spec for spec in self.plan.specs if spec.delete_missing]
        # Children before parents, so a parent's deletion cascades to as little as possible;
        # models without objects in the dump have their place in that order too.
        order = _write_order({flags.concrete(spec) for spec in specs})
        specs.sort(key=lambda spec: -order.index(flags.concrete(spec)))
        for spec in specs:
            # A proxy's rows are dumped, and counted, as its concrete model's.
            model = flags.concrete(spec)
            dumped = self._kept(model)
            stale = [
                pk
                for pk in self.new_keys.mapped(spec)
                .queryset(self.using)
                .values_list("pk", flat=True)
                .iterator()
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
        for spec, selected in self._stale_by_spec(model, pks):
            stale = [pk for pk in selected if pk not in deleted]
            if stale:
                self._delete(spec, model, stale)
                deleted.update(stale)
        return deleted

    def _stale_by_spec(
        self, model: type[models.Model], pks: list[Any]
    ) -> Iterator[tuple[Spec, list[Any]]]:
        """Per delete_missing spec of ``model``: those of ``pks`` it selects and the dump lacks."""
        dumped = self._kept(model)
        for spec in self.plan.specs:
            if spec.delete_missing and flags.concrete(spec) is model:
                queryset = self.new_keys.mapped(spec).queryset(self.using).filter(pk__in=pks)
                yield spec, [pk for pk in queryset.values_list("pk", flat=True) if pk not in dumped]

    def _delete(self, spec: Spec, model: type[models.Model], pks: list[Any]) -> None:
        label = model._meta.label_lower
        # Deleting a multi-table inheritance child deletes its parent rows too. Those that a
        # delete_missing spec of the parent selects were due for deletion themselves.
        stale_parents = {
            parent._meta.label_lower: self._stale_among(parent, pks)
            for parent in model._meta.get_parent_list()
        }
        queryset = model._base_manager.using(self.using).filter(pk__in=pks)
        # What QuerySet.delete() does, with a look at the collected rows before deleting.
        collector = Collector(using=self.using, origin=queryset)
        try:
            collector.collect(queryset)
        except (ProtectedError, RestrictedError) as exc:
            blocking = sorted({f"{obj._meta.label_lower}(pk={obj.pk!r})" for obj in exc.args[1]})[
                :5
            ]
            raise DeletionProtectedError(
                f"{self.plan.name}: {label}: cannot delete rows missing from the dump"
                f" ({', '.join(f'pk={pk!r}' for pk in pks[:5])}); they are protected by"
                f" {', '.join(blocking)}. Add those rows to the dataset or delete them first."
            ) from exc
        if not (self.allow_cascade or spec.allow_cascade):
            outside = rows_outside(collector, model, self.plan.specs, self.using, self.batch_size)
            # Deleted all the same, so that the refusal can name every row it would take;
            # the refusal rolls them back.
            self.cascades_outside.update(outside)
            if outside and not self.refused_from:
                self.refused_from = f"{label}(pk={pks[0]!r})"
        _total, per_model = collector.delete()
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
        stale: set[Any] = set()
        for _spec, selected in self._stale_by_spec(model, pks):
            stale.update(selected)
        return len(stale)

    def _refuse_cascades_outside(self) -> None:
        if self.cascades_outside:
            reached = ", ".join(
                f"{count:,} {label}" for label, count in sorted(self.cascades_outside.items())
            )
            raise DeletionGuardError(
                f"{self.plan.name}: deleting the rows missing from the dump (starting with"
                f" {self.refused_from}) would cascade to rows outside the dataset: {reached}."
                " Add those models to the dataset, or allow it with --allow-cascade or the"
                " spec's allow_cascade."
            )

    def _check_cascades(self, order: Sequence[type[models.Model]]) -> None:
        """A cascade from a deleted row must not take a row the dump just wrote."""
        for model in order:
            if not self.report.model(model._meta.label_lower).cascaded:
                continue
            dumped = list(self._kept(model))
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
