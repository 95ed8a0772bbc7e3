"""The order in which a load writes models: each after the models it points at.

The order comes from the models' relations, not from the order of the specs, so a dataset
may list its specs in any order. Constraints are checked at the end of the load, so most
cycles (a foreign key cycle, a self reference) are fine wherever they are broken.

The exception is a reference to a model whose rows get their keys from the target (matched
by identity, or ``save_as_new``): its value is known only once the row it names is written,
so until then the holder is written with NULL and corrected afterwards. Where that is
impossible (the column is NOT NULL), the holder must come later, and a cycle is broken at a
reference that can wait. A generic foreign key may name any model, so its holder comes after
every such model of the load.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

Model = type[models.Model]


def write_order(models_: Iterable[Model], allocated: Iterable[Model] = ()) -> list[Model]:
    """``models_`` ordered so that each comes after those it points at.

    ``allocated`` are the models whose rows get their keys from the target. A cycle is broken
    at a model whose unmet references can all wait (nullable, or to a model whose keys are
    the dumped ones); among several, and failing that, at the one with the fewest.
    """
    model_set = set(models_)
    allocated_set = {_concrete(model) for model in allocated} & model_set
    # Per model: the models it points at, each with whether the reference must wait for it.
    pending = {model: _references(model, model_set, allocated_set) for model in model_set}
    ordered: list[Model] = []
    while pending:
        ready = sorted(
            (model for model, references in pending.items() if not references),
            key=lambda model: model._meta.label_lower,
        )
        if not ready:
            ready = [
                min(
                    pending,
                    key=lambda model: (
                        any(pending[model].values()),
                        len(pending[model]),
                        model._meta.label_lower,
                    ),
                )
            ]
        for model in ready:
            del pending[model]
            ordered.append(model)
            for references in pending.values():
                references.pop(model, None)
    return ordered


def delete_order(models_: Iterable[Model]) -> list[Model]:
    """``models_`` children first, so that deleting a parent cascades to as little as possible."""
    return write_order(models_)[::-1]


def _references(model: Model, model_set: set[Model], allocated: set[Model]) -> dict[Model, bool]:
    """The models of ``model_set`` that ``model`` points at, each with whether its rows must
    be written first (True: a NOT NULL reference to a model whose keys the target gives)."""
    meta: Any = model._meta
    references: dict[Model, bool] = {}
    for field in [*meta.concrete_fields, *meta.many_to_many]:
        if field.is_relation and field.related_model is not None:
            related = _concrete(field.related_model)
            must = not field.many_to_many and not field.null and related in allocated
            references[related] = references.get(related, False) or must
    for generic in meta.private_fields:
        if hasattr(generic, "fk_field") and hasattr(generic, "ct_field"):
            must = not meta.get_field(generic.fk_field).null
            for related in allocated:
                references[related] = references.get(related, False) or must
    references.pop(model, None)
    return {related: must for related, must in references.items() if related in model_set}


def _concrete(model: Any) -> Model:
    concrete: Model = model._meta.concrete_model or model
    return concrete
