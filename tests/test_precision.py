"""Every value survives a dump and a load exactly: microseconds, and every decimal place.

Django's JSON encoder cuts datetimes and times to the millisecond and writes small decimals
with an exponent; format version 2 writes them exactly (dataset_sync/encoding.py), so a row
synced to the target equals the source's field by field, and a reload writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal

import pytest
from django.core import serializers
from django.core.management.base import CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.test import override_settings

from dataset_sync import dump, load, signing
from dataset_sync.errors import UntrustedDumpError
from testapp.models import Reading

from .conftest import Statements, copy, rows, run

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

UTC = dt.timezone.utc


def make_readings(using: str = "default", aware: bool = True) -> list[tuple[object, ...]]:
    """Readings whose values need every digit; returns them as (taken, time, value, lasted)."""
    tz = UTC if aware else None
    values = [
        (
            dt.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=tz),
            dt.time(23, 59, 59, 999999),
            Decimal("0.0000001"),
            dt.timedelta(days=1, microseconds=1),
        ),
        (
            dt.datetime(2026, 5, 6, 7, 8, 9, 999, tzinfo=tz),
            dt.time(0, 0, 0, 1),
            Decimal("12345678.1234567"),
            dt.timedelta(seconds=-1, microseconds=999999),
        ),
        (
            dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=tz),
            dt.time(12, 0),
            Decimal("-0.5000000"),
            dt.timedelta(0),
        ),
        (
            dt.datetime(1999, 12, 31, 23, 59, 59, 500000, tzinfo=tz),
            dt.time(6, 30, 0, 500000),
            Decimal("0E-7"),
            dt.timedelta(microseconds=123),
        ),
    ]
    for taken, time_of_day, value, lasted in values:
        Reading.objects.using(using).create(
            taken=taken, time_of_day=time_of_day, value=value, lasted=lasted
        )
    return values


def objects(path) -> list[str]:
    """A dump's object lines."""
    return path.read_text().splitlines()[1:-1]


def readings(alias: str) -> list[tuple[object, ...]]:
    """Every reading on ``alias`` through the ORM, as (taken, time, value, lasted)."""
    return list(
        Reading.objects.using(alias)
        .order_by("pk")
        .values_list("taken", "time_of_day", "value", "lasted")
    )


@pytest.mark.parametrize("use_tz", [True, False], ids=["USE_TZ", "naive"])
def test_readings_survive_dump_and_load_to_the_microsecond(tmp_path, use_tz):
    with override_settings(USE_TZ=use_tz):
        made = make_readings(aware=use_tz)
        # The source database itself keeps every digit (DATETIME(6) and TIME(6) on MariaDB).
        assert readings("default") == made
        path = copy(tmp_path, "everything")

        report = load(path, using="target")

        assert report.counts["testapp.reading"].created == 4
        assert readings("target") == made
        assert rows("target") == rows("default")
        # Equal decimals may differ in their places (0.5 and 0.5000000): dumped again, the
        # target's rows are the source's, byte for byte.
        again = tmp_path / "again.json"
        dump("everything", output=again, using="target")
        assert objects(again) == objects(path)
        statements = Statements()
        with connections["target"].execute_wrapper(statements):
            report = load(path, using="target")
        assert statements.writes() == []
        assert report.counts["testapp.reading"].unchanged == 4
        assert not report.changed


def test_dump_writes_microseconds_and_decimals_with_every_place(tmp_path):
    make_readings()
    path = copy(tmp_path, "everything")
    lines = [line for line in objects(path) if line.startswith('{"model": "testapp.reading"')]
    assert [json.loads(line.rstrip(","))["fields"] for line in lines] == [
        {
            "taken": "2026-05-06T07:08:09.123456Z",
            "time_of_day": "23:59:59.999999",
            "value": "0.0000001",
            "lasted": "1 00:00:00.000001",
        },
        {
            "taken": "2026-05-06T07:08:09.000999Z",
            "time_of_day": "00:00:00.000001",
            "value": "12345678.1234567",
            "lasted": "-1 23:59:59.999999",
        },
        {
            "taken": "2026-05-06T07:08:09Z",
            "time_of_day": "12:00:00",
            "value": "-0.5000000",
            "lasted": "00:00:00",
        },
        {
            "taken": "1999-12-31T23:59:59.500Z",
            "time_of_day": "06:30:00.500",
            "value": "0.0000000",
            "lasted": "00:00:00.000123",
        },
    ]


def test_a_changed_microsecond_is_an_update(tmp_path):
    """Comparison is exact: a value that differs below the millisecond is written."""
    make_readings()
    load(copy(tmp_path, "everything", "first.json"), using="target")
    first = Reading.objects.order_by("pk").first()
    Reading.objects.filter(pk=first.pk).update(
        taken=first.taken + dt.timedelta(microseconds=1),
        time_of_day=dt.time(23, 59, 59, 999998),
    )

    report = load(copy(tmp_path, "everything", "second.json"), using="target")

    counts = report.counts["testapp.reading"]
    assert (counts.updated, counts.unchanged) == (1, 3)
    assert readings("target") == readings("default")


READINGS = [{"model": "testapp.reading", "delete_missing": True}]


def version_1_dump(tmp_path, key=None):
    """The source's readings as format version 1 wrote them: Django's serializer and JSON
    encoder (times to the millisecond, decimals as ``str()``), signed with ``key`` if given."""
    path = tmp_path / "version-2.json"
    dump(specs=READINGS, output=path)
    document = json.loads(path.read_text())
    trailer_keys = ("objects", "count", "spec_counts", "sha256")
    header = {name: value for name, value in document.items() if name not in trailer_keys}
    header["version"] = 1
    queryset = Reading.objects.order_by("pk")
    lines = [
        json.dumps(obj, cls=DjangoJSONEncoder, ensure_ascii=False)
        for obj in serializers.serialize("python", queryset)
    ]
    trailer = {
        "count": len(lines),
        "spec_counts": [len(lines)],
        "sha256": hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest(),
    }
    if key is not None:
        trailer["signature"] = signing.sign(header, trailer, key)
    path = tmp_path / "version-1.json"
    opening = json.dumps(header, ensure_ascii=False)[:-1] + ', "objects": ['
    closing = "], " + json.dumps(trailer)[1:]
    path.write_text("\n".join([opening, ",\n".join(lines), closing]) + "\n")
    return path


#: make_readings() as a version 1 dump holds them: cut to the millisecond.
MILLISECONDS = [
    (
        dt.datetime(2026, 5, 6, 7, 8, 9, 123000, tzinfo=UTC),
        dt.time(23, 59, 59, 999000),
        Decimal("0.0000001"),
        dt.timedelta(days=1, microseconds=1),
    ),
    (
        dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC),
        dt.time(0, 0),
        Decimal("12345678.1234567"),
        dt.timedelta(seconds=-1, microseconds=999999),
    ),
    (
        dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC),
        dt.time(12, 0),
        Decimal("-0.5"),
        dt.timedelta(0),
    ),
    (
        dt.datetime(1999, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        dt.time(6, 30, 0, 500000),
        Decimal("0"),
        dt.timedelta(microseconds=123),
    ),
]


def test_version_1_dump_loads_as_before_and_its_reload_writes_nothing(tmp_path):
    """Version 1 values are what the source held, to the millisecond; they load and compare
    as they are, so a reload writes nothing."""
    make_readings()
    path = version_1_dump(tmp_path)
    assert '"1E-7"' in path.read_text()

    report = load(path, using="target", trust_dump_specs=True)

    assert report.counts["testapp.reading"].created == 4
    assert readings("target") == MILLISECONDS
    statements = Statements()
    with connections["target"].execute_wrapper(statements):
        report = load(path, using="target", trust_dump_specs=True)
    assert statements.writes() == []
    assert not report.changed


def test_version_1_dump_over_exact_values_writes_its_own(tmp_path):
    """A version 1 value is compared as it is: where the target holds digits below the
    millisecond, the row differs from the dump and is updated, as before version 2."""
    make_readings()
    load(copy(tmp_path, "everything"), using="target")
    path = version_1_dump(tmp_path)

    report = load(path, using="target", trust_dump_specs=True)

    counts = report.counts["testapp.reading"]
    assert (counts.updated, counts.unchanged) == (2, 2)
    assert readings("target") == MILLISECONDS


def test_signed_version_1_dump_keeps_its_signature(tmp_path):
    """The signature covers the header's version: the version read, not the one written."""
    make_readings()
    path = version_1_dump(tmp_path, key="production and stage")

    with override_settings(DATASET_SYNC_SIGNING_KEY="production and stage"):
        report = load(path, using="target", trust_dump_specs=True)

    assert report.counts["testapp.reading"].created == 4


def test_version_1_dump_signed_with_another_key_is_refused(tmp_path):
    make_readings()
    path = version_1_dump(tmp_path, key="another key")
    make_readings("target")
    before = rows("target")
    message = (
        f"{path}: the dump's signature does not match: it was signed with another key, or"
        " changed after it was dumped. Use the same DATASET_SYNC_SIGNING_KEY on both sides"
        " and dump it again."
    )
    with override_settings(DATASET_SYNC_SIGNING_KEY="production and stage"):
        with pytest.raises(UntrustedDumpError) as excinfo:
            load(path, using="target", trust_dump_specs=True)
        assert str(excinfo.value) == message
        with pytest.raises(CommandError) as excinfo:
            run("loaddata-spec", str(path), "--database", "target", "--trust-dump-specs")
        assert str(excinfo.value) == message
    assert rows("target") == before


def test_format_version_1_is_written_on_request(tmp_path):
    """For loaders that read no other version: what format version 1 wrote, byte for byte."""
    make_readings()
    path = tmp_path / "dump.json"
    run("dumpdata-spec", "everything", "--format-version", "1", "--output", str(path))
    document = json.loads(path.read_text())
    assert document["version"] == 1
    assert document["objects"][0]["fields"] == {
        "taken": "2026-05-06T07:08:09.123Z",
        "time_of_day": "23:59:59.999",
        "value": "1E-7",
        "lasted": "1 00:00:00.000001",
    }
    # Object lines and digest as version 1 wrote them for the same rows.
    older = version_1_dump(tmp_path)
    assert objects(path) == objects(older)
    assert document["sha256"] == json.loads(older.read_text())["sha256"]

    load(path, using="target")

    assert readings("target") == MILLISECONDS


def test_a_format_version_that_cannot_be_written_is_refused(tmp_path):
    path = tmp_path / "dump.json"
    with pytest.raises(ValueError) as excinfo:
        dump("everything", output=path, format_version=3)
    assert str(excinfo.value) == "dump(): format_version 3 cannot be written; use one of 1, 2."
    assert not path.exists()
