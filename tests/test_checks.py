from __future__ import annotations

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connections
from django.test import override_settings

BROKEN = {
    "unknown-model": [{"model": "testapp.nothing"}],
    "unknown-key": [{"model": "testapp.tag", "delete": True}],
    "missing-field": [{"model": "testapp.tag", "filter": {"colour": "red"}}],
}


def broken_datasets():
    """DATASET_SYNC_DATASETS in feincms3-data's shape, with one mistake per dataset."""
    return {name: {"specs": lambda args, specs=specs: specs} for name, specs in BROKEN.items()}


@pytest.fixture
def declare(restore_registry):
    """Register datasets for one test only."""
    return lambda name, specs: restore_registry(name)(lambda args: specs)


def errors():
    return [
        (message.id, message.msg)
        for message in checks.run_checks()
        if message.id and message.id.startswith("dataset_sync.")
    ]


def test_declared_datasets_of_the_test_app_pass():
    assert errors() == []


def test_unknown_model(declare):
    declare("broken", [{"model": "testapp.nothing"}])
    assert errors() == [
        (
            "dataset_sync.E002",
            "Dataset 'broken': Spec model 'testapp.nothing' is not an installed model.",
        )
    ]


def test_unknown_key(declare):
    declare("broken", [{"model": "testapp.tag", "delete": True}])
    assert errors() == [
        (
            "dataset_sync.E003",
            "Dataset 'broken': Spec for testapp.tag has unknown keys delete; use allow_cascade,"
            " defer_values, delete_missing, filter, identity, ignore_missing_m2m,"
            " missing_references, model, rules, save_as_new.",
        )
    ]


def test_filter_on_a_missing_field(declare):
    declare("broken", [{"model": "testapp.tag", "filter": {"colour": "red"}}])
    [(check_id, message)] = errors()
    assert check_id == "dataset_sync.E004"
    assert message.startswith(
        "Dataset 'broken': the filter of testapp.tag is invalid: Cannot resolve keyword 'colour'"
    )


def test_datasets_needing_arguments_are_skipped(restore_registry):
    def needs_arguments(args):
        raise ValueError("give me ids")

    restore_registry("needs-args")(needs_arguments)
    assert errors() == []


def test_a_dataset_needing_arguments_is_checked_with_its_check_args(restore_registry):
    def by_ids(args):
        ids = [int(part) for part in args.split(",")]  # ValueError for ""
        return [{"model": "testapp.nothing", "filter": {"pk__in": ids}}]

    restore_registry("by-ids", check_args="1,2")(by_ids)
    assert errors() == [
        (
            "dataset_sync.E002",
            "Dataset 'by-ids': Spec model 'testapp.nothing' is not an installed model.",
        )
    ]


def test_check_args_the_dataset_rejects(restore_registry):
    def by_ids(args):
        return [{"model": "testapp.tag", "filter": {"pk__in": [int(args)]}}]

    restore_registry("by-ids", check_args="one")(by_ids)
    assert errors() == [
        (
            "dataset_sync.E001",
            "Dataset 'by-ids' rejected its check_args 'one': invalid literal for int() with"
            " base 10: 'one'",
        )
    ]


@pytest.mark.django_db
def test_a_dataset_reading_a_database_not_migrated_yet_is_skipped(restore_registry):
    """Checks run before migrate, when the tables a dataset reads may not exist."""

    def reads(args, using):
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT id FROM table_of_the_next_migration")
        return [{"model": "testapp.nothing"}]

    restore_registry("reads")(reads)
    assert errors() == []


def test_a_dataset_that_crashes(restore_registry):
    def crashes(args):
        raise RuntimeError("boom")

    restore_registry("crashes")(crashes)
    assert errors() == [("dataset_sync.E001", "Dataset 'crashes' raised RuntimeError: boom")]


@override_settings(DATASET_SYNC_DATASETS="tests.test_checks.broken_datasets")
def test_datasets_declared_in_settings_are_checked():
    # Datasets are checked in name order: missing-field, unknown-key, unknown-model.
    [(e004, missing_field), (e003, unknown_key), (e002, unknown_model)] = errors()
    assert (e002, e003, e004) == ("dataset_sync.E002", "dataset_sync.E003", "dataset_sync.E004")
    assert unknown_model == (
        "Dataset 'unknown-model': Spec model 'testapp.nothing' is not an installed model."
    )
    assert unknown_key == (
        "Dataset 'unknown-key': Spec for testapp.tag has unknown keys delete; use allow_cascade,"
        " defer_values, delete_missing, filter, identity, ignore_missing_m2m,"
        " missing_references, model, rules, save_as_new."
    )
    assert missing_field.startswith(
        "Dataset 'missing-field': the filter of testapp.tag is invalid: Cannot resolve keyword"
        " 'colour' into field."
    )


@override_settings(DATASET_SYNC_DATASETS="tests.test_checks.broken_datasets")
def test_check_command_fails_on_broken_datasets():
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check")
    message = str(excinfo.value)
    for check_id in ("dataset_sync.E002", "dataset_sync.E003", "dataset_sync.E004"):
        assert check_id in message
    assert "HINT: Use an 'app_label.model_name' label of an installed model." in message


def test_a_child_copied_without_its_parent_rows(declare):
    declare(
        "copies", [{"model": "testapp.item"}, {"model": "testapp.article", "save_as_new": True}]
    )
    assert errors() == [
        (
            "dataset_sync.E005",
            "Dataset 'copies': testapp.article is saved as new, but its testapp.item rows, whose"
            " keys it shares, are not.",
        )
    ]


def test_a_delete_missing_map_through_a_model_nothing_copies(declare):
    declare(
        "copies",
        [
            {"model": "testapp.question", "filter": {"pk__in": [1]}},
            {
                "model": "testapp.choice",
                "filter": {"question__in": [1]},
                "save_as_new": True,
                "delete_missing": {"map": [("question__in", "testapp.question")]},
            },
        ],
    )
    assert errors() == [
        (
            "dataset_sync.E005",
            "Dataset 'copies': the delete_missing map of testapp.choice rewrites 'question__in'"
            " to new keys of testapp.question, which no spec saves as new.",
        )
    ]


def test_a_delete_missing_map_naming_an_unknown_model(declare):
    declare(
        "copies",
        [
            {
                "model": "testapp.choice",
                "filter": {"question__in": [1]},
                "delete_missing": {"map": [("question__in", "testapp.gone")]},
            },
        ],
    )
    assert errors() == [
        (
            "dataset_sync.E003",
            "Dataset 'copies': Spec for testapp.choice: the delete_missing map names"
            " 'testapp.gone', which is not an installed model.",
        )
    ]


def test_copies_declared_consistently_pass(declare):
    declare(
        "copies",
        [
            {"model": "testapp.item", "save_as_new": True},
            {"model": "testapp.article", "save_as_new": True},
            {"model": "testapp.question", "filter": {"pk__in": [1]}, "save_as_new": True},
            {
                "model": "testapp.choice",
                "filter": {"question__in": [1]},
                "save_as_new": True,
                "delete_missing": {"map": [("question__in", "testapp.question")]},
            },
        ],
    )
    assert errors() == []


# Data rules


def about(name):
    """The dataset_sync messages about the dataset ``name``: id, message and hint."""
    return [
        (message.id, message.msg, message.hint)
        for message in checks.run_checks()
        if message.id and message.id.startswith("dataset_sync.")
        if message.msg.startswith(f"Dataset '{name}': ")
    ]


UNRULED_HINT = (
    "Declare a rule for it in the spec's rules, the dataset's rules or DATASET_SYNC_RULES, or"
    " keep to dump it as it is on purpose."
)


def test_personal_fields_without_a_rule_are_warned_about(declare, settings):
    settings.DATASET_SYNC_RULES = {"testapp.person.email": "unique_email"}
    declare("raw", [{"model": "testapp.person", "rules": {"name": "keep"}}])
    # Not the key, the date or the status, whose choices are not personal.
    assert about("raw") == [
        (
            "dataset_sync.W001",
            f"Dataset 'raw': testapp.person.{name} ({kind}) has no data rule, so it is dumped as"
            " it is.",
            UNRULED_HINT,
        )
        for name, kind in [
            ("phone", "CharField"),
            ("nickname", "CharField"),
            ("bio", "TextField"),
            ("ip", "GenericIPAddressField"),
            ("preferences", "JSONField"),
            ("avatar", "FileField"),
        ]
    ]


def test_strict_mode_makes_personal_fields_without_a_rule_errors(declare, settings):
    settings.DATASET_SYNC_RULES = {}
    settings.DATASET_SYNC_RULES_STRICT = True
    declare("raw", [{"model": "testapp.tag"}])
    assert about("raw") == [
        (
            "dataset_sync.E007",
            "Dataset 'raw': testapp.tag.name (CharField) has no data rule, so it is dumped as it"
            " is.",
            UNRULED_HINT,
        )
    ]
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check")
    assert "dataset_sync.E007" in str(excinfo.value)


def test_the_test_apps_people_have_a_rule_for_every_personal_field(settings):
    settings.DATASET_SYNC_RULES = {}
    settings.DATASET_SYNC_RULES_STRICT = True
    assert about("people") == []


def test_rules_that_cannot_apply(declare):
    declare("broken", [{"model": "testapp.person", "rules": {"email": "blank"}}])
    assert about("broken") == [
        (
            "dataset_sync.E006",
            "Dataset 'broken': testapp.person.email: rule 'blank' (the spec's rules) would break"
            " a unique constraint of the field, since its values repeat. Use hashed, a unique_*"
            " rule, null, keep or a custom rule there.",
            None,
        )
    ]


def test_dataset_rules_naming_a_missing_field(restore_registry):
    restore_registry("broken", rules={"testapp.tag.colour": "blank"})(
        lambda args: [{"model": "testapp.tag"}]
    )
    assert about("broken") == [
        (
            "dataset_sync.E006",
            "Dataset 'broken': the dataset's rules['testapp.tag.colour']: testapp.tag has no field"
            " 'colour'.",
            None,
        )
    ]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            ["name"],
            "Dataset 'broken': Spec for testapp.tag: 'rules' must be a dict of field names to"
            " rules, not ['name'].",
        ),
        (
            {"name": 3},
            "Dataset 'broken': Spec for testapp.tag: 'rules' entry 'name': 3 must map a field"
            " name to a rule, a rule name or a function.",
        ),
        (
            {"colour": "blank"},
            "Dataset 'broken': Spec for testapp.tag: 'rules' names 'colour', which is not a"
            " field of testapp.tag's own table.",
        ),
    ],
)
def test_malformed_spec_rules(declare, rules, message):
    declare("broken", [{"model": "testapp.tag", "rules": rules}])
    assert about("broken") == [("dataset_sync.E003", message, None)]


def test_malformed_rules_settings(settings):
    settings.DATASET_SYNC_RULES = ["email"]
    settings.DATASET_SYNC_REQUIRE_RULES = "people"
    assert [
        (check_id, message) for check_id, message in errors() if check_id == "dataset_sync.E006"
    ] == [
        (
            "dataset_sync.E006",
            "DATASET_SYNC_RULES must be a dict of fields to rules, not list.",
        ),
        (
            "dataset_sync.E006",
            "DATASET_SYNC_REQUIRE_RULES must be True, False or a list of dataset names, not"
            " 'people'.",
        ),
    ]


@pytest.mark.parametrize(
    ("identities", "message"),
    [
        (
            {"testapp.nothing": "slug"},
            "DATASET_SYNC_IDENTITIES names 'testapp.nothing', which is not an installed model.",
        ),
        (
            {"testapp.choice": "text"},
            "testapp.choice: identity (text) is not covered by a unique constraint, so several"
            " rows could have it. Add one (unique=True, unique_together or a UniqueConstraint"
            " without a condition), or choose other fields.",
        ),
        (
            {"testapp.tag": ["name", 3]},
            "DATASET_SYNC_IDENTITIES['testapp.tag']: identity ['name', 3] must be 'pk',"
            " 'natural_key', or a field name or list of field names that a unique constraint"
            " covers.",
        ),
        (
            ["testapp.tag"],
            "DATASET_SYNC_IDENTITIES must be a dict of model labels to identities, not"
            " ['testapp.tag'].",
        ),
        (
            {"testapp.tag": "natural_key"},
            "testapp.tag: identity natural_key needs Tag.natural_key() and its default"
            " manager's get_by_natural_key().",
        ),
    ],
)
def test_identities_of_the_project_that_cannot_work(settings, identities, message):
    settings.DATASET_SYNC_IDENTITIES = identities
    assert errors() == [("dataset_sync.E008", message)]


@pytest.mark.parametrize(
    ("specs", "check_id", "message"),
    [
        (
            [{"model": "testapp.novel", "identity": "genre"}],
            "dataset_sync.E003",
            "Dataset 'broken': testapp.book: identity field 'genre' is not a field of"
            " testapp.book's own table.",
        ),
        (
            [{"model": "testapp.tag", "identity": "name", "save_as_new": True}],
            "dataset_sync.E003",
            "Dataset 'broken': Spec for testapp.tag: save_as_new copies rows under new keys, and"
            " an identity matches them with rows on the target; declare one or the other.",
        ),
        (
            [{"model": "testapp.tag", "identity": "name"}, {"model": "testapp.keyword"}],
            None,
            None,
        ),
        (
            [
                {"model": "testapp.tag", "identity": "name"},
                {"model": "testapp.keyword", "identity": "pk"},
            ],
            "dataset_sync.E008",
            "Dataset 'broken': Spec for testapp.keyword: identity pk differs from (name),"
            " declared for testapp.tag elsewhere; every declaration of a model must agree.",
        ),
        (
            [{"model": "testapp.book", "identity": "title"}],
            "dataset_sync.E003",
            "Dataset 'broken': testapp.book: identity (title) is not covered by a unique"
            " constraint, so several rows could have it. Add one (unique=True, unique_together"
            " or a UniqueConstraint without a condition), or choose other fields.",
        ),
        (
            [{"model": "testapp.book", "missing_references": {"title": "keep"}}],
            "dataset_sync.E003",
            "Dataset 'broken': Spec for testapp.book: 'missing_references' names 'title',"
            " which is not a foreign key of testapp.book's own table.",
        ),
        (
            [{"model": "testapp.book", "missing_references": {"publisher": "set_null"}}],
            "dataset_sync.E003",
            "Dataset 'broken': Spec for testapp.book: 'missing_references' sets 'publisher' to"
            " NULL, but the field is not nullable; use 'refuse' or 'keep'.",
        ),
        (
            [{"model": "testapp.book", "missing_references": {"publisher": "ignore"}}],
            "dataset_sync.E003",
            "Dataset 'broken': Spec for testapp.book: 'missing_references' must map foreign key"
            " names to 'refuse', 'set_null', 'keep', not {'publisher': 'ignore'}.",
        ),
    ],
)
def test_identities_of_a_dataset_that_cannot_work(declare, specs, check_id, message):
    declare("broken", specs)
    assert errors() == ([(check_id, message)] if check_id else [])
