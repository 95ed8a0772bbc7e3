"""Multi-table inheritance: refuse to turn an object into two things at once.

A child of a multi-table inheritance parent shares its primary key with the parent row.
If the target holds that parent row with another child (an ``Event`` where the dump has an
``Article`` with the same key), writing the dumped child would leave one parent row with two
children. Deleting the other child would delete the shared parent row with it, and Django
allows a parent with several children, so the loader cannot tell which one is stale: it
refuses, naming both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from django.db import models

from dataset_sync.errors import InconsistentModelError
from dataset_sync.table import describe

Model = type[models.Model]
_CHUNK = 500


def siblings(model: Model) -> list[tuple[Model, Model]]:
    """(parent, child) for the other children of ``model``'s parents, which share its keys."""
    return [
        (parent, relation.related_model)
        for parent in model._meta.parents
        for relation in parent._meta.related_objects
        if relation.parent_link and relation.related_model is not model
    ]


def check_siblings(dumped: Mapping[Model, Collection[Any]], using: str, source: str) -> None:
    """InconsistentModelError when a dumped child exists on the target as another child.

    ``dumped`` holds the primary keys the objects are written under; objects saved as new
    get fresh ones, and cannot land on another child's row.
    """
    for model in sorted(dumped, key=lambda model: model._meta.label_lower):
        pks = list(dumped[model])
        for parent, sibling in siblings(model):
            also_dumped = dumped.get(sibling, ())
            for start in range(0, len(pks), _CHUNK):
                found = sorted(
                    sibling._base_manager.using(using)
                    .filter(pk__in=pks[start : start + _CHUNK])
                    .values_list("pk", flat=True)
                )
                if clash := [pk for pk in found if pk not in also_dumped]:
                    raise InconsistentModelError(
                        f"{source}: {describe(model, clash[0])} exists on the target as"
                        f" {describe(sibling, clash[0])}, another child of the same"
                        f" {parent._meta.label_lower} row; loading it would make one object"
                        f" both. Delete that {sibling._meta.label_lower} on the target first."
                    )
