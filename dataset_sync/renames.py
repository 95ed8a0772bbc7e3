"""Renamed fields: a dump written before a rename loads into a database migrated after it.

During the release that renames a field, production still writes the old name while stage,
running that release, has only the new one. The loading side declares the rename for that
transition (``DATASET_SYNC_RENAMES = {"shop.part": {"label": "title"}}``, by the model's label
on this database, old field name to new), and the loader reads the dump as if it had been
written with the new name: its schema record, its specs and header, and its objects. Once
both sides run the release, the declaration changes nothing and can go.

The file itself is never changed: its digest and signature are checked as it was written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from django.apps import apps

from dataset_sync import conf, schema
from dataset_sync.format import Header

#: Spec keys that hold field names: lists of them, or dicts keyed by them.
_FIELD_LISTS = ("defer_values", "ignore_missing_m2m")
_FIELD_KEYS = ("rules", "missing_references")


class Renames:
    """Renamed fields, per model label on this database: old field name to new."""

    def __init__(self, renames: Mapping[str, Mapping[str, str]]) -> None:
        self._renames = {label: dict(fields) for label, fields in renames.items() if fields}

    @classmethod
    def for_dump(cls, header: Header) -> Renames:
        """The declared renames (DATASET_SYNC_RENAMES) that apply to a dump with ``header``.

        A rename applies where the dump's schema record has the old name and not the new
        one; to a dump without a record (written before it existed), every rename applies.
        """
        record = header.schema
        applied: dict[str, dict[str, str]] = {}
        for label, renames in conf.renames_setting().items():
            if record is None:
                applied[label] = dict(renames)
                continue
            fields = record["models"].get(label, {})
            applied[label] = {
                old: new for old, new in renames.items() if old in fields and new not in fields
            }
        return cls(applied)

    def __bool__(self) -> bool:
        return bool(self._renames)

    def drift(self) -> list[schema.Drift]:
        """A Drift for each rename, for the report."""
        return [
            schema.Drift("field_renamed", label.split(".")[0], label, new, detail=old)
            for label, renames in sorted(self._renames.items())
            for old, new in renames.items()
        ]

    def header(self, header: Header) -> Header:
        """``header`` as if it had been written with the new names."""
        if not self:
            return header
        return dataclasses.replace(
            header,
            specs=[self._spec(spec) for spec in header.specs],
            rules=self._keyed(header.rules),
            identities=self._identities(header.identities),
            schema=None
            if header.schema is None
            else {**header.schema, "models": self._fingerprints(header.schema["models"])},
        )

    def objects(self, batch: list[dict[str, Any]]) -> None:
        """Rename the fields of the dumped objects of renamed models, in place."""
        if not self:
            return
        for data in batch:
            renames = self._of(data["model"])
            if renames and isinstance(data.get("fields"), dict):
                data["fields"] = {
                    renames.get(name, name): value for name, value in data["fields"].items()
                }

    def _of(self, label: str) -> dict[str, str]:
        """The renames of the model ``label`` names (a proxy's are its concrete model's)."""
        renames = self._renames.get(label)
        if renames is not None:
            return renames
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            return {}
        concrete = model._meta.concrete_model or model
        return self._renames.get(concrete._meta.label_lower, {})

    def _spec(self, spec: Any) -> Any:
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), str):
            return spec
        fields = self._of(spec["model"])
        if not fields:
            return spec
        spec = dict(spec)
        if isinstance(spec.get("filter"), dict):
            # The first part of a lookup is a field of the spec's model; further parts name
            # fields of related models, which a rename of this model does not touch.
            spec["filter"] = {
                _lookup(lookup, fields): value for lookup, value in spec["filter"].items()
            }
        for key in _FIELD_LISTS:
            if isinstance(spec.get(key), list):
                spec[key] = [fields.get(name, name) for name in spec[key]]
        for key in _FIELD_KEYS:
            if isinstance(spec.get(key), dict):
                spec[key] = {fields.get(name, name): value for name, value in spec[key].items()}
        identity = spec.get("identity")
        if isinstance(identity, str):
            spec["identity"] = fields.get(identity, identity)
        elif isinstance(identity, list):
            spec["identity"] = [fields.get(name, name) for name in identity]
        return spec

    def _keyed(
        self, by_model: dict[str, dict[str, Any]] | None
    ) -> dict[str, dict[str, Any]] | None:
        if by_model is None:
            return None
        return {
            label: {self._of(label).get(name, name): value for name, value in fields.items()}
            for label, fields in by_model.items()
        }

    def _fingerprints(self, models: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The record's fields under their new names; a renamed field's column went with its
        name (RenameField renames both), so the old column is left out of the comparison."""
        renamed: dict[str, dict[str, Any]] = {}
        for label, fields in models.items():
            renames = self._of(label)
            renamed[label] = {
                renames.get(name, name): {
                    key: value
                    for key, value in fingerprint.items()
                    if not (name in renames and key == "column")
                }
                for name, fingerprint in fields.items()
            }
        return renamed

    def _identities(self, identities: dict[str, Any] | None) -> dict[str, Any] | None:
        if identities is None:
            return None
        return {
            label: [self._of(label).get(name, name) for name in identity]
            if isinstance(identity, list)
            else identity
            for label, identity in identities.items()
        }


def _lookup(lookup: str, fields: dict[str, str]) -> str:
    first, separator, rest = lookup.partition("__")
    return fields.get(first, first) + separator + rest
