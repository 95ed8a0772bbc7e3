"""The load flags of specs: ignore_missing_m2m, defer_values, and the governing spec.

Also the multi-table inheritance check, which refuses an object that the target holds as
another child of the same parent row.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management.base import CommandError
from django.db import connections

from dataset_sync import Spec, dump, load
from dataset_sync.errors import InconsistentModelError, InvalidSpecError, LoadIntegrityError
from testapp.models import Article, Author, Event, Item, Question, Tag

from .conftest import WHEN, Statements, refused, rows, run

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


def dumped(tmp_path, specs, name="dump.json"):
    path = tmp_path / name
    dump(specs=specs, output=path)
    return path


def tagged_question(using="default"):
    """A question linked to the tags t1, t2 and t3 (pks 1, 2, 3)."""
    tags = [Tag.objects.using(using).create(pk=pk, name=f"t{pk}") for pk in (1, 2, 3)]
    author = Author.objects.using(using).create(pk=1, name="a", email="a@example.com")
    question = Question.objects.using(using).create(pk=1, author=author, text="q", pub_date=WHEN)
    question.tags.set(tags)
    return question


def target_tags():
    return sorted(Question.objects.using("target").get(pk=1).tags.values_list("name", flat=True))


def test_ignore_missing_m2m_drops_links_to_rows_the_target_lacks(tmp_path):
    tagged_question()
    path = dumped(
        tmp_path,
        [
            Spec("testapp.author"),
            Spec("testapp.question", ignore_missing_m2m=["tags"]),
        ],
    )
    Author.objects.using("target").create(pk=1, name="a", email="a@example.com")
    for pk in (1, 3):
        Tag.objects.using("target").create(pk=pk, name=f"t{pk}")

    load(path, using="target", trust_dump_specs=True)

    assert target_tags() == ["t1", "t3"]


def test_ignore_missing_m2m_drops_links_to_rows_the_load_deletes(tmp_path):
    """t3 exists when the links are written, and goes with delete_missing afterwards."""
    tagged_question()
    Tag.objects.filter(pk=3).delete()
    path = dumped(
        tmp_path,
        [
            Spec("testapp.tag", filter={"name__startswith": "x"}, delete_missing=True),
            Spec("testapp.author"),
            Spec("testapp.question", ignore_missing_m2m=["tags"]),
        ],
    )
    tagged_question("target")
    Tag.objects.using("target").filter(pk=3).update(name="x3")

    report = load(path, using="target", trust_dump_specs=True)

    assert target_tags() == ["t1", "t2"]
    assert report.counts["testapp.tag"].deleted == 1


def test_without_ignore_missing_m2m_a_link_to_a_missing_row_is_an_error(tmp_path):
    tagged_question()
    path = dumped(tmp_path, [Spec("testapp.author"), Spec("testapp.question")])
    Tag.objects.using("target").create(pk=1, name="t1")
    before = rows("target")

    with pytest.raises(LoadIntegrityError) as excinfo:
        load(path, using="target", trust_dump_specs=True)

    assert str(excinfo.value) == (
        f"{path}: testapp.question(pk=1): field 'tags' points at testapp.tag(pk=2), which is"
        " neither in the dump nor in the target database. Add testapp.tag to the dataset or"
        " create the row on the target first, or list 'tags' in the spec's ignore_missing_m2m"
        " to drop such links."
    )
    assert rows("target") == before


def test_flags_follow_the_spec_that_selected_each_object(tmp_path):
    """Two specs for questions: only the second one's objects may lose links."""
    tagged_question()
    second = Question.objects.create(pk=2, author_id=1, text="q2", pub_date=WHEN)
    second.tags.set([2])
    path = dumped(
        tmp_path,
        [
            Spec("testapp.author"),
            Spec("testapp.question", filter={"pk": 1}),
            Spec("testapp.question", filter={"pk": 2}, ignore_missing_m2m=["tags"]),
        ],
    )
    Author.objects.using("target").create(pk=1, name="a", email="a@example.com")
    Tag.objects.using("target").create(pk=1, name="t1")
    Tag.objects.using("target").create(pk=3, name="t3")
    before = rows("target")

    with pytest.raises(LoadIntegrityError) as excinfo:
        load(path, using="target", trust_dump_specs=True)

    assert str(excinfo.value) == (
        f"{path}: testapp.question(pk=1): field 'tags' points at testapp.tag(pk=2), which is"
        " neither in the dump nor in the target database. Add testapp.tag to the dataset or"
        " create the row on the target first, or list 'tags' in the spec's ignore_missing_m2m"
        " to drop such links."
    )
    assert rows("target") == before
    Question.objects.get(pk=1).tags.set([1, 3])
    path = dumped(
        tmp_path,
        [
            Spec("testapp.author"),
            Spec("testapp.question", filter={"pk": 1}),
            Spec("testapp.question", filter={"pk": 2}, ignore_missing_m2m=["tags"]),
        ],
        "second.json",
    )
    load(path, using="target", trust_dump_specs=True)
    assert target_tags() == ["t1", "t3"]
    assert list(Question.objects.using("target").get(pk=2).tags.all()) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"model": "testapp.question", "ignore_missing_m2m": ["author"]},
            "Spec for testapp.question: 'ignore_missing_m2m' names 'author', which is not a"
            " many-to-many field of testapp.question.",
        ),
        (
            {"model": "testapp.choice", "defer_values": ["votes"]},
            "Spec for testapp.choice: 'defer_values' names 'votes', which is not a text field"
            " of testapp.choice's own table; only text fields can hold the throwaway values.",
        ),
        (
            {"model": "testapp.article", "defer_values": ["title"]},
            "Spec for testapp.article: 'defer_values' names 'title', which is not a text field"
            " of testapp.article's own table; only text fields can hold the throwaway values.",
        ),
    ],
)
def test_flags_naming_fields_that_cannot_take_them_are_refused(tmp_path, spec, message):
    with pytest.raises(InvalidSpecError) as excinfo:
        dump(specs=[spec], output=tmp_path / "dump.json")
    assert str(excinfo.value) == message
    assert list(tmp_path.iterdir()) == []


def test_defer_values_loads_unique_values_freed_by_deletions(tmp_path):
    for pk, name in ((1, "abc"), (2, "def")):
        Tag.objects.create(pk=pk, name=name)
    spec = Spec("testapp.tag", delete_missing=True, defer_values=["name"])
    path = dumped(tmp_path, [spec])
    # On the target, abc was deleted and created again; xyz swapped names with def.
    Tag.objects.using("target").create(pk=2, name="xyz")
    Tag.objects.using("target").create(pk=3, name="abc")
    Tag.objects.using("target").create(pk=4, name="def")

    report = load(path, using="target", trust_dump_specs=True)

    assert rows("target")["testapp.tag"] == [(1, "abc"), (2, "def")]
    assert (report.counts["testapp.tag"].created, report.counts["testapp.tag"].updated) == (1, 1)
    assert report.counts["testapp.tag"].deleted == 2


def test_defer_values_writes_nothing_when_loaded_again(tmp_path):
    for pk, name in ((1, "abc"), (2, "def")):
        Tag.objects.create(pk=pk, name=name)
    path = dumped(tmp_path, [Spec("testapp.tag", delete_missing=True, defer_values=["name"])])
    load(path, using="target", trust_dump_specs=True)
    statements = Statements()

    with connections["target"].execute_wrapper(statements):
        report = load(path, using="target", trust_dump_specs=True)

    assert statements.writes() == []
    assert not report.changed


def test_deferred_value_held_by_a_row_outside_the_dataset_is_an_error(tmp_path):
    Tag.objects.create(pk=1, name="abc")
    path = dumped(
        tmp_path,
        [Spec("testapp.tag", filter={"pk": 1}, delete_missing=True, defer_values=["name"])],
    )
    Tag.objects.using("target").create(pk=2, name="abc")
    before = rows("target")

    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target", "--trust-dump-specs")

    assert str(excinfo.value) == (
        f"{path}: testapp.tag(pk=1): deferred field 'name' value 'abc' would duplicate"
        " testapp.tag(pk=2), which is still there after the deletions. Add that row to the"
        " dataset with delete_missing, or change it on the target."
    )
    assert rows("target") == before


def test_an_object_the_target_holds_as_another_child_is_refused(tmp_path):
    Article.objects.create(pk=1, title="article", body="text")
    path = dumped(tmp_path, [Spec("testapp.item", delete_missing=True), Spec("testapp.article")])
    Event.objects.using("target").create(pk=1, title="event", starts=dt.date(2026, 1, 1))
    before = rows("target")
    message = (
        f"{path}: testapp.article(pk=1) exists on the target as testapp.event(pk=1), another"
        " child of the same testapp.item row; loading it would make one object both. Delete"
        " that testapp.event on the target first."
    )

    refused(path, InconsistentModelError, message, before)


def test_a_parent_with_two_children_in_the_dump_is_loaded(tmp_path):
    """The dump itself says the item is both; that is the source's state, not a conflict."""
    article = Article.objects.create(pk=1, title="article", body="text")
    Event.objects.create(item_ptr=Item.objects.get(pk=article.pk), starts=dt.date(2026, 1, 1))
    path = dumped(tmp_path, [Spec("testapp.item"), Spec("testapp.article"), Spec("testapp.event")])
    Event.objects.using("target").create(pk=1, title="article", starts=dt.date(2025, 1, 1))

    load(path, using="target", trust_dump_specs=True)

    assert rows("target")["testapp.article"] == rows("default")["testapp.article"]
    assert rows("target")["testapp.event"] == rows("default")["testapp.event"]
