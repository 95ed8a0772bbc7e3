"""The first stage of a load: read a dump once, verify it, and spool its objects.

A dump's specs must be what this database's own registry declares for the dump's dataset and
arguments (unless the caller trusts the dump), its specs must make sense here, and its
trailer (count, digest and, with a signing key, signature) must match its content. All of it
is checked while the file is read, before the load's transaction starts, so a truncated,
edited or foreign file is refused before anything is written or locked.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.db import models

from dataset_sync import conf, registry
from dataset_sync.dump import rules
from dataset_sync.errors import IdentityMismatchError, InvalidSpecError, SchemaMismatchError
from dataset_sync.format import DumpReader, Header, open_input
from dataset_sync.identity import Identities, root
from dataset_sync.load.scope import Scope
from dataset_sync.load.spool import Selection, SpooledObjects, Spooler
from dataset_sync.progress import OnBatch
from dataset_sync.registry import Hook
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
) -> VerifiedDump:
    """Read, verify and spool one dump into ``directory``; the caller closes what it returns.

    Errors do not name the dump; the caller adds its name once (``in_file()``).
    """
    stream = open_input(str(source)) if isinstance(source, (str, Path)) else source
    try:
        reader = DumpReader(stream, conf.signing_key(), conf.batch_size())
        specs = _specs(reader.header, using, trust_dump_specs)
        identities = _identities(reader.header, specs)
        directory.mkdir()
        declared = registry.datasets().get(reader.header.dataset or "")
        again = None
        if declared is not None and declared.reads_database and not trust_dump_specs:
            # What the rows written must belong to: the dataset as it reads once they are.
            again = functools.partial(declared.specs, reader.header.args, using)
        scope = Scope(specs, reader.header, again)
        spooler = Spooler(directory, specs, scope, using, conf.batch_size())
        try:
            for batch in reader.batches():
                spooler.add(batch)
                if on_batch:
                    on_batch(f"reading {source_name(source)}", spooler.objects_read)
        except BaseException:
            spooler.objects.close()
            raise
        selection = Selection(specs, reader.spec_counts, spooler.objects.ordinals)
        return VerifiedDump(
            source_name(source),
            reader.header,
            specs,
            identities,
            spooler.objects,
            selection,
            scope,
            declared.after_write if declared else (),
        )
    finally:
        if stream is not source:
            if isinstance(stream, io.TextIOWrapper) and str(source) == "-":
                # Closing this wrapper would close sys.stdin itself.
                stream.detach()
            else:
                stream.close()


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
        if spec.delete_missing:
            # The loader runs these filters to find rows to delete; try them first.
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
