from __future__ import annotations

import pytest

from dataset_sync import dump, load
from testapp.models import (
    Question,
)

from .conftest import make_source, rows

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)


def dataset_rows(alias: str, author_ids: list[int]) -> dict[str, list[tuple]]:
    state = rows(alias)
    questions = set(
        Question.objects.using(alias).filter(author__in=author_ids).values_list("pk", flat=True)
    )
    return {
        "author": [r for r in state["testapp.author"] if r[0] in author_ids],
        "question": [r for r in state["testapp.question"] if r[0] in questions],
        "choice": [r for r in state["testapp.choice"] if r[1] in questions],
        "tags": [r for r in state["testapp.question_tags"] if r[0] in questions],
        "review": [r for r in state["testapp.review"] if r[1] in questions],
        "tag": state["testapp.tag"],
    }


def test_round_trip_into_empty_target_equals_source(tmp_path):
    make_source()
    path = tmp_path / "dump.json"
    dump("authors:1,2", output=path)
    report = load(path, using="target")
    assert dataset_rows("target", [1, 2]) == dataset_rows("default", [1, 2])
    assert report.counts["testapp.choice"].created == 12
    assert report.counts["testapp.question"].created == 4


def test_specs_with_flags_not_supported_yet_are_refused(tmp_path):
    from dataset_sync.errors import InvalidSpecError

    with pytest.raises(InvalidSpecError) as excinfo:
        dump(specs=[{"model": "testapp.tag", "save_as_new": True}], output=tmp_path / "d.json")
    assert str(excinfo.value) == (
        "Spec for testapp.tag uses 'save_as_new', which dataset_sync does not support yet."
        " Remove the flag from the dataset."
    )
    assert not (tmp_path / "d.json").exists()
