"""What a target trusts: its own dataset declarations, and with a key, only signed dumps."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core import checks
from django.core.management.base import CommandError

from dataset_sync import Spec, dump, load, unregister
from dataset_sync.errors import InvalidSpecError, StaleDumpError, UntrustedDumpError
from testapp.models import Tag

from .conftest import copy, make_source, rows, run

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

OVERRIDE = "or load with --trust-dump-specs to use the dump's specs."


@pytest.fixture
def refused():
    """Loads ``path`` into the target through load() and loaddata-spec; both must refuse it
    with ``message`` (exit code 5), and leave the target as it was."""

    def check(path, message, error=UntrustedDumpError, trusted=False):
        before = rows("target")
        with pytest.raises(error) as excinfo:
            load(path, using="target", trust_dump_specs=trusted)
        assert str(excinfo.value) == message
        options = ["--trust-dump-specs"] if trusted else []
        with pytest.raises(CommandError) as excinfo:
            run("loaddata-spec", str(path), "--database", "target", *options)
        assert (str(excinfo.value), excinfo.value.returncode) == (message, error.exit_code)
        assert rows("target") == before

    return check


@pytest.fixture
def tags_dump(tmp_path, restore_registry):
    """A dump of the dataset 'tags', which deletes every tag the dump lacks."""
    restore_registry("tags")(lambda args: [Spec("testapp.tag", delete_missing=True)])
    Tag.objects.create(name="python")
    Tag.objects.using("target").create(pk=50, name="only on the target")
    return copy(tmp_path, "tags")


def test_dump_whose_specs_differ_from_the_targets_declaration_is_refused(
    tags_dump, restore_registry, refused
):
    # The target declares 'tags' without delete_missing: a dump must not make it delete.
    restore_registry("tags")(lambda args: [Spec("testapp.tag")])
    refused(
        tags_dump,
        f"{tags_dump}: the dump's specs differ from what dataset 'tags' declares here: in the"
        ' dump only: {"delete_missing": true, "model": "testapp.tag"}, declared here only:'
        ' {"model": "testapp.tag"}. Deploy the same declaration on both sides, ' + OVERRIDE,
    )


def test_dump_with_other_arguments_is_checked_against_the_specs_for_those(tmp_path, refused):
    make_source()
    # The target's declaration selects other authors for the same arguments when the ids
    # in the header are edited; the digest covers only the objects.
    path = copy(tmp_path, "authors:1")
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"args": "1"', '"args": "2"')
    path.write_text("".join(lines))
    refused(
        path,
        f"{path}: the dump's specs differ from what dataset 'authors:2' declares here: in the"
        ' dump only: {"delete_missing": true, "filter": {"question__author__in": [1]},'
        ' "model": "testapp.choice"}; {"delete_missing": true, "filter":'
        ' {"question__author__in": [1]}, "model": "testapp.review"}; {"delete_missing":'
        ' true, "filter": {"author__in": [1]}, "model": "testapp.question"}; {"filter":'
        ' {"pk__in": [1]}, "model": "testapp.author"}, declared here only: {"delete_missing":'
        ' true, "filter": {"question__author__in": [2]}, "model": "testapp.choice"};'
        ' {"delete_missing": true, "filter": {"question__author__in": [2]}, "model":'
        ' "testapp.review"}; {"delete_missing": true, "filter": {"author__in": [2]}, "model":'
        ' "testapp.question"}; {"filter": {"pk__in": [2]}, "model": "testapp.author"}.'
        " Deploy the same declaration on both sides, " + OVERRIDE,
    )


def test_dump_of_a_dataset_the_target_does_not_declare_is_refused(tags_dump, refused):
    unregister("tags")
    refused(
        tags_dump,
        f"{tags_dump}: the dump is of dataset 'tags', which this database does not declare"
        " (known datasets: accessories, authors, books, comments, everything, gadgets, items,"
        " makers, parts, people, questions, section, tree, widgets)."
        " Declare it here, " + OVERRIDE,
    )


def test_dump_that_names_no_dataset_is_refused_unless_trusted(tmp_path, refused):
    Tag.objects.create(name="python")
    path = tmp_path / "specs.json"
    dump(specs=[Spec("testapp.tag", delete_missing=True)], output=path)
    Tag.objects.using("target").create(pk=50, name="stale")
    refused(
        path,
        f"{path}: the dump names no dataset (it was written from specs, or by feincms3-data),"
        " so this database cannot check what it may delete. Load it with --trust-dump-specs"
        " if you trust the dump's specs.",
    )

    run("loaddata-spec", str(path), "--database", "target", "--trust-dump-specs")

    assert list(Tag.objects.using("target").values_list("name", flat=True)) == ["python"]


def test_trusting_a_dump_loads_it_with_its_own_specs(tags_dump, restore_registry):
    restore_registry("tags")(lambda args: [Spec("testapp.tag")])
    report = load(tags_dump, using="target", trust_dump_specs=True)
    assert report.counts["testapp.tag"].deleted == 1
    assert list(Tag.objects.using("target").values_list("name", flat=True)) == ["python"]


def test_matching_dump_loads_with_the_targets_own_specs(tags_dump):
    report = load(tags_dump, using="target")
    assert (report.counts["testapp.tag"].created, report.counts["testapp.tag"].deleted) == (1, 1)


@pytest.mark.parametrize("key", ["_connector", "_negated"])
def test_filter_keys_that_are_not_lookups_are_refused_even_when_trusted(tmp_path, key):
    path = tmp_path / "hostile.json"
    spec = {"model": "testapp.tag", "filter": {key: "OR 1=1"}, "delete_missing": True}
    path.write_text(json.dumps({"version": 1, "specs": [spec], "objects": []}))
    Tag.objects.using("target").create(name="kept")
    before = rows("target")
    with pytest.raises(InvalidSpecError) as excinfo:
        load(path, using="target", trust_dump_specs=True)
    assert str(excinfo.value) == (
        f"{path}: Spec for testapp.tag: filter key '{key}' is not a field lookup."
    )
    assert rows("target") == before


RUNAWAY = "^(a+)+$"


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("testapp.tag", "name__regex"),
        ("testapp.choice", "question__text__iregex"),
        ("testapp.tag", "name__lower__regex"),
    ],
)
def test_a_regular_expression_in_a_trusted_dumps_filter_is_refused_before_it_runs(
    tmp_path, refused, model, key
):
    """Even without delete_missing: every filter is run before the load, and ^(a+)+$ on a
    long enough value never ends (on SQLite in Python, beyond any statement timeout)."""
    Tag.objects.using("target").create(name="a" * 40 + "!")
    path = tmp_path / "hostile.json"
    spec = {"model": model, "filter": {"pk__gt": 0, key: RUNAWAY}}
    path.write_text(json.dumps({"version": 1, "specs": [spec], "objects": []}))
    refused(
        path,
        f"{path}: Spec for {model}: the filter uses {key}; this database runs no regular"
        " expression from a dump, since one such as ^(a+)+$ runs for ever. Declare the dataset"
        " here and load without --trust-dump-specs.",
        trusted=True,
    )


def test_a_regular_expression_the_target_declares_itself_is_used(tmp_path, restore_registry):
    restore_registry("py-tags")(
        lambda args: [Spec("testapp.tag", filter={"name__regex": "^py"}, delete_missing=True)]
    )
    Tag.objects.create(pk=7, name="python")
    Tag.objects.using("target").create(pk=50, name="pypy")
    Tag.objects.using("target").create(pk=51, name="django")
    load(copy(tmp_path, "py-tags"), using="target")
    assert rows("target")["testapp.tag"] == [(7, "python"), (51, "django")]


# Signing


@pytest.fixture
def signed(settings):
    settings.DATASET_SYNC_SIGNING_KEY = "the key both sides share"
    return settings


def test_signed_dump_loads_and_does_not_contain_the_key(tags_dump, signed, tmp_path):
    path = copy(tmp_path, "tags", "signed.json")
    trailer = json.loads(path.read_text())
    assert len(trailer["signature"]) == 64
    assert "the key both sides share" not in path.read_text()

    out, err = run("loaddata-spec", str(path), "--database", "target", "--json")

    assert json.loads(out)["status"] == "changed"
    assert "the key both sides share" not in out + err


def test_signed_dump_reformatted_by_a_json_tool_still_verifies(tags_dump, signed, tmp_path):
    path = copy(tmp_path, "tags", "signed.json")
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4))
    assert load(path, using="target").changed


def test_unsigned_dump_is_refused_when_the_target_has_a_key(tags_dump, signed, refused):
    refused(
        tags_dump,
        f"{tags_dump}: the dump is not signed, and this database loads only signed dumps"
        " (DATASET_SYNC_SIGNING_KEY is set). Set the same key where the dump is made and dump"
        " it again.",
    )


def test_feincms3_data_dump_is_refused_when_the_target_has_a_key(tmp_path, signed, refused):
    path = tmp_path / "feincms3-data.json"
    path.write_text(json.dumps({"version": 1, "specs": [{"model": "testapp.tag"}], "objects": []}))
    refused(
        path,
        f"{path}: the dump is not signed, and this database loads only signed dumps"
        " (DATASET_SYNC_SIGNING_KEY is set). Set the same key where the dump is made and dump"
        " it again.",
        trusted=True,
    )


MISMATCH = (
    ": the dump's signature does not match: it was signed with another key, or changed after"
    " it was dumped. Use the same DATASET_SYNC_SIGNING_KEY on both sides and dump it again."
)


def test_dump_signed_with_another_key_is_refused(tags_dump, signed, tmp_path, refused):
    signed.DATASET_SYNC_SIGNING_KEY = "the source's key"
    path = copy(tmp_path, "tags", "signed.json")
    signed.DATASET_SYNC_SIGNING_KEY = "the target's key"
    refused(path, f"{path}{MISMATCH}")


def test_signed_dump_with_an_edited_header_is_refused(tags_dump, signed, tmp_path, refused):
    path = copy(tmp_path, "tags", "signed.json")
    lines = path.read_text().splitlines(keepends=True)
    # The digest covers the objects; the signature covers the header too.
    lines[0] = lines[0].replace('"vendor": "', '"vendor": "edited ')
    path.write_text("".join(lines))
    refused(path, f"{path}{MISMATCH}")


def test_signing_key_from_the_environment(tags_dump, tmp_path, monkeypatch, refused):
    monkeypatch.setenv("DATASET_SYNC_SIGNING_KEY", "from the environment")
    path = copy(tmp_path, "tags", "signed.json")
    assert "signature" in json.loads(path.read_text())
    assert load(path, using="target").changed
    monkeypatch.setenv("DATASET_SYNC_SIGNING_KEY", "another")
    refused(path, f"{path}{MISMATCH}")


# Replays


def stale(path, message, *options, **load_options):
    """Both load() and loaddata-spec refuse ``path`` as stale (exit code 5), writing nothing."""
    before = rows("target")
    with pytest.raises(StaleDumpError) as excinfo:
        load(path, using="target", **load_options)
    assert str(excinfo.value) == message
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target", *options)
    assert (str(excinfo.value), excinfo.value.returncode) == (message, 5)
    assert rows("target") == before


def created(path):
    return json.loads(path.read_text())["created"]


def test_a_dump_older_than_max_age_is_refused(tags_dump, signed, tmp_path):
    path = copy(tmp_path, "tags", "signed.json")
    # Any dump is older than no time at all.
    stale(
        path,
        f"{path}: the dump was made at {created(path)}, more than 0 seconds ago, and this"
        " database loads only dumps made since (--max-age, DATASET_SYNC_MAX_AGE). Dump it again.",
        "--max-age",
        "0",
        max_age=0,
    )
    assert load(path, using="target", max_age=3600).changed


def test_max_age_from_the_setting(tags_dump, signed, tmp_path):
    path = copy(tmp_path, "tags", "signed.json")
    signed.DATASET_SYNC_MAX_AGE = dt.timedelta(0)
    stale(
        path,
        f"{path}: the dump was made at {created(path)}, more than 0 seconds ago, and this"
        " database loads only dumps made since (--max-age, DATASET_SYNC_MAX_AGE). Dump it again.",
    )
    # The command's option overrides the setting.
    out, _err = run("loaddata-spec", str(path), "--database", "target", "--max-age", "3600")
    assert "status=changed" in out


def test_a_max_age_setting_of_the_wrong_shape_is_one_line_and_a_check_error(
    tags_dump, tmp_path, settings
):
    path = copy(tmp_path, "tags")
    settings.DATASET_SYNC_MAX_AGE = "1 hour"
    before = rows("target")
    message = "DATASET_SYNC_MAX_AGE must be a number of seconds or a timedelta, not '1 hour'."
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target")
    assert (str(excinfo.value), excinfo.value.returncode) == (message, 4)
    assert rows("target") == before
    assert [
        (error.id, error.msg)
        for error in checks.run_checks()
        if error.id and error.id.startswith("dataset_sync.")
    ] == [("dataset_sync.E010", message)]


def test_a_signed_dumps_time_cannot_be_moved_forward(tags_dump, signed, tmp_path, refused):
    path = copy(tmp_path, "tags", "signed.json")
    signed.DATASET_SYNC_MAX_AGE = 3600
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace(created(path), "2999-01-01T00:00:00+00:00")
    path.write_text("".join(lines))
    refused(path, f"{path}{MISMATCH}")


def test_a_dump_that_does_not_say_when_it_was_made_is_refused_under_max_age(tmp_path):
    path = tmp_path / "feincms3-data.json"
    path.write_text(json.dumps({"version": 1, "specs": [{"model": "testapp.tag"}], "objects": []}))
    stale(
        path,
        f"{path}: the dump does not say when it was made, and this database loads only dumps"
        " made in the last 60 seconds (--max-age, DATASET_SYNC_MAX_AGE). Dump it again.",
        "--max-age",
        "60",
        "--trust-dump-specs",
        max_age=60,
        trust_dump_specs=True,
    )
