"""dump(): what it writes, in which order, and that a failed dump leaves no file behind."""

from __future__ import annotations

import importlib
import json
import os
from io import StringIO
from pathlib import Path

import pytest
from django.db import connection, connections

from dataset_sync import Spec, dump
from dataset_sync.errors import DumpWriteError, InvalidSpecError
from dataset_sync.registry import Dataset
from testapp.models import Node, Tag

from .conftest import make_source

pytestmark = pytest.mark.django_db


def objects(text):
    """The objects of a dump, parsed."""
    return json.loads(text)["objects"]


def test_dump_writes_each_specs_rows_in_spec_order_and_pk_order(tmp_path):
    make_source()
    path = tmp_path / "dump.json"

    summary = dump("authors:2,1", output=path)

    models = [obj["model"] for obj in objects(path.read_text())]
    assert models == ["testapp.choice"] * 12 + ["testapp.review"] * 4 + ["testapp.question"] * 4 + [
        "testapp.author"
    ] * 2 + ["testapp.tag"] * 2 + ["testapp.category"]
    pks = [obj["pk"] for obj in objects(path.read_text()) if obj["model"] == "testapp.choice"]
    assert pks == sorted(pks)
    assert summary.counts == [12, 4, 4, 2, 2, 1]
    assert summary.count == 25


def test_dump_to_a_stream_equals_the_dump_to_a_file(tmp_path, settings):
    make_source()
    path, stream = tmp_path / "dump.json", StringIO()
    dump("authors:1,2", output=path)
    # Batches of one row read the rows differently but must not change what is written.
    settings.DATASET_SYNC_BATCH_SIZE = 1
    dump("authors:1,2", output=stream)
    assert objects(stream.getvalue()) == objects(path.read_text())


def test_dump_header_describes_the_dataset(tmp_path):
    make_source()
    path = tmp_path / "dump.json"
    dump("authors:1", output=path)
    header = json.loads(path.read_text())
    assert header["format"] == "dataset_sync"
    assert header["version"] == 2
    assert (header["dataset"], header["args"]) == ("authors", "1")
    assert header["specs"][0] == {
        "model": "testapp.choice",
        "filter": {"question__author__in": [1]},
        "delete_missing": True,
    }
    assert (header["count"], header["spec_counts"]) == (14, [6, 2, 2, 1, 2, 1])


def test_dump_of_specs_without_a_dataset(tmp_path):
    Tag.objects.create(name="b")
    Tag.objects.create(name="a")
    stream = StringIO()
    summary = dump(specs=[{"model": "testapp.tag", "filter": {"name": "a"}}], output=stream)
    assert [obj["fields"] for obj in objects(stream.getvalue())] == [{"name": "a"}]
    assert summary.counts == [1]
    assert json.loads(stream.getvalue())["dataset"] is None


def test_mappers_rewrite_objects_as_they_are_dumped(tmp_path):
    Node.objects.create(name="secret", data={"token": "abc"})

    def scrub(obj):
        return {**obj, "fields": {**obj["fields"], "data": {}}}

    stream = StringIO()
    dump(Dataset("nodes", lambda args: [Spec(Node)], {"testapp.node": scrub}), output=stream)
    [node] = objects(stream.getvalue())
    assert node["fields"]["data"] == {}


def test_failed_dump_leaves_no_file_and_keeps_the_previous_one(tmp_path):
    make_source()
    path = tmp_path / "dump.json"
    path.write_text("the previous dump")

    def explode(obj):
        raise RuntimeError("mapper failed")

    dataset = Dataset("tags", lambda args: [Spec("testapp.tag")], {"testapp.tag": explode})
    with pytest.raises(RuntimeError):
        dump(dataset, output=path)

    assert [item.name for item in tmp_path.iterdir()] == ["dump.json"]
    assert path.read_text() == "the previous dump"


def test_dump_to_a_missing_directory_names_the_path(tmp_path):
    path = tmp_path / "missing" / "dump.json.gz"
    with pytest.raises(DumpWriteError) as excinfo:
        dump("tree", output=path)
    assert str(excinfo.value) == (
        f"{path}: cannot write the dump (No such file or directory). Check that the directory"
        " exists and is writable."
    )


@pytest.mark.parametrize("name", ["dump.json", "dump.json.gz"])
def test_a_link_planted_where_the_dump_used_to_write_is_not_followed(tmp_path, name):
    """The temporary file had a name anyone could predict, and was opened through links."""
    victim = tmp_path / "victim"
    victim.write_text("not yours")
    predictable = tmp_path / f".{name}.partial{Path(name).suffix}"
    predictable.symlink_to(victim)
    dump("tree", output=tmp_path / name)
    assert victim.read_text() == "not yours"
    assert sorted(item.name for item in tmp_path.iterdir()) == [predictable.name, name, "victim"]
    assert not (tmp_path / name).is_symlink()


def test_the_temporary_file_is_created_exclusively(tmp_path, monkeypatch):
    """Were its name guessed, a link planted there is refused, not followed."""
    victim = tmp_path / "victim"
    victim.write_text("not yours")
    guessed = tmp_path / ".dump.json.guessed.partial"
    guessed.symlink_to(victim)
    # The package's dump() function hides its module of the same name from attribute access.
    module = importlib.import_module("dataset_sync.dump")
    monkeypatch.setattr(module, "_partial_name", lambda path: guessed)
    path = tmp_path / "dump.json"
    with pytest.raises(DumpWriteError) as excinfo:
        dump("tree", output=path)
    assert str(excinfo.value) == (
        f"{path}: cannot write the dump: .dump.json.guessed.partial is in the way (a file or a"
        " link that was not there a moment ago). Check who else writes into the directory."
    )
    assert victim.read_text() == "not yours"
    assert sorted(item.name for item in tmp_path.iterdir()) == [guessed.name, "victim"]


def test_a_link_at_the_output_path_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("not yours")
    path = tmp_path / "dump.json"
    path.symlink_to(victim)
    dump("tree", output=path)
    assert victim.read_text() == "not yours"
    assert not path.is_symlink()
    assert json.loads(path.read_text())["dataset"] == "tree"


def test_dump_to_a_stream_that_fails_part_way_is_one_line():
    """A closed pipe, or stdout redirected to a full disk: an OSError while writing."""
    make_source()
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = open(write_end, "w", buffering=1)  # noqa: SIM115 - its closing fails too
    with pytest.raises(DumpWriteError) as excinfo:
        dump("authors:1", output=stream)
    assert str(excinfo.value) == (
        "the output: cannot write the dump (Broken pipe). Check where the output goes (a full"
        " disk, a closed pipe) and dump it again."
    )
    with pytest.raises(BrokenPipeError):
        stream.close()


def test_specs_naming_an_unknown_model_are_refused(tmp_path):
    with pytest.raises(InvalidSpecError) as excinfo:
        dump(specs=[{"model": "testapp.gone"}], output=tmp_path / "d.json")
    assert str(excinfo.value) == "Spec model 'testapp.gone' is not an installed model."
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("delete_missing", "message"),
    [
        (
            {"map": [("author__in", "testapp.author")]},
            "Spec for testapp.question: 'delete_missing' map entry ('author__in',"
            " 'testapp.author') must name a lookup of the spec's filter and a model label.",
        ),
        (
            {"map": ["pk__in"]},
            "Spec for testapp.question: 'delete_missing' map entry 'pk__in' must be a pair"
            " (lookup, model), like ('parent__in', 'app.parent').",
        ),
        (
            {"mapping": []},
            "Spec for testapp.question: 'delete_missing' has unknown keys mapping; use True,"
            " or a dict with 'map'.",
        ),
    ],
)
def test_malformed_delete_missing_map_is_refused(tmp_path, delete_missing, message):
    spec = {
        "model": "testapp.question",
        "filter": {"pk__in": [1]},
        "delete_missing": delete_missing,
    }
    with pytest.raises(InvalidSpecError) as excinfo:
        dump(specs=[spec], output=tmp_path / "d.json")
    assert str(excinfo.value) == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite's read transaction locks writers out instead of letting them through.",
)
@pytest.mark.django_db(databases=["default"], transaction=True)
def test_dump_is_one_snapshot_while_the_application_writes(tmp_path):
    make_source()
    other = connections.create_connection("default")

    def write_between_specs(message):
        # After the first spec (choices), the application renames a tag and commits.
        if message.startswith("testapp.choice"):
            with other.cursor() as cursor:
                cursor.execute("UPDATE testapp_tag SET name = 'renamed' WHERE name = 'python'")

    path = tmp_path / "dump.json"
    try:
        dump("authors:1,2", output=path, log=write_between_specs)
    finally:
        other.close()

    tags = [obj for obj in json.loads(path.read_text())["objects"] if obj["model"] == "testapp.tag"]
    assert sorted(tag["fields"]["name"] for tag in tags) == ["django", "python"]
    assert Tag.objects.filter(name="renamed").exists()
