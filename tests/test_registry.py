"""The registry: declaring datasets in code or in settings, removing them, parsing and lookup."""

from __future__ import annotations

import pytest
from django.test import override_settings

from dataset_sync import (
    Spec,
    registry,
    specs_for_app_models,
    specs_for_derived_models,
    unregister,
)
from dataset_sync.errors import DatasetArgumentsError, InvalidSpecError, UnknownDatasetError
from testapp.models import Item

#: What testapp/datasets.py registers.
REGISTERED = [
    "accessories",
    "authors",
    "books",
    "comments",
    "everything",
    "gadgets",
    "items",
    "makers",
    "parts",
    "people",
    "questions",
    "section",
    "tree",
    "widgets",
]


def feincms3_datasets():
    """DATASET_SYNC_DATASETS in feincms3-data's shape: ``{name: {"specs": callable}}``."""
    return {
        "f3-tags": {"specs": lambda args: [{"model": "testapp.tag", "delete_missing": True}]},
        # A function that reads the database it is evaluated for.
        "f3-named": {
            "specs": lambda args, using: [
                {"model": "testapp.tag", "filter": {"name__in": [using, args]}}
            ]
        },
        # A setting wins over a registration of the same name.
        "tree": {"specs": lambda args: [{"model": "testapp.node"}]},
    }


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("authors", ("authors", "")), ("authors:1,2", ("authors", "1,2")), ("a:b:c", ("a", "b:c"))],
)
def test_parse_splits_name_and_arguments_at_the_first_colon(text, parsed):
    assert registry.parse(text) == parsed


def test_registered_dataset_is_found_with_its_specs(restore_registry):
    @restore_registry("tags")
    def tags(args):
        return [Spec("testapp.tag", filter={"name": args}), {"model": "testapp.category"}]

    assert registry.get_dataset("tags").specs("python") == [
        Spec("testapp.tag", filter={"name": "python"}),
        Spec("testapp.category"),
    ]


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(UnknownDatasetError) as excinfo:
        registry.get_dataset("nope")
    assert str(excinfo.value) == (
        "Unknown dataset 'nope'; known datasets: accessories, authors, books, comments,"
        " everything, gadgets, items, makers, parts, people, questions, section, tree,"
        " widgets."
    )


def test_unknown_dataset_when_none_are_registered(restore_registry):
    for name in registry.datasets():
        unregister(name)
    with pytest.raises(UnknownDatasetError) as excinfo:
        registry.get_dataset("nope")
    assert str(excinfo.value) == "Unknown dataset 'nope'; known datasets: none are registered."


def test_unregister_removes_a_registration_and_returns_it(restore_registry):
    def tags(args):
        return [Spec("testapp.tag")]

    scrub = {"testapp.tag": lambda obj: obj}
    restore_registry("tags", mappers=scrub)(tags)

    removed = unregister("tags")

    assert removed == registry.Dataset("tags", tags, scrub)
    assert "tags" not in registry.datasets()
    with pytest.raises(UnknownDatasetError) as excinfo:
        registry.get_dataset("tags")
    assert str(excinfo.value) == (
        "Unknown dataset 'tags'; known datasets: accessories, authors, books, comments,"
        " everything, gadgets, items, makers, parts, people, questions, section, tree,"
        " widgets."
    )


def test_unregister_removes_a_registration_of_a_datasets_module(restore_registry):
    # The datasets modules are imported first, so the registration does not come back.
    unregister("tree")
    assert sorted(registry.datasets()) == [name for name in REGISTERED if name != "tree"]


def test_a_removed_dataset_registers_again_as_it_was(restore_registry):
    removed = unregister("authors")
    restore_registry(removed.name, mappers=removed.mappers)(removed.specs_function)
    assert registry.get_dataset("authors") == removed


def test_unregistering_a_name_that_is_not_registered_is_an_error(restore_registry):
    with pytest.raises(UnknownDatasetError) as excinfo:
        unregister("nope")
    assert str(excinfo.value) == (
        "Cannot unregister dataset 'nope': it is not registered (registered datasets:"
        " accessories, authors, books, comments, everything, gadgets, items, makers, parts,"
        " people, questions, section, tree, widgets)."
    )
    assert sorted(registry.datasets()) == REGISTERED


@override_settings(DATASET_SYNC_DATASETS="tests.test_registry.feincms3_datasets")
def test_unregister_leaves_the_datasets_of_the_setting_alone(restore_registry):
    with pytest.raises(UnknownDatasetError) as excinfo:
        unregister("f3-tags")
    assert str(excinfo.value) == (
        "Cannot unregister dataset 'f3-tags': it is not registered (registered datasets:"
        " accessories, authors, books, comments, everything, gadgets, items, makers, parts,"
        " people, questions, section, tree, widgets)."
    )
    # The setting's 'tree' wins over the registration; unregistering removes only the latter.
    unregister("tree")
    assert registry.get_dataset("tree").specs() == [Spec("testapp.node")]
    assert "f3-tags" in registry.datasets()


def test_unregistering_when_none_are_registered(restore_registry):
    for name in registry.datasets():
        unregister(name)
    with pytest.raises(UnknownDatasetError) as excinfo:
        unregister("tree")
    assert str(excinfo.value) == (
        "Cannot unregister dataset 'tree': it is not registered (registered datasets: none)."
    )


def test_arguments_the_dataset_function_rejects():
    with pytest.raises(DatasetArgumentsError) as excinfo:
        registry.get_dataset("authors").specs("")
    assert str(excinfo.value) == (
        "Dataset 'authors' rejected the arguments '': expected comma separated author ids,"
        " e.g. authors:1,2. Check what follows 'authors:'."
    )


def test_invalid_spec_names_the_dataset(restore_registry):
    restore_registry("broken")(lambda args: [{"model": "testapp.tag", "delete": True}])
    with pytest.raises(InvalidSpecError) as excinfo:
        registry.get_dataset("broken").specs("")
    assert str(excinfo.value) == (
        "Dataset 'broken': Spec for testapp.tag has unknown keys delete; use allow_cascade,"
        " defer_values, delete_missing, filter, identity, ignore_missing_m2m,"
        " missing_references, model, rules, save_as_new."
    )


@override_settings(DATASET_SYNC_DATASETS="tests.test_registry.feincms3_datasets")
def test_datasets_setting_adds_feincms3_data_style_datasets():
    found = registry.datasets()
    assert found["f3-tags"].specs() == [Spec("testapp.tag", delete_missing=True)]
    assert found["tree"].specs() == [Spec("testapp.node")]
    assert "authors" in found


def test_spec_helpers_expand_to_one_spec_per_model():
    assert specs_for_derived_models(Item, {"delete_missing": True}) == [
        Spec("testapp.article", delete_missing=True),
        Spec("testapp.event", delete_missing=True),
    ]
    labels = [spec.model for spec in specs_for_app_models("testapp")]
    assert labels == [
        "testapp.category",
        "testapp.tag",
        "testapp.keyword",
        "testapp.author",
        "testapp.question",
        "testapp.choice",
        "testapp.review",
        "testapp.node",
        "testapp.item",
        "testapp.article",
        "testapp.event",
        "testapp.comment",
        "testapp.person",
        "testapp.publisher",
        "testapp.book",
        "testapp.novel",
        "testapp.reading",
        "testapp.section",
        "testapp.page",
        "testapp.revision",
        "testapp.pin",
    ]


@override_settings(DATASET_SYNC_DATASETS="tests.test_registry.feincms3_datasets")
def test_a_declared_function_that_takes_using_gets_the_database():
    assert registry.get_dataset("f3-named").specs("x", "target") == [
        Spec("testapp.tag", filter={"name__in": ["target", "x"]})
    ]
    assert registry.get_dataset("f3-named").specs("x") == [
        Spec("testapp.tag", filter={"name__in": ["default", "x"]})
    ]
    assert registry.get_dataset("f3-tags").reads_database is False
