"""The first stage of a load: read a dump once, verify it, and spool its objects.

The schema the dump was written with must fit this database's (``schema.py``), models and
fields renamed since (``renames.py``) read under their new names: that is decided first, since
every later check reads the dump through this database's models. A
dump's specs must be what this database's own registry declares for the dump's dataset and
arguments (unless the caller trusts the dump), its specs must make sense here, and its
trailer (count, digest and, with a signing key, signature) must match its content. All of it
is checked while the file is read, before the load's transaction starts, so a truncated,
edited or foreign file is refused before anything is written or locked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.db import models
from django.utils import timezone

from dataset_sync import conf, registry, schema
from dataset_sync.dump import rules
from dataset_sync.errors import (
    IdentityMismatchError,
    InvalidSpecError,
    SchemaMismatchError,
    StaleDumpError,
    UntrustedDumpError,
)
from dataset_sync.format import DumpReader, Header, open_input
from dataset_sync.identity import Identities, root
from dataset_sync.load.scope import Scope
from dataset_sync.load.spool import Selection, SpooledObjects, Spooler
from dataset_sync.progress import OnBatch
from dataset_sync.registry import Hook
from dataset_sync.renames import Renames
from dataset_sync.specs import Spec

DumpSource = str | Path | IO[str]


@dataclass
class VerifiedDump:
    """A dump that passed every check, with its objects spooled; what the later stages read.

    ``specs`` are the ones the load runs: this database's own declaration, or the dump's
    when the caller trusts them.
    """

    name: str
    header: Header
    specs: list[Spec]
    identities: Identities
    objects: SpooledObjects
    selection: Selection
    #: What the specs select on the target, which no row the load writes may leave.
    scope: Scope
    #: The after_write hooks of the dataset this database declares for the dump, if any.
    hooks: tuple[Hook, ...] = ()
    #: How this database's schema differs from the dump's, where the load goes on anyway.
    drift: list[schema.Drift] = dataclasses.field(default_factory=list)

    @property
    def keys(self) -> dict[type[models.Model], set[Any]]:
        """The dumped primary keys per concrete model."""
        return self.objects.keys

    def written_models(self) -> set[type[models.Model]]:
        """The models whose tables loading this dump may write: m2m tables and the parents of
        multi-table inheritance children included."""
        found: set[type[models.Model]] = set()
        for model in [*self.objects.spools, *(spec.get_model() for spec in self.specs)]:
            for each in [model, *model._meta.get_parent_list()]:
                found.add(each._meta.concrete_model or each)
                for m2m in each._meta.local_many_to_many:
                    through: Any = m2m.remote_field.through
                    if through._meta.auto_created:
                        found.add(through)
        return found

    def close(self) -> None:
        self.objects.close()


def source_name(source: DumpSource) -> str:
    """How messages and reports name a dump."""
    if isinstance(source, (str, Path)):
        return "<stdin>" if str(source) == "-" else str(source)
    return getattr(source, "name", "<stream>")


def read(
    source: DumpSource,
    directory: Path,
    using: str,
    trust_dump_specs: bool,
    on_batch: OnBatch | None,
    ignorenonexistent: bool = False,
    max_age: float | None = None,
    on_header: Callable[[Header], None] | None = None,
) -> VerifiedDump:
    """Read, verify and spool one dump into ``directory``; the caller closes what it returns.

    Reads ``using`` and writes nothing to it. Errors do not name the dump; the caller adds
    its name once (``in_file()``). ``ignorenonexistent`` lets a dump with fields or
    migrations this database lacks through: their values are skipped. ``max_age`` refuses a
    dump made more than that many seconds ago. ``on_header`` gets the header as soon as it is
    read, so that a report names the dataset of a dump refused later.
    """
    stream = open_input(str(source)) if isinstance(source, (str, Path)) else source
    try:
        reader = DumpReader(stream, conf.signing_key(), conf.batch_size())
        if on_header is not None:
            on_header(reader.header)
        if max_age is not None:
            _check_age(reader.header, max_age)
        # The dump is read as if written with the models' and fields' new names; the reader
        # verifies digest and signature against the file as it is.
        renames = Renames.for_dump(reader.header)
        header = renames.header(reader.header)
        drift = renames.drift()
        if header.schema is not None:
            drift += schema.compare(header.schema, using, ignorenonexistent)
        specs = _specs(header, using, trust_dump_specs)
        identities = _identities(header, specs)
        directory.mkdir()
        declared = registry.datasets().get(header.dataset or "")
        again = None
        if declared is not None and declared.reads_database and not trust_dump_specs:
            # What the rows written must belong to: the dataset as it reads once they are.
            again = functools.partial(declared.specs, header.args, using)
        scope = Scope(specs, header, again)
        spooler = Spooler(directory, specs, scope, using, conf.batch_size())
        try:
            for batch in reader.batches():
                renames.objects(batch, identities)
                spooler.add(batch)
                if on_batch:
                    on_batch(f"reading {source_name(source)}", spooler.objects_read)
            spooler.objects.flush()
            # Only their count is needed once they are all read and checked.
            spooler.objects.count_keys_only(
                model
                for model in spooler.objects.keys
                if identities.identity(model).matched
                and not any(spec.save_as_new for spec in specs if spec.concrete_model() is model)
            )
        except BaseException:
            spooler.objects.close()
            raise
        selection = Selection(specs, reader.spec_counts, spooler.objects.ordinals)
        return VerifiedDump(
            source_name(source),
            header,
            specs,
            identities,
            spooler.objects,
            selection,
            scope,
            declared.after_write if declared else (),
            drift,
        )
    finally:
        if stream is not source:
            if isinstance(stream, io.TextIOWrapper) and str(source) == "-":
                # Closing this wrapper would close sys.stdin itself.
                stream.detach()
            else:
                stream.close()


def _check_age(header: Header, max_age: float) -> None:
    """Refuse a dump made more than ``max_age`` seconds ago, so that an old dump cannot be
    loaded again and again. The time is the dump's word; with a signing key the signature,
    checked once the whole file is read, covers it, so it cannot be moved forward."""
    try:
        created = dt.datetime.fromisoformat(header.created or "")
    except ValueError:
        raise StaleDumpError(
            f"the dump does not say when it was made, and this database loads only dumps made"
            f" in the last {max_age:g} seconds (--max-age, DATASET_SYNC_MAX_AGE). Dump it again."
        ) from None
    if created.tzinfo is None:
        # Written with USE_TZ = False: the source's local time.
        created = timezone.make_aware(created, timezone.get_default_timezone())
    if dt.datetime.now(dt.timezone.utc) - created > dt.timedelta(seconds=max_age):
        raise StaleDumpError(
            f"the dump was made at {header.created}, more than {max_age:g} seconds ago, and"
            " this database loads only dumps made since (--max-age, DATASET_SYNC_MAX_AGE)."
            " Dump it again."
        )


def _specs(header: Header, using: str, trust_dump_specs: bool) -> list[Spec]:
    """The specs to load with, each checked against this database."""
    specs = [Spec.from_dict(spec) for spec in header.specs]
    if not trust_dump_specs:
        specs = registry.declared_specs(header.dataset, header.args, specs, using)
    for spec in specs:
        try:
            spec.get_model()
        except InvalidSpecError as exc:
            raise SchemaMismatchError(
                f"{exc} Migrate the target or remove the model from the dataset."
            ) from exc
        spec.check_flags()
        if trust_dump_specs and (runaway := spec.runaway_lookups()):
            # Before check_filter(), which would run it.
            raise UntrustedDumpError(
                f"Spec for {spec.model}: the filter uses {', '.join(runaway)}; this database runs"
                " no regular expression from a dump, since one such as ^(a+)+$ runs for ever."
                " Declare the dataset here and load without --trust-dump-specs."
            )
        # The loader runs every filter: the delete stage to find the rows to delete, the
        # guards to tell a cascade into the dataset from one out of it. Try them first.
        spec.check_filter(using)
    rules.require(header, specs)
    return specs


def _identities(header: Header, specs: list[Spec]) -> Identities:
    """This database's identities, which must be the dump's for every model whose rows the
    dump holds or names: the dump names rows by them."""
    identities = Identities.of(specs)
    ours, theirs = identities.as_json(), header.identities or {}
    involved = _involved(specs)
    for label in sorted(set(ours) | set(theirs)):
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue  # a model the target lacks: the objects say so, if there are any
        if label not in theirs and root(model) not in involved:
            continue
        if ours.get(label) != theirs.get(label):
            raise IdentityMismatchError(
                f"{label}: the dump recognises rows by {_described(theirs.get(label))}, this"
                f" database by {_described(ours.get(label))}. Declare the same identity on both"
                " sides (DATASET_SYNC_IDENTITIES, or the spec's identity), and dump it again."
            )
    return identities


def _involved(specs: list[Spec]) -> set[type[models.Model]] | _Every:
    """The base models whose rows the specs' rows are or name; every model when a generic
    foreign key may name any."""
    found: set[type[models.Model]] = set()
    for spec in specs:
        model = spec.concrete_model()
        found.add(root(model))
        for field in [*model._meta.concrete_fields, *model._meta.many_to_many]:
            if field.is_relation and field.related_model is not None:
                found.add(root(field.related_model))
        if any(hasattr(field, "fk_field") for field in model._meta.private_fields):
            return _EVERY
    return found


class _Every:
    def __contains__(self, item: object) -> bool:
        return True


_EVERY = _Every()


def _described(identity: Any) -> str:
    if identity is None:
        return "primary key"
    if isinstance(identity, list):
        return f"({', '.join(identity)})"
    return str(identity).replace("_", " ")
