"""The order in which a load writes models: each after the models it points at.

The order comes from the models' relations, not from the order of the specs, so a dataset
may list its specs in any order. Constraints are checked at the end of the load, so a cycle
(a foreign key cycle, a self reference) is fine: it is broken at a stable place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

Model = type[models.Model]


def write_order(models_: Iterable[Model]) -> list[Model]:
    """``models_`` ordered so that each comes after those it points at, cycles broken stably."""
    model_set = set(models_)

    def targets(model: Model) -> set[Model]:
        related: set[Any] = {
            field.related_model._meta.concrete_model
            for field in [*model._meta.concrete_fields, *model._meta.many_to_many]
            if field.is_relation and field.related_model is not None
        }
        return (related & model_set) - {model}

    pending = {model: targets(model) for model in model_set}
    ordered: list[Model] = []
    while pending:
        ready = sorted(
            (model for model, deps in pending.items() if not deps),
            key=lambda model: model._meta.label_lower,
        )
        if not ready:
            # A cycle: take the model with the fewest unmet dependencies first.
            ready = [min(pending, key=lambda model: (len(pending[model]), model._meta.label_lower))]
        for model in ready:
            del pending[model]
            ordered.append(model)
            for deps in pending.values():
                deps.discard(model)
    return ordered


def delete_order(models_: Iterable[Model]) -> list[Model]:
    """``models_`` children first, so that deleting a parent cascades to as little as possible."""
    return write_order(models_)[::-1]
