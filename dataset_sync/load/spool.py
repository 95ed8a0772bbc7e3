"""A verified dump's objects, per model on disk, and which spec selected each of them.

A dump is read once, as a stream, before anything is written (``read.py``); its objects are
kept here until the write stage takes them a batch at a time, so memory holds only their
primary keys. Batches are stored with ``marshal``: the objects were parsed from JSON once,
hold only JSON's types, and are never parsed again.

A model may have several specs, with different flags. Each object is written once, under
the flags of the first spec that selected it; the dump's trailer (``spec_counts``) says
which spec that was. feincms3-data's dumps have no trailer: there, as in feincms3-data, the
first spec of a model governs all of its objects, except that they are all saved as new
when any spec of the model says so.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import itertools
import marshal
import operator
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from django.apps import apps
from django.db import connections, models

from dataset_sync.errors import SchemaMismatchError, SpoolError
from dataset_sync.load.convert import RowConverter
from dataset_sync.specs import Spec

if TYPE_CHECKING:
    from dataset_sync.load.scope import Scope

Model = type[models.Model]
#: The flags by which two specs of one model can differ in what loading an object does.
_LOAD_FLAGS = ("ignore_missing_m2m", "save_as_new", "defer_values")


def _cannot_spool(exc: OSError) -> SpoolError:
    return SpoolError(
        f"cannot keep the dump's objects on disk while loading ({exc.strerror}) in"
        f" {tempfile.gettempdir()}; nothing was written. Point TMPDIR at a writable"
        " directory with space, or lift the file size limit, and load it again."
    )


@contextlib.contextmanager
def spool_directory() -> Iterator[Path]:
    """A new temporary directory for a load's spools, removed with everything in it at the
    end; SpoolError when it cannot be made (TMPDIR missing, not writable, or full)."""
    try:
        directory = tempfile.TemporaryDirectory(prefix="dataset-sync-")
    except OSError as exc:
        raise _cannot_spool(exc) from exc
    with directory as name:
        yield Path(name)


class Spool:
    """One model's objects on disk, in batches of ``batch_size``.

    SpoolError when the disk does not take them: a full disk or the file size limit is no bug.
    """

    def __init__(self, path: Path, batch_size: int) -> None:
        try:
            self._file: IO[bytes] = open(path, "w+b")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise _cannot_spool(exc) from exc
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
        try:
            self._file.write(len(payload).to_bytes(8, "big"))
            self._file.write(payload)
        except OSError as exc:
            raise _cannot_spool(exc) from exc

    def flush(self) -> None:
        """Put every object added so far on disk."""
        if self._pending:
            self._write(self._pending)
            self._pending = []
        try:
            self._file.flush()
        except OSError as exc:
            raise _cannot_spool(exc) from exc

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        self.flush()
        self._file.seek(0)
        while size := int.from_bytes(self._file.read(8), "big"):
            yield marshal.loads(self._file.read(size))

    def close(self) -> None:
        # Flushing what is thrown away anyway may fail: the error that ended the load, a full
        # disk, has been raised already, and the file is closed all the same.
        with contextlib.suppress(OSError):
            self._file.close()


class KeyCount:
    """The dumped keys of a model matched by identity, counted but not kept.

    Its rows land where the target's rows with their identities are, and references to them
    name identities, so no stage looks a dumped key of it up; a million keys would hold
    50 MB for the whole load. Looking one up is a bug, and raises TypeError.
    """

    __slots__ = ("count",)

    def __init__(self, keys: set[Any]) -> None:
        self.count = len(keys)

    def __len__(self) -> int:
        return self.count

    def __contains__(self, key: object) -> bool:
        raise TypeError("the dumped keys of a model matched by identity are not kept")


@dataclass
class SpooledObjects:
    """A dump's objects per concrete model, and their primary keys."""

    spools: dict[Model, Spool] = field(default_factory=dict)
    #: The dumped primary keys of each model (a proxy's objects are its concrete model's).
    keys: dict[Model, set[Any]] = field(default_factory=lambda: defaultdict(set))
    #: Position in the dump of each object of a model whose specs' load flags differ.
    ordinals: dict[Model, dict[Any, int]] = field(default_factory=dict)

    def batches(self, model: Model) -> Iterator[list[dict[str, Any]]]:
        return self.spools[model].batches()

    def count_keys_only(self, models_: Iterable[Model]) -> None:
        """Keep only how many keys ``models_`` have, once the dump is read (:class:`KeyCount`)."""
        for model in models_:
            if model in self.keys:
                self.keys[model] = KeyCount(self.keys[model])  # type: ignore[assignment]

    def flush(self) -> None:
        """Put every object on disk, so that a full disk shows before the load locks anything."""
        for spool in self.spools.values():
            spool.flush()

    def close(self) -> None:
        for spool in self.spools.values():
            spool.close()


class Spooler:
    """Spools batches of a dump's objects as they are read, checking each primary key once.

    An object selected by several specs is kept once, as the first spec selected it.
    """

    def __init__(
        self, directory: Path, specs: Iterable[Spec], scope: Scope, using: str, batch_size: int
    ) -> None:
        self._directory = directory
        self._scope = scope
        self._connection = connections[using]
        self._batch_size = batch_size
        self.objects = SpooledObjects()
        self.objects.ordinals = {model: {} for model in _varying_models(specs)}
        # Per label in the dump: how its objects' primary keys are checked.
        self._converters: dict[str, RowConverter] = {}
        #: Objects added so far, in dump order.
        self.objects_read = 0

    def add(self, batch: list[dict[str, Any]]) -> None:
        """Spool a batch of objects, in dump order.

        A dump holds its objects spec by spec, so a batch is a few runs of one model each; a
        run of new primary keys that need no conversion is checked and spooled in one step.
        """
        position = self.objects_read
        for label, objects in itertools.groupby(batch, key=operator.itemgetter("model")):
            run = list(objects)
            converter = self._converter(label, run[0])
            model = converter.model
            pks = [data["pk"] for data in run]
            seen = self.objects.keys[model]
            fresh = set(pks) if self._plain(converter, pks) else None
            if fresh is not None and len(fresh) == len(pks) and seen.isdisjoint(fresh):
                seen |= fresh
                if (ordinals := self.objects.ordinals.get(model)) is not None:
                    ordinals.update(zip(pks, range(position, position + len(run)), strict=True))
                self._spool(model, label).extend(run)
            else:
                for ordinal, data in enumerate(run, start=position):
                    self._add_one(data, ordinal, converter, label)
            position += len(run)
        self.objects_read = position

    def _plain(self, converter: RowConverter, pks: list[Any]) -> bool:
        """Whether ``pks`` all have the type the key column takes as is, and fit it."""
        column = converter.pk_column
        if set(map(type, pks)) != {column.python_type}:
            return False
        bounds = column.bounds
        # Zero is an auto field's "no key" on MySQL: checked_pk() decides about it.
        return bounds is None or (min(pks) > 0 and max(pks) <= bounds[1])

    def _add_one(
        self, data: dict[str, Any], ordinal: int, converter: RowConverter, label: str
    ) -> None:
        model = converter.model
        pk = converter.checked_pk(data["pk"])
        seen = self.objects.keys[model]
        if pk in seen:
            # Several specs selected this object; it is written once, as the first one did.
            return
        seen.add(pk)
        if (ordinals := self.objects.ordinals.get(model)) is not None:
            ordinals[pk] = ordinal
        self._spool(model, label).extend([data])

    def _converter(self, label: str, data: dict[str, Any]) -> RowConverter:
        """The key checks of the model whose table holds objects labelled ``label``."""
        converter = self._converters.get(label)
        if converter is None:
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError):
                raise SchemaMismatchError(
                    f"{label}(pk={data['pk']!r}): unknown model; the target has no such"
                    " model. Migrate the target or remove the model from the dataset."
                ) from None
            # A proxy model's rows live in its concrete model's table.
            concrete = model._meta.concrete_model or model
            self._scope.refuse_model(concrete, data["pk"])
            converter = RowConverter(concrete, self._connection, ignorenonexistent=False)
            self._converters[label] = converter
        return converter

    def _spool(self, model: Model, label: str) -> Spool:
        spool = self.objects.spools.get(model)
        if spool is None:
            path = self._directory / label
            spool = self.objects.spools[model] = Spool(path, self._batch_size)
        return spool


def _varying_models(specs: Iterable[Spec]) -> set[Model]:
    """Models with several specs whose load flags differ: their objects need attributing."""
    flags: dict[Model, set[tuple[Any, ...]]] = {}
    for spec in specs:
        flags.setdefault(spec.concrete_model(), set()).add(
            tuple(getattr(spec, name) for name in _LOAD_FLAGS)
        )
    return {model for model, variants in flags.items() if len(variants) > 1}


class Selection:
    """Which spec selected each dumped object, and so whose flags apply to it."""

    def __init__(
        self,
        specs: list[Spec],
        spec_counts: list[int] | None,
        ordinals: Mapping[Model, Mapping[Any, int]],
    ) -> None:
        self.specs = specs
        # Without spec_counts, as in feincms3-data: the flags of a model's first spec, but
        # save_as_new when any spec of the model sets it.
        self._first: dict[Model, Spec] = {}
        for spec in specs:
            model = spec.concrete_model()
            first = self._first.setdefault(model, spec)
            if spec.save_as_new and not first.save_as_new:
                self._first[model] = dataclasses.replace(first, save_as_new=True)
        self._ends = list(itertools.accumulate(spec_counts)) if spec_counts else None
        self._ordinals = ordinals

    def spec_for(self, model: Model, pk: Any) -> Spec:
        """The spec whose flags govern the object ``pk`` of ``model``."""
        ordinals = self._ordinals.get(model)
        if ordinals is not None and self._ends is not None and pk in ordinals:
            return self.specs[bisect.bisect_right(self._ends, ordinals[pk])]
        # The scope refused objects of models that no spec names while the dump was read.
        return self._first[model]

    def any_spec(self, model: Model, flag: str) -> bool:
        """Whether some spec of ``model`` sets ``flag``."""
        return any(getattr(spec, flag) and spec.concrete_model() is model for spec in self.specs)

    def specs_of(self, model: Model) -> list[Spec]:
        """The specs whose rows live in ``model``'s table."""
        return [spec for spec in self.specs if spec.concrete_model() is model]
