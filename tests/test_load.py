from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connections

from dataset_sync import Spec, dump, load
from dataset_sync.registry import Dataset
from testapp.models import (
    Article,
    Author,
    Choice,
    Comment,
    Event,
    Item,
    Node,
    Question,
    Tag,
)

from .conftest import WHEN, make_source, rows, run

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


def copy(tmp_path, dataset: str, name: str = "dump.json"):
    """Dump ``dataset`` from the source into a file; return its path."""
    path = tmp_path / name
    dump(dataset, output=path)
    return path


class Statements:
    """Records the SQL a database connection runs."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        self.sql.append(sql)
        return execute(sql, params, many, context)

    def writes(self) -> list[str]:
        verbs = ("INSERT", "UPDATE", "DELETE", "REPLACE")
        return [sql for sql in self.sql if sql.lstrip().upper().startswith(verbs)]


def test_load_deletes_rows_missing_from_dump_within_the_filter_only(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    # On the source, a choice of author 1 goes; on the target, author 3 has rows of its own.
    gone = Choice.objects.filter(question__author=1).order_by("pk").first()
    gone.delete()
    outsider = Author.objects.using("target").create(pk=3, name="Stage", email="s@example.com")
    stage_question = Question.objects.using("target").create(
        author=outsider, text="stage only", pub_date=WHEN
    )
    Choice.objects.using("target").create(question=stage_question, text="stays")

    report = load(copy(tmp_path, "authors:1,2", "second.json"), using="target")

    assert not Choice.objects.using("target").filter(pk=gone.pk).exists()
    assert Choice.objects.using("target").filter(question=stage_question).count() == 1
    assert Question.objects.using("target").filter(pk=stage_question.pk).exists()
    assert report.counts["testapp.choice"].deleted == 1
    assert report.counts["testapp.question"].deleted == 0


def test_load_updates_changed_rows_and_leaves_equal_rows_alone(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    question, choice = Question.objects.first(), Choice.objects.first()
    Question.objects.filter(pk=question.pk).update(text="reworded")
    Choice.objects.filter(pk=choice.pk).update(votes=99)

    report = load(copy(tmp_path, "authors:1,2", "second.json"), using="target")

    assert Question.objects.using("target").get(pk=question.pk).text == "reworded"
    assert Choice.objects.using("target").get(pk=choice.pk).votes == 99
    assert report.counts["testapp.question"].updated == 1
    assert report.counts["testapp.question"].unchanged == 3
    assert report.counts["testapp.choice"].updated == 1
    assert report.counts["testapp.choice"].unchanged == 11


def test_load_sets_many_to_many_links_to_exactly_the_dumps(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    python, django = Tag.objects.get(name="python"), Tag.objects.get(name="django")
    first, second = Question.objects.order_by("pk")[:2]
    first.tags.set([django])
    second.tags.set([])

    report = load(copy(tmp_path, "authors:1,2", "second.json"), using="target")

    target = Question.objects.using("target")
    assert list(target.get(pk=first.pk).tags.values_list("pk", flat=True)) == [django.pk]
    assert list(target.get(pk=second.pk).tags.values_list("pk", flat=True)) == []
    assert python.pk not in set(target.get(pk=first.pk).tags.values_list("pk", flat=True))
    assert report.counts["testapp.question"].updated == 2


def test_second_load_of_the_same_dump_writes_nothing(tmp_path):
    make_source()
    path = copy(tmp_path, "authors:1,2")
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


def test_spec_order_does_not_matter(tmp_path):
    make_source()
    dataset = Dataset(
        "authors",
        lambda args: [
            Spec("testapp.author", filter={"pk__in": [1, 2]}),
            Spec("testapp.tag"),
            Spec("testapp.category"),
            Spec("testapp.question", filter={"author__in": [1, 2]}, delete_missing=True),
            Spec("testapp.review", filter={"question__author__in": [1, 2]}, delete_missing=True),
            Spec("testapp.choice", filter={"question__author__in": [1, 2]}, delete_missing=True),
        ],
    )
    parents_first = tmp_path / "parents-first.json"
    dump(dataset, output=parents_first)
    load(parents_first, using="target")
    parents_first_rows = rows("target")
    for model in (Choice, Question, Author, Tag):
        model.objects.using("target").all().delete()

    load(copy(tmp_path, "authors:1,2", "children-first.json"), using="target")

    assert rows("target") == parents_first_rows


def test_dry_run_reports_the_plan_and_writes_nothing(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    Question.objects.order_by("pk").first().delete()  # cascades to its choices and reviews
    before = rows("target")

    report = load(copy(tmp_path, "authors:1,2", "second.json"), using="target", dry_run=True)

    assert rows("target") == before
    assert report.counts["testapp.question"].deleted == 1
    assert report.counts["testapp.choice"].deleted == 3
    assert report.lines()[-1].endswith("; dry run, nothing was written.")


def test_deletion_cascades_are_counted(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    question = Question.objects.order_by("pk").first()
    # Deleting the question on the source; on the target its review and choices cascade.
    Question.objects.filter(pk=question.pk).delete()
    Author.objects.using("target").create(pk=9, name="Other", email="o@example.com")
    report = load(copy(tmp_path, "authors:1,2", "second.json"), using="target")
    assert report.counts["testapp.question"].deleted == 1
    assert report.counts["testapp.choice"].deleted + report.counts["testapp.choice"].cascaded == 3
    assert not Choice.objects.using("target").filter(question=question.pk).exists()
    assert Author.objects.using("target").filter(pk=9).exists()


def test_self_referencing_tree_round_trips_and_loses_stale_branches(tmp_path):
    root = Node.objects.create(name="root", data={"depth": 0})
    child = Node.objects.create(name="child", parent=root)
    Node.objects.create(name="grandchild", parent=child, data=[1, 2])
    load(copy(tmp_path, "tree", "first.json"), using="target")
    Node.objects.filter(name="grandchild").delete()
    Node.objects.create(name="second child", parent=root)

    load(copy(tmp_path, "tree", "second.json"), using="target")

    assert rows("target")["testapp.node"] == rows("default")["testapp.node"]


def test_multi_table_inheritance_round_trips(tmp_path):
    Article.objects.create(title="article", body="text")
    Event.objects.create(title="event", starts=dt.date(2026, 12, 24))
    Item.objects.create(title="plain item")
    load(copy(tmp_path, "items", "first.json"), using="target")
    Article.objects.update(body="changed")
    Event.objects.all().delete()

    report = load(copy(tmp_path, "items", "second.json"), using="target")

    for label in ("testapp.item", "testapp.article", "testapp.event"):
        assert rows("target")[label] == rows("default")[label]
    assert report.counts["testapp.article"].updated == 1
    assert report.counts["testapp.event"].deleted == 1


def test_generic_foreign_keys_follow_content_types_by_natural_key(tmp_path):
    node = Node.objects.create(name="commented")
    Comment.objects.create(
        content_type=ContentType.objects.get_for_model(Node), object_id=node.pk, text="hi"
    )
    # Shift the target's content type ids so that equal ids would point at the wrong model.
    target_types = ContentType.objects.db_manager("target")
    target_types.clear_cache()
    stale = target_types.get(app_label="testapp", model="node")
    stale.delete()
    moved = target_types.create(app_label="testapp", model="node")
    assert moved.pk != ContentType.objects.get_for_model(Node).pk

    load(copy(tmp_path, "comments"), using="target")

    comment = Comment.objects.using("target").get()
    assert comment.content_type_id == moved.pk
    assert comment.text == "hi"


def test_sequences_are_reset_so_new_rows_do_not_collide(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2"), using="target")
    highest = Question.objects.order_by("-pk").first().pk
    created = Question.objects.using("target").create(author_id=1, text="new", pub_date=WHEN)
    assert created.pk > highest


def test_several_dumps_load_in_one_transaction(tmp_path):
    make_source()
    Node.objects.create(name="root")
    report = load(
        copy(tmp_path, "authors:1", "a.json"), copy(tmp_path, "tree", "b.json"), using="target"
    )
    assert report.counts["testapp.node"].created == 1
    assert report.counts["testapp.question"].created == 2


def test_several_specs_for_one_model_write_each_object_once(tmp_path):
    make_source()
    path = tmp_path / "dump.json"
    summary = dump(
        specs=[
            Spec("testapp.author"),
            Spec("testapp.category"),
            Spec("testapp.tag"),
            Spec("testapp.question", filter={"author": 1}, delete_missing=True),
            Spec("testapp.question", filter={"text__startswith": "Q"}),
        ],
        output=path,
    )
    assert summary.counts == [2, 1, 2, 2, 4]  # the questions of author 1 are in both specs
    report = load(path, using="target")
    assert report.counts["testapp.question"].created == 4
    assert Question.objects.using("target").count() == 4


def test_dry_run_shows_rows_outside_the_dataset_that_a_deletion_cascades_to(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    path = tmp_path / "authors.json"
    dump(specs=[Spec("testapp.author", delete_missing=True)], output=path)
    Author.objects.using("target").create(pk=3, name="Gone", email="gone@example.com")
    Question.objects.using("target").create(
        author_id=3, text="takes the author along", pub_date=WHEN
    )
    before = rows("target")

    out, _err = run("loaddata-spec", str(path), "--database", "target", "--dry-run")

    assert "testapp.author: 0 created, 0 updated, 2 unchanged, 1 deleted" in out.splitlines()
    assert (
        "testapp.question: 0 created, 0 updated, 0 unchanged, 0 deleted, 1 deleted by cascade"
        in out.splitlines()
    )
    assert rows("target") == before
