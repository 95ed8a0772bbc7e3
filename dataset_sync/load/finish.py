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

from django.apps import apps
from django.db import IntegrityError, connections, models, transaction

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


def check_constraints(
    backend: Backend, written: Sequence[Model], deleted: Iterable[Model], using: str
) -> None:
    """The database's own check of the constraints it deferred, on the tables written, and
    on those whose foreign keys leave it to the database (DO_NOTHING) what happens when a
    row of ``deleted`` goes: the collector did not look at them.

    When it fails, the error names a row whose foreign key points nowhere, found with a
    query per foreign key of the table the database names (or of the tables checked).
    """
    connection = connections[using]
    models_ = list(written)
    for model in deleted:
        # Hidden relations too (related_name="+"): related_objects leaves them out.
        for relation in model._meta.get_fields(include_hidden=True):
            if not isinstance(relation, models.ForeignObjectRel):
                continue
            referrer: Any = relation.related_model
            if (
                relation.on_delete is models.DO_NOTHING
                and relation.field.concrete
                and getattr(relation.field, "db_constraint", False)
                and referrer not in models_
            ):
                models_.append(referrer)
    try:
        # In a savepoint: PostgreSQL takes no further statement in a failed transaction.
        with transaction.atomic(using=using):
            connection.check_constraints(table_names=[model._meta.db_table for model in models_])
    except IntegrityError as exc:
        refusal = backend.refusal(exc)
        tables = {
            model._meta.db_table: model for model in apps.get_models(include_auto_created=True)
        }
        suspects = [tables[refusal.table]] if refusal.table in tables else _with_links(models_)
        for model in suspects:
            if (dangling := _dangling(model, using)) is not None:
                raise dangling from exc
        raise LoadIntegrityError(
            f"the target database's constraint check refused the load ({refusal.message})."
        ) from exc


def _with_links(models_: Sequence[Model]) -> list[Model]:
    """``models_`` and the tables of their many-to-many links."""
    found = list(models_)
    for model in models_:
        for field in model._meta.local_many_to_many:
            through: Any = field.remote_field.through
            if through._meta.auto_created:
                found.append(through)
    return found


def _dangling(model: Model, using: str) -> LoadIntegrityError | None:
    """The error naming a row of ``model`` whose foreign key names no row; None if none."""
    for field in model._meta.local_concrete_fields:
        relation: Any = field
        if relation.remote_field is None or not relation.db_constraint:
            continue
        related = relation.related_model
        target = relation.target_field.attname
        dangling = (
            model._base_manager.using(using)
            .filter(**{f"{field.attname}__isnull": False})
            .exclude(**{f"{field.attname}__in": related._base_manager.using(using).values(target)})
            .values_list("pk", field.attname)
        )
        for pk, value in dangling[:1]:
            row, name = describe(model, pk), f"field '{field.name}'"
            owner: Any = model._meta.auto_created
            if owner:
                # A many-to-many link: named by the row holding it, and its field.
                m2m: Any = next(
                    m2m
                    for m2m in owner._meta.local_many_to_many
                    if m2m.remote_field.through is model
                )
                if field.name == m2m.m2m_reverse_field_name():
                    source = model._meta.get_field(m2m.m2m_field_name()).attname  # type: ignore[union-attr]
                    holder = (
                        model._base_manager.using(using).values_list(source, flat=True).get(pk=pk)
                    )
                    row, name = describe(owner, holder), f"field '{m2m.name}'"
            return LoadIntegrityError(
                f"{row}: {name} points at {describe(related, value)}, which the target"
                " database does not have once the load is done; its foreign key check refused"
                " the load. Add that row to the dataset, or make sure that no row outside the"
                " dataset points at rows the load deletes."
            )
    return None


def reset_sequences(backend: Backend, created: Sequence[Model]) -> None:
    """Move the sequences of the tables that got new rows past their largest keys."""
    if created:
        backend.reset_sequences(sorted(created, key=lambda model: model._meta.label_lower))
