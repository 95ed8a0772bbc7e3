"""load(): read dumps, verify them, and apply them to one database in one transaction.

A load is a pipeline; each stage is a module, in the order a row passes them:

- ``read``: read a dump once, check it (format, digest, signature, the specs against this
  database's declaration) and spool its objects (``spool``), before anything is written;
- ``order``: the models in the order they are written, parents first;
- ``keys``: where each dumped row lands on the target, and how references follow it; the
  ``scope`` refuses rows the target holds outside the dataset before anything is written;
- ``write``: per batch, convert (``convert``), compare and write in bulk; a batch the
  database refuses is written again in parts to name the row (``refused``);
- ``delete``: what ``delete_missing`` specs no longer hold, with the ``guards``;
- the dataset's ``after_write`` hooks, in the same transaction;
- ``finish``: verify references, cascades and constraints (and with the ``scope``, that the
  dataset selects every row written); reset sequences.

``backends`` holds every SQL statement the stages build, and ``lock`` the load's lock.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.template.defaultfilters import pluralize

from dataset_sync import conf
from dataset_sync.errors import CommitRefusedError, DatasetSyncError
from dataset_sync.load.backends import backend
from dataset_sync.load.convert import RowConverter
from dataset_sync.load.defer import DeferredValues
from dataset_sync.load.delete import Deleter
from dataset_sync.load.finish import (
    check_cascades,
    check_constraints,
    check_references,
    reset_sequences,
)
from dataset_sync.load.guards import DeleteLimit, check_planned_deletions
from dataset_sync.load.keys import TargetKeys, refuse_sibling_children
from dataset_sync.load.lock import locked_transaction
from dataset_sync.load.match import Matcher
from dataset_sync.load.order import write_order
from dataset_sync.load.read import DumpSource, VerifiedDump, read, source_name
from dataset_sync.load.references import ReferenceResolver
from dataset_sync.load.spool import spool_directory
from dataset_sync.load.write import Log, Options, TableWriter, correct_references
from dataset_sync.progress import OnBatch
from dataset_sync.report import LoadReport
from dataset_sync.signals import load_committed


def load(
    *dumps: DumpSource,
    using: str = DEFAULT_DB_ALIAS,
    dry_run: bool = False,
    ignorenonexistent: bool = False,
    trust_dump_specs: bool = False,
    allow_cascade: bool = False,
    adopt: bool = False,
    max_delete: DeleteLimit | None = None,
    signals: bool = False,
    log: Log | None = None,
    lock_timeout: float | None = None,
    max_age: float | None = None,
    on_batch: OnBatch | None = None,
    report: LoadReport | None = None,
) -> LoadReport:
    """Apply one or more dumps to the database ``using``, all in one transaction.

    New rows are inserted, changed rows updated, equal rows left alone; for every spec with
    ``delete_missing``, rows matching its filter but absent from the dump are deleted. Any
    error raises a DatasetSyncError and leaves the database exactly as it was; a ``report``
    passed in then holds what the load had done before it was rolled back. Under ``dry_run``
    the same work is done and then rolled back, so the report (cascades included) is exactly
    what a real load would do.

    A dump is loaded with the specs this database declares for its dataset and arguments;
    ``trust_dump_specs`` loads the dump's own specs instead, for dumps that name no dataset
    or an intentional override. ``allow_cascade`` allows deletions to cascade to rows no
    spec selects; ``max_delete`` limits how many rows the load may delete.

    A dumped row is never written over a row of this database that the dataset does not
    select here (it may be this database's own row that has the source row's key); such a
    load is refused with OutsideDatasetError. ``adopt`` overwrites those rows instead, for
    databases cloned from one another, whose rows with one key are one row (a row that moved
    into the dataset on the source). Models with an identity are matched by it instead.

    Rows are written in bulk, so by default no model signals are sent, as with
    ``bulk_create()``. With ``signals=True`` every row created or updated gets
    ``pre_save`` and ``post_save`` with ``raw=True``, as ``loaddata`` sends them; deleted
    rows get ``pre_delete`` and ``post_delete`` either way, from Django's collector.

    The transaction holds the database's load lock (see :mod:`dataset_sync.load.lock`), so
    a second load into the same database waits for this one; ``lock_timeout`` is how many
    seconds it waits at most (None: as long as it takes) before LockTimeoutError.

    ``max_age`` (default: DATASET_SYNC_MAX_AGE) refuses dumps made more than that many
    seconds ago with StaleDumpError; with a signing key, their time is signed.

    ``log`` gets a line for every object created, updated or deleted; ``on_batch(label,
    done)`` is called after each batch read from a dump (labelled ``reading <dump>``) and
    written to a model (labelled with the model's), for a progress display.
    """
    started = time.monotonic()
    report = report if report is not None else LoadReport()
    report.sources = [source_name(dump) for dump in dumps]
    report.dry_run = dry_run
    options = Options(ignorenonexistent=ignorenonexistent, signals=signals, log=log)
    names = ", ".join(report.sources)
    try:
        with (
            _cyclic_gc_paused(),
            _verified(
                dumps, using, trust_dump_specs, ignorenonexistent, on_batch, max_age, report
            ) as verified,
        ):
            written = {model for each in verified for model in each.written_models()}
            with (
                _in_file(names, only=CommitRefusedError),
                locked_transaction(using, lock_timeout, written),
                connections[using].constraint_checks_disabled(),
            ):
                selected = 0
                if max_delete is not None:
                    with _in_file(names):
                        selected = check_planned_deletions(verified, using, max_delete)
                for each in verified:
                    with _in_file(each.name):
                        _apply(each, using, options, allow_cascade, adopt, report, on_batch)
                if max_delete is not None:
                    deleted = sum(c.deleted + c.cascaded for c in report.counts.values())
                    with _in_file(names):
                        max_delete.check(deleted, selected)
                if dry_run:
                    transaction.set_rollback(True, using=using)
                else:
                    transaction.on_commit(
                        lambda: load_committed.send(LoadReport, using=using, report=report),
                        using=using,
                    )
    finally:
        report.duration = time.monotonic() - started
    return report


def check(
    *dumps: DumpSource,
    using: str = DEFAULT_DB_ALIAS,
    ignorenonexistent: bool = False,
    trust_dump_specs: bool = False,
    max_delete: DeleteLimit | None = None,
    max_age: float | None = None,
    on_batch: OnBatch | None = None,
    report: LoadReport | None = None,
) -> LoadReport:
    """Run every check of :func:`load` that needs no transaction, and write nothing.

    Format, digest, signature, age, trust, schema drift and, with ``max_delete``, the rows the
    ``delete_missing`` specs would delete (counted with queries; cascades are only known
    once rows are deleted). Raises the DatasetSyncError a load would raise for those, so a
    deploy pipeline or a cron pre-flight learns the exit code a load would end with. Takes
    no lock and opens no transaction: a load running meanwhile is not held up.
    """
    started = time.monotonic()
    report = report if report is not None else LoadReport()
    report.sources = [source_name(dump) for dump in dumps]
    report.checked = True
    try:
        with _verified(
            dumps, using, trust_dump_specs, ignorenonexistent, on_batch, max_age, report
        ) as verified:
            if max_delete is not None:
                with _in_file(", ".join(report.sources)):
                    check_planned_deletions(verified, using, max_delete)
    finally:
        report.duration = time.monotonic() - started
    return report


@contextlib.contextmanager
def _verified(
    dumps: tuple[DumpSource, ...],
    using: str,
    trust_dump_specs: bool,
    ignorenonexistent: bool,
    on_batch: OnBatch | None,
    max_age: float | None,
    report: LoadReport,
) -> Iterator[list[VerifiedDump]]:
    """Every dump read and verified, its objects spooled to disk until the block ends.

    ``report`` gets each dump's header as soon as it is read, and the schema drift.
    """
    max_age = max_age if max_age is not None else conf.max_age()
    with contextlib.ExitStack() as spools:
        with _in_file(", ".join(report.sources)):
            spool_dir = spools.enter_context(spool_directory())
        verified: list[VerifiedDump] = []
        for index, dump in enumerate(dumps):
            with _in_file(source_name(dump)):
                verified.append(
                    read(
                        dump,
                        spool_dir / str(index),
                        using,
                        trust_dump_specs,
                        on_batch,
                        ignorenonexistent,
                        max_age,
                        on_header=report.headers.append,
                    )
                )
            spools.callback(verified[-1].close)
        # Dumps from one source differ from this database alike: each difference once.
        report.drift = list(dict.fromkeys(drift for each in verified for drift in each.drift))
        yield verified


def _apply(
    dump: VerifiedDump,
    using: str,
    options: Options,
    allow_cascade: bool,
    adopt: bool,
    report: LoadReport,
    on_batch: OnBatch | None,
) -> None:
    """Apply one verified dump inside the load's transaction, stage by stage."""
    connection = connections[using]
    statements = backend(connection)
    chunk = conf.batch_size()
    matcher = Matcher(dump.identities, using, statements.max_list, statements.max_or_terms)
    keys = TargetKeys(dump.keys, dump.selection, dump.identities, matcher)
    keys.match(dump.objects)
    refuse_sibling_children(keys, using, chunk)
    if not adopt:
        dump.scope.refuse_overwrites(keys, using, chunk)
    resolver = ReferenceResolver(keys, dump.selection, using, chunk)
    order = write_order(dump.objects.spools, keys.keyed_by_target())
    deferred = DeferredValues()
    deleter = Deleter(dump, keys, using, allow_cascade, report, options.log, chunk)
    writers: dict[type[models.Model], TableWriter] = {}
    created: list[type[models.Model]] = []
    for model in order:
        label = model._meta.label_lower
        converter = RowConverter(model, connection, options.ignorenonexistent, dump.identities)
        writer = writers[model] = TableWriter(
            converter,
            statements,
            keys,
            resolver,
            dump.selection,
            deferred,
            deleter.delete_if_stale,
            options,
            chunk,
        )
        report.add(label)
        done = 0
        for batch in dump.objects.batches(model):
            writer.write(batch, report)
            correct_references(keys, resolver, writers, final=False)
            done += len(batch)
            if on_batch:
                on_batch(label, done)
        if report.counts[label].created:
            created.append(model)
        if options.log:
            count = len(dump.keys[model])
            options.log(f"{label}: {count:,} object{pluralize(count)}")
    correct_references(keys, resolver, writers, final=True)
    deleter.delete_missing()
    deferred.restore(using)
    for hook in dump.hooks:
        hook(using=using, dataset=dump.header.dataset, args=dump.header.args, report=report)
    check_cascades(order, keys, report, using, chunk)
    # After check_cascades, which names a written row that a cascade took for what it is.
    dump.scope.refuse_written(keys, report, using, chunk)
    for model, writer in writers.items():
        check_references(model, writer.references, using, chunk)
    deleted = [
        apps.get_model(label)
        for label, counts in report.counts.items()
        if counts.deleted or counts.cascaded
    ]
    check_constraints(statements, order, deleted, using)
    if not report.dry_run:
        reset_sequences(statements, created)


@contextlib.contextmanager
def _in_file(name: str, only: type[DatasetSyncError] = DatasetSyncError) -> Iterator[None]:
    """Errors raised inside (those of type ``only``) name the dump (or dumps) they concern,
    once."""
    try:
        yield
    except only as exc:
        raise exc.in_file(name) from exc


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


__all__ = ["DeleteLimit", "LoadReport", "check", "load"]
