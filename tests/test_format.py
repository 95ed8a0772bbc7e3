from __future__ import annotations

import datetime as dt
import json
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connections

from dataset_sync import dump, load
from dataset_sync.errors import DumpFormatError
from testapp.models import Author, Category, Choice, Question, Review, Tag

from .conftest import Statements, dataset_state

GOLDEN = Path(__file__).parent / "golden"
#: The format written now, pinned by the test below.
CURRENT = GOLDEN / "authors-1.v2.json"
#: Format version 1, written by dataset_sync before version 2: it must keep loading.
VERSION_1 = GOLDEN / "authors-1.v1.json"


def make_golden_source(pub_date: dt.datetime) -> None:
    """The rows the golden files were dumped from, with the question's ``pub_date``."""
    tag = Tag.objects.create(pk=1, name="zürich")
    Category.objects.create(pk=1, name="news")
    author = Author.objects.create(pk=1, name="Ada", email="ada@example.com")
    question = Question.objects.create(
        pk=1, author=author, category_id=1, text='Say "hi"?', pub_date=pub_date
    )
    question.tags.set([tag])
    Choice.objects.create(pk=1, question=question, text="yes", votes=3, score=Decimal("1.50"))
    Review.objects.create(pk=1, question=question, author=author, rating=5)
    Author.objects.filter(pk=1).update(favorite_question=question)


@pytest.mark.django_db
def test_dump_format_is_pinned_by_a_golden_file(tmp_path):
    """Changing the format must be deliberate: bump VERSION, keep the old golden file loading
    (below), then write the new one with DATASET_SYNC_REGENERATE_GOLDEN=1."""
    make_golden_source(dt.datetime(2026, 11, 23, 12, 0, 0, 500123, tzinfo=dt.timezone.utc))

    path = tmp_path / "dump.json"
    dump("authors:1", output=path)

    text = re.sub(r'"created": "[^"]+"', '"created": "<created>"', path.read_text())
    text = re.sub(r'"vendor": "[^"]+"', '"vendor": "<vendor>"', text)
    text = re.sub(r'"django": "[^"]+"', '"django": "<django>"', text)
    if os.environ.get("DATASET_SYNC_REGENERATE_GOLDEN"):
        CURRENT.write_text(text)
    assert text == CURRENT.read_text()


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_dump_of_format_version_1_loads_and_its_reload_writes_nothing():
    """Version 1 wrote datetimes to the millisecond; its values load and compare as they are."""
    # The golden file's source: a pub_date with no digits below the millisecond, so version 1
    # held it exactly.
    make_golden_source(dt.datetime(2026, 11, 23, 12, 0, 0, 500000, tzinfo=dt.timezone.utc))
    assert '"version": 1,' in VERSION_1.read_text()

    report = load(VERSION_1, using="target")

    assert report.counts["testapp.question"].created == 1
    assert dataset_state("authors:1", "target") == dataset_state("authors:1", "default")
    statements = Statements()
    with connections["target"].execute_wrapper(statements):
        report = load(VERSION_1, using="target")
    assert statements.writes() == []
    assert not report.changed


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_reformatted_dump_is_still_verified_and_loaded(tmp_path):
    """A dump pretty-printed by a tool loses the line layout but keeps count and digest."""
    Tag.objects.create(name="python")
    path = tmp_path / "dump.json"
    dump("everything", output=path)
    path.write_text(json.dumps(json.loads(path.read_text()), indent=2))
    report = load(path, using="target")
    assert report.counts["testapp.tag"].created == 1
    edited = path.read_text().replace('"python"', '"edited"')
    path.write_text(edited)
    with pytest.raises(DumpFormatError) as excinfo:
        load(path, using="target")
    assert str(excinfo.value) == (
        f"{path}: the digest of the objects does not match the trailer; the file was changed"
        " after it was dumped. Dump it again."
    )


@pytest.mark.django_db(databases=["default", "target"], transaction=True)
def test_feincms3_data_dump_without_trailer_is_loaded(tmp_path):
    path = tmp_path / "feincms3-data.json"
    document = {
        "version": 1,
        "specs": [{"model": "testapp.tag", "delete_missing": True}],
        "objects": [{"model": "testapp.tag", "pk": 3, "fields": {"name": "python"}}],
    }
    path.write_text(json.dumps(document))
    Tag.objects.using("target").create(pk=9, name="stale")
    report = load(path, using="target", trust_dump_specs=True)
    assert list(Tag.objects.using("target").values_list("pk", "name")) == [(3, "python")]
    assert (report.counts["testapp.tag"].created, report.counts["testapp.tag"].deleted) == (1, 1)
