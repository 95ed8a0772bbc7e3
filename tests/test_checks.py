from __future__ import annotations

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
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
            " defer_values, delete_missing, filter, ignore_missing_m2m, model, save_as_new.",
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
        " defer_values, delete_missing, filter, ignore_missing_m2m, model, save_as_new."
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
