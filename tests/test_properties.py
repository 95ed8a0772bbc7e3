"""Property-based tests: random source and target states, random datasets.

For every example: after a load, the dataset on the target equals the source's; rows outside
it are unchanged (unless a deletion cascaded to them); and a second load writes nothing. A
load the loader refuses (a row outside the dataset in the way) must leave the target as it
was. The test counts the rows it compared and fails when they were too few to mean anything.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management.color import no_style
from django.db import connections
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dataset_sync import dump, load, registry
from dataset_sync.errors import DatasetSyncError, OutsideDatasetError
from testapp.models import (
    Article,
    Author,
    Book,
    Category,
    Choice,
    Comment,
    Event,
    Item,
    Node,
    Novel,
    Publisher,
    Question,
    Review,
    Tag,
)

from .conftest import WHEN, Statements, dataset_state, rows

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

#: Children first, so that deleting them one model at a time never meets PROTECT.
MODELS = [Comment, Review, Choice, Question, Author, Category, Tag, Node, Article, Event, Item]
TEXTS = st.sampled_from(["a", "b", "ü"])


@st.composite
def states(draw):
    """A small random state of the test app: pks and values from small pools, so that the
    source and the target share some rows, differ in others, and each has rows of its own."""
    authors = draw(st.lists(st.integers(1, 4), unique=True))
    categories = draw(st.lists(st.integers(1, 3), unique=True))
    tags = draw(st.lists(st.integers(1, 3), unique=True))
    questions = {}
    if authors:
        for pk in draw(st.lists(st.integers(1, 6), unique=True, max_size=5)):
            questions[pk] = {
                "author_id": draw(st.sampled_from(authors)),
                "category_id": draw(st.sampled_from([None, *categories])),
                "text": draw(TEXTS),
                "tags": draw(st.lists(st.sampled_from(tags), unique=True)) if tags else [],
            }
    choices = {}
    reviews = {}
    if questions:
        for pk in draw(st.lists(st.integers(1, 8), unique=True, max_size=6)):
            choices[pk] = (
                draw(st.sampled_from(sorted(questions))),
                draw(TEXTS),
                draw(st.integers(0, 2)),
            )
        pairs = draw(
            st.lists(
                st.tuples(st.sampled_from(sorted(questions)), st.sampled_from(authors)),
                unique=True,
                max_size=3,
            )
        )
        review_pks = draw(
            st.lists(st.integers(1, 5), unique=True, min_size=len(pairs), max_size=len(pairs))
        )
        reviews = {
            pk: (question, author, draw(st.integers(1, 5)))
            for pk, (question, author) in zip(review_pks, pairs, strict=True)
        }
    # An author's favourite is one of their own questions, as make_source() has it.
    favorites = {}
    for pk in authors:
        own = [question for question, data in questions.items() if data["author_id"] == pk]
        favorites[pk] = draw(st.sampled_from([None, *own]))
    nodes = {}
    for pk in draw(st.lists(st.integers(1, 4), unique=True)):
        nodes[pk] = (draw(st.sampled_from([None, *(p for p in nodes)])), draw(TEXTS))
    items = {
        pk: draw(st.sampled_from(["item", "article", "event"]))
        for pk in draw(st.lists(st.integers(1, 4), unique=True))
    }
    comments = {
        pk: (draw(st.sampled_from([Node, Tag])), draw(st.integers(1, 4)), draw(TEXTS))
        for pk in draw(st.lists(st.integers(1, 3), unique=True))
    }
    return {
        "authors": {pk: (draw(TEXTS), favorites[pk]) for pk in authors},
        "categories": categories,
        "tags": tags,
        "questions": questions,
        "choices": choices,
        "reviews": reviews,
        "nodes": nodes,
        "items": items,
        "comments": comments,
    }


def state(**tables):
    """A state for @example: empty tables unless given."""
    empty = {"categories": [], "tags": [], "authors": {}, "questions": {}, "choices": {}}
    return {**empty, "reviews": {}, "nodes": {}, "items": {}, "comments": {}, **tables}


def question(author_id, category_id=None, text="a", tags=()):
    return {"author_id": author_id, "category_id": category_id, "text": text, "tags": list(tags)}


DATASETS = st.one_of(
    st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True).map(
        lambda ids: f"authors:{','.join(map(str, sorted(ids)))}"
    ),
    st.sampled_from(["tree", "items", "comments", "everything"]),
)


def clear(alias):
    for model in MODELS:
        model._base_manager.using(alias).all().delete()


def create(alias, state):
    """Write ``state`` into the empty test app tables of ``alias``."""
    Category.objects.using(alias).bulk_create(
        Category(pk=pk, name=f"category {pk}") for pk in state["categories"]
    )
    Tag.objects.using(alias).bulk_create(Tag(pk=pk, name=f"tag {pk}") for pk in state["tags"])
    Author.objects.using(alias).bulk_create(
        Author(pk=pk, name=name, email=f"{pk}@example.com")
        for pk, (name, _favorite) in state["authors"].items()
    )
    for pk, data in state["questions"].items():
        question = Question.objects.using(alias).create(
            pk=pk,
            author_id=data["author_id"],
            category_id=data["category_id"],
            text=data["text"],
            pub_date=WHEN,
        )
        question.tags.set(data["tags"])
    for pk, (_name, favorite) in state["authors"].items():
        Author.objects.using(alias).filter(pk=pk).update(favorite_question=favorite)
    Choice.objects.using(alias).bulk_create(
        Choice(pk=pk, question_id=question, text=text, votes=votes)
        for pk, (question, text, votes) in state["choices"].items()
    )
    Review.objects.using(alias).bulk_create(
        Review(pk=pk, question_id=question, author_id=author, rating=rating)
        for pk, (question, author, rating) in state["reviews"].items()
    )
    for pk, (parent, name) in state["nodes"].items():
        Node.objects.using(alias).create(pk=pk, parent_id=parent, name=name, data={"n": name})
    for pk, kind in state["items"].items():
        if kind == "article":
            Article.objects.using(alias).create(pk=pk, title=f"item {pk}", body="b")
        elif kind == "event":
            Event.objects.using(alias).create(
                pk=pk, title=f"item {pk}", starts=dt.date(2026, 1, pk)
            )
        else:
            Item.objects.using(alias).create(pk=pk, title=f"item {pk}")
    types = ContentType.objects.db_manager(alias)
    Comment.objects.using(alias).bulk_create(
        Comment(pk=pk, content_type=types.get_for_model(model), object_id=object_id, text=text)
        for pk, (model, object_id, text) in state["comments"].items()
    )


def set_null(key, fields):
    """A row as it is after a load: an author's favourite question deleted by the load was
    set to NULL (on_delete=SET_NULL), as Model.delete() would."""
    favorite = fields.get("favorite_question") if key[0] == "testapp.author" else None
    if favorite is not None and not Question.objects.using("target").filter(pk=favorite).exists():
        return {**fields, "favorite_question": None}
    return fields


def stale(dataset, dumped):
    """The rows on the target that a delete_missing spec of ``dataset`` selects, not dumped."""
    name, args = registry.parse(dataset)
    found = set()
    for spec in registry.get_dataset(name).specs(args):
        if spec.delete_missing:
            for pk in spec.queryset("target").values_list("pk", flat=True):
                found.add((spec.get_model()._meta.label_lower, pk))
    return found - dumped


def delete_missing_labels(dataset):
    name, args = registry.parse(dataset)
    specs = registry.get_dataset(name).specs(args)
    return {spec.get_model()._meta.label_lower for spec in specs if spec.delete_missing}


def outside(dataset_keys, state):
    """The rows of ``state`` (from rows()) that are not in the dataset, per model."""
    kept = {}
    for label, table in state.items():
        if "_" in label.split(".")[1]:
            continue  # many-to-many pairs are compared with the rows they belong to
        kept[label] = [row for row in table if (label, row[0]) not in dataset_keys]
    return kept


def test_a_load_makes_the_dataset_equal_and_touches_nothing_else(tmp_path):
    compared = Counter()

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(source=states(), target=states(), dataset=DATASETS)
    # Found on MariaDB: moving question 1 to author 1 brings the target's review of it into
    # the dataset, whose delete_missing spec then deletes it.
    @example(
        source=state(authors={1: ("a", None)}, questions={1: question(author_id=1)}),
        target=state(
            authors={2: ("a", None)},
            tags=[1],
            questions={1: question(author_id=2)},
            reviews={1: (1, 2, 1)},
        ),
        dataset="authors:1",
    )
    # A question the source no longer has: the load deletes it.
    @example(
        source=state(authors={1: ("a", None)}),
        target=state(authors={1: ("a", None)}, questions={1: question(author_id=1)}),
        dataset="authors:1",
    )
    def check(source, target, dataset):
        for alias, state in (("default", source), ("target", target)):
            clear(alias)
            create(alias, state)
        path = tmp_path / "dump.json"
        dump(dataset, output=path)
        before = rows("target")
        dumped = dataset_state(dataset, "default")
        selected = dataset_state(dataset, "target")
        keys = set(dumped) | set(selected)
        deletable = stale(dataset, set(dumped))
        try:
            report = load(path, using="target")
        except DatasetSyncError:
            compared["refusals"] += 1
            assert rows("target") == before
            return
        compared["loads"] += 1
        compared["dumped rows"] += len(dumped)
        compared["stale rows"] += len(deletable)
        loaded = dataset_state(dataset, "target")
        # Every dumped row is on the target as dumped; rows the dataset selected that the
        # dump lacks are gone where a delete_missing spec selects them, and untouched else.
        assert {key: loaded.get(key) for key in dumped} == dumped
        assert {key: loaded[key] for key in loaded if key not in dumped} == {
            key: set_null(key, selected[key])
            for key in selected
            if key not in dumped and key not in deletable
        }
        # A row outside the dataset is never changed. It may be deleted by a cascade, or by a
        # delete_missing spec when the load moved the row it hangs on into the dataset.
        deleting = {label for label, counts in report.counts.items() if counts.cascaded}
        deleting.update(delete_missing_labels(dataset))
        now, then = outside(keys, rows("target")), outside(keys, before)
        compared["rows outside"] += sum(map(len, then.values()))
        for label in now:
            if label in deleting:
                assert set(now[label]) <= set(then[label]), label
            else:
                assert now[label] == then[label], label

        after = rows("target")
        statements = Statements()
        with connections["target"].execute_wrapper(statements):
            again = load(path, using="target")
        assert statements.writes() == []
        assert not again.changed
        assert rows("target") == after

    check()
    # The properties hold trivially for examples that load nothing, so the run must have
    # compared enough: most examples loaded, and together they compared dumped rows field by
    # field, rows outside the dataset, and stale rows that delete_missing specs selected. A
    # run of 20 examples typically compares 60 to 100 dumped rows, 120 to 180 rows outside
    # and 3 to 30 stale rows (the second @example has one); the floors are far below that.
    assert compared["loads"] > compared["refusals"], compared
    assert compared["dumped rows"] >= 30, compared
    assert compared["rows outside"] >= 30, compared
    assert compared["stale rows"] >= 1, compared


UUIDS = [uuid.UUID(int=n) for n in (1, 2, 3)]
SLUGS = ["a", "b", "c", "d", "e"]


@st.composite
def identified_states(draw, min_books=0):
    """Publishers and books by identity, under keys drawn from one small pool on each side,
    so that the same key names different books on the two databases and the same book has
    different keys."""
    publishers = {
        value: draw(TEXTS)
        for value in draw(
            st.lists(st.sampled_from(UUIDS), unique=True, min_size=1 if min_books else 0)
        )
    }
    books = {}
    if publishers:
        slugs = draw(st.lists(st.sampled_from(SLUGS), unique=True, min_size=min_books))
        keys = draw(
            st.lists(st.integers(1, 8), unique=True, min_size=len(slugs), max_size=len(slugs))
        )
        for slug, key in zip(slugs, keys, strict=True):
            books[slug] = {
                "pk": key,
                "publisher": draw(st.sampled_from(sorted(publishers))),
                "title": draw(TEXTS),
                "sequel": draw(st.sampled_from([None, *slugs])),
                "see_also": draw(st.lists(st.sampled_from(slugs), unique=True, max_size=2)),
                "tags": draw(st.lists(st.sampled_from([1, 2]), unique=True)),
                "genre": draw(st.sampled_from([None, "crime"])),
            }
    return {"publishers": publishers, "books": books}


def create_identified(alias, state):
    for model in (Novel, Book, Publisher):
        model._base_manager.using(alias).all().delete()
    for pk in (1, 2):
        Tag.objects.using(alias).get_or_create(pk=pk, defaults={"name": f"tag {pk}"})
    publishers = {
        value: Publisher.objects.using(alias).create(uuid=value, name=name)
        for value, name in state["publishers"].items()
    }
    made = {}
    for slug, data in state["books"].items():
        fields = {"pk": data["pk"], "slug": slug, "title": data["title"]}
        fields["publisher"] = publishers[data["publisher"]]
        model = Novel if data["genre"] else Book
        if data["genre"]:
            fields["genre"] = data["genre"]
        made[slug] = model.objects.using(alias).create(**fields)
    for slug, data in state["books"].items():
        book = Book.objects.using(alias).get(slug=slug)
        book.sequel = made[data["sequel"]] if data["sequel"] else None
        book.save(using=alias)
        book.see_also.set([made[other].pk for other in data["see_also"]])
        book.tags.set(data["tags"])
    # The keys were given explicitly; rows created later take the next ones, as they would
    # on a database whose rows were all created through its sequences.
    connection = connections[alias]
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Book]):
            cursor.execute(sql)


def identified(alias, uuids):
    """The books dataset for ``uuids`` on ``alias`` by identity, with each book's key; the
    publishers of the dataset; and the other books."""
    inside, outside_ = {}, {}
    for book in Book.objects.using(alias).select_related("publisher", "sequel"):
        value = (
            book.title,
            book.publisher.uuid,
            book.sequel.slug if book.sequel else None,
            sorted(other.slug for other in book.see_also.all()),
            sorted(book.tags.values_list("pk", flat=True)),
            Novel.objects.using(alias).filter(pk=book.pk).values_list("genre", flat=True).first(),
        )
        (inside if book.publisher.uuid in uuids else outside_)[book.slug] = (book.pk, value)
    publishers = dict(Publisher.objects.using(alias).values_list("uuid", "name"))
    return publishers, inside, outside_


def test_rows_matched_by_identity_make_the_dataset_equal_whatever_the_keys(tmp_path):
    compared = Counter()

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data):
        source = data.draw(identified_states(min_books=2), label="source")
        target = data.draw(identified_states(min_books=2), label="target")
        if not data.draw(st.sampled_from([False, False, False, True]), label="moved"):
            # Most examples keep each book the source has under the source's publisher, as a
            # target loaded from the source before would; in the others books may sit under
            # a publisher outside the dataset, and a load must not move them into it.
            for slug, book in target["books"].items():
                if slug in source["books"]:
                    publisher = book["publisher"] = source["books"][slug]["publisher"]
                    target["publishers"].setdefault(publisher, source["publishers"][publisher])
        uuids = data.draw(
            st.lists(st.sampled_from(sorted(source["publishers"])), min_size=1, unique=True),
            label="uuids",
        )
        create_identified("default", source)
        create_identified("target", target)
        # A stage editor's book outside every dataset drawn, which the source lacks.
        stage = Publisher.objects.using("target").create(uuid=uuid.UUID(int=9), name="stage")
        Book.objects.using("target").create(slug="stage", title="s", publisher=stage)
        path = tmp_path / "books.json"
        dump(f"books:{','.join(map(str, sorted(uuids)))}", output=path)
        before = rows("target")
        publishers, dumped, _rest = identified("default", uuids)
        publishers_before, _inside, outside_before = identified("target", uuids)
        try:
            # Deleting a book sets the sequel of the target's other books to NULL, which
            # this test allows in order to check it.
            load(path, using="target", allow_cascade=True)
        except OutsideDatasetError:
            # Rightly: the target holds a dumped book under a publisher outside the dataset.
            assert set(dumped) & set(outside_before), (dumped, outside_before)
            compared["refusals outside"] += 1
            assert rows("target") == before
            return
        except DatasetSyncError:
            compared["refusals"] += 1
            assert rows("target") == before
            return
        compared["loads"] += 1
        publishers_after, loaded, outside_after = identified("target", uuids)
        # The dataset on the target is the source's, compared by identity, not by key.
        # Publishers are not deleted: their spec has no delete_missing.
        expected = {**publishers_before, **{value: publishers[value] for value in uuids}}
        assert publishers_after == expected
        assert {slug: value for slug, (_pk, value) in loaded.items()} == {
            slug: value for slug, (_pk, value) in dumped.items()
        }
        compared["dumped books"] += len(dumped)
        compared["keys that differ"] += sum(
            loaded[slug][0] != pk for slug, (pk, _value) in dumped.items()
        )
        # A book of the target that the dump does not name keeps its key and its values, but
        # for its sequel and links to books the load deleted (SET_NULL, and the link table's
        # cascade).
        remaining = {**loaded, **outside_after}
        for slug, (pk, value) in outside_before.items():
            if slug in dumped:
                continue
            compared["books outside"] += 1
            title, publisher, sequel, see_also, *rest = value
            expected_value = (
                title,
                publisher,
                sequel if sequel in remaining else None,
                [other for other in see_also if other in remaining],
                *rest,
            )
            assert outside_after[slug] == (pk, expected_value), slug

        after = rows("target")
        statements = Statements()
        with connections["target"].execute_wrapper(statements):
            again = load(path, using="target", allow_cascade=True)
        assert statements.writes() == []
        assert not again.changed
        assert rows("target") == after

    check()
    # Runs of 20 examples typically load 10 to 17 times (the rest are refused because a dumped
    # book points at one the dump lacks and the target lacks or deletes, or because the target
    # holds a dumped book under a publisher outside the dataset), comparing 18 to 50
    # dumped books (most under another key than the source's) and 20 to 50 books of the target
    # outside the dump; the floors are below that.
    assert compared["loads"] >= 5, compared
    assert compared["dumped books"] >= 10, compared
    assert compared["keys that differ"] >= 5, compared
    assert compared["books outside"] >= 10, compared
