"""feincms3-data's Python API on dataset_sync's dumper and loader.

Code written for feincms3-data switches by changing one import::

    from feincms3_data.data import dump_specs, load_dump      # before
    from dataset_sync.feincms3_data import dump_specs, load_dump  # after

The names and signatures are feincms3-data's; what runs underneath is dataset_sync's: dumps
carry its header and digest, a load writes only what differs and checks what it wrote, and
the exceptions belong to the DatasetSyncError family. The differences are listed in
``docs/migrating-from-feincms3-data.md``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.utils import timezone

from dataset_sync import specs as _specs
from dataset_sync.dump import dump, rules
from dataset_sync.errors import (
    InconsistentModelError,
    InvalidSpecError,
    InvalidVersionError,
)
from dataset_sync.format import DumpWriter, Header
from dataset_sync.load import load
from dataset_sync.registry import Mapper
from dataset_sync.report import LoadReport
from dataset_sync.specs import Spec, SpecLike, to_spec

__all__ = [
    "InconsistentModelError",
    "InvalidSpecError",
    "InvalidVersionError",
    "dump_specs",
    "load_dump",
    "silence",
    "specs_for_app_models",
    "specs_for_derived_models",
    "specs_for_models",
]


def silence(*args: Any) -> None:
    """The default ``progress`` callback: say nothing."""


def specs_for_models(
    models: Iterable[type[Model]], spec: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One spec dict per model, each with the keys of ``spec``; unknown keys are refused.

    Dicts rather than :class:`~dataset_sync.Spec` objects, as feincms3-data returns, so code
    that edits the returned specs keeps working.
    """
    return [_as_dict(item, spec) for item in _specs.specs_for_models(models, spec)]


def specs_for_app_models(app: str, spec: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Spec dicts for every model of an installed app."""
    return [_as_dict(item, spec) for item in _specs.specs_for_app_models(app, spec)]


def specs_for_derived_models(
    cls: type[Model], spec: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Spec dicts for every concrete subclass of ``cls`` (proxies and abstract models skipped)."""
    return [_as_dict(item, spec) for item in _specs.specs_for_derived_models(cls, spec)]


def _as_dict(item: Spec, spec: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**(spec or {}), "model": item.model}


def dump_specs(
    specs: Sequence[SpecLike],
    *,
    mappers: Mapping[str, Mapper] | None = None,
    objects: Iterable[Model] | None = None,
) -> str:
    """The dump of ``specs`` from the default database, as a JSON string.

    ``objects`` replaces the rows the specs select; each object is written under the first
    spec of its model. ``json.loads()`` of the result is what :func:`load_dump` takes.
    """
    stream = io.StringIO()
    if objects is None:
        dump(specs=specs, output=stream, mappers=dict(mappers or {}))
    else:
        _dump_objects([to_spec(spec) for spec in specs], objects, mappers or {}, stream)
    return stream.getvalue()


def _dump_objects(
    specs: list[Spec],
    objects: Iterable[Model],
    mappers: Mapping[str, Mapper],
    stream: io.StringIO,
) -> None:
    by_model: dict[str, list[Model]] = {}
    for obj in objects:
        by_model.setdefault(obj._meta.label_lower, []).append(obj)
    if unclaimed := sorted(set(by_model) - {spec.model for spec in specs}):
        raise InvalidSpecError(
            f"dump_specs(): objects of {', '.join(unclaimed)} have no spec. Add a spec for"
            " each model of the objects."
        )
    for spec in specs:
        spec.check_flags()
    # The objects are the caller's, not rows read here, so the rules run in Python on copies.
    resolution = rules.resolve(specs, {})
    if problems := [*rules.project_problems(), *resolution.problems]:
        raise InvalidSpecError(problems[0])
    header = Header(
        specs=[spec.as_dict() for spec in specs],
        vendor=connections[DEFAULT_DB_ALIAS].vendor,
        created=timezone.now().isoformat(),
        rules=resolution.header,
    )
    writer = DumpWriter(stream, header)
    for spec, spec_rules in zip(specs, resolution.rules, strict=True):
        writer.start_spec()
        scrub = rules.scrubber(spec.get_model(), spec_rules)
        claimed = [scrub(obj) for obj in by_model.pop(spec.model, [])]
        for data in serializers.serialize("python", claimed, use_natural_foreign_keys=True):
            mapper = mappers.get(spec.model)
            writer.write(mapper(data) if mapper else data)
    writer.close()


def load_dump(
    data: Mapping[str, Any],
    *,
    progress: Callable[[str], Any] = silence,
    ignorenonexistent: bool = False,
    using: str = DEFAULT_DB_ALIAS,
) -> LoadReport:
    """Load a parsed dump (``json.loads()`` of a dump file) into ``using``, in one transaction.

    Takes dumps written by dataset_sync and by feincms3-data. Returns the load's report,
    where feincms3-data returns None. As in feincms3-data, the dump's own specs are used
    (``trust_dump_specs``): a caller of this function has chosen the dump.
    """
    stream = io.StringIO(json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False))
    stream.name = "<dump>"
    return load(
        stream,
        using=using,
        ignorenonexistent=ignorenonexistent,
        trust_dump_specs=True,
        log=None if progress is silence else progress,
    )
