"""The last stage: verify what the load wrote, and leave sequences ready for new rows.

Constraints are checked at the end of the load rather than row by row, so rows can be
written in any order; here every foreign key of a dumped row must point at a row that
exists, no cascade may have taken a row that the dump wrote, and the database's own
constraint check must pass. Then the sequences of tables that got new rows move past the
largest key, so that rows created on the target later do not collide.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, connections, models

from dataset_sync.errors import LoadIntegrityError
from dataset_sync.load.backends import Backend
from dataset_sync.load.convert import describe
from dataset_sync.load.keys import TargetKeys
from dataset_sync.load.references import way_out
from dataset_sync.report import LoadReport

Model = type[models.Model]


def check_references(
    model: Model, references: dict[Any, dict[Any, Any]], using: str, chunk: int
) -> None:
    """Every value in ``references`` (per relation of ``model``: referenced value -> the row
    holding it) must name a row that exists now."""
    for relation, holders in references.items():
        if not holders:
            continue
        related = relation.related_model
        target = relation.target_field.attname
        values = list(holders)
        found: set[Any] = set()
        for start in range(0, len(values), chunk):
            found.update(
                related._base_manager.using(using)
                .filter(**{f"{target}__in": values[start : start + chunk]})
                .values_list(target, flat=True)
            )
        missing = [value for value in values if value not in found]
        if missing:
            value = missing[0]
            raise LoadIntegrityError(
                f"{describe(model, holders[value])}: field '{relation.name}' points at"
                f" {describe(related, value)}, which is neither in the dump nor in the target"
                f" database. Add {related._meta.label_lower} to the dataset or create the row"
                f" on the target first{way_out(relation)}."
            )


def check_cascades(
    models_: Iterable[Model], keys: TargetKeys, report: LoadReport, using: str, chunk: int
) -> None:
    """A cascade from a deleted row must not have taken a row the dump just wrote."""
    for model in models_:
        counts = report.counts.get(model._meta.label_lower)
        if counts is None or not counts.cascaded:
            continue
        written = list(keys.written(model))
        for start in range(0, len(written), chunk):
            batch = written[start : start + chunk]
            present = set(
                model._base_manager.using(using).filter(pk__in=batch).values_list("pk", flat=True)
            )
            if missing := [pk for pk in batch if pk not in present]:
                raise LoadIntegrityError(
                    f"{describe(model, missing[0])} is in the dump, but deleting rows missing"
                    " from the dump cascaded to it. Add the rows it depends on to the dataset,"
                    " or narrow the delete_missing filter."
                )


def check_constraints(models_: Iterable[Model], using: str) -> None:
    """The database's own check of the constraints it deferred, on the tables written."""
    try:
        connections[using].check_constraints(
            table_names=[model._meta.db_table for model in models_]
        )
    except IntegrityError as exc:
        raise LoadIntegrityError(str(exc)) from exc


def reset_sequences(backend: Backend, created: Sequence[Model]) -> None:
    """Move the sequences of the tables that got new rows past their largest keys."""
    if created:
        backend.reset_sequences(sorted(created, key=lambda model: model._meta.label_lower))
