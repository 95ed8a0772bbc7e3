"""A load writes only what the target's dataset selects, and shows every row it changes
outside it.

The attacks are forged dumps of ``authors:1`` that keep the real header and specs and a
trailer that matches their objects, as anyone can write without a signing key.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import CommandError
from django.db import connections

from dataset_sync import Spec, load
from dataset_sync.errors import (
    DeletionGuardError,
    DumpFormatError,
    OutsideDatasetError,
    SchemaMismatchError,
)
from testapp.models import Author, Choice, Page, Question, Revision, Section, Tag

from .conftest import (
    WHEN,
    Statements,
    copy,
    dataset_state,
    make_source,
    object_lines,
    retrailer,
    rows,
    run,
)

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


@pytest.fixture
def stage(tmp_path):
    """The target holds authors 1 and 2 as the source does, and its own author 3 with a
    question and two choices; returns the dump of ``authors:1`` and author 3's question."""
    make_source()
    load(copy(tmp_path, "authors:1,2", "initial.json"), using="target")
    author = Author.objects.using("target").create(pk=3, name="Stage", email="s@example.com")
    question = Question.objects.using("target").create(author=author, text="q", pub_date=WHEN)
    for text in ("a", "b"):
        Choice.objects.using("target").create(question=question, text=text)
    return copy(tmp_path, "authors:1"), question


def forged(path, *objects, replace=None):
    """``path`` with ``objects`` added to the run of their model's spec (the last spec's when
    no spec names it), and the trailer recomputed; ``replace`` then edits every object."""
    lines = path.read_bytes().splitlines(keepends=True)
    header = json.loads(lines[0].rstrip(b"\n")[: -len(b', "objects": [')] + b"}")
    trailer = json.loads(b"{" + lines[-1][3:])
    runs, start = [], 0
    parsed = [json.loads(line) for line in object_lines(lines)]
    for count in trailer["spec_counts"]:
        runs.append(parsed[start : start + count])
        start += count
    models = [spec["model"] for spec in header["specs"]]
    for obj in objects:
        runs[models.index(obj["model"]) if obj["model"] in models else -1].append(obj)
    if replace:
        runs = [[replace(obj) for obj in run] for run in runs]
    encoded = [json.dumps(obj).encode() for run in runs for obj in run]
    data = retrailer(lines, encoded)
    lines = data.splitlines(keepends=True)
    trailer = json.loads(b"{" + lines[-1][3:])
    trailer["spec_counts"] = [len(run) for run in runs]
    path = path.with_name(f"forged-{path.name}")
    path.write_bytes(b"".join(lines[:-1]) + b"], " + json.dumps(trailer)[1:].encode() + b"\n")
    return path


def refused(path, error, message):
    """load() and loaddata-spec both refuse ``path`` with ``message`` and the error's exit
    code, and leave the target's rows, its users included, as they were."""
    before = rows("target"), list(User.objects.using("target").values_list())
    with pytest.raises(error) as excinfo:
        load(path, using="target")
    assert str(excinfo.value) == message
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target")
    assert (str(excinfo.value), excinfo.value.returncode) == (message, error.exit_code)
    assert (rows("target"), list(User.objects.using("target").values_list())) == before


def test_an_unforged_dump_loads(stage):
    path, _question = stage
    report = load(forged(path), using="target")
    assert not report.changed


def test_a_row_of_a_model_the_dataset_does_not_name_is_refused(stage):
    path, _question = stage
    superuser = {
        "model": "auth.user",
        "pk": 50,
        "fields": {
            "password": "!",
            "last_login": None,
            "is_superuser": True,
            "username": "mallory",
            "first_name": "",
            "last_name": "",
            "email": "",
            "is_staff": True,
            "is_active": True,
            "date_joined": "2026-01-01T00:00:00Z",
            "groups": [],
            "user_permissions": [],
        },
    }
    path = forged(path, superuser)
    refused(
        path,
        OutsideDatasetError,
        f"{path}: auth.user(pk=50): the dump holds rows of auth.user, but no spec of dataset"
        " 'authors:1' names that model here, so a load must not write them. Dump the dataset"
        " again with the declaration this database has.",
    )


def test_a_row_outside_the_filter_is_not_overwritten(stage):
    path, _question = stage
    author = {
        "model": "testapp.author",
        "pk": 2,
        "fields": {"name": "Mallory", "email": "a2@example.com", "favorite_question": None},
    }
    path = forged(path, author)
    refused(
        path,
        OutsideDatasetError,
        f"{path}: testapp.author(pk=2) is in the dump, but on this database it is outside"
        " dataset 'authors:1' (which selects testapp.author by {'pk__in': [1]}), so a load"
        " must not overwrite it. If it is the source's row (it moved into the dataset there),"
        " load with --adopt; if it is this database's own row, declare an identity for"
        " testapp.author (DATASET_SYNC_IDENTITIES), so that rows are matched by what they are.",
    )


def test_a_row_outside_the_filter_is_not_re_parented_into_it(stage):
    path, question = stage
    moved = {
        "model": "testapp.question",
        "pk": question.pk,
        "fields": {
            "author": 1,
            "category": None,
            "text": "q",
            "pub_date": "2026-01-02T03:04:05.678Z",
            "tags": [],
        },
    }
    path = forged(path, moved)
    refused(
        path,
        OutsideDatasetError,
        f"{path}: testapp.question(pk={question.pk}) is in the dump, but on this database it is"
        " outside dataset 'authors:1' (which selects testapp.question by {'author__in':"
        " [1]}), so a load must not overwrite it. If it is the source's row (it moved into the"
        " dataset there), load with --adopt; if it is this database's own row, declare an"
        " identity for testapp.question (DATASET_SYNC_IDENTITIES), so that rows are matched by"
        " what they are.",
    )


def test_a_new_row_outside_the_filter_is_not_created(stage):
    path, _question = stage
    author = {
        "model": "testapp.author",
        "pk": 7,
        "fields": {"name": "Mallory", "email": "m@example.com", "favorite_question": None},
    }
    path = forged(path, author)
    refused(
        path,
        OutsideDatasetError,
        f"{path}: testapp.author(pk=7) is in the dump, but once written, dataset 'authors:1'"
        " does not select it on this database (it selects testapp.author by {'pk__in':"
        " [1]}), so a load must not write it. Dump the dataset again; if its filter depends on"
        " rows outside it, make those the same on both sides.",
    )


def test_an_object_whose_primary_key_is_null_is_bad_input(stage):
    path, _question = stage

    first = Choice.objects.order_by("pk").first().pk

    def null_key(obj):
        return (
            {**obj, "pk": None} if (obj["model"], obj["pk"]) == ("testapp.choice", first) else obj
        )

    path = forged(path, replace=null_key)
    refused(
        path,
        SchemaMismatchError,
        f"{path}: testapp.choice(pk=None): the object has no primary key; every dumped object"
        " needs one. Dump it again.",
    )


def test_an_object_without_a_primary_key_is_bad_input(stage):
    path, _question = stage

    first = Choice.objects.order_by("pk").first().pk

    def drop_key(obj):
        if (obj["model"], obj["pk"]) == ("testapp.choice", first):
            return {key: value for key, value in obj.items() if key != "pk"}
        return obj

    path = forged(path, replace=drop_key)
    refused(
        path,
        DumpFormatError,
        f"{path}: line 2 is not a serialized object with 'model', 'pk' and 'fields'.",
    )


def make_section(using, section, pages, revisions=2):
    """``section`` (a pk) with a page per pk of ``pages`` and ``revisions`` revisions each,
    under keys derived from the page's, so that both databases can hold the same rows."""
    types = ContentType.objects.db_manager(using)
    owner = Section.objects.using(using).get_or_create(pk=section, name=f"section {section}")[0]
    for pk in pages:
        page = Page.objects.using(using).create(pk=pk, section=owner, title=f"page {pk}")
        for number in range(1, revisions + 1):
            Revision.objects.using(using).create(
                pk=pk * 10 + number,
                content_type=types.get_for_model(Page),
                object_id=page.pk,
                number=number,
            )


@pytest.fixture
def sections(tmp_path):
    """Section 1 was loaded into the target with pages 1, 2 and 4; since then the source
    deleted page 4 and created page 3. The target also has a section 2 of its own, whose page
    5 has revisions; returns the dump of section:1."""
    make_section("default", 1, [1, 2, 4])
    load(copy(tmp_path, "section:1", "first.json"), using="target")
    Page.objects.get(pk=4).delete()
    make_section("default", 1, [3])
    make_section("target", 2, [5])
    return copy(tmp_path, "section:1", "second.json")


def test_a_dataset_function_gets_the_database_it_is_evaluated_for(tmp_path, restore_registry):
    seen = []

    @restore_registry("tags-read")
    def tags(args, using):
        seen.append(using)
        return [
            Spec(
                "testapp.tag",
                filter={"pk__in": list(Tag.objects.using(using).values_list("pk", flat=True))},
            )
        ]

    Tag.objects.create(pk=1, name="python")
    load(copy(tmp_path, "tags-read"), using="target")

    # Dumped from the source, compared on the target, and once written evaluated again there.
    assert seen == ["default", "target", "target"]
    assert list(Tag.objects.using("target").values_list("pk", "name")) == [(1, "python")]


def test_filter_values_read_from_the_database_need_no_trust(sections):
    outside = rows("target")["testapp.revision"]
    outside = [row for row in outside if row[2] == 5]

    report = load(sections, using="target")

    assert dataset_state("section:1", "target") == dataset_state("section:1", "default")
    *lines, closing = report.lines()
    assert sorted(lines) == [
        "testapp.page: 1 created, 0 updated, 2 unchanged, 1 deleted",
        "testapp.revision: 2 created, 0 updated, 4 unchanged, 2 deleted",
        "testapp.section: 0 created, 0 updated, 1 unchanged, 0 deleted",
    ]
    assert closing == f"Changed 6 rows ({sections})."
    assert [row for row in rows("target")["testapp.revision"] if row[2] == 5] == outside


def test_a_dump_cannot_widen_what_a_load_of_such_a_dataset_deletes(sections):
    # The header's filter values are not compared: the load deletes what the target's own
    # evaluation selects, so naming page 5 there deletes none of its revisions.
    lines = sections.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"object_id__in": [1, 2, 3]', '"object_id__in": [1, 2, 3, 5]')
    assert '"object_id__in": [1, 2, 3, 5]' in lines[0]
    sections.write_text("".join(lines))
    outside = [row for row in rows("target")["testapp.revision"] if row[2] == 5]

    load(sections, using="target")

    assert [row for row in rows("target")["testapp.revision"] if row[2] == 5] == outside
    assert dataset_state("section:1", "target") == dataset_state("section:1", "default")


def test_a_dump_cannot_write_revisions_of_a_page_outside_the_section(sections):
    revision = {
        "model": "testapp.revision",
        "pk": 99,
        "fields": {
            "content_type": ["testapp", "page"],
            "object_id": 5,
            "number": 9,
            "author": None,
        },
    }
    path = forged(sections, revision)
    refused(
        path,
        OutsideDatasetError,
        f"{path}: testapp.revision(pk=99) is in the dump, but once written, dataset 'section:1'"
        " does not select it on this database (it selects testapp.revision by"
        " {'content_type__app_label': 'testapp', 'content_type__model': 'page',"
        " 'object_id__in': [1, 2, 3]}), so a load must not write it. Dump the dataset again;"
        " if its filter depends on rows outside it, make those the same on both sides.",
    )


@pytest.mark.parametrize("field", ["author", "reviewer"])  # SET_DEFAULT, and SET(None)
def test_set_default_and_set_outside_the_dataset_are_guarded_like_a_cascade(
    tmp_path, restore_registry, field
):
    restore_registry("authors-only")(
        lambda args: [Spec("testapp.author", filter={"pk__lte": 3}, delete_missing=True)]
    )
    make_section("target", 2, [5])
    author = Author.objects.using("target").create(pk=3, name="Stage", email="s@example.com")
    Revision.objects.using("target").filter(pk=51).update(**{field: author})
    path = copy(tmp_path, "authors-only")
    before = rows("target")

    with pytest.raises(DeletionGuardError) as excinfo:
        load(path, using="target")

    assert str(excinfo.value) == (
        f"{path}: deleting the rows missing from the dump (starting with testapp.author(pk=3))"
        f" would cascade to rows outside the dataset: 1 testapp.revision updated ({field})."
        " Add those models to the dataset, or allow it with --allow-cascade or the spec's"
        " allow_cascade."
    )
    assert rows("target") == before
    report = load(path, using="target", allow_cascade=True)
    assert report.counts["testapp.revision"].cascade_updated == 1
    assert getattr(Revision.objects.using("target").get(pk=51), f"{field}_id") is None


def test_the_checks_ask_the_database_per_batch_not_per_row(tmp_path, restore_registry):
    """Loads of 5 and of 50 changed choices, under a filter, take the same statements."""
    restore_registry("choices")(
        lambda args: [
            Spec("testapp.author", filter={"pk__in": [1]}),
            Spec("testapp.question", filter={"author__in": [1]}),
            Spec("testapp.choice", filter={"question__author__in": [1]}, delete_missing=True),
        ]
    )
    author = Author.objects.create(pk=1, name="a", email="a@example.com")
    question = Question.objects.create(pk=1, author=author, text="q", pub_date=WHEN)
    counts = []
    for count in (5, 50):
        Choice.objects.all().delete()
        Choice.objects.bulk_create(
            Choice(pk=pk, question=question, text="old") for pk in range(1, count + 1)
        )
        load(copy(tmp_path, "choices", f"old-{count}.json"), using="target")
        Choice.objects.update(text="new")
        path = copy(tmp_path, "choices", f"new-{count}.json")
        statements = Statements()
        with connections["target"].execute_wrapper(statements):
            report = load(path, using="target")
        assert report.counts["testapp.choice"].updated == count
        counts.append(len(statements.sql))
    assert counts[0] == counts[1], counts


def test_a_row_that_moved_into_the_dataset_on_the_source_is_adopted_only_when_asked(tmp_path):
    """The source moves one of author 2's questions to author 1. The target, loaded from it
    before, holds that question under author 2: the same row, but the load cannot tell it from
    a row of the target's own with the same key, so it refuses unless told to adopt it."""
    make_source()
    load(copy(tmp_path, "authors:1,2", "initial.json"), using="target")
    moved = Question.objects.filter(author_id=2).order_by("pk").first()
    # Its review would duplicate author 1's: unique_together (question, author).
    moved.review_set.all().delete()
    Question.objects.filter(pk=moved.pk).update(author_id=1)
    path = copy(tmp_path, "authors:1", "moved.json")
    before = rows("target")
    # Its choices moved with it; the first model checked is testapp.choice.
    choice = moved.choices.order_by("pk").first()

    with pytest.raises(OutsideDatasetError) as excinfo:
        load(path, using="target")
    assert str(excinfo.value) == (
        f"{path}: testapp.choice(pk={choice.pk}) is in the dump, but on this database it is"
        " outside dataset 'authors:1' (which selects testapp.choice by {'question__author__in':"
        " [1]}), so a load must not overwrite it. If it is the source's row (it moved into the"
        " dataset there), load with --adopt; if it is this database's own row, declare an"
        " identity for testapp.choice (DATASET_SYNC_IDENTITIES), so that rows are matched by"
        " what they are."
    )
    assert rows("target") == before

    run("loaddata-spec", str(path), "--database", "target", "--adopt")

    assert dataset_state("authors:1", "target") == dataset_state("authors:1", "default")
    assert Question.objects.using("target").get(pk=moved.pk).author_id == 1
