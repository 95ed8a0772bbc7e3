"""dump(): stream the rows a dataset selects into one dump file.

``serialize`` turns rows into Django's serializer representation; ``rules`` replaces the
values of personal fields while they are read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.template.defaultfilters import pluralize
from django.utils import timezone

from dataset_sync import conf
from dataset_sync.dump import rules
from dataset_sync.dump.references import References
from dataset_sync.dump.serialize import RowSerializer
from dataset_sync.errors import DumpWriteError, InvalidSpecError
from dataset_sync.format import DumpWriter, Header, Writable, encode_object, open_output
from dataset_sync.identity import Identities
from dataset_sync.progress import OnBatch
from dataset_sync.registry import Dataset, Mapper, get_dataset, parse
from dataset_sync.specs import Spec, SpecLike, to_spec

Log = Callable[[str], Any]


@dataclass(frozen=True)
class DumpSummary:
    """What a dump wrote: objects per spec, in spec order."""

    specs: list[Spec]
    counts: list[int]

    @property
    def count(self) -> int:
        return sum(self.counts)


def dump(
    dataset: str | Dataset | None = None,
    *,
    specs: Sequence[SpecLike] | None = None,
    output: str | Path | Writable,
    using: str = DEFAULT_DB_ALIAS,
    mappers: dict[str, Mapper] | None = None,
    log: Log | None = None,
    on_batch: OnBatch | None = None,
) -> DumpSummary:
    """Write the rows of ``dataset`` (``"name:args"``) or of ``specs`` to ``output``.

    Rows are read in primary key order, one batch at a time, and written as they are read:
    memory does not grow with the number of rows. All specs are read in one read-only
    transaction, on PostgreSQL and MySQL/MariaDB at REPEATABLE READ, so a dump taken while
    the application writes is one consistent state. A path is written to a temporary file
    beside it and renamed when the dump is complete, so a failed dump never leaves a file
    that looks whole; ``.gz``, ``.bz2`` and ``.xz`` paths are compressed.

    Data rules (the specs', the dataset's and DATASET_SYNC_RULES) replace the values of the
    fields they name before mappers see the objects; the header names them. InvalidSpecError
    when a rule cannot apply as declared, or, under DATASET_SYNC_RULES_STRICT, when a personal
    field has none.

    ``log`` gets a line per spec; ``on_batch(label, done)`` is called after each batch of a
    spec's rows with the spec's model label, for a progress display.
    """
    if isinstance(dataset, str):
        name, args = parse(dataset)
        dataset = get_dataset(name)
    else:
        args = ""
    # A dataset that reads the database (the ids its filters name) reads the same snapshot
    # as the rows.
    with _snapshot(using):
        return _dump(dataset, args, specs, output, using, mappers, log, on_batch)


def _dump(
    dataset: Dataset | None,
    args: str,
    specs: Sequence[SpecLike] | None,
    output: str | Path | Writable,
    using: str,
    mappers: dict[str, Mapper] | None,
    log: Log | None,
    on_batch: OnBatch | None,
) -> DumpSummary:
    if dataset is not None:
        resolved = dataset.specs(args, using)
        mappers = {**dataset.mappers, **(mappers or {})}
        header = Header(
            specs=[spec.as_dict() for spec in resolved], dataset=dataset.name, args=args
        )
    elif specs is not None:
        resolved = [to_spec(spec) for spec in specs]
        header = Header(specs=[spec.as_dict() for spec in resolved])
    else:
        raise TypeError("dump() needs a dataset or specs.")
    for spec in resolved:
        spec.check_flags()
    scrub = _resolve_rules(resolved, dataset)
    header.rules = scrub.header
    identities = Identities.of(resolved)
    header.identities = identities.as_json() or None
    header.vendor = connections[using].vendor
    header.created = timezone.now().isoformat()
    with _opened(output) as stream:
        counts = _write(
            stream,
            header,
            resolved,
            scrub.rules,
            scrub.of_model,
            identities,
            using,
            mappers or {},
            log,
            on_batch,
        )
    return DumpSummary(resolved, counts)


def _resolve_rules(specs: list[Spec], dataset: Dataset | None) -> rules.Resolution:
    """The rules of each spec; InvalidSpecError for the first that cannot apply as declared."""
    scrub = rules.resolve(specs, dataset.rules if dataset else {})
    prefix = f"Dataset '{dataset.name}': " if dataset else ""
    if problems := [*rules.project_problems(), *scrub.problems]:
        raise InvalidSpecError(prefix + problems[0])
    if scrub.unruled and conf.rules_strict():
        fields = ", ".join(f"{label}.{field.name}" for label, field in scrub.unruled)
        raise InvalidSpecError(
            f"{prefix}DATASET_SYNC_RULES_STRICT refuses to dump fields that have no data rule:"
            f" {fields}. Declare a rule for each, or keep to dump it as it is."
        )
    return scrub


@contextmanager
def _snapshot(using: str) -> Iterator[None]:
    """One transaction in which every query sees the same state of the database.

    Each spec is read with its own queries; at READ COMMITTED (the default of Django's
    PostgreSQL and MySQL backends) a row written between two of them could leave a dump
    whose foreign keys point at rows it does not hold. SQLite's read transaction is a
    snapshot already. Inside a caller's transaction, its isolation level stands.
    """
    connection = connections[using]
    fresh = not connection.in_atomic_block
    with transaction.atomic(using=using):
        if fresh and connection.vendor in ("postgresql", "mysql"):
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


@contextmanager
def _opened(output: str | Path | Writable) -> Iterator[Writable]:
    if not isinstance(output, (str, Path)):
        yield output
        return
    path = Path(output)
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        try:
            opened = open_output(partial)
        except OSError as exc:
            raise DumpWriteError(
                f"{path}: cannot write the dump ({exc.strerror}). Check that the directory"
                " exists and is writable."
            ) from exc
        with opened as stream:
            yield stream
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write(
    stream: Writable,
    header: Header,
    specs: list[Spec],
    spec_rules: list[dict[str, rules.Rule]],
    related_rules: Callable[[type[models.Model]], dict[str, rules.Rule]],
    identities: Identities,
    using: str,
    mappers: dict[str, Mapper],
    log: Log | None,
    on_batch: OnBatch | None,
) -> list[int]:
    writer = DumpWriter(stream, header, conf.signing_key())
    references = References(identities, using, related_rules)

    def emit(data: dict[str, Any]) -> None:
        mapper = mappers.get(data["model"])
        writer.write(encode_object(mapper(data) if mapper else data))

    batch_size = conf.batch_size()
    for spec, field_rules in zip(specs, spec_rules, strict=True):
        writer.start_spec()
        before = writer.count
        serializer = RowSerializer(spec.get_model(), using, field_rules, references)
        for data in serializer.rows(spec.queryset(using), batch_size):
            emit(data)
            if on_batch and (writer.count - before) % batch_size == 0:
                on_batch(spec.model, writer.count - before)
        if on_batch:
            on_batch(spec.model, writer.count - before)
        if log:
            count = writer.count - before
            log(f"{spec.model}: {count:,} object{pluralize(count)}")
    writer.close()
    return writer.spec_counts
