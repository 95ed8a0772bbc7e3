"""Guards against surprising deletions: --max-delete, and cascades outside the dataset."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError
from django.db import connections

from dataset_sync import DeleteLimit, Spec, load
from dataset_sync.errors import DeletionGuardError
from testapp.models import Author, Choice, Question

from .conftest import WHEN, Statements, copy, make_source, rows, run

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


@pytest.fixture
def five_choices_gone(tmp_path):
    """A dump of authors:1,2 after the source lost five of its twelve choices and changed
    a question; on the target the dataset's delete_missing specs select 20 rows."""
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    Choice.objects.filter(
        pk__in=list(Choice.objects.order_by("pk").values_list("pk", flat=True)[:5])
    ).delete()
    Question.objects.filter(pk=Question.objects.order_by("pk").first().pk).update(text="new")
    return copy(tmp_path, "authors:1,2", "second.json")


def refusal(path, deleting, limit, selected=20):
    return (
        f"{path}: the load would delete {deleting} rows, more than --max-delete {limit} allows"
        f" ({selected} rows here match the dataset's delete_missing specs); nothing was"
        " changed. Check the dump (a truncated export looks like this), or raise the limit."
    )


@pytest.mark.parametrize("limit", ["4", "20%"])
def test_max_delete_refuses_before_anything_is_written(five_choices_gone, limit):
    before = rows("target")
    statements = Statements()
    with connections["target"].execute_wrapper(statements), pytest.raises(CommandError) as exc:
        run("loaddata-spec", str(five_choices_gone), "--database", "target", "--max-delete", limit)
    assert (str(exc.value), exc.value.returncode) == (refusal(five_choices_gone, 5, limit), 5)
    assert statements.sql, "the load ran no statements at all, so this test proves nothing"
    assert statements.writes() == []
    assert rows("target") == before


@pytest.mark.parametrize("limit", ["5", "25%"])
def test_max_delete_lets_a_load_within_the_limit_through(five_choices_gone, limit):
    report = load(five_choices_gone, using="target", max_delete=DeleteLimit.parse(limit))
    assert report.counts["testapp.choice"].deleted == 5
    assert report.counts["testapp.question"].updated == 1


@pytest.fixture
def author_with_rows_outside(tmp_path, restore_registry):
    """A dump of authors 1 to 3 that lacks author 3, who has a question and two choices on
    the target: deleting the author cascades to three rows no spec selects."""
    restore_registry("authors-only")(
        lambda args: [Spec("testapp.author", filter={"pk__lte": 3}, delete_missing=True)]
    )
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    stage = Author.objects.using("target").create(pk=3, name="Stage", email="s@example.com")
    question = Question.objects.using("target").create(author=stage, text="q", pub_date=WHEN)
    for text in ("a", "b"):
        Choice.objects.using("target").create(question=question, text=text)
    return copy(tmp_path, "authors-only")


def test_max_delete_counts_cascaded_rows(author_with_rows_outside):
    path = author_with_rows_outside
    before = rows("target")
    with pytest.raises(DeletionGuardError) as excinfo:
        load(path, using="target", allow_cascade=True, max_delete=DeleteLimit(rows=3))
    assert str(excinfo.value) == refusal(path, 4, 3, selected=3)
    assert rows("target") == before


def test_cascade_outside_the_dataset_is_refused_with_counts_per_model(author_with_rows_outside):
    path = author_with_rows_outside
    before = rows("target")
    with pytest.raises(DeletionGuardError) as excinfo:
        load(path, using="target", dry_run=True)
    assert str(excinfo.value) == (
        f"{path}: deleting the rows missing from the dump (starting with testapp.author(pk=3))"
        " would cascade to rows outside the dataset: 2 testapp.choice, 1 testapp.question."
        " Add those models to the dataset, or allow it with --allow-cascade or the spec's"
        " allow_cascade."
    )
    assert rows("target") == before


def test_spec_flag_allows_its_cascades(author_with_rows_outside, restore_registry):
    restore_registry("authors-only")(
        lambda args: [
            Spec("testapp.author", filter={"pk__lte": 3}, delete_missing=True, allow_cascade=True)
        ]
    )
    path = copy(author_with_rows_outside.parent, "authors-only", "allowed.json")
    report = load(path, using="target")
    assert (
        report.counts["testapp.question"].cascaded,
        report.counts["testapp.choice"].cascaded,
    ) == (
        1,
        2,
    )


def test_spec_flag_allows_cascades_to_the_models_it_lists(
    author_with_rows_outside, restore_registry
):
    def allowing(*models):
        restore_registry("authors-only")(
            lambda args: [
                Spec(
                    "testapp.author",
                    filter={"pk__lte": 3},
                    delete_missing=True,
                    allow_cascade=list(models),
                )
            ]
        )
        return copy(author_with_rows_outside.parent, "authors-only", f"{len(models)}.json")

    path = allowing(Choice)
    before = rows("target")
    with pytest.raises(DeletionGuardError) as excinfo:
        load(path, using="target")
    assert str(excinfo.value) == (
        f"{path}: deleting the rows missing from the dump (starting with testapp.author(pk=3))"
        " would cascade to rows outside the dataset: 1 testapp.question. Add those models to"
        " the dataset, or allow it with --allow-cascade or the spec's allow_cascade."
    )
    assert rows("target") == before

    report = load(allowing(Choice, "testapp.Question"), using="target")
    assert (
        report.counts["testapp.question"].cascaded,
        report.counts["testapp.choice"].cascaded,
    ) == (1, 2)


def test_allow_cascade_must_list_installed_models(restore_registry, tmp_path):
    restore_registry("authors-only")(
        lambda args: [
            Spec("testapp.author", delete_missing=True, allow_cascade=["testapp.nothing"])
        ]
    )
    with pytest.raises(CommandError) as excinfo:
        run("dumpdata-spec", "authors-only", "-o", str(tmp_path / "dump.json"))
    assert str(excinfo.value) == (
        "Spec for testapp.author: 'allow_cascade' lists 'testapp.nothing', which is not an"
        " installed model."
    )


def test_cascade_to_rows_the_dataset_selects_needs_no_permission(tmp_path, restore_registry):
    restore_registry("questions")(
        lambda args: [
            Spec("testapp.author"),
            Spec("testapp.category"),
            Spec("testapp.tag"),
            Spec("testapp.question", delete_missing=True),
            Spec("testapp.choice"),
            Spec("testapp.review"),
        ]
    )
    make_source()
    load(copy(tmp_path, "questions", "first.json"), using="target")
    # Choices and reviews have no delete_missing here: they go by cascade with their
    # question, and are rows the dataset selects.
    Question.objects.order_by("pk").first().delete()

    report = load(copy(tmp_path, "questions", "second.json"), using="target")

    assert report.counts["testapp.question"].deleted == 1
    assert report.counts["testapp.choice"].cascaded == 3
    assert report.counts["testapp.review"].cascaded == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "'lots' is not a number of rows (100) or a percentage (5%)"),
        ("-3", "'-3' is not a number of rows (100) or a percentage (5%)"),
        ("2.5", "'2.5': a number of rows must be a whole number"),
    ],
)
def test_max_delete_must_be_a_number_or_a_percentage(tmp_path, value, message):
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(tmp_path / "x.json"), "--max-delete", value)
    assert str(excinfo.value) == f"Error: argument --max-delete: {message}"


@pytest.fixture
def favorite_outside(tmp_path):
    """A dump of authors:1 after the source deleted author 1's first question, which the
    target's own author 3, outside the dataset, has as its favourite: deleting it sets that
    author's favorite_question to NULL (on_delete=SET_NULL)."""
    make_source()
    load(copy(tmp_path, "authors:1,2", "first.json"), using="target")
    question = Question.objects.filter(author=1).order_by("pk").first()
    Author.objects.using("target").create(
        pk=3, name="Stage", email="s@example.com", favorite_question_id=question.pk
    )
    pk = question.pk
    question.delete()
    return copy(tmp_path, "authors:1", "second.json"), pk


def test_a_deletion_that_sets_null_outside_the_dataset_is_refused(favorite_outside):
    path, question = favorite_outside
    before = rows("target")
    message = (
        f"{path}: deleting the rows missing from the dump (starting with"
        f" testapp.question(pk={question})) would cascade to rows outside the dataset: 1"
        " testapp.author updated (favorite_question). Add those models to the dataset, or"
        " allow it with --allow-cascade or the spec's allow_cascade."
    )
    with pytest.raises(DeletionGuardError) as excinfo:
        load(path, using="target")
    assert str(excinfo.value) == message
    for options in ([], ["--dry-run"]):
        with pytest.raises(CommandError) as excinfo:
            run("loaddata-spec", str(path), "--database", "target", *options)
        assert (str(excinfo.value), excinfo.value.returncode) == (message, 5)
    assert rows("target") == before


def test_rows_a_deletion_sets_to_null_are_counted_and_named(favorite_outside):
    path, question = favorite_outside
    choices = list(
        Choice.objects.using("target")
        .filter(question=question)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    dry_out, _err = run(
        "loaddata-spec", str(path), "--database", "target", "--allow-cascade", "--dry-run"
    )
    out, err = run("loaddata-spec", str(path), "--database", "target", "--allow-cascade", "-v2")

    author_line = (
        "testapp.author: 0 created, 1 updated, 0 unchanged, 0 deleted, 1 updated by cascade"
    )
    assert author_line in dry_out.splitlines()
    assert author_line in out.splitlines()
    assert "cascade_updated=1" in out.splitlines()[-1]
    assert "updated testapp.author(pk=3) by cascade (favorite_question)" in err.splitlines()
    assert f"deleted testapp.question(pk={question})" in err.splitlines()
    assert [line for line in err.splitlines() if line.startswith("deleted testapp.choice")] == [
        f"deleted testapp.choice(pk={pk})" for pk in choices
    ]
    assert Author.objects.using("target").get(pk=3).favorite_question_id is None


def test_rows_deleted_by_cascade_are_named_by_key(author_with_rows_outside):
    question = Question.objects.using("target").get(author=3)
    choices = sorted(question.choices.values_list("pk", flat=True))

    out, err = run(
        "loaddata-spec",
        str(author_with_rows_outside),
        "--database",
        "target",
        "-v2",
        "--allow-cascade",
    )

    assert [line for line in err.splitlines() if line.startswith("deleted")] == [
        "deleted testapp.author(pk=3)",
        *(f"deleted testapp.choice(pk={pk}) by cascade" for pk in choices),
        f"deleted testapp.question(pk={question.pk}) by cascade",
    ]
    assert (
        "testapp.question: 0 created, 0 updated, 0 unchanged, 0 deleted, 1 deleted by cascade"
        in out.splitlines()
    )
