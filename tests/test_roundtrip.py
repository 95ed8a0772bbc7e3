"""The invariants of a round trip, for every dataset of the test app.

After ``load(dump(source, D))`` the rows of D on the target equal those on the source, field
by field and m2m included; the spec order does not matter; loading the same dump again
changes and writes nothing.
"""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connections

from dataset_sync import load, registry
from dataset_sync.registry import Dataset
from testapp.models import Article, Author, Choice, Comment, Event, Node, Question, Tag

from .conftest import (
    Statements,
    copy,
    dataset_state,
    make_everything,
    rows,
    shift_content_types,
)

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

DATASETS = ["authors", "questions", "tree", "items", "comments", "everything"]


def with_arguments(name: str) -> str:
    """The dataset ``name`` with arguments that select part of make_everything()'s rows."""
    if name == "authors":
        return "authors:1,2"
    if name == "questions":
        first, _second, third, _fourth = Question.objects.order_by("pk").values_list(
            "pk", flat=True
        )
        return f"questions:{first},{third}"
    return name


def change_source() -> None:
    """Edit, delete, create and re-link rows of every model on the source."""
    python, django = Tag.objects.get(name="python"), Tag.objects.get(name="django")
    first, second, *_rest = Question.objects.order_by("pk")
    Question.objects.filter(pk=first.pk).update(text="reworded")
    first.tags.set([django])
    second.tags.set([python])
    Choice.objects.filter(question=first).order_by("pk").first().delete()
    Choice.objects.create(question=second, text="new choice", votes=7)
    Author.objects.filter(pk=2).update(name="Renamed")
    Node.objects.filter(name="grandchild").delete()
    Node.objects.create(name="second child", parent=Node.objects.get(name="root"))
    Article.objects.update(body="changed")
    Event.objects.all().delete()
    Comment.objects.filter(text="on a node").delete()
    Comment.objects.create(
        content_type=ContentType.objects.get_for_model(Tag), object_id=python.pk, text="on a tag"
    )


@pytest.mark.parametrize("name", DATASETS)
def test_round_trip_into_an_empty_target_equals_the_source(tmp_path, name):
    make_everything()
    shift_content_types("target")
    dataset = with_arguments(name)

    load(copy(tmp_path, dataset), using="target")

    source = dataset_state(dataset, "default")
    assert source, "the dataset selects no rows, so this test proves nothing"
    assert dataset_state(dataset, "target") == source


@pytest.mark.parametrize("name", DATASETS)
def test_round_trip_onto_an_outdated_target_equals_the_source(tmp_path, name):
    make_everything()
    shift_content_types("target")
    dataset = with_arguments(name)
    load(copy(tmp_path, dataset, "first.json"), using="target")
    change_source()

    report = load(copy(tmp_path, dataset, "second.json"), using="target")

    assert report.changed
    assert dataset_state(dataset, "target") == dataset_state(dataset, "default")


@pytest.mark.parametrize("name", DATASETS)
def test_reversed_spec_order_loads_the_same_rows(tmp_path, name):
    make_everything()
    dataset = with_arguments(name)
    declared = registry.get_dataset(registry.parse(dataset)[0])
    args = registry.parse(dataset)[1]
    reversed_ = Dataset(declared.name, lambda _args: list(reversed(declared.specs(args))))

    # The reordered declaration is not the registered one: the dump's specs must be trusted.
    reversed_report = load(
        copy(tmp_path, reversed_, "reversed.json"), using="target", trust_dump_specs=True
    )
    reversed_rows = rows("target")
    assert dataset_state(dataset, "target") == dataset_state(dataset, "default")
    report = load(copy(tmp_path, dataset, "declared.json"), using="target")

    assert not report.changed
    assert rows("target") == reversed_rows
    created = {label: counts.created for label, counts in reversed_report.counts.items()}
    assert created == {label: counts.unchanged for label, counts in report.counts.items()}


@pytest.mark.parametrize("name", DATASETS)
def test_second_load_of_the_same_dump_changes_and_writes_nothing(tmp_path, name):
    make_everything()
    shift_content_types("target")
    path = copy(tmp_path, with_arguments(name))
    load(path, using="target")
    before = rows("target")
    statements = Statements()

    with connections["target"].execute_wrapper(statements):
        report = load(path, using="target")

    assert statements.sql, "the load ran no statements at all, so this test proves nothing"
    assert statements.writes() == []
    assert not report.changed
    assert rows("target") == before
    assert report.lines()[-1] == f"Nothing to change ({path})."
