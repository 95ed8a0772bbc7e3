"""Differential tests: feincms3-data and dataset_sync, same dataset, same states, same rows.

feincms3-data reads and writes the ``default`` database only. Each scenario therefore:

1. builds the source state on ``default`` and dumps it twice, with feincms3-data's
   ``dump_specs`` and with dataset_sync's ``dump``;
2. empties both databases (sequences reset, so both hand out the same new keys) and builds
   the same target state on each;
3. loads feincms3-data's dump with feincms3-data into ``default``, and a dump with
   ``loaddata-spec`` into ``target`` (dataset_sync's own dump, or feincms3-data's);
4. compares every row of every test app table on the two databases.

Where dataset_sync deliberately differs, the scenario says how, and asserts both outcomes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from io import StringIO
from typing import Any

import feincms3_data.data as f3
import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import IntegrityError
from django.db.models import ProtectedError

from dataset_sync import dump, load
from dataset_sync.errors import (
    DeletionProtectedError,
    InconsistentModelError,
    LoadIntegrityError,
)
from testapp.models import (
    Article,
    Author,
    Category,
    Choice,
    Event,
    Item,
    Node,
    Question,
    Reading,
    Review,
    Tag,
)

from .conftest import WHEN, make_source, rows, run

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

State = Callable[[str], Any]


def _empty(alias: str) -> None:
    call_command("flush", database=alias, interactive=False, reset_sequences=True, verbosity=0)
    ContentType.objects.clear_cache()


def run_both(
    tmp_path, specs, source: State, target: State, via: str, options: tuple[str, ...] = ()
) -> tuple[Any, Any, Any]:
    """Run ``specs`` through both tools from ``source`` into ``target``.

    Returns the target state before, feincms3-data's result on ``default`` and dataset_sync's
    on ``target``. ``via`` picks what dataset_sync loads: its own dump or feincms3-data's,
    both through ``loaddata-spec`` with the dump's own specs (neither names a registered
    dataset) and ``options``.
    """
    _empty("default")
    source("default")
    f3_data = f3.dump_specs(specs)
    ours = tmp_path / "dataset_sync.json"
    dump(specs=specs, output=ours)
    theirs = tmp_path / "feincms3-data.json"
    theirs.write_text(f3_data)
    for alias in ("default", "target"):
        _empty(alias)
        target(alias)
    before = rows("target")
    assert rows("default") == before

    f3.load_dump(json.loads(f3_data))
    loaded = ours if via == "dataset_sync" else theirs
    run("loaddata-spec", str(loaded), "--database", "target", "--trust-dump-specs", *options)

    return before, rows("default"), rows("target")


def differential(
    tmp_path, specs, source: State, target: State, via: str, options: tuple[str, ...] = ()
) -> None:
    """Both tools leave equal rows, and the load changed something."""
    before, theirs, ours = run_both(tmp_path, specs, source, target, via, options)
    assert ours == theirs
    assert ours != before, "neither load changed anything: the scenario proves nothing"


def nothing(alias: str) -> None:
    pass


def outdated(alias: str) -> None:
    """make_source() after the source moved on: rows changed, deleted, created, re-linked."""
    make_source(alias)
    Question.objects.using(alias).filter(text="Q1.0").update(text="stale")
    Choice.objects.using(alias).filter(question__text="Q2.1", text="C0").delete()
    question = Question.objects.using(alias).get(text="Q1.1")
    Choice.objects.using(alias).create(question=question, text="only on the target")
    question.tags.set([Tag.objects.using(alias).get(name="django")])
    extra = Question.objects.using(alias).create(
        author_id=2, text="only on the target", pub_date=WHEN
    )
    Review.objects.using(alias).create(question=extra, author_id=1, rating=1)


VIA = pytest.mark.parametrize("via", ["dataset_sync", "feincms3-data dump"])

AUTHORS = [
    {"model": "testapp.category"},
    {"model": "testapp.tag"},
    {"model": "testapp.author", "filter": {"pk__in": [1, 2]}},
    {"model": "testapp.question", "filter": {"author__in": [1, 2]}, "delete_missing": True},
    {"model": "testapp.choice", "filter": {"question__author__in": [1, 2]}, "delete_missing": True},
    {"model": "testapp.review", "filter": {"question__author__in": [1, 2]}, "delete_missing": True},
]


@VIA
def test_into_an_empty_target(tmp_path, via):
    differential(tmp_path, AUTHORS, make_source, nothing, via)


@VIA
def test_onto_an_outdated_target_with_deletions_and_an_fk_cycle(tmp_path, via):
    differential(tmp_path, AUTHORS, make_source, outdated, via)


@VIA
def test_several_specs_for_one_model(tmp_path, via):
    """Choices selected by two specs, one of them selecting some rows of the other."""
    specs = [
        *AUTHORS[:4],
        {"model": "testapp.choice", "filter": {"question__author": 1}, "delete_missing": True},
        {"model": "testapp.choice", "filter": {"votes__gte": 1}, "delete_missing": True},
    ]
    # A difference by design: deleting the outdated questions cascades to their reviews,
    # which no spec selects. feincms3-data deletes them silently; dataset_sync refuses
    # unless allowed (tests/test_guards.py), so it is allowed here.
    differential(tmp_path, specs, make_source, outdated, via, ("--allow-cascade",))


def items(alias: str) -> None:
    Article.objects.using(alias).create(title="article", body="text")
    Event.objects.using(alias).create(title="event", starts=dt.date(2026, 12, 24))
    Item.objects.using(alias).create(title="plain item")


def other_items(alias: str) -> None:
    Article.objects.using(alias).create(title="article", body="old text")
    Item.objects.using(alias).create(title="plain item, renamed")
    Item.objects.using(alias).create(title="only on the target")
    Event.objects.using(alias).create(title="event only on the target", starts=dt.date(2026, 1, 1))


ITEMS = [
    {"model": "testapp.item", "delete_missing": True},
    *f3.specs_for_derived_models(Item, {"delete_missing": True}),
]


@VIA
def test_multi_table_inheritance(tmp_path, via):
    differential(tmp_path, ITEMS, items, other_items, via)


def tags(alias: str) -> None:
    for name in ("python", "django", "sql"):
        Tag.objects.using(alias).create(name=name)


def recreated_tags(alias: str) -> None:
    """python and django under keys the dump does not have: deleted and created again."""
    for name in ("old 1", "old 2", "old 3", "python", "django", "stale"):
        Tag.objects.using(alias).create(name=name)


@VIA
def test_recreated_unique_rows_are_replaced(tmp_path, via):
    specs = [{"model": "testapp.tag", "delete_missing": True}]
    differential(tmp_path, specs, tags, recreated_tags, via)


def swapped_tags(alias: str) -> None:
    for name in ("sql", "django", "python"):
        Tag.objects.using(alias).create(name=name)


def test_unique_values_swapped_between_dumped_rows(tmp_path):
    """Difference: feincms3-data fails on the unique constraint; dataset_sync loads them."""
    specs = [{"model": "testapp.tag", "delete_missing": True}]
    _empty("default")
    tags("default")
    f3_data = json.loads(f3.dump_specs(specs))
    expected = rows("default")
    path = tmp_path / "dump.json"
    dump(specs=specs, output=path)
    for alias in ("default", "target"):
        _empty(alias)
        swapped_tags(alias)
    before = rows("default")

    with pytest.raises(IntegrityError):
        f3.load_dump(f3_data)
    load(path, using="target", trust_dump_specs=True)

    assert rows("default") == before
    assert rows("target") == expected


def reviews(alias: str) -> None:
    make_source(alias)


def recreated_reviews(alias: str) -> None:
    """Every review deleted and created again: same (question, author), new primary keys."""
    make_source(alias)
    for review in Review.objects.using(alias).order_by("-pk"):
        review.delete()
        review.pk = None
        review.rating = 1
        review.save(using=alias)


@VIA
def test_through_model_with_unique_together(tmp_path, via):
    specs = [*AUTHORS[:4], AUTHORS[5]]
    differential(tmp_path, specs, reviews, recreated_reviews, via)


def tree(alias: str) -> None:
    root = Node.objects.using(alias).create(name="root")
    child = Node.objects.using(alias).create(name="child", parent=root)
    Node.objects.using(alias).create(name="grandchild", parent=child)
    # A row whose parent has the higher primary key.
    late = Node.objects.using(alias).create(name="late")
    Node.objects.using(alias).filter(pk=root.pk).update(parent=late)


def other_tree(alias: str) -> None:
    root = Node.objects.using(alias).create(name="root, renamed")
    for name in ("stale", "stale too"):
        root = Node.objects.using(alias).create(name=name, parent=root)


@VIA
def test_nullable_self_reference(tmp_path, via):
    differential(
        tmp_path, [{"model": "testapp.node", "delete_missing": True}], tree, other_tree, via
    )


def protected(alias: str) -> None:
    Category.objects.using(alias).create(name="news")


def protecting(alias: str) -> None:
    news, stage = (Category.objects.using(alias).create(name=name) for name in ("news", "stage"))
    author = Author.objects.using(alias).create(name="s", email="s@example.com")
    Question.objects.using(alias).create(author=author, category=stage, text="q", pub_date=WHEN)
    assert news.pk == 1


def test_protected_rows_stop_the_load_in_both(tmp_path):
    """Both refuse to delete a protected row and leave the database as it was.

    Difference: feincms3-data raises Django's ProtectedError; dataset_sync raises
    DeletionProtectedError, whose message names the rows on both ends.
    """
    specs = [{"model": "testapp.category", "delete_missing": True}]
    _empty("default")
    protected("default")
    f3_data = json.loads(f3.dump_specs(specs))
    path = tmp_path / "dump.json"
    dump(specs=specs, output=path)
    for alias in ("default", "target"):
        _empty(alias)
        protecting(alias)
    before = rows("target")

    with pytest.raises(ProtectedError):
        f3.load_dump(f3_data)
    with pytest.raises(DeletionProtectedError) as excinfo:
        load(path, using="target", trust_dump_specs=True)

    assert str(excinfo.value) == (
        f"{path}: testapp.category: cannot delete rows missing from the dump (pk=2); they are"
        " protected by testapp.question(pk=1). Add those rows to the dataset or delete them"
        " first."
    )
    assert rows("default") == rows("target") == before


def tagged(alias: str) -> None:
    tags = [Tag.objects.using(alias).create(name=name) for name in ("t1", "t2", "t3")]
    author = Author.objects.using(alias).create(name="a", email="a@example.com")
    question = Question.objects.using(alias).create(author=author, text="q", pub_date=WHEN)
    question.tags.set(tags)


def tagged_elsewhere(alias: str) -> None:
    """t3 has become x3, which the dump's tag spec deletes; the question links t1 only."""
    tags = [Tag.objects.using(alias).create(name=name) for name in ("t1", "t2", "x3", "t4")]
    author = Author.objects.using(alias).create(name="a", email="a@example.com")
    question = Question.objects.using(alias).create(author=author, text="q", pub_date=WHEN)
    question.tags.set(tags[:1])


@VIA
def test_ignore_missing_m2m(tmp_path, via):
    specs = [
        {"model": "testapp.tag", "filter": {"name__startswith": "x"}, "delete_missing": True},
        {"model": "testapp.author"},
        {"model": "testapp.question", "ignore_missing_m2m": ["tags"]},
    ]
    differential(tmp_path, specs, tagged, tagged_elsewhere, via)


@VIA
def test_defer_values_with_unique_values_swapped(tmp_path, via):
    specs = [{"model": "testapp.tag", "delete_missing": True, "defer_values": ["name"]}]
    differential(tmp_path, specs, tags, swapped_tags, via)


def article(alias: str) -> None:
    Article.objects.using(alias).create(title="article", body="text")


def event(alias: str) -> None:
    Event.objects.using(alias).create(title="event", starts=dt.date(2026, 1, 1))


def test_an_object_that_is_another_child_on_the_target_is_refused_by_both(tmp_path):
    """Both raise InconsistentModelError and leave the database as it was.

    Difference: dataset_sync's message names the row, the other child and the parent.
    """
    specs = [{"model": "testapp.item"}, {"model": "testapp.article"}]
    _empty("default")
    article("default")
    f3_data = json.loads(f3.dump_specs(specs))
    path = tmp_path / "dump.json"
    dump(specs=specs, output=path)
    for alias in ("default", "target"):
        _empty(alias)
        event(alias)
    before = rows("target")

    with pytest.raises(f3.InconsistentModelError):
        f3.load_dump(f3_data)
    with pytest.raises(InconsistentModelError) as excinfo:
        load(path, using="target", trust_dump_specs=True)

    assert str(excinfo.value) == (
        f"{path}: testapp.article(pk=1) exists on the target as testapp.event(pk=1), another"
        " child of the same testapp.item row; loading it would make one object both. Delete"
        " that testapp.event on the target first."
    )
    assert rows("default") == rows("target") == before


# save_as_new: copies under new primary keys, references remapped.

QUESTIONS_AS_NEW = [
    {"model": "testapp.category"},
    {"model": "testapp.tag"},
    {"model": "testapp.author", "filter": {"pk__in": [1, 2]}},
    {"model": "testapp.question", "filter": {"author__in": [1, 2]}, "save_as_new": True},
    {"model": "testapp.choice", "filter": {"question__author__in": [1, 2]}, "save_as_new": True},
    {"model": "testapp.review", "filter": {"question__author__in": [1, 2]}, "save_as_new": True},
]


@VIA
def test_save_as_new_copies_a_graph_and_remaps_its_references(tmp_path, via):
    """Questions, choices and reviews copied; m2m links, the through model and the
    author's favourite question (a cycle through a model that is not copied) follow."""
    differential(tmp_path, QUESTIONS_AS_NEW, make_source, make_source, via)


@VIA
def test_save_as_new_with_a_self_reference_to_a_later_row(tmp_path, via):
    specs = [{"model": "testapp.node", "save_as_new": True}]
    differential(tmp_path, specs, tree, other_tree, via)


def node_cycle(alias: str) -> None:
    first = Node.objects.using(alias).create(name="first")
    second = Node.objects.using(alias).create(name="second", parent=first)
    Node.objects.using(alias).filter(pk=first.pk).update(parent=second)


@VIA
def test_save_as_new_with_a_cycle(tmp_path, via):
    specs = [{"model": "testapp.node", "save_as_new": True}]
    differential(tmp_path, specs, node_cycle, node_cycle, via)


@VIA
def test_save_as_new_multi_table_inheritance(tmp_path, via):
    specs = [
        {"model": "testapp.item", "save_as_new": True},
        *f3.specs_for_derived_models(Item, {"save_as_new": True}),
    ]
    differential(tmp_path, specs, items, other_items, via)


def first_question_specs(delete_missing: object) -> list[dict[str, object]]:
    return [
        {"model": "testapp.question", "filter": {"pk__in": [1]}, "save_as_new": True},
        {
            "model": "testapp.choice",
            "filter": {"question__in": [1]},
            "save_as_new": True,
            "delete_missing": delete_missing,
        },
    ]


@VIA
def test_save_as_new_with_delete_missing_map_keeps_the_originals(tmp_path, via):
    """The copy gets its choices; the choices of the original question stay."""
    specs = first_question_specs({"map": [("question__in", "testapp.question")]})
    differential(tmp_path, specs, make_source, make_source, via)


@VIA
def test_save_as_new_with_delete_missing_deletes_the_originals(tmp_path, via):
    """Without a map, the filter selects the original question's choices, which go."""
    differential(tmp_path, first_question_specs(True), make_source, make_source, via)


@VIA
def test_save_as_new_children_of_a_parent_kept_under_its_key(tmp_path, via):
    """The question keeps its key; its choices are replaced by copies."""
    specs = [
        {"model": "testapp.question", "filter": {"pk__in": [1]}},
        {
            "model": "testapp.choice",
            "filter": {"question__in": [1]},
            "save_as_new": True,
            "delete_missing": True,
        },
    ]
    differential(tmp_path, specs, make_source, outdated, via)


def test_specs_of_one_model_with_different_flags(tmp_path):
    """Difference: in a dataset_sync dump each object follows the spec that selected it.

    feincms3-data copies every question once any spec of the model says save_as_new, so
    question 1 is copied too; dataset_sync overwrites it under its key, as its spec says. A
    feincms3-data dump does not say which spec selected what, so loaddata-spec follows
    feincms3-data there.
    """
    specs = [
        {"model": "testapp.question", "filter": {"pk": 1}},
        {"model": "testapp.question", "filter": {"pk": 2}, "save_as_new": True},
    ]
    differential(tmp_path, specs, make_source, outdated, "feincms3-data dump")

    _before, theirs, ours = run_both(tmp_path, specs, make_source, outdated, "dataset_sync")

    f3_texts = [(row[0], row[3]) for row in theirs["testapp.question"]]
    differential_texts = [(row[0], row[3]) for row in ours["testapp.question"]]
    assert f3_texts[0] == (1, "stale")
    assert f3_texts[-2:] == [(6, "Q1.0"), (7, "Q1.1")]
    assert differential_texts[0] == (1, "Q1.0")
    assert differential_texts[-1] == (6, "Q1.1")


def test_feincms3_data_loads_a_dataset_sync_dump(tmp_path):
    """Going back stays possible: feincms3-data's loader reads dataset_sync's dumps of format
    version 1, which it reads alone (``dumpdata-spec --format-version 1``)."""
    _empty("default")
    make_source("default")
    path = tmp_path / "dump.json"
    dump(specs=AUTHORS, output=path, format_version=1)
    current = tmp_path / "version-2.json"
    dump(specs=AUTHORS, output=current)
    expected = rows("default")
    for alias in ("default", "target"):
        _empty(alias)
        outdated(alias)

    # Difference, on purpose: version 2 keeps microseconds, and feincms3-data refuses it.
    with pytest.raises(f3.InvalidVersionError) as excinfo:
        f3.load_dump(json.loads(current.read_text()))
    assert str(excinfo.value) == "Invalid dump version 2"
    f3.load_dump(json.loads(path.read_text()))
    load(path, using="target", trust_dump_specs=True)

    assert rows("default") == rows("target")
    for label in ("testapp.question", "testapp.choice", "testapp.review"):
        assert rows("target")[label] == expected[label]


#: The readings' digits below the second: none, milliseconds only, microseconds.
MICROSECONDS = (0, 500000, 123456)


def readings(alias: str) -> None:
    for microsecond in MICROSECONDS:
        Reading.objects.using(alias).create(
            taken=dt.datetime(2026, 1, 2, 3, 4, 5, microsecond, tzinfo=dt.timezone.utc),
            time_of_day=dt.time(3, 4, 5, microsecond),
            value=Decimal("0.0000001"),
            lasted=dt.timedelta(microseconds=microsecond),
        )


def reading_rows(cut: bool) -> list[tuple[Any, ...]]:
    """The rows readings() makes; ``cut``: as Django's JSON encoder leaves them."""
    result = []
    for pk, microsecond in enumerate(MICROSECONDS, start=1):
        kept = microsecond // 1000 * 1000 if cut else microsecond
        taken = dt.datetime(2026, 1, 2, 3, 4, 5, kept, tzinfo=dt.timezone.utc)
        # Durations are written as strings with every digit, by Django too.
        lasted = dt.timedelta(microseconds=microsecond)
        result.append((pk, taken, dt.time(3, 4, 5, kept), Decimal("0.0000001"), lasted))
    return result


@VIA
def test_values_below_the_millisecond(tmp_path, via):
    """Difference, on purpose, since format version 2: feincms3-data's dumps (Django's JSON
    encoder) cut datetimes and times to the millisecond; dataset_sync's keep every digit.
    From feincms3-data's dump, both tools load what it holds."""
    specs = [{"model": "testapp.reading", "delete_missing": True}]
    _before, theirs, ours = run_both(tmp_path, specs, readings, nothing, via)
    assert reading_rows(cut=True) != reading_rows(cut=False)
    assert theirs["testapp.reading"] == reading_rows(cut=True)
    assert ours["testapp.reading"] == reading_rows(cut=via == "feincms3-data dump")


def test_a_cascade_to_rows_the_dump_holds_is_refused(tmp_path):
    """Difference: feincms3-data loses the dumped choices; dataset_sync refuses the load.

    The question was renamed on the source, so the question spec no longer selects it and
    its delete_missing deletes it on the target; its choices are in the dump through their
    own spec, and the cascade would take them.
    """
    specs = [
        {"model": "testapp.question", "filter": {"text__startswith": "Q"}, "delete_missing": True},
        {"model": "testapp.choice", "filter": {"question__author": 1}},
    ]
    _empty("default")
    make_source("default")
    Question.objects.filter(text="Q1.0").update(text="renamed")
    f3_data = json.loads(f3.dump_specs(specs))
    path = tmp_path / "dump.json"
    dump(specs=specs, output=path)
    for alias in ("default", "target"):
        _empty(alias)
        make_source(alias)
    before = rows("target")
    lost = Choice.objects.filter(question__text="Q1.0").order_by("pk")

    f3.load_dump(f3_data)
    assert lost.count() == 0
    # The question's reviews go by cascade too; allowed here, so that the refusal is about
    # the dumped choices.
    with pytest.raises(LoadIntegrityError) as excinfo:
        load(path, using="target", trust_dump_specs=True, allow_cascade=True)

    assert str(excinfo.value) == (
        f"{path}: testapp.choice(pk=1) is in the dump, but deleting rows missing from the dump"
        " cascaded to it. Add the rows it depends on to the dataset, or narrow the"
        " delete_missing filter."
    )
    assert rows("target") == before


def linked_nodes(alias: str) -> None:
    """Nodes linking to earlier and later nodes: links to copies not inserted yet."""
    first, second, third = (
        Node.objects.using(alias).create(name=name) for name in ("first", "second", "third")
    )
    first.see_also.set([second, third])
    third.see_also.set([first])


@VIA
def test_save_as_new_with_many_to_many_links_between_copies(tmp_path, via):
    specs = [{"model": "testapp.node", "save_as_new": True}]
    differential(tmp_path, specs, linked_nodes, linked_nodes, via)


def test_save_as_new_links_to_copies_in_earlier_batches(tmp_path, settings):
    """One object per batch: links to earlier copies are remapped as they are written."""
    settings.DATASET_SYNC_BATCH_SIZE = 1
    specs = [{"model": "testapp.node", "save_as_new": True}]
    differential(tmp_path, specs, linked_nodes, linked_nodes, "dataset_sync")


def scrub(obj: dict[str, Any]) -> dict[str, Any]:
    obj["fields"]["email"] = f"author-{obj['pk']}@example.invalid"
    return obj


def f3_datasets() -> dict[str, Any]:
    """A project's datasets, declared the feincms3-data way, with a mapper."""
    return {
        "authors": {
            "specs": lambda args: [
                {**spec, "filter": {"pk__in": [int(args)]}}
                if spec["model"] == "testapp.author"
                else spec
                for spec in AUTHORS
            ],
            "mappers": {"testapp.author": scrub},
        }
    }


def test_a_feincms3_data_declaration_works_unchanged_through_the_commands(tmp_path, settings):
    """f3dumpdata and f3loaddata, then dumpdata-spec and loaddata-spec, on one declaration.

    Only the setting's name differs. The dumps hold the same objects, mapped the same way.
    """
    settings.FEINCMS3_DATA_DATASETS = "tests.test_differential.f3_datasets"
    settings.DATASET_SYNC_DATASETS = "tests.test_differential.f3_datasets"
    # feincms3-data reads its setting when its command module is imported; it is not an
    # installed app here, so its commands run as instances.
    from feincms3_data.management.commands import f3dumpdata, f3loaddata

    _empty("default")
    make_source("default")
    f3_out = StringIO()
    call_command(f3dumpdata.Command(), "authors:1", stdout=f3_out)
    theirs = tmp_path / "feincms3-data.json"
    theirs.write_text(f3_out.getvalue())
    ours = tmp_path / "dataset_sync.json"
    run("dumpdata-spec", "authors:1", "--output", str(ours))
    assert json.loads(ours.read_text())["objects"] == json.loads(theirs.read_text())["objects"]
    for alias in ("default", "target"):
        _empty(alias)
        outdated(alias)

    call_command(f3loaddata.Command(), str(theirs))
    run("loaddata-spec", str(ours), "--database", "target")

    assert rows("target") == rows("default")
    assert Author.objects.using("target").get(pk=1).email == "author-1@example.invalid"


def choice_key_reused(alias: str) -> None:
    """make_source(), but the target reused choice 1 for another question and added one."""
    make_source(alias)
    Choice.objects.using(alias).filter(pk=1).update(question_id=2, text="reused")
    Choice.objects.using(alias).create(question_id=1, text="only on the target")


@VIA
def test_save_as_new_children_whose_key_the_target_reused(tmp_path, via):
    """The reused row stays with its question; question 1 gets copies of its choices."""
    specs = [
        {"model": "testapp.question", "filter": {"pk": 1}},
        {
            "model": "testapp.choice",
            "filter": {"question": 1},
            "save_as_new": True,
            "delete_missing": True,
        },
    ]
    differential(tmp_path, specs, make_source, choice_key_reused, via)
