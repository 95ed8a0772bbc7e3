"""``defer_values``: throwaway unique values while rows are written, the real ones after the
deletions.

A unique value that only a deletion frees (a row deleted on the source, whose name another
row took) cannot be written before the deletions run. The write stage writes a throwaway
value instead, and :meth:`DeferredValues.restore` writes the real one once the deletions are
done. Only a value that differs from what the row holds on the target is deferred, so that
loading the same dump again still writes nothing.
"""

from __future__ import annotations

import itertools
from typing import Any

from django.db import DatabaseError, connections, models, transaction
from django.utils.crypto import get_random_string

from dataset_sync.errors import LoadIntegrityError
from dataset_sync.load.backends import backend
from dataset_sync.load.convert import Row, describe
from dataset_sync.load.refused import refused_row
from dataset_sync.load.spool import Selection

Model = type[models.Model]


class DeferredValues:
    """The real values of deferred fields, per row, until :meth:`restore`."""

    def __init__(self) -> None:
        self._values = (f"{get_random_string(20)}-{number}" for number in itertools.count())
        #: (model, row, {attname: real value}); the row's key is its target key by the time
        #: the values are restored.
        self.pending: list[tuple[Model, Row, dict[str, Any]]] = []

    def defer(self, rows: list[Row], model: Model, selection: Selection, using: str) -> None:
        """Swap deferred values for throwaway ones, once the rows' target keys are known."""
        deferred = {row.pk: selection.spec_for(model, row.dumped).defer_values for row in rows}
        names = sorted({name for names in deferred.values() for name in names})
        if not names:
            return
        attnames = {name: model._meta.get_field(name).attname for name in names}  # type: ignore[union-attr]
        current = {
            pk: dict(zip(attnames.values(), values, strict=True))
            for pk, *values in model._base_manager.using(using)
            .filter(pk__in=[row.pk for row in rows if not row.new])
            .values_list("pk", *attnames.values())
        }
        for row in rows:
            real: dict[str, Any] = {}
            for name in deferred[row.pk]:
                attname = attnames[name]
                if attname not in row.values:
                    continue
                # A row that gets a new key has no current values.
                if not row.new and (
                    current.get(row.pk, {}).get(attname, object()) == row.values[attname]
                ):
                    continue
                real[attname] = row.values[attname]
                row.values[attname] = next(self._values)
            if real:
                self.pending.append((model, row, real))

    def restore(self, using: str) -> None:
        """Write the real values, now that the deletions have freed them."""
        for model, row, values in self.pending:
            pk = row.pk
            manager = model._base_manager.using(using)
            try:
                with transaction.atomic(using=using):
                    manager.filter(pk=pk).update(**values)
            except DatabaseError as exc:
                raise self._clash(model, row, values, using, exc) from exc
        self.pending.clear()

    def _clash(
        self, model: Model, row: Row, values: dict[str, Any], using: str, exc: Exception
    ) -> LoadIntegrityError:
        pk = row.pk
        manager = model._base_manager.using(using)
        for attname, value in values.items():
            other = manager.filter(**{attname: value}).exclude(pk=pk).values_list("pk", flat=True)
            for other_pk in other[:1]:
                return LoadIntegrityError(
                    f"{describe(model, pk)}: deferred field '{attname}' value {value!r} would"
                    f" duplicate {describe(model, other_pk)}, which is still there after the"
                    " deletions. Add that row to the dataset with delete_missing, or change it"
                    " on the target."
                )
        refusal = backend(connections[using]).refusal(exc)
        return refused_row(model, row.dumped, values, refusal)
