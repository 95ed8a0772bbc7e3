"""load(): what gets created, updated, left alone and deleted, and what the report says."""

from __future__ import annotations

import datetime as dt
import gc
import json

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import CommandError
from django.db import connections
from django.db.models.signals import post_save, pre_save

from dataset_sync import Spec, dump, load
from dataset_sync.errors import DumpFormatError
from testapp.models import (
    Article,
    Author,
    Category,
    Choice,
    Comment,
    Event,
    Item,
    Node,
    Question,
    Review,
    Tag,
)

from .conftest import WHEN, copy, dataset_state, make_source, rows, run, summary

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


def test_load_deletes_rows_missing_from_dump_within_the_filter_only(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    # On the source, a choice of author 1 goes; on the target, author 3 has rows of its own,
    # and there are rows of models the dataset does not cover.
    gone = Choice.objects.filter(question__author=1).order_by("pk").first()
    gone.delete()
    outsider = Author.objects.using("target").create(pk=3, name="Stage", email="s@example.com")
    stage_question = Question.objects.using("target").create(
        author=outsider, text="stage only", pub_date=WHEN
    )
    Choice.objects.using("target").create(question=stage_question, text="stays")
    Node.objects.using("target").create(name="not in the dataset")
    Tag.objects.using("target").create(name="stage tag")
    outside = {
        label: rows("target")[label]
        for label in ("testapp.node", "testapp.tag", "testapp.item", "testapp.comment")
    }

    report = load(copy(tmp_path, "authors:1,2", "second.json"), using="target")

    assert not Choice.objects.using("target").filter(pk=gone.pk).exists()
    assert list(
        Choice.objects.using("target").filter(question=stage_question).values_list("text")
    ) == [("stays",)]
    assert Question.objects.using("target").filter(pk=stage_question.pk).exists()
    assert {label: rows("target")[label] for label in outside} == outside
    assert report.counts["testapp.choice"].deleted == 1
    assert report.counts["testapp.choice"].unchanged == 11
    assert report.counts["testapp.question"].deleted == 0
    assert report.counts["testapp.tag"].deleted == 0


def test_load_reports_and_performs_cascades_outside_the_dataset(tmp_path, restore_registry):
    restore_registry("authors-only")(
        lambda args: [Spec("testapp.author", filter={"pk__lte": 3}, delete_missing=True)]
    )
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    # Author 3 exists only on the target, with a question (outside the dataset) and choices.
    stage = Author.objects.using("target").create(pk=3, name="Stage", email="s@example.com")
    question = Question.objects.using("target").create(
        author=stage, text="goes with its author", pub_date=WHEN
    )
    for text in ("a", "b"):
        Choice.objects.using("target").create(question=question, text=text)
    path = copy(tmp_path, "authors-only")
    before = rows("target")
    expected = [
        "testapp.author: 0 created, 0 updated, 2 unchanged, 1 deleted",
        "testapp.choice: 0 created, 0 updated, 0 unchanged, 0 deleted, 2 deleted by cascade",
        "testapp.question: 0 created, 0 updated, 0 unchanged, 0 deleted, 1 deleted by cascade",
    ]
    refusal = (
        f"{path}: deleting the rows missing from the dump (starting with testapp.author(pk=3))"
        " would cascade to rows outside the dataset: 2 testapp.choice, 1 testapp.question."
        " Add those models to the dataset, or allow it with --allow-cascade or the spec's"
        " allow_cascade."
    )

    for options in ((), ("--dry-run",)):
        with pytest.raises(CommandError) as excinfo:
            run("loaddata-spec", str(path), "--database", "target", *options)
        assert (str(excinfo.value), excinfo.value.returncode) == (refusal, 5)
        assert rows("target") == before

    out, _err = run(
        "loaddata-spec", str(path), "--database", "target", "--allow-cascade", "--dry-run"
    )

    assert summary(out)[0] == [
        *expected,
        f"Would change 4 rows ({path}); dry run, nothing was written.",
    ]
    assert rows("target") == before

    out, _err = run("loaddata-spec", str(path), "--database", "target", "--allow-cascade")

    assert summary(out)[0] == [*expected, f"Changed 4 rows ({path})."]
    assert not Author.objects.using("target").filter(pk=3).exists()
    assert not Question.objects.using("target").filter(pk=question.pk).exists()
    assert Choice.objects.using("target").filter(question=question.pk).count() == 0
    assert Question.objects.using("target").count() == 4


def test_load_updates_changed_rows_and_counts_equal_rows_unchanged(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    question, choice = Question.objects.order_by("pk")[0], Choice.objects.order_by("pk")[0]
    Question.objects.filter(pk=question.pk).update(text="reworded")
    Choice.objects.filter(pk=choice.pk).update(votes=99, score="7.50")

    report = load(copy(tmp_path, "authors:1,2", "second.json"), using="target")

    assert Question.objects.using("target").get(pk=question.pk).text == "reworded"
    target_choice = Choice.objects.using("target").get(pk=choice.pk)
    assert (target_choice.votes, str(target_choice.score)) == (99, "7.50")
    assert report.counts["testapp.question"].updated == 1
    assert report.counts["testapp.question"].unchanged == 3
    assert report.counts["testapp.choice"].updated == 1
    assert report.counts["testapp.choice"].unchanged == 11
    assert report.counts["testapp.author"].unchanged == 2


def test_load_sets_many_to_many_links_to_exactly_the_dumps(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    python, django = Tag.objects.get(name="python"), Tag.objects.get(name="django")
    first, second, third = Question.objects.order_by("pk")[:3]
    first.tags.set([django])  # python removed, django added
    second.tags.set([])  # both removed
    third.tags.set([python, django])  # django added

    report = load(copy(tmp_path, "authors:1,2", "second.json"), using="target")

    target = Question.objects.using("target")
    for question in (first, second, third):
        assert set(target.get(pk=question.pk).tags.values_list("pk", flat=True)) == set(
            question.tags.values_list("pk", flat=True)
        )
    assert report.counts["testapp.question"].updated == 3
    assert report.counts["testapp.question"].unchanged == 1


def test_unique_values_swapped_between_rows_are_loaded(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    Author.objects.filter(pk=1).update(email="swap@example.com")
    Author.objects.filter(pk=2).update(email="a1@example.com")
    Author.objects.filter(pk=1).update(email="a2@example.com")
    review = Review.objects.filter(author=1).order_by("pk").first()

    report = load(copy(tmp_path, "authors:1,2", "second.json"), using="target")

    assert dataset_state("authors:1,2", "target") == dataset_state("authors:1,2", "default")
    # The rows pointing at the authors still do.
    assert Review.objects.using("target").get(pk=review.pk).author_id == 1
    assert report.counts["testapp.author"].updated == 2
    assert report.counts["testapp.author"].created == 0


def test_unique_values_shifted_across_batches_are_loaded(tmp_path, settings):
    settings.DATASET_SYNC_BATCH_SIZE = 1
    for name in ("a", "b", "c"):
        Tag.objects.create(name=name)
    load(copy(tmp_path, "everything", "first.json"), using="target")
    # a -> b -> c -> a: each row needs the value of the next batch's row.
    first, second, third = Tag.objects.order_by("pk")
    for tag, name in ((first, "x"), (third, "a"), (second, "c"), (first, "b")):
        Tag.objects.filter(pk=tag.pk).update(name=name)

    report = load(copy(tmp_path, "everything", "second.json"), using="target")

    assert rows("target")["testapp.tag"] == rows("default")["testapp.tag"]
    assert report.counts["testapp.tag"].updated == 3


def test_row_recreated_with_the_same_unique_value_replaces_the_stale_one(tmp_path):
    make_source()
    load(copy(tmp_path, "everything", "first.json"), using="target")
    old = Tag.objects.get(name="django")
    old.delete()
    new = Tag.objects.create(name="django")
    Question.objects.order_by("pk").first().tags.add(new)

    report = load(copy(tmp_path, "everything", "second.json"), using="target")

    assert list(Tag.objects.using("target").filter(name="django").values_list("pk")) == [(new.pk,)]
    assert dataset_state("everything", "target") == dataset_state("everything", "default")
    assert report.counts["testapp.tag"].created == 1
    assert report.counts["testapp.tag"].deleted == 1


def test_row_is_reparented_before_its_old_parent_is_deleted(tmp_path):
    root = Node.objects.create(name="root")
    child = Node.objects.create(name="child", parent=root)
    Node.objects.create(name="grandchild", parent=child)
    load(copy(tmp_path, "tree", "first.json"), using="target")
    new_root = Node.objects.create(name="new root")
    Node.objects.filter(pk=child.pk).update(parent=new_root)
    root.delete()

    report = load(copy(tmp_path, "tree", "second.json"), using="target")

    assert rows("target")["testapp.node"] == rows("default")["testapp.node"]
    assert (report.counts["testapp.node"].deleted, report.counts["testapp.node"].cascaded) == (1, 0)


def test_multi_table_inheritance_children_are_updated_and_deleted(tmp_path):
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
    assert report.counts["testapp.item"].deleted == 1


def test_generic_foreign_keys_follow_content_types_by_natural_key(tmp_path):
    node = Node.objects.create(name="commented")
    Comment.objects.create(
        content_type=ContentType.objects.get_for_model(Node), object_id=node.pk, text="hi"
    )
    target_types = ContentType.objects.db_manager("target")
    target_types.get(app_label="testapp", model="node").delete()
    moved = target_types.create(app_label="testapp", model="node")
    target_types.clear_cache()
    assert moved.pk != ContentType.objects.get_for_model(Node).pk

    load(copy(tmp_path, "comments"), using="target")

    comment = Comment.objects.using("target").get()
    assert (comment.content_type_id, comment.object_id, comment.text) == (moved.pk, node.pk, "hi")


def comment_fields(number, using):
    node_type = ContentType.objects.db_manager(using).get_for_model(Node)
    return {"content_type": node_type, "object_id": number, "text": f"comment {number}"}


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (Tag, lambda number, using: {"name": f"tag {number}"}),
        (Category, lambda number, using: {"name": f"category {number}"}),
        (Author, lambda number, using: {"name": "a", "email": f"{number}@example.com"}),
        (Node, lambda number, using: {"name": f"node {number}"}),
        (Item, lambda number, using: {"title": f"item {number}"}),
        (Article, lambda number, using: {"title": f"article {number}", "body": "b"}),
        (Comment, comment_fields),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_sequences_are_reset_so_new_rows_do_not_collide(tmp_path, model, fields):
    # The source's rows get the pks the target's sequence would hand out next.
    probe = model.objects.using("target").create(**fields(0, "target"))
    model.objects.using("target").filter(pk=probe.pk).delete()
    for offset in (1, 2, 3):
        model.objects.create(pk=probe.pk + offset, **fields(offset, "default"))
    load(copy(tmp_path, "everything"), using="target")

    created = model.objects.using("target").create(**fields(4, "target"))

    assert created.pk > probe.pk + 3


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
    report = load(path, using="target", trust_dump_specs=True)
    assert report.counts["testapp.question"].created == 4
    assert Question.objects.using("target").count() == 4


@pytest.fixture
def saves():
    """The pre_save and post_save signals sent for the target while a test runs."""
    received = []

    def record(signal, sender, instance, raw, using, **kwargs):
        if using != "target":
            return
        name = "pre_save" if signal is pre_save else "post_save"
        # What the row holds in the database when the signal is sent.
        stored = sender._base_manager.using(using).filter(pk=instance.pk).values_list().first()
        received.append((name, sender._meta.label_lower, instance.pk, raw, kwargs.get("created")))
        received_rows.append((instance, stored))

    received_rows = []
    pre_save.connect(record, weak=False, dispatch_uid="test-saves")
    post_save.connect(record, weak=False, dispatch_uid="test-saves")
    yield received, received_rows
    pre_save.disconnect(dispatch_uid="test-saves")
    post_save.disconnect(dispatch_uid="test-saves")


def test_load_sends_no_save_signals_by_default(tmp_path, saves):
    received, _rows = saves
    make_source()
    load(copy(tmp_path, "authors:1,2"), using="target")
    assert received == []


def test_load_with_signals_sends_raw_saves_for_each_written_row(tmp_path, saves):
    received, received_rows = saves
    make_source()
    path = copy(tmp_path, "authors:1,2", "first.json")
    objects = [(obj["model"], obj["pk"]) for obj in json.loads(path.read_text())["objects"]]

    load(path, using="target", signals=True)

    assert sorted(received) == sorted(
        (name, label, pk, True, created)
        for label, pk in objects
        for name, created in (("pre_save", None), ("post_save", True))
    )
    # pre_save comes before the row is written, post_save after.
    assert all(
        (stored is None) == (name == "pre_save")
        for (name, *_rest), (_instance, stored) in zip(received, received_rows, strict=True)
    )

    received.clear()
    received_rows.clear()
    first, second = Question.objects.order_by("pk")[:2]
    Question.objects.filter(pk=first.pk).update(text="reworded")
    second.tags.clear()
    load(copy(tmp_path, "authors:1,2", "second.json"), using="target", signals=True)

    assert sorted(received) == sorted(
        (name, "testapp.question", pk, True, created)
        for pk in (first.pk, second.pk)
        for name, created in (("pre_save", None), ("post_save", False))
    )
    texts = {
        (name, instance.pk): (instance.text, stored[3])
        for (name, *_rest), (instance, stored) in zip(received, received_rows, strict=True)
    }
    assert texts[("pre_save", first.pk)] == ("reworded", "Q1.0")
    assert texts[("post_save", first.pk)] == ("reworded", "reworded")


def test_delete_missing_on_a_proxy_spec_keeps_the_dumped_rows(tmp_path):
    """A proxy's rows are its concrete model's: dumped ones stay, missing ones go."""
    for pk, name in ((1, "python"), (2, "django")):
        Tag.objects.create(pk=pk, name=name)
    path = tmp_path / "dump.json"
    dump(specs=[Spec("testapp.keyword", delete_missing=True)], output=path)
    for pk, name in ((1, "python"), (2, "django"), (3, "stale")):
        Tag.objects.using("target").create(pk=pk, name=name)

    report = load(path, using="target", trust_dump_specs=True)

    assert rows("target")["testapp.tag"] == [(1, "python"), (2, "django")]
    assert report.counts["testapp.tag"].deleted == 1


def test_load_leaves_the_garbage_collector_running_even_when_it_fails(tmp_path):
    make_source()
    load(copy(tmp_path, "authors:1,2"), using="target")
    assert gc.isenabled()
    with pytest.raises(DumpFormatError):
        load(tmp_path / "missing.json", using="target")
    assert gc.isenabled()


def raise_sequence(model, using, value):
    """Move the target's key sequence of ``model`` up, as a team does to keep its own rows'
    keys clear of the source's."""
    connection = connections[using]
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, value])
        elif connection.vendor == "mysql":
            cursor.execute(
                f"ALTER TABLE {connection.ops.quote_name(table)} AUTO_INCREMENT = {value}"
            )
        else:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
            cursor.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, value]
            )


def test_sequences_are_never_lowered(tmp_path):
    Tag.objects.create(pk=5, name="from the source")
    raise_sequence(Tag, "target", 1_000_000)

    report = load(copy(tmp_path, "everything"), using="target")
    created = Tag.objects.using("target").create(name="stage's own")

    assert report.counts["testapp.tag"].created == 1
    assert created.pk >= 1_000_000
