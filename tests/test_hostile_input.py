"""Input that Python or a database cannot take: one line, exit code 4, the target unchanged.

Each of these used to end in a traceback (exit code 1), so that a cron wrapper saw a bug
where there was a bad file: a header value of the wrong type, JSON's ``Infinity`` where an
integer belongs, numbers and nesting beyond what Python reads, a lone UTF-16 surrogate, a
damaged compressed file, a filter that fails only when the guards run it, and a decimal too
large for its column, which SQLite stored and then could not read back.
"""

from __future__ import annotations

import gzip
import json
import lzma
from decimal import Decimal

import pytest
from django.db import connections

from dataset_sync import load
from dataset_sync.errors import (
    DumpFormatError,
    InvalidSpecError,
    LoadIntegrityError,
    SchemaMismatchError,
)
from dataset_sync.format import MAX_DEPTH
from testapp.models import Choice, Node, Question

from .conftest import rows, write, write_document

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

SURROGATE = (
    "holds a lone surrogate escape (\\ud800 to \\udfff without its pair), which is not text;"
    " the file was damaged or edited. Dump it again."
)


def with_header(lines, **changes):
    """The dump's lines with header values changed; the digest does not cover the header."""
    header = json.loads(lines[0].rstrip("\n").removesuffix(', "objects": [') + "}")
    header.update(changes)
    return [json.dumps(header)[:-1] + ', "objects": [\n', *lines[1:]]


@pytest.mark.parametrize(
    ("key", "value"),
    [("args", 5), ("args", ["1", "2"]), ("dataset", ["authors"]), ("dataset", {"a": 1})],
)
def test_a_header_value_of_the_wrong_type_is_refused(
    tmp_path, target_with_rows, good_dump, fails, key, value
):
    path = write(tmp_path, with_header(good_dump, **{key: value}))
    fails(
        path,
        DumpFormatError,
        f"{path}: the header's '{key}' must be a string, not {value!r}. Dump it again.",
        target_with_rows,
    )


def tag(**fields):
    return {"model": "testapp.tag", "pk": 900, "fields": {"name": "new", **fields}}


def choice(question, **fields):
    fields = {"question": question, "text": "new", "votes": 0, "score": "1.00", **fields}
    return {"model": "testapp.choice", "pk": 900, "fields": fields}


@pytest.mark.parametrize("where", ["pk", "field", "foreign key", "many-to-many"])
def test_infinity_where_an_integer_belongs_is_refused(tmp_path, target_with_rows, fails, where):
    question = Question.objects.using("target").order_by("pk").first().pk
    infinity = float("inf")
    reason = "(cannot convert float infinity to integer)."
    if where == "pk":
        obj = {**tag(), "pk": infinity}
        message = f"testapp.tag(pk=inf): invalid primary key {reason}"
    elif where == "field":
        obj = choice(question, votes=infinity)
        message = f"testapp.choice(pk=900): field 'votes' has an invalid value inf {reason}"
    elif where == "foreign key":
        obj = choice(infinity)
        message = f"testapp.choice(pk=900): field 'question' has an invalid value inf {reason}"
    else:
        obj = {
            "model": "testapp.question",
            "pk": question,
            "fields": {"tags": [infinity]},
        }
        message = (
            f"testapp.question(pk={question}): field 'tags' has an invalid value [inf] {reason}"
        )
    path = write_document(tmp_path, [{"model": obj["model"]}], [obj])
    assert "Infinity" in path.read_text()
    fails(path, SchemaMismatchError, f"{path}: {message}", target_with_rows, trusted=True)


HUGE_INTEGER = "9" * 5000
DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
BEYOND = {
    HUGE_INTEGER: "a number has more digits than Python reads",
    DEEP_ARRAY: "arrays or objects are nested more than 500 deep",
}


@pytest.mark.parametrize("value", list(BEYOND), ids=["huge-integer", "deep-array"])
@pytest.mark.parametrize("place", ["pk", "field", "line"])
def test_json_beyond_what_python_reads_is_refused(
    tmp_path, target_with_rows, good_dump, fails, value, place
):
    """In a streamed dump (named by line) and in a dump read whole."""
    line = {
        "pk": f'{{"model": "testapp.tag", "pk": {value}, "fields": {{"name": "x"}}}}',
        "field": f'{{"model": "testapp.tag", "pk": 900, "fields": {{"name": {value}}}}}',
        "line": value,
    }[place]
    path = write(tmp_path, [good_dump[0], line + ",\n", *good_dump[1:]])
    reason = f"{BEYOND[value]}; the file was damaged or edited. Dump it again."
    fails(path, DumpFormatError, f"{path}: line 2 cannot be read: {reason}", target_with_rows)
    whole = write(
        tmp_path,
        ['{"version": 1, "specs": [{"model": "testapp.tag"}], "objects": [', line, "]}"],
        "whole.json",
    )
    message = f"{whole}: the file cannot be read: {reason}"
    fails(whole, DumpFormatError, message, target_with_rows, trusted=True)


def node(depth):
    """A node whose data nests arrays so that the whole object is ``depth`` deep."""
    data = "[" * (depth - 2) + "]" * (depth - 2)
    return f'{{"model": "testapp.node", "pk": 900, "fields": {{"name": "deep", "data": {data}}}}}'


@pytest.mark.parametrize("layout", ["streamed", "whole"])
def test_an_object_nested_deeper_than_the_limit_is_refused(
    tmp_path, target_with_rows, good_dump, fails, layout
):
    """Python parses it, but encoding it again for the database, deeper in the stack, could
    exhaust the recursion limit: the reader refuses what the writer might not manage."""
    # Enough brackets in the batch to get past the first check, which counts them.
    tags = [json.dumps(tag(name=f"t{pk}") | {"pk": pk}) for pk in range(600, 900)]
    if layout == "streamed":
        lines = [good_dump[0], node(MAX_DEPTH + 1) + ",\n", *(t + ",\n" for t in tags)]
        path = write(tmp_path, [*lines, *good_dump[1:]])
        where = "line 2"
    else:
        spec = '{"version": 1, "specs": [{"model": "testapp.node"}], "objects": ['
        path = write(tmp_path, [spec, ", ".join([*tags, node(MAX_DEPTH + 1)]), "]}"])
        where = "object 301"
    fails(
        path,
        DumpFormatError,
        f"{path}: {where} cannot be read: arrays or objects are nested more than 500 deep;"
        " the file was damaged or edited. Dump it again.",
        target_with_rows,
        trusted=layout == "whole",
    )


def test_an_object_as_deep_as_the_limit_is_written(tmp_path, target_with_rows):
    """Encoding it again for the database is no RecursionError. MariaDB stores no JSON nested
    more than 32 deep: it refuses the row, which is one line too."""
    path = write(
        tmp_path,
        [
            '{"version": 1, "specs": [{"model": "testapp.node"}], "objects": [',
            node(MAX_DEPTH),
            "]}",
        ],
    )
    target = connections["target"]
    if target.vendor == "mysql" and target.mysql_is_mariadb:
        with pytest.raises(LoadIntegrityError) as excinfo:
            load(path, using="target", trust_dump_specs=True)
        assert str(excinfo.value) == (
            f"{path}: testapp.node(pk=900): field 'data' was refused by the target database"
            f" (CONSTRAINT `testapp_node.data` failed for `{target.settings_dict['NAME']}`."
            "`testapp_node`). Correct the row on the source and dump it again, or change the"
            " target's schema to take it."
        )
        assert rows("target") == target_with_rows
        return
    load(path, using="target", trust_dump_specs=True)
    data = Node.objects.using("target").get(pk=900).data
    depth = 0
    while isinstance(data, list):
        data, depth = (data[0] if data else None), depth + 1
    assert depth == MAX_DEPTH - 2


def test_a_lone_surrogate_in_a_streamed_object_is_refused(
    tmp_path, target_with_rows, good_dump, fails
):
    number, line = next(
        (number, line)
        for number, line in enumerate(good_dump[1:-1], start=2)
        if '"testapp.question"' in line
    )
    obj = json.loads(line.rstrip(",\n"))
    obj["fields"]["text"] = "ok \ud800"
    lines = list(good_dump)
    lines[number - 1] = json.dumps(obj) + line[len(line.rstrip(",\n")) :]
    path = write(tmp_path, lines)
    fails(
        path,
        DumpFormatError,
        f"{path}: line {number}: testapp.question(pk={obj['pk']}): field 'text' {SURROGATE}",
        target_with_rows,
    )


def test_a_lone_surrogate_in_the_header_is_refused(tmp_path, target_with_rows, good_dump, fails):
    path = write(tmp_path, with_header(good_dump, args="1,\udfff"))
    fails(path, DumpFormatError, f"{path}: line 1: the header {SURROGATE}", target_with_rows)


def test_a_lone_surrogate_in_a_dump_read_whole_is_refused(tmp_path, target_with_rows, fails):
    path = write_document(tmp_path, [{"model": "testapp.tag"}], [tag(), tag(name="\udc00")])
    fails(
        path,
        DumpFormatError,
        f"{path}: object 2: testapp.tag(pk=900): field 'name' {SURROGATE}",
        target_with_rows,
        trusted=True,
    )


def test_a_surrogate_pair_is_text(tmp_path, target_with_rows):
    """Escaped or not, a pair is one character, and loads."""
    path = write_document(tmp_path, [{"model": "testapp.tag"}], [tag(name="\U0001f600")])
    assert "\\ud83d\\ude00" in path.read_text()
    load(path, using="target", trust_dump_specs=True)
    assert rows("target")["testapp.tag"][-1] == (900, "\U0001f600")


def fixed_document():
    """A dump that is the same bytes on every run, long enough to compress into many blocks."""
    objects = [tag(name=f"tag {pk}") | {"pk": pk} for pk in range(900, 1900)]
    return json.dumps({"version": 1, "specs": [{"model": "testapp.tag"}], "objects": objects})


@pytest.mark.parametrize(
    ("suffix", "compress", "offset", "reason"),
    [
        (
            ".gz",
            lambda data: gzip.compress(data, mtime=0),
            100,
            "Error -3 while decompressing data: invalid distance too far back",
        ),
        (".xz", lzma.compress, 100, "Corrupt input data"),
    ],
    ids=["gz", "xz"],
)
def test_a_flipped_byte_in_a_compressed_dump_is_refused(
    tmp_path, target_with_rows, fails, suffix, compress, offset, reason
):
    data = bytearray(compress(fixed_document().encode()))
    data[offset] ^= 0x10
    path = tmp_path / f"flipped.json{suffix}"
    path.write_bytes(data)
    fails(
        path,
        DumpFormatError,
        f"{path}: cannot be read ({reason}); the file is truncated or corrupted. Dump it again.",
        target_with_rows,
        trusted=True,
    )


def test_a_filter_the_guards_would_run_mid_load_is_refused_first(tmp_path, target_with_rows, fails):
    """Without delete_missing a spec's filter still runs, when a deletion cascades into its
    model: it is tried before anything is written."""
    specs = [
        {"model": "testapp.question", "delete_missing": True},
        {"model": "testapp.choice", "filter": {"nope": 1}},
        {"model": "testapp.review"},
    ]
    path = write_document(tmp_path, specs, [])
    fails(
        path,
        InvalidSpecError,
        f"{path}: Spec for testapp.choice: the filter {{'nope': 1}} cannot be used on the"
        " target (FieldError: Cannot resolve keyword 'nope' into field. Choices are: id,"
        " question, question_id, score, text, votes).",
        target_with_rows,
        "--allow-cascade",
        trusted=True,
        allow_cascade=True,
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1e100", "1E+100"),
        (1e100, "1.00000E+100"),
        ("10000", "10000"),
        # Rounded to two places, as the database would, it has seven digits.
        ("9999.995", "9999.995"),
        ("-10000.00", "-10000.00"),
    ],
)
def test_a_decimal_too_large_for_its_field_is_refused(
    tmp_path, target_with_rows, fails, value, shown
):
    question = Question.objects.using("target").order_by("pk").first().pk
    path = write_document(tmp_path, [{"model": "testapp.choice"}], [choice(question, score=value)])
    fails(
        path,
        SchemaMismatchError,
        f"{path}: testapp.choice(pk=900): field 'score' has an invalid value {value!r}"
        f" ({shown} does not fit 6 digits with 2 decimal places).",
        target_with_rows,
        trusted=True,
    )
    # Nothing was stored that a later read could not convert back. (A choice 900 may be
    # there: the source's keys come from a sequence that earlier tests moved on.)
    scores = Choice.objects.using("target").order_by("pk").values_list("pk", "score")
    assert list(scores) == [(row[0], row[4]) for row in target_with_rows["testapp.choice"]]


@pytest.mark.parametrize("value", ["9999.99", "-9999.99", "0.001", "9999.994"])
def test_a_decimal_that_fits_its_field_once_rounded_loads(tmp_path, target_with_rows, value):
    question = Question.objects.using("target").order_by("pk").first().pk
    path = write_document(tmp_path, [{"model": "testapp.choice"}], [choice(question, score=value)])
    load(path, using="target", trust_dump_specs=True)
    expected = Decimal(value).quantize(Decimal("0.01"))
    assert Choice.objects.using("target").get(pk=900).score == expected
