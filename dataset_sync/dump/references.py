"""How a dump names rows: by primary key, by natural key, or by a declared identity.

A row's identity (``dataset_sync.identity``) is written as the list of its identity fields'
values, each serialized as Django's serializer writes it; a component that is a foreign key
is itself written as a reference, so ``("translation_key", "locale")`` becomes
``["2b6e...", ["en"]]`` when locales are identified by their language code. Natural keys are
what ``natural_key()`` returns, computed from the row as the data rules leave it.

References are looked up a batch at a time and cached; the cache is emptied when it grows
large, so the dump's memory stays flat however many rows it names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import models
from django.utils.encoding import is_protected_type

from dataset_sync.dump.kinds import Rule
from dataset_sync.dump.rules import Scrub, scrubber
from dataset_sync.identity import NATURAL_KEY, PK, Identities, root

Model = type[models.Model]
#: Cached references per model before the cache is emptied.
_CACHE_LIMIT = 50_000


class _Value:
    """Stands in for a model instance when a field converts one value to a string."""

    def __init__(self, attname: str, value: Any) -> None:
        setattr(self, attname, value)


def serialized(field: Any, value: Any) -> Any:
    """A field's value as Django's serializer writes it (protected types as they are)."""
    if is_protected_type(value):
        return value
    return field.value_to_string(_Value(field.attname, value))


class References:
    """The references to rows of any model, as a dump writes them."""

    def __init__(
        self,
        identities: Identities,
        using: str,
        related_rules: Callable[[Model], Mapping[str, Rule]] | None = None,
    ) -> None:
        self.identities = identities
        self.using = using
        self._related_rules = related_rules
        self._cache: dict[Model, dict[Any, Any]] = {}
        self._scrubbers: dict[Model, Scrub] = {}

    def written_as_pk(self, model: Model) -> bool:
        """Whether references to ``model`` are its primary keys, needing no lookup."""
        return self.identities.reference(model).kind == PK

    def of(self, model: Model, keys: Iterable[Any], attname: str | None = None) -> dict[Any, Any]:
        """``{key: reference}`` for the rows of ``model`` whose ``attname`` (the primary key by
        default; a foreign key's ``to_field`` otherwise) is one of ``keys``."""
        attname = attname or model._meta.pk.attname
        cache = self._cache.setdefault(model, {})
        wanted = {key for key in keys if key is not None}
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        missing = [key for key in wanted if (attname, key) not in cache]
        if missing:
            identity = self.identities.reference(model)
            if identity.kind == PK:
                return {key: key for key in wanted}
            if identity.kind == NATURAL_KEY:
                found = self._natural_keys(model, attname, missing)
            else:
                found = self._identities(model, attname, missing, identity.fields)
            for key, reference in found.items():
                cache[(attname, key)] = reference
        return {key: cache[(attname, key)] for key in wanted if (attname, key) in cache}

    def _natural_keys(self, model: Model, attname: str, keys: list[Any]) -> dict[Any, Any]:
        if model not in self._scrubbers:
            rules = self._related_rules(model) if self._related_rules else {}
            self._scrubbers[model] = scrubber(model, rules)
        scrub = self._scrubbers[model]
        related = model._base_manager.using(self.using).filter(**{f"{attname}__in": keys})
        return {getattr(obj, attname): list(scrub(obj).natural_key()) for obj in related}  # type: ignore[attr-defined]

    def _identities(
        self, model: Model, attname: str, keys: list[Any], names: tuple[str, ...]
    ) -> dict[Any, Any]:
        # The identity fields are the base model's; a child's rows share its keys.
        base = root(model)
        fields: list[Any] = [base._meta.get_field(name) for name in names]
        rows = list(
            model._base_manager.using(self.using)
            .filter(**{f"{attname}__in": keys})
            .values_list(attname, *(field.attname for field in fields))
        )
        # Per field: None for a value written as it is, else the references of its rows.
        components: list[dict[Any, Any] | None] = [
            None
            if field.remote_field is None or self.written_as_pk(field.related_model)
            else self.of(
                field.related_model, {row[index] for row in rows}, field.target_field.attname
            )
            for index, field in enumerate(fields, start=1)
        ]
        return {
            key: [
                serialized(field, value) if component is None else component.get(value)
                for field, component, value in zip(fields, components, values, strict=True)
            ]
            for key, *values in rows
        }
