"""Finding the target rows that a dump names by identity, a batch at a time.

A dump names a row of a model with a declared identity (and a row of a model with a natural
key, when it is referenced) by that identity rather than by its key: a list of the identity
fields' values, a component that is a foreign key being itself such a reference. The
:class:`Matcher` turns those lists into the keys the rows have on the target, with one query
per model and batch for declared fields (and one ``get_by_natural_key()`` per natural key
not seen before); what it cannot find is left out, for the caller to treat as a new row or a
missing reference.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from django.core.exceptions import MultipleObjectsReturned, ObjectDoesNotExist, ValidationError
from django.db import models
from django.db.models import Q

from dataset_sync.errors import SchemaMismatchError
from dataset_sync.identity import NATURAL_KEY, PK, Identities, root
from dataset_sync.load.convert import describe

Model = type[models.Model]
#: Natural keys remembered per model before the memory is emptied.
_CACHE_LIMIT = 50_000


def frozen(value: Any) -> Hashable:
    """A reference as read from JSON (nested lists, and objects in a damaged dump) in a form
    that can be a dict key."""
    if isinstance(value, list):
        # Most identities are lists of plain values: one tuple, hashed in C.
        simple = tuple(value)
        try:
            hash(simple)
        except TypeError:
            return tuple(frozen(part) for part in value)
        return simple
    if isinstance(value, dict):
        return ("{}", tuple(sorted((str(key), frozen(part)) for key, part in value.items())))
    return value  # type: ignore[no-any-return]


class Matcher:
    """Target values for references by identity and natural key, on ``using``."""

    def __init__(self, identities: Identities, using: str, chunk: int, max_or_terms: int) -> None:
        self.identities = identities
        self.using = using
        self.chunk = chunk
        self.max_or_terms = max_or_terms
        self._natural: dict[tuple[Model, str], dict[Hashable, Any]] = {}

    def resolve(
        self, model: Model, keys: Iterable[list[Any]], attname: str | None = None
    ) -> dict[Hashable, Any]:
        """``{frozen(key): value of attname}`` for the keys that name rows of ``model`` on
        the target; ``attname`` is the primary key's unless a foreign key's ``to_field``."""
        attname = attname or model._meta.pk.attname
        wanted = {frozen(key): key for key in keys}
        if not wanted:
            return {}
        identity = self.identities.reference(model)
        if identity.kind == NATURAL_KEY:
            return self._natural_keys(model, attname, wanted)
        if identity.kind == PK:
            raise SchemaMismatchError(
                f"{model._meta.label_lower}: the dump names its rows by identity"
                f" ({next(iter(wanted.values()))!r}), but this database matches them by"
                " primary key. Declare the same identity on both sides."
            )
        return self._fields(model, attname, identity.fields, wanted)

    def _natural_keys(
        self, model: Model, attname: str, wanted: dict[Hashable, list[Any]]
    ) -> dict[Hashable, Any]:
        cache = self._natural.setdefault((model, attname), {})
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        manager: Any = model._default_manager.db_manager(self.using)
        if not hasattr(manager, "get_by_natural_key"):
            raise SchemaMismatchError(
                f"{model._meta.label_lower}: the dump names its rows by natural key, but this"
                " database's model has no get_by_natural_key()."
            )
        found: dict[Hashable, Any] = {}
        for frozen_key, key in wanted.items():
            # Only rows found are remembered: a row not found may be written by this load.
            if frozen_key not in cache:
                try:
                    cache[frozen_key] = getattr(manager.get_by_natural_key(*key), attname)
                except ObjectDoesNotExist:
                    continue
                except (TypeError, ValueError, ValidationError) as exc:
                    raise SchemaMismatchError(
                        f"{model._meta.label_lower}: natural key {key!r} cannot be looked up"
                        f" ({exc})."
                    ) from None
                except MultipleObjectsReturned:
                    raise SchemaMismatchError(
                        f"{model._meta.label_lower}: natural key {key!r} names several rows on"
                        " the target; a natural key must name one row."
                    ) from None
            found[frozen_key] = cache[frozen_key]
        return found

    def _fields(
        self,
        model: Model,
        attname: str,
        names: tuple[str, ...],
        wanted: dict[Hashable, list[Any]],
    ) -> dict[Hashable, Any]:
        base = root(model)
        fields: list[Any] = [base._meta.get_field(name) for name in names]
        label = model._meta.label_lower
        for key in wanted.values():
            if not isinstance(key, list) or len(key) != len(fields):
                raise SchemaMismatchError(
                    f"{label}: identity {key!r} does not have the {len(fields)} value(s) of"
                    f" ({', '.join(names)}) this database declares."
                )
        # Components that are foreign keys are references of their own: resolved first. A
        # component naming a row the target lacks means that no row has this identity.
        resolved: list[dict[Hashable, Any] | None] = []
        for index, field in enumerate(fields):
            if field.remote_field is None:
                resolved.append(None)
                continue
            related = field.related_model
            values = [key[index] for key in wanted.values() if key[index] is not None]
            if self.identities.reference(related).kind == PK:
                resolved.append({frozen(value): value for value in values})
            else:
                resolved.append(
                    self.resolve(
                        related,
                        [value for value in values if isinstance(value, list)],
                        field.target_field.attname,
                    )
                )
        # Per identity: its values on the target, as the fields' columns hold them.
        targets: dict[tuple[Any, ...], Hashable] = {}
        for frozen_key, key in wanted.items():
            values = []
            for field, component, part in zip(fields, resolved, key, strict=True):
                if part is None:
                    values.append(None)
                elif component is None:
                    try:
                        values.append(field.to_python(part))
                    except (ValidationError, TypeError, ValueError):
                        raise SchemaMismatchError(
                            f"{label}: identity {key!r}: field '{field.name}' cannot hold {part!r}."
                        ) from None
                elif frozen(part) in component:
                    values.append(component[frozen(part)])
                else:
                    break
            else:
                targets[tuple(values)] = frozen_key
        found: dict[Hashable, Any] = {}
        manager = model._base_manager.using(self.using)
        attnames = [field.attname for field in fields]
        pending = list(targets)
        step = self.chunk if len(fields) == 1 else self.max_or_terms
        for start in range(0, len(pending), step):
            chunk = pending[start : start + step]
            if len(fields) == 1:
                condition = Q(**{f"{attnames[0]}__in": [each[0] for each in chunk]})
            else:
                condition = Q()
                for each in chunk:
                    condition |= Q(**dict(zip(attnames, each, strict=True)))
            for value, *held in manager.filter(condition).values_list(attname, *attnames):
                frozen_key = targets.get(tuple(held))
                if frozen_key is None:
                    # A case-insensitive collation matched another spelling: not this row.
                    continue
                if frozen_key in found and found[frozen_key] != value:
                    raise SchemaMismatchError(
                        f"{label}: identity {wanted[frozen_key]!r} names"
                        f" {describe(model, found[frozen_key])} and {describe(model, value)} on"
                        " the target; an identity must name one row."
                    )
                found[frozen_key] = value
        return found
