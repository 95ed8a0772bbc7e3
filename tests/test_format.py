from __future__ import annotations

import datetime as dt
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from dataset_sync import dump
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
    if os.environ.get("DATASET_SYNC_REGENERATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
