from __future__ import annotations

import datetime as dt
import json
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from dataset_sync import dump, load
from dataset_sync.errors import DumpFormatError
from testapp.models import Author, Category, Choice, Question, Review, Tag

GOLDEN = Path(__file__).parent / "golden" / "authors-1.json"


@pytest.mark.django_db
def test_dump_format_is_pinned_by_a_golden_file(tmp_path):
    """Changing the format must be deliberate: bump VERSION, then regenerate the file with
    DATASET_SYNC_REGENERATE_GOLDEN=1."""
    tag = Tag.objects.create(pk=1, name="zürich")
    Category.objects.create(pk=1, name="news")
    author = Author.objects.create(pk=1, name="Ada", email="ada@example.com")
    question = Question.objects.create(
        pk=1,
        author=author,
        category_id=1,
        text='Say "hi"?',
        pub_date=dt.datetime(2026, 11, 23, 12, 0, 0, 500000, tzinfo=dt.timezone.utc),
    )
    question.tags.set([tag])
    Choice.objects.create(pk=1, question=question, text="yes", votes=3, score=Decimal("1.50"))
    Review.objects.create(pk=1, question=question, author=author, rating=5)
    Author.objects.filter(pk=1).update(favorite_question=question)

    path = tmp_path / "dump.json"
    dump("authors:1", output=path)

    text = re.sub(r'"created": "[^"]+"', '"created": "<created>"', path.read_text())
    text = re.sub(r'"vendor": "[^"]+"', '"vendor": "<vendor>"', text)
    text = re.sub(r'"django": "[^"]+"', '"django": "<django>"', text)
    if os.environ.get("DATASET_SYNC_REGENERATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


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
