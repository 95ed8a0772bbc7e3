from __future__ import annotations

import pytest
from django.core import checks

from dataset_sync import registry


@pytest.fixture
def declare():
    """Register datasets for one test only."""
    saved = dict(registry._registered)
    yield lambda name, specs: registry.register(name)(lambda args: specs)
    registry._registered.clear()
    registry._registered.update(saved)


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
            "Dataset 'broken': Spec for testapp.tag has unknown keys delete; use defer_values,"
            " delete_missing, filter, ignore_missing_m2m, model, save_as_new.",
        )
    ]


def test_filter_on_a_missing_field(declare):
    declare("broken", [{"model": "testapp.tag", "filter": {"colour": "red"}}])
    [(check_id, message)] = errors()
    assert check_id == "dataset_sync.E004"
    assert message.startswith(
        "Dataset 'broken': the filter of testapp.tag is invalid: Cannot resolve keyword 'colour'"
    )


def test_datasets_needing_arguments_are_skipped(declare):
    def needs_arguments(args):
        raise ValueError("give me ids")

    registry.register("needs-args")(needs_arguments)
    assert errors() == []


def test_a_dataset_that_crashes(declare):
    def crashes(args):
        raise RuntimeError("boom")

    registry.register("crashes")(crashes)
    assert errors() == [("dataset_sync.E001", "Dataset 'crashes' raised RuntimeError: boom")]
