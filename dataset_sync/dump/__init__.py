"""dump(): stream the rows a dataset selects into one dump file.

``serialize`` turns rows into Django's serializer representation; ``rules`` replaces the
values of personal fields while they are read.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.template.defaultfilters import pluralize
from django.utils import timezone

from dataset_sync import conf, schema
from dataset_sync.dump import rules
from dataset_sync.dump.references import References
from dataset_sync.dump.serialize import RowSerializer
from dataset_sync.errors import DumpWriteError, InvalidSpecError
from dataset_sync.format import ENCODERS, VERSION, DumpWriter, Header, Writable, open_output
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
    format_version: int = VERSION,
) -> DumpSummary:
    """Write the rows of ``dataset`` (``"name:args"``) or of ``specs`` to ``output``.

    Rows are read in primary key order, one batch at a time, and written as they are read:
    memory does not grow with the number of rows. All specs are read in one read-only
    transaction, on PostgreSQL and MySQL/MariaDB at REPEATABLE READ, so a dump taken while
    the application writes is one consistent state. A path is written to a temporary file
    beside it and renamed when the dump is complete, so a failed dump never leaves a file
    that looks whole (created exclusively under a name nobody can guess, never through a link);
    ``.gz``, ``.bz2`` and ``.xz`` paths are compressed.

    Data rules (the specs', the dataset's and DATASET_SYNC_RULES) replace the values of the
    fields they name before mappers see the objects; the header names them. InvalidSpecError
    when a rule cannot apply as declared, or, under DATASET_SYNC_RULES_STRICT, when a personal
    field has none.

    ``log`` gets a line per spec; ``on_batch(label, done)`` is called after each batch of a
    spec's rows with the spec's model label, for a progress display.

    ``format_version=1`` writes datetimes and times to the millisecond, as Django's JSON
    encoder does, for loaders that read no other version: feincms3-data's, and dataset_sync's
    before version 2.
    """
    if format_version not in ENCODERS:
        raise ValueError(
            f"dump(): format_version {format_version!r} cannot be written; use one of"
            f" {', '.join(map(str, ENCODERS))}."
        )
    if isinstance(dataset, str):
        name, args = parse(dataset)
        dataset = get_dataset(name)
    else:
        args = ""
    # A dataset that reads the database (the ids its filters name) reads the same snapshot
    # as the rows.
    with _snapshot(using):
        return _dump(dataset, args, specs, output, using, mappers, log, on_batch, format_version)


def _dump(
    dataset: Dataset | None,
    args: str,
    specs: Sequence[SpecLike] | None,
    output: str | Path | Writable,
    using: str,
    mappers: dict[str, Mapper] | None,
    log: Log | None,
    on_batch: OnBatch | None,
    format_version: int,
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
    header.version = format_version
    header.rules = scrub.header
    identities = Identities.of(resolved)
    header.identities = identities.as_json() or None
    header.schema = schema.record((spec.get_model() for spec in resolved), using)
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
    """Where the dump goes; DumpWriteError when it cannot be written there, also part-way
    (a full disk, the file size limit, a closed pipe), which leaves no file behind."""
    if not isinstance(output, (str, Path)):
        try:
            yield output
        except OSError as exc:
            # sys.stdout is named "<stdout>"; a stream opened on a file descriptor by its number.
            name = getattr(output, "name", None)
            name = name if isinstance(name, str) else "the output"
            raise DumpWriteError(
                f"{name}: cannot write the dump ({exc.strerror or exc}). Check where the output"
                " goes (a full disk, a closed pipe) and dump it again."
            ) from exc
        return
    path = Path(output)
    partial = _partial_name(path)
    try:
        file = _create(partial)
    except FileExistsError as exc:
        raise DumpWriteError(
            f"{path}: cannot write the dump: {partial.name} is in the way (a file or a link that"
            " was not there a moment ago). Check who else writes into the directory."
        ) from exc
    except OSError as exc:
        raise DumpWriteError(
            f"{path}: cannot write the dump ({exc.strerror}). Check that the directory"
            " exists and is writable."
        ) from exc
    try:
        try:
            with file, open_output(file, path) as stream:
                yield stream
            os.replace(partial, path)
        except OSError as exc:
            raise DumpWriteError(
                f"{path}: cannot write the dump ({exc.strerror}); nothing was left behind. Free"
                " space on its disk or lift the file size limit, and dump it again."
            ) from exc
    finally:
        partial.unlink(missing_ok=True)


def _partial_name(path: Path) -> Path:
    """Where the dump is written until it is complete: beside ``path``, hidden, under a name
    nobody can guess, so nobody can plant a file or a link there beforehand."""
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.partial")


def _create(partial: Path) -> IO[bytes]:
    """A new, empty file at ``partial``, opened for writing.

    Created exclusively and never through a link: if anything is in its place already, a
    link planted in a shared directory included, this fails rather than overwrite the file
    the link points at. Permissions are those of any new file (the umask applies).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(partial, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
    return open(descriptor, "wb")


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
        writer.write(mapper(data) if mapper else data)

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
