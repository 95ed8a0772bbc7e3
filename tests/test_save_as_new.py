"""save_as_new: copies under new primary keys, every reference remapped, and its failures."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError
from django.db.models.signals import post_save

from dataset_sync import Spec, dump, load
from dataset_sync.errors import InvalidSpecError, LoadIntegrityError
from testapp.models import Article, Author, Node, Question, Tag

from .conftest import make_source, rows, run

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


def dumped(tmp_path, specs, name="dump.json"):
    path = tmp_path / name
    dump(specs=specs, output=path)
    return path


@pytest.fixture(params=["api", "command"])
def fails(request):
    """Loads ``path`` into the target; checks the whole message and the untouched target."""

    def check(path, exception, message):
        before = rows("target")
        if request.param == "api":
            with pytest.raises(exception) as excinfo:
                load(path, using="target", trust_dump_specs=True)
        else:
            with pytest.raises(CommandError) as excinfo:
                run("loaddata-spec", str(path), "--database", "target", "--trust-dump-specs")
        assert str(excinfo.value) == message
        assert rows("target") == before

    return check


def test_copies_get_new_keys_and_references_follow(tmp_path):
    make_source()
    make_source("target")
    # The tags are not in the dump, so the copy links the target's tags under the source's
    # keys; the two databases' sequences need not agree, so those keys are made sure of.
    for tag in Tag.objects.all():
        Tag.objects.using("target").get_or_create(pk=tag.pk, defaults={"name": f"t{tag.pk}"})
    question = Question.objects.order_by("pk").first()
    path = dumped(
        tmp_path,
        [
            Spec("testapp.question", filter={"pk": question.pk}, save_as_new=True),
            Spec("testapp.choice", filter={"question": question.pk}, save_as_new=True),
            Spec("testapp.review", filter={"question": question.pk}, save_as_new=True),
        ],
    )
    before = Question.objects.using("target").count()

    report = load(path, using="target", trust_dump_specs=True)

    copy = Question.objects.using("target").order_by("pk").last()
    assert copy.pk != question.pk
    assert Question.objects.using("target").count() == before + 1
    assert (copy.text, copy.author_id) == (question.text, question.author_id)
    assert sorted(copy.choices.values_list("text", flat=True)) == ["C0", "C1", "C2"]
    assert set(copy.tags.values_list("pk", flat=True)) == set(
        question.tags.values_list("pk", flat=True)
    )
    assert list(copy.reviewers.values_list("pk", flat=True)) == [question.author_id]
    assert report.counts["testapp.question"].created == 1
    assert report.counts["testapp.choice"].created == 3
    assert report.counts["testapp.review"].created == 1


def test_a_reference_to_a_row_not_in_the_dump_keeps_its_key(tmp_path):
    """Only objects in the dump have new keys; feincms3-data fails with a KeyError here."""
    root = Node.objects.create(pk=1, name="root")
    Node.objects.create(pk=2, name="child", parent=root)
    path = dumped(tmp_path, [Spec("testapp.node", filter={"pk": 2}, save_as_new=True)])
    Node.objects.using("target").create(pk=1, name="root on the target")

    load(path, using="target", trust_dump_specs=True)

    copy = Node.objects.using("target").get(name="child")
    assert copy.parent_id == 1


def test_delete_missing_map_through_a_model_not_saved_as_new_fails(tmp_path, fails):
    make_source()
    make_source("target")
    question = Question.objects.order_by("pk").first()
    path = dumped(
        tmp_path,
        [
            Spec("testapp.question", filter={"pk__in": [question.pk]}),
            Spec(
                "testapp.choice",
                filter={"question__in": [question.pk]},
                save_as_new=True,
                delete_missing={"map": [("question__in", "testapp.question")]},
            ),
        ],
    )
    fails(
        path,
        InvalidSpecError,
        f"{path}: the delete_missing map of the testapp.choice spec rewrites 'question__in'"
        f" to new keys of testapp.question, but testapp.question(pk={question.pk}) was not"
        " saved as new in this load, so rows cannot be matched. Give the testapp.question"
        " spec save_as_new, or drop the map.",
    )


def test_a_child_saved_as_new_needs_its_parent_saved_as_new(tmp_path, fails):
    article = Article.objects.create(title="article", body="text")
    path = dumped(tmp_path, [Spec("testapp.item"), Spec("testapp.article", save_as_new=True)])
    fails(
        path,
        InvalidSpecError,
        f"{path}: testapp.article(pk={article.pk}) is to be saved as new, but its primary key"
        " is its testapp.item row, which is not saved as new. Give the testapp.item spec"
        " save_as_new too.",
    )


def test_a_copy_repeating_a_unique_value_is_refused(tmp_path, fails):
    Tag.objects.create(pk=1, name="python")
    Tag.objects.using("target").create(pk=1, name="python")
    path = dumped(tmp_path, [Spec("testapp.tag", save_as_new=True)])
    fails(
        path,
        LoadIntegrityError,
        f"{path}: testapp.tag(pk=1) is saved as new, but its 'name' ('python',) would"
        " duplicate testapp.tag(pk=1) on the target. A copy cannot repeat unique values;"
        " drop save_as_new for this model, or change the values.",
    )


def test_defer_values_on_copies(tmp_path):
    """A copy's deferred value is written after the deletions free it."""
    Author.objects.create(pk=1, name="a", email="a@example.com")
    Author.objects.using("target").create(pk=5, name="stale", email="a@example.com")
    path = dumped(
        tmp_path,
        [
            Spec(
                "testapp.author",
                save_as_new=True,
                delete_missing=True,
                defer_values=["email"],
            )
        ],
    )

    load(path, using="target", trust_dump_specs=True)

    assert list(Author.objects.using("target").values_list("name", "email")) == [
        ("a", "a@example.com")
    ]


def test_loading_a_save_as_new_dump_twice_makes_two_copies(tmp_path):
    """Copies are what save_as_new asks for, so a second load is not a no-op."""
    Node.objects.create(name="root")
    path = dumped(tmp_path, [Spec("testapp.node", save_as_new=True)])

    load(path, using="target", trust_dump_specs=True)
    load(path, using="target", trust_dump_specs=True)

    assert list(Node.objects.using("target").values_list("name", flat=True)) == ["root", "root"]


def test_copies_are_saved_raw_and_send_signals(tmp_path):
    Node.objects.create(name="root")
    path = dumped(tmp_path, [Spec("testapp.node", save_as_new=True)])
    Node.objects.using("target").create(name="already there")
    saved = []

    def receiver(sender, instance, created, raw, using, **kwargs):
        saved.append((instance.name, created, raw, using))

    post_save.connect(receiver, sender=Node)
    try:
        load(path, using="target", trust_dump_specs=True)
    finally:
        post_save.disconnect(receiver, sender=Node)

    assert saved == [("root", True, True, "target")]


def test_a_child_whose_spec_does_not_copy_follows_its_copied_parent(tmp_path):
    """A hand-made dump: items are copied, and the article of a copied item with them."""
    path = tmp_path / "dump.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "specs": [
                    {"model": "testapp.item", "save_as_new": True},
                    {"model": "testapp.article"},
                ],
                "objects": [
                    {"model": "testapp.item", "pk": 1, "fields": {"title": "article"}},
                    {"model": "testapp.article", "pk": 1, "fields": {"body": "text"}},
                ],
            }
        )
    )
    Article.objects.using("target").create(pk=1, title="already there", body="old")

    load(path, using="target", trust_dump_specs=True)

    copy = Article.objects.using("target").exclude(pk=1).get()
    assert (copy.title, copy.body) == ("article", "text")
    assert Article.objects.using("target").get(pk=1).body == "old"
