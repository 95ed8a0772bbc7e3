"""System checks: broken dataset declarations show up in ``manage.py check``, not in cron.

dataset_sync.E001  a dataset cannot be evaluated without arguments for another reason
                   than rejecting the empty argument string (it raised an exception)
dataset_sync.E002  a spec names a model that is not installed
dataset_sync.E003  a spec has an unknown key, a value of the wrong shape, or a flag naming
                   a field that cannot take it
dataset_sync.E004  a spec's filter names a field the model does not have
dataset_sync.E005  save_as_new cannot be done as declared: a multi-table inheritance child
                   is copied without its parent row, or a delete_missing map names a model
                   that no spec copies
dataset_sync.E006  a data rule cannot be applied as declared: its key names no model or
                   field, its value is no rule, it does not fit the field (null on a field
                   that is not nullable, text on a number, any rule on a relation), it would
                   break a unique constraint, it needs Faker which is not installed, or two
                   specs of one model have different rules; or DATASET_SYNC_REQUIRE_RULES is
                   not True, False or a list of names
dataset_sync.W001  a text, email, IP, JSON or file field of a dataset's model has no data
                   rule and no keep, so it is dumped as it is
dataset_sync.E007  the same as W001, with DATASET_SYNC_RULES_STRICT set
dataset_sync.E008  an identity cannot work as declared: DATASET_SYNC_IDENTITIES names no
                   installed model or has a value of the wrong shape, identity fields are not
                   the base model's or no unique constraint covers them, a natural key
                   identity lacks natural_key() or get_by_natural_key(), or declarations of
                   one model differ
dataset_sync.E009  DATASET_SYNC_MODEL_RENAMES or DATASET_SYNC_RENAMES cannot work as
                   declared: it has the wrong shape, an old label is still a model, a new
                   label is no model, two models are renamed to one; or field renames name a
                   model that is not installed (or under its old label), a new name that is
                   no field of the model, or an old name the model still has
dataset_sync.E010  DATASET_SYNC_MAX_AGE is not a number of seconds or a timedelta
"""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import FieldError
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from dataset_sync import conf, renames
from dataset_sync.dump import rules
from dataset_sync.errors import DatasetArgumentsError, InvalidSpecError
from dataset_sync.identity import Identities
from dataset_sync.load.keys import parent_row_model
from dataset_sync.registry import Dataset, datasets
from dataset_sync.specs import Spec, to_spec


def register() -> None:
    checks.register(check_datasets)


def check_datasets(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Evaluate every dataset with its ``check_args`` and check the specs it returns.

    A dataset that needs arguments and was not given any to be checked with rejects the
    empty string; it is skipped, since only what can be checked without arguments is checked
    (DATASET_SYNC_RULES_STRICT makes its dumps refuse personal fields without rules instead).
    So is a dataset that reads a database not migrated yet: checks run before ``migrate``.
    """
    errors = _check_rules_settings() + _check_renames()
    project_identities = _check_identities("", [])
    errors.extend(project_identities)
    for name, dataset in sorted(datasets().items()):
        args = dataset.check_args
        try:
            if dataset.reads_database:
                raw_specs = list(dataset.specs_function(args, using=DEFAULT_DB_ALIAS))
            else:
                raw_specs = list(dataset.specs_function(args))
        except (ValueError, TypeError, LookupError, DatasetArgumentsError) as exc:
            if args:
                errors.append(
                    checks.Error(
                        f"Dataset '{name}' rejected its check_args {args!r}: {exc}",
                        hint="check_args are arguments the dataset accepts, such as"
                        " those of a dump that cron runs.",
                        id="dataset_sync.E001",
                    )
                )
            continue
        except DatabaseError:
            continue
        except Exception as exc:  # a check reports; it does not crash
            errors.append(
                checks.Error(
                    f"Dataset '{name}' raised {type(exc).__name__}: {exc}",
                    hint="A dataset function should raise only ValueError, TypeError or"
                    " LookupError, and only for arguments it rejects.",
                    id="dataset_sync.E001",
                )
            )
            continue
        spec_errors = [error for raw in raw_specs for error in _check_spec(name, raw)]
        errors.extend(spec_errors)
        if not spec_errors:
            specs = [to_spec(raw) for raw in raw_specs]
            errors.extend(_check_copies(name, specs))
            errors.extend(_check_rules(name, dataset, specs))
            if not project_identities:
                errors.extend(_check_identities(f"Dataset '{name}': ", specs))
    return errors


def _check_identities(prefix: str, specs: list[Spec]) -> list[checks.CheckMessage]:
    """Identities that cannot work: the project's (no specs), or a dataset's with them."""
    try:
        Identities.of(specs)
    except InvalidSpecError as exc:
        return [
            checks.Error(
                f"{prefix}{exc}",
                hint="Identities are 'natural_key', or fields of the base model that a unique"
                " constraint covers; every declaration of a model must agree.",
                id="dataset_sync.E008",
            )
        ]
    return []


def _check_renames() -> list[checks.CheckMessage]:
    """Renames a load could not apply: an old label or name must be gone from the model, and
    the new one there."""
    hint = (
        "DATASET_SYNC_MODEL_RENAMES maps old model labels to the labels here, and"
        " DATASET_SYNC_RENAMES labels here to {old field name: new field name}, for dumps"
        " written before the renames."
    )
    return [
        checks.Error(problem, hint=hint, id="dataset_sync.E009")
        for problem in renames.declared_problems()
    ]


def _check_rules_settings() -> list[checks.CheckMessage]:
    problems = rules.project_problems()
    try:
        conf.required_rules()
    except InvalidSpecError as exc:
        problems.append(str(exc))
    errors: list[checks.CheckMessage] = [
        checks.Error(problem, id="dataset_sync.E006") for problem in problems
    ]
    try:
        conf.max_age()
    except InvalidSpecError as exc:
        errors.append(checks.Error(str(exc), id="dataset_sync.E010"))
    return errors


def _check_rules(name: str, dataset: Dataset, specs: list[Spec]) -> list[checks.CheckMessage]:
    """Rules that cannot apply as declared, and personal fields that have no rule."""
    resolution = rules.resolve(specs, dataset.rules)
    errors: list[checks.CheckMessage] = [
        checks.Error(f"Dataset '{name}': {problem}", id="dataset_sync.E006")
        for problem in resolution.problems
    ]
    strict = conf.rules_strict()
    for label, field in resolution.unruled:
        message = (
            f"Dataset '{name}': {label}.{field.name} ({type(field).__name__}) has no data rule,"
            " so it is dumped as it is."
        )
        hint = (
            "Declare a rule for it in the spec's rules, the dataset's rules or"
            " DATASET_SYNC_RULES, or keep to dump it as it is on purpose."
        )
        if strict:
            errors.append(checks.Error(message, hint=hint, id="dataset_sync.E007"))
        else:
            errors.append(checks.Warning(message, hint=hint, id="dataset_sync.W001"))
    return errors


def _check_spec(name: str, raw: Any) -> list[checks.CheckMessage]:
    try:
        spec = to_spec(raw)
    except InvalidSpecError as exc:
        return [checks.Error(f"Dataset '{name}': {exc}", id="dataset_sync.E003")]
    try:
        model = spec.get_model()
    except InvalidSpecError as exc:
        return [
            checks.Error(
                f"Dataset '{name}': {exc}",
                hint="Use an 'app_label.model_name' label of an installed model.",
                id="dataset_sync.E002",
            )
        ]
    try:
        spec.check_flags()
    except InvalidSpecError as exc:
        return [checks.Error(f"Dataset '{name}': {exc}", id="dataset_sync.E003")]
    return _check_filter(name, spec, model)


def _check_copies(name: str, specs: list[Spec]) -> list[checks.CheckMessage]:
    """What would make a load of this dataset fail on save_as_new, whatever the rows."""
    copied = {spec.concrete_model() for spec in specs if spec.save_as_new}
    errors: list[checks.CheckMessage] = []
    for spec in specs:
        parent = parent_row_model(spec.concrete_model())
        if spec.save_as_new and parent is not None and parent not in copied:
            label = parent._meta.label_lower
            errors.append(
                checks.Error(
                    f"Dataset '{name}': {spec.model} is saved as new, but its {label} rows,"
                    " whose keys it shares, are not.",
                    hint=f"Add a {label} spec with save_as_new.",
                    id="dataset_sync.E005",
                )
            )
        for lookup, label in spec.delete_missing_map:
            if Spec(label).concrete_model() not in copied:
                errors.append(
                    checks.Error(
                        f"Dataset '{name}': the delete_missing map of {spec.model} rewrites"
                        f" '{lookup}' to new keys of {label}, which no spec saves as new.",
                        hint=f"Give the {label} spec save_as_new, or drop the map.",
                        id="dataset_sync.E005",
                    )
                )
    return errors


def _check_filter(name: str, spec: Spec, model: Any) -> list[checks.CheckMessage]:
    try:
        # Building the query resolves every lookup without running it.
        str(model._base_manager.filter(**spec.filter).query)
    except FieldError as exc:
        return [
            checks.Error(
                f"Dataset '{name}': the filter of {spec.model} is invalid: {exc}",
                id="dataset_sync.E004",
            )
        ]
    except (ValueError, TypeError):
        # A value of the wrong type for its field: only a real query can tell.
        return []
    return []
