"""dataset_sync.feincms3_data: feincms3-data's Python API, so code switches by one import."""

from __future__ import annotations

import inspect
import json

import feincms3_data.data as f3
import pytest

from dataset_sync import DatasetSyncError
from dataset_sync import feincms3_data as compat
from dataset_sync.errors import DumpFormatError, InvalidSpecError, LoadIntegrityError
from testapp.models import Author, Category, Choice, Item, Node, Question, Tag

from .conftest import make_source, rows

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

PUBLIC = [
    "dump_specs",
    "load_dump",
    "specs_for_models",
    "specs_for_app_models",
    "specs_for_derived_models",
    "InvalidSpecError",
    "InvalidVersionError",
    "InconsistentModelError",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_of_feincms3_data_is_offered(name):
    ours, theirs = getattr(compat, name), getattr(f3, name)
    if isinstance(theirs, type):
        assert issubclass(ours, DatasetSyncError)
    else:
        ours_parameters = inspect.signature(ours).parameters
        theirs_parameters = inspect.signature(theirs).parameters
        # The same parameters, in the same order, of the same kind.
        assert [(p.name, p.kind) for p in ours_parameters.values()][: len(theirs_parameters)] == [
            (p.name, p.kind) for p in theirs_parameters.values()
        ]


def test_spec_helpers_return_the_same_dicts_as_feincms3_data():
    spec = {"delete_missing": True, "filter": {"pk__in": [1]}}
    assert compat.specs_for_models([Tag, Node], spec) == f3.specs_for_models([Tag, Node], spec)
    assert compat.specs_for_app_models("testapp", spec) == f3.specs_for_app_models("testapp", spec)
    assert compat.specs_for_derived_models(Item) == f3.specs_for_derived_models(Item)
    assert compat.specs_for_models([Tag], {"save_as_new": False}) == [
        {"save_as_new": False, "model": "testapp.tag"}
    ]


def test_spec_helpers_refuse_unknown_keys():
    with pytest.raises(InvalidSpecError) as excinfo:
        compat.specs_for_models([Tag], {"hello": "world"})
    assert str(excinfo.value) == (
        "Spec for testapp.tag has unknown keys hello; use allow_cascade, defer_values,"
        " delete_missing, filter, identity, ignore_missing_m2m,"
        " missing_references, model, rules, save_as_new."
    )


def test_dump_specs_and_load_dump_move_a_dataset():
    make_source()
    specs = [
        *compat.specs_for_models([Author, Category, Tag]),
        *compat.specs_for_models([Question, Choice], {"delete_missing": True}),
    ]
    data = json.loads(compat.dump_specs(specs))
    # dataset_sync's own format, whose version 2 keeps microseconds.
    assert data["version"] == 2
    assert data["specs"] == specs

    report = compat.load_dump(data, using="target")

    source = rows("default")
    target = rows("target")
    for label in ("testapp.author", "testapp.tag", "testapp.question", "testapp.choice"):
        assert target[label] == source[label]
    assert target["testapp.question_tags"] == source["testapp.question_tags"]
    assert report.counts["testapp.choice"].created == 12


def test_load_dump_loads_a_dump_written_by_feincms3_data():
    make_source()
    specs = f3.specs_for_models([Author, Category, Tag, Question, Choice], {"delete_missing": True})
    data = json.loads(f3.dump_specs(specs))

    compat.load_dump(data, using="target")

    source, target = rows("default"), rows("target")
    for label in ("testapp.author", "testapp.tag", "testapp.question", "testapp.choice"):
        assert target[label] == source[label]
    assert target["testapp.question_tags"] == source["testapp.question_tags"]


def test_dump_specs_with_mappers_rewrites_objects():
    Tag.objects.create(name="python")

    def shout(obj):
        obj["fields"]["name"] = obj["fields"]["name"].upper()
        return obj

    data = json.loads(
        compat.dump_specs(compat.specs_for_models([Tag]), mappers={"testapp.tag": shout})
    )

    assert [obj["fields"] for obj in data["objects"]] == [{"name": "PYTHON"}]


def test_dump_specs_with_objects_dumps_those_objects():
    python = Tag.objects.create(name="python")
    Tag.objects.create(name="django")
    python.name = "changed in memory"

    data = json.loads(compat.dump_specs(compat.specs_for_models([Tag]), objects=[python]))

    assert data["objects"] == [
        {"model": "testapp.tag", "pk": python.pk, "fields": {"name": "changed in memory"}}
    ]
    compat.load_dump(data, using="target")
    assert list(Tag.objects.using("target").values_list("name", flat=True)) == ["changed in memory"]


def test_dump_specs_refuses_objects_without_a_spec():
    node = Node.objects.create(name="root")
    with pytest.raises(InvalidSpecError) as excinfo:
        compat.dump_specs(compat.specs_for_models([Tag]), objects=[node])
    assert str(excinfo.value) == (
        "dump_specs(): objects of testapp.node have no spec. Add a spec for each model of the"
        " objects."
    )


def test_load_dump_refuses_another_version():
    make_source("target")
    before = rows("target")
    with pytest.raises(compat.InvalidVersionError) as excinfo:
        compat.load_dump({"version": -1}, using="target")
    assert isinstance(excinfo.value, DumpFormatError)
    assert str(excinfo.value) == (
        "<dump>: format version -1 is not supported; this dataset_sync reads versions 1 and"
        " 2. Use the same dataset_sync version on both sides."
    )
    assert rows("target") == before


def test_load_dump_refuses_an_invalid_spec():
    make_source("target")
    before = rows("target")
    data = {"version": 1, "specs": [{"model": "testapp.tag", "hello": "world"}], "objects": []}
    with pytest.raises(compat.InvalidSpecError) as excinfo:
        compat.load_dump(data, using="target")
    assert str(excinfo.value) == (
        "<dump>: Spec for testapp.tag has unknown keys hello; use allow_cascade,"
        " defer_values, delete_missing, filter, identity, ignore_missing_m2m,"
        " missing_references, model, rules, save_as_new."
    )
    assert rows("target") == before


def test_load_dump_refuses_a_dump_edited_after_dumping():
    make_source()
    data = json.loads(compat.dump_specs(compat.specs_for_models([Tag])))
    data["objects"][0]["fields"]["name"] = "edited"
    with pytest.raises(DumpFormatError) as excinfo:
        compat.load_dump(data, using="target")
    assert str(excinfo.value) == (
        "<dump>: the digest of the objects does not match the trailer; the file was changed"
        " after it was dumped. Dump it again."
    )
    assert rows("target")["testapp.tag"] == []


def test_inconsistent_model_error_is_a_load_integrity_error():
    assert issubclass(compat.InconsistentModelError, LoadIntegrityError)


def test_load_dump_reads_an_edited_dump_without_its_format_key_as_feincms3_datas():
    """Code that edits dumps before loading them drops 'format', and with it the digest."""
    Tag.objects.create(name="python")
    data = json.loads(compat.dump_specs(compat.specs_for_models([Tag])))
    data["objects"][0]["fields"]["name"] = "edited"
    del data["format"]

    compat.load_dump(data, using="target")

    assert list(Tag.objects.using("target").values_list("name", flat=True)) == ["edited"]
