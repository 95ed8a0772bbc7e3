"""The schema a dump was written with, and how this database's schema differs from it.

A dump's header records (``schema``) the Django version, the applied leaf migrations of
each app that owns a model of the dataset, and per model a fingerprint of its concrete
fields: column, internal type, NULL or not, and a relation's related model. Before anything
is written, the loader compares that record with this database:

- identical: nothing to say;
- this database is ahead in a way the dump loads into (migrations it has applied, fields or
  models the dump lacks): the load goes on and the report lists the drift. Rows the dump
  updates keep this database's values of the fields the dump lacks, new rows get the
  fields' defaults (``default`` or ``db_default``);
- this database is behind, or the two disagree (migrations, models or fields the dump has
  and this database lacks, a type changed, a field became NOT NULL, a field the dump lacks
  that new rows cannot do without): SchemaDriftError, naming what and what to do.

A stage-like target usually runs the next release, so it is ahead: that must load. A target
that is behind would fail late, per object, or silently drop data; it is refused up front.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import django
from django.apps import apps
from django.db import connections, models
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.fields import NOT_PROVIDED

from dataset_sync.errors import SchemaDriftError

#: A field's fingerprint: ``{"column", "type", "null"}`` (a link has no column) and ``"to"`` for
#: a relation.
Fingerprint = dict[str, Any]
Applied = set[tuple[str, str]]

#: What a problem is, for the advice that ends the message.
_MIGRATION, _APP, _MODEL, _DUMP_ONLY, _RENAMED, _CHANGED, _REQUIRED = (
    "migration",
    "app",
    "model",
    "dump_only",
    # A field only the dump has, with one of the same kind only this database has, which
    # rows need a value for: skipping the first would leave the second without one.
    "renamed",
    "changed",
    "required",
)
#: Problems --ignorenonexistent gets past: what the target lacks is skipped.
_SKIPPABLE = frozenset({_MIGRATION, _DUMP_ONLY})


def dataset_models(models_: Iterable[type[models.Model]]) -> list[type[models.Model]]:
    """The concrete models whose rows a dataset of these models holds, with their
    multi-table inheritance parents, whose tables a load writes too."""
    found: dict[str, type[models.Model]] = {}
    for model in models_:
        concrete = model._meta.concrete_model or model
        for each in [concrete, *concrete._meta.get_parent_list()]:
            found.setdefault(each._meta.label_lower, each)
    return [found[label] for label in sorted(found)]


def record(models_: Iterable[type[models.Model]], using: str) -> dict[str, Any]:
    """The record a dump of these models' rows carries in its header's ``schema``."""
    chosen = dataset_models(models_)
    applied = _applied(using)
    app_labels = sorted({model._meta.app_label for model in chosen})
    return {
        "django": django.get_version(),
        "migrations": {} if applied is None else {app: leaves(app, applied) for app in app_labels},
        "models": {model._meta.label_lower: fingerprint(model) for model in chosen},
    }


def is_record(value: Any) -> bool:
    """Whether a header's ``schema`` has the shape :func:`record` writes."""
    if not isinstance(value, dict) or not isinstance(value.get("django"), str):
        return False
    migrations, models_ = value.get("migrations"), value.get("models")
    return (
        isinstance(migrations, dict)
        and all(
            isinstance(names, list) and all(isinstance(name, str) for name in names)
            for names in migrations.values()
        )
        and isinstance(models_, dict)
        and all(
            isinstance(fields, dict)
            and all(
                isinstance(field, dict)
                and isinstance(field.get("type"), str)
                and isinstance(field.get("null"), bool)
                for field in fields.values()
            )
            for fields in models_.values()
        )
    )


def fingerprint(model: type[models.Model]) -> dict[str, Fingerprint]:
    """What a dump's objects of ``model`` rely on, per field name: the fields a serialized
    object carries (its own table's columns and auto-created many-to-many links)."""
    meta = model._meta
    fields: dict[str, Fingerprint] = {}
    for field in [*meta.local_concrete_fields, *meta.local_many_to_many]:
        remote: Any = field.remote_field
        if field.many_to_many and not remote.through._meta.auto_created:
            continue  # links through a model of its own are that model's rows
        entry: Fingerprint = {"type": field.get_internal_type(), "null": field.null}
        if not field.many_to_many:
            # A link has no column of its own (Django 6.0 says None, earlier versions its name).
            entry = {"column": field.column, **entry}
        if field.related_model is not None:
            entry["to"] = field.related_model._meta.label_lower
        fields[field.name] = entry
    return fields


@functools.cache
def _graph() -> MigrationGraph:
    # The migration files do not change while the process runs; what is applied does.
    graph: MigrationGraph = MigrationLoader(None, ignore_no_migrations=True).graph
    return graph


def _applied(using: str) -> Applied | None:
    """The migrations applied on ``using``; None where Django does not record them."""
    recorder = MigrationRecorder(connections[using])
    if not recorder.has_table():
        return None
    return set(recorder.applied_migrations())


def _is_applied(key: tuple[str, str], applied: Applied) -> bool:
    if key in applied:
        return True
    # A squashed migration counts as applied once everything it replaces is.
    migration = _graph().nodes.get(key)
    replaces: list[tuple[str, str]] = getattr(migration, "replaces", None) or []
    return bool(replaces) and all(tuple(each) in applied for each in replaces)


def leaves(app: str, applied: Applied) -> list[str]:
    """The names of the applied migrations of ``app`` that no applied one of it follows."""
    graph = _graph()
    done = {key for key in graph.nodes if key[0] == app and _is_applied(key, applied)}
    return sorted(
        key[1] for key in done if not any(child in done for child in graph.node_map[key].children)
    )


@dataclass(frozen=True)
class Drift:
    """One difference between a dump's schema and this database's that a load goes on with.

    ``change`` is ``migrations_ahead`` (this database applied migrations the dump's source
    had not), ``migrations_skipped`` (the other way round, under --ignorenonexistent),
    ``field_not_in_dump`` (updated rows keep this database's values, new rows get the
    default), ``field_skipped`` (a dumped field this database lacks, under
    --ignorenonexistent), ``null_allowed``, ``column_renamed``, ``field_renamed`` (the
    dump's field ``detail`` is loaded as ``field``, see ``renames.py``) or ``model_renamed``
    (the dump's model ``detail`` is loaded as ``model``).
    """

    change: str
    app: str
    model: str | None = None
    field: str | None = None
    migrations: tuple[str, ...] = ()
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.model}.{self.field}" if self.field else self.model or self.app
        names = ", ".join(self.migrations)
        what = {
            "migrations_ahead": f"this database has applied {names}, which the dump's source"
            " had not",
            "migrations_skipped": f"the dump's source had applied {names}, which this database"
            " has not (--ignorenonexistent)",
            "field_not_in_dump": "not in the dump; rows it updates keep this database's values,"
            " new rows get the field's default",
            "field_skipped": "not on this database; the dump's values are skipped"
            " (--ignorenonexistent)",
            "null_allowed": "NULL is allowed here, not where the dump was made",
            "column_renamed": f"column {self.detail}",
            "field_renamed": f"loaded from the dump's '{self.detail}' (DATASET_SYNC_RENAMES)",
            "model_renamed": f"loaded from the dump's {self.detail} (DATASET_SYNC_MODEL_RENAMES)",
        }[self.change]
        return f"schema drift: {where}: {what}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "app": self.app,
            "model": self.model,
            "field": self.field,
            "migrations": list(self.migrations),
            "message": str(self),
        }


def compare(theirs: dict[str, Any], using: str, ignorenonexistent: bool) -> list[Drift]:
    """Compare a dump's schema record with this database (``using``) and its models.

    Returns the drift the load goes on with; raises SchemaDriftError, listing every
    problem, when the dump cannot load here. Reads the migration table, writes nothing.
    """
    drift: list[Drift] = []
    problems: list[tuple[str, str]] = []
    applied = _applied(using)
    for app, dumped in sorted(theirs["migrations"].items()):
        try:
            apps.get_app_config(app)
        except LookupError:
            problems.append((f"{app}: the app is not installed on this database", _APP))
            continue
        if applied is None:
            continue  # this database does not record migrations: the fields have to tell
        missing = tuple(name for name in dumped if not _is_applied((app, name), applied))
        if missing and ignorenonexistent:
            drift.append(Drift("migrations_skipped", app, migrations=missing))
        elif missing:
            names = ", ".join(missing)
            problems.append(
                (
                    f"{app}: the dump was made after migration {names}, which this database has"
                    " not applied",
                    _MIGRATION,
                )
            )
        elif ahead := tuple(name for name in leaves(app, applied) if name not in dumped):
            drift.append(Drift("migrations_ahead", app, migrations=ahead))
    for label, dumped_fields in sorted(theirs["models"].items()):
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            problems.append((f"{label}: the dump has this model, this database does not", _MODEL))
            continue
        _compare_model(model, dumped_fields, ignorenonexistent, drift, problems)
    if problems:
        behind = any(each.change == "migrations_skipped" for each in drift)
        raise SchemaDriftError(_message(problems, behind))
    return drift


def _compare_model(
    model: type[models.Model],
    dumped: dict[str, Fingerprint],
    ignorenonexistent: bool,
    drift: list[Drift],
    problems: list[tuple[str, str]],
) -> None:
    meta = model._meta
    label = meta.label_lower
    ours = fingerprint(model)
    renamed = _renamed_field(dumped, ours)
    for name, theirs in dumped.items():
        where = f"{label}.{name}"
        mine = ours.get(name)
        if mine is None:
            if ignorenonexistent:
                drift.append(Drift("field_skipped", meta.app_label, label, name))
            elif renamed is not None and renamed[0] == name:
                problems.append(
                    (
                        f"{where}: the dump has this field ({theirs['type']}), this database's"
                        f" model has '{renamed[1]}' instead (renamed? DATASET_SYNC_RENAMES ="
                        f" {{'{label}': {{'{name}': '{renamed[1]}'}}}})",
                        _RENAMED if _required(meta.get_field(renamed[1])) else _DUMP_ONLY,
                    )
                )
            else:
                problems.append(
                    (
                        f"{where}: the dump has this field ({theirs['type']}), this database's"
                        " model does not",
                        _DUMP_ONLY,
                    )
                )
        elif (mine["type"], mine.get("to")) != (theirs["type"], theirs.get("to")):
            problems.append(
                (
                    f"{where}: the dump has it as {_kind(theirs)}, this database as {_kind(mine)}",
                    _CHANGED,
                )
            )
        elif theirs["null"] and not mine["null"]:
            problems.append(
                (
                    f"{where}: NOT NULL on this database, but the dump's source allows NULL",
                    _CHANGED,
                )
            )
        else:
            if mine["null"] and not theirs["null"]:
                drift.append(Drift("null_allowed", meta.app_label, label, name))
            # A renamed field's fingerprint has no column (renames.py): the rename says it;
            # a link has none either.
            if "column" in theirs and "column" in mine and mine["column"] != theirs["column"]:
                detail = f"'{mine['column']}' here, '{theirs['column']}' where dumped"
                drift.append(Drift("column_renamed", meta.app_label, label, name, detail=detail))
    for name in [name for name in ours if name not in dumped]:
        field: Any = meta.get_field(name)
        if not _required(field):
            drift.append(Drift("field_not_in_dump", meta.app_label, label, name))
        elif renamed is not None and renamed[1] == name and not ignorenonexistent:
            pass  # the dump's field of the same kind names it above, as perhaps renamed
        else:
            problems.append(
                (
                    f"{label}.{name}: only this database has this field, and it is NOT NULL"
                    " without a default, so rows the dump creates could not be written",
                    _REQUIRED,
                )
            )


def _renamed_field(
    dumped: dict[str, Fingerprint], ours: dict[str, Fingerprint]
) -> tuple[str, str] | None:
    """(dumped name, name here) when the dump and this database each have one field the other
    lacks, of the same kind: most likely one field, renamed."""
    theirs_only = [name for name in dumped if name not in ours]
    ours_only = [name for name in ours if name not in dumped]
    if len(theirs_only) == 1 and len(ours_only) == 1:
        old, new = theirs_only[0], ours_only[0]
        if _kind(dumped[old]) == _kind(ours[new]):
            return old, new
    return None


def _required(field: Any) -> bool:
    """Whether a row cannot be inserted without a value for ``field``."""
    return not (field.many_to_many or field.null or field.has_default() or has_db_default(field))


def has_db_default(field: Any) -> bool:
    """Whether the database fills ``field`` in when an insert leaves it out (Django 5.0+)."""
    return getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED


def _kind(fingerprint: Fingerprint) -> str:
    to = fingerprint.get("to")
    return f"{fingerprint['type']} to {to}" if to else str(fingerprint["type"])


def _message(problems: list[tuple[str, str]], behind: bool) -> str:
    """What is wrong and what to do; ``behind``: the target lacks migrations of the dump's
    source that --ignorenonexistent let pass."""
    kinds = {kind for _problem, kind in problems}
    # Which side has to move: the target when it lacks migrations of the dump's source,
    # else the source, which is behind the target or was migrated differently.
    if behind or _MIGRATION in kinds:
        advice = ["migrate the target (manage.py migrate)"]
    else:
        advice = ["migrate the source as far as this database and dump again"]
        if kinds == {_REQUIRED}:
            advice.insert(0, "give the field a default (or db_default) on this database")
        # What this database lacks may have been renamed in the release it runs.
        renamed = [
            declaration
            for kind, declaration in (
                (_MODEL, "models renamed here in DATASET_SYNC_MODEL_RENAMES"),
                (_DUMP_ONLY, "fields renamed here in DATASET_SYNC_RENAMES"),
                (_RENAMED, "fields renamed here in DATASET_SYNC_RENAMES"),
            )
            if kind in kinds
        ]
        if renamed:
            advice.append(f"declare {' and '.join(dict.fromkeys(renamed))}")
    if kinds <= _SKIPPABLE:
        advice.append("load with --ignorenonexistent to skip what this database lacks")
    what = "; ".join(problem for problem, _kind in problems)
    todo = ", or ".join(advice)
    return f"the dump's schema does not fit this database's: {what}. {todo[0].upper()}{todo[1:]}."
