"""Hostile input: mutated dumps either load (being valid) or fail with a clear error.

A real dump is mutated by hypothesis: bytes flipped, deleted or inserted, the file cut short,
lines swapped, values in objects replaced (with the trailer recomputed, as a forger would),
values put in that Python or a database cannot take (``Infinity``, numbers of thousands of
digits, deep nesting, lone surrogates, decimals too large for their field), values only the
database refuses (NULL where it cannot be, text longer than its column), bytes of a
compressed dump flipped, and the header's values and specs rewritten (the header is not
covered by the digest), with and without ``--trust-dump-specs``. Every outcome
must be a successful load or a DatasetSyncError naming the file, with the target exactly as
it was; never another exception, never a partial write. Each test counts its outcomes and fails
when too few examples changed the dump, or when the changes never got past the first check.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from collections import Counter

import pytest
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataset_sync import load
from dataset_sync.errors import DatasetSyncError, InvalidSpecError, SchemaMismatchError

from .conftest import copy, make_everything, object_lines, refused, retrailer, rows
from .test_roundtrip import change_source

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POSITIONS = st.integers(0, 2**20)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
LOOKUPS = st.sampled_from(
    [
        "pk",
        "pk__in",
        "pk__gt",
        "name__startswith",
        "question__author__in",
        "author__in",
        "nope",
        "author__nope__in",
        "pk__regex",
        "questions__in",
        "pk__isnull",
        "",
        "__",
    ]
)


@pytest.fixture
def fuzz_target(tmp_path):
    """The target holds an older `everything`; returns a newer dump's lines, a loader, and
    the count of its outcomes: "unchanged" (the mutation left the dump as it was, so it is
    not loaded), "loaded", or the class name of the DatasetSyncError."""
    make_everything()
    initial = copy(tmp_path, "everything", "initial.json")
    load(initial, using="target")
    before = rows("target")
    change_source()
    lines = copy(tmp_path, "everything", "good.json").read_bytes().splitlines(keepends=True)
    original = b"".join(lines)
    outcomes = Counter()

    def attempt(data: bytes, name: str = "fuzzed.json", **options) -> None:
        """Load ``data`` from a file called ``name``, with load()'s ``options``."""
        if data == original:
            outcomes["unchanged"] += 1
            return
        path = tmp_path / name
        path.write_bytes(data)
        try:
            load(path, using="target", **options)
        except DatasetSyncError as exc:
            outcomes[type(exc).__name__] += 1
            assert str(exc).startswith(f"{path}: "), str(exc)
            assert "\n" not in str(exc), str(exc)
            assert rows("target") == before
        else:
            outcomes["loaded"] += 1
            # A valid dump: put the target back for the next example.
            load(initial, using="target")
            assert rows("target") == before

    return lines, attempt, outcomes


#: Valid JSON, or JSON's extensions that Python reads, that Python or a database cannot take
#: where it lands: infinities where integers belong, numbers and nesting beyond what Python
#: reads, lone surrogates, decimals and integers too large for their columns, NUL characters.
HOSTILE = st.sampled_from(
    [
        "Infinity",
        "-Infinity",
        "NaN",
        "1e400",
        "9" * 5000,
        "[" * 5000 + "]" * 5000,
        '{"a": ' * 3000 + "1" + "}" * 3000,
        '"\\ud800"',
        '"text \\udfff"',
        '"1e100"',
        "1e100",
        '"9999.995"',
        "18446744073709551616",
        '"\\u0000"',
    ]
)
#: Values that convert to what their field holds, which the database then refuses where they
#: land: NULL in a column that cannot hold one, text longer than its column (PostgreSQL and
#: MariaDB; SQLite stores it), an empty string where a constraint or a relation wants more.
REFUSED_BY_THE_DATABASE = st.sampled_from([None, "", "x" * 300, 0])
PLACEHOLDER = "hostile-value-placeholder"
COMPRESSIONS = {
    ".gz": lambda data: gzip.compress(data, mtime=0),
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
}


def mutated(outcomes: Counter) -> int:
    """How many examples changed the dump."""
    return outcomes.total() - outcomes["unchanged"]


def test_mutated_bytes_and_lines(fuzz_target):
    lines, attempt, outcomes = fuzz_target

    @FUZZ
    @given(
        mutation=st.one_of(
            st.tuples(st.just("flip"), POSITIONS, st.integers(1, 255)),
            st.tuples(st.just("delete"), POSITIONS, st.integers(1, 40)),
            st.tuples(st.just("insert"), POSITIONS, st.binary(min_size=1, max_size=8)),
            st.tuples(st.just("truncate"), POSITIONS, st.none()),
            st.tuples(st.just("swap"), POSITIONS, POSITIONS),
        )
    )
    def mutate(mutation):
        data = b"".join(lines)
        kind, first, second = mutation
        at = first % len(data)
        if kind == "flip":
            data = data[:at] + bytes([data[at] ^ second]) + data[at + 1 :]
        elif kind == "delete":
            data = data[:at] + data[at + second :]
        elif kind == "insert":
            data = data[:at] + second + data[at:]
        elif kind == "truncate":
            data = data[:at]
        else:
            swapped = list(lines)
            i, j = first % len(lines), second % len(lines)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            data = b"".join(swapped)
        attempt(data)

    mutate()
    # Swapping a line with itself changes nothing; about one example in ten does that.
    # Nearly every change to the bytes must be refused (the digest covers the objects); one
    # that loads changed what no check covers, such as the time in the header.
    assert mutated(outcomes) >= 20, outcomes
    assert mutated(outcomes) - outcomes["loaded"] >= 20, outcomes


def test_forged_objects_with_a_matching_trailer(fuzz_target):
    lines, attempt, outcomes = fuzz_target

    @FUZZ
    @given(
        index=POSITIONS,
        where=st.sampled_from(["model", "pk", "fields", "field", "new field", "drop", "duplicate"]),
        value=JSON,
    )
    def forge(index, where, value):
        objects = object_lines(lines)
        at = index % len(objects)
        obj = json.loads(objects[at])
        if where in ("model", "pk", "fields"):
            obj[where] = value
        elif where == "field" and obj["fields"]:
            names = sorted(obj["fields"])
            obj["fields"][names[index % len(names)]] = value
        elif where == "new field":
            obj["fields"][str(value)[:10]] = value
        elif where == "drop":
            del obj[["model", "pk", "fields"][index % 3]]
        if where == "duplicate":
            objects.insert(index % (len(objects) + 1), objects[at])
        else:
            objects[at] = json.dumps(obj, ensure_ascii=False).encode()
        attempt(retrailer(lines, objects))

    forge()
    # With the trailer recomputed, forgeries get past the digest: some load, others are
    # refused by the checks behind it (SchemaMismatchError and others), not all by one.
    assert mutated(outcomes) >= 20, outcomes
    assert len(outcomes.keys() - {"unchanged"}) >= 2, outcomes


def test_values_python_and_databases_cannot_take(fuzz_target):
    lines, attempt, outcomes = fuzz_target

    @FUZZ
    @given(
        index=POSITIONS,
        where=st.sampled_from(["pk", "field", "list", "header", "filter"]),
        value=HOSTILE,
    )
    def forge(index, where, value):
        objects = object_lines(lines)
        at = index % len(objects)
        obj = json.loads(objects[at])
        names = sorted(obj["fields"])
        header = json.loads(lines[0].rstrip(b"\n")[: -len(b', "objects": [')] + b"}")
        if where == "pk":
            obj["pk"] = PLACEHOLDER
        elif where == "field" and names:
            obj["fields"][names[index % len(names)]] = PLACEHOLDER
        elif where == "list":
            # A many-to-many field's keys, or a list in a JSON field.
            lists = [name for name in names if isinstance(obj["fields"][name], list)]
            if lists:
                obj["fields"][lists[index % len(lists)]] = [PLACEHOLDER]
        elif where == "header":
            header[["dataset", "args", "vendor", "created"][index % 4]] = PLACEHOLDER
        else:
            spec = header["specs"][index % len(header["specs"])]
            spec["filter"] = {"pk__in": [PLACEHOLDER]}
        objects[at] = json.dumps(obj, ensure_ascii=False).encode()
        placeholder = json.dumps(PLACEHOLDER).encode()
        data = retrailer(lines, objects).replace(placeholder, value.encode())
        opening = json.dumps(header, ensure_ascii=False)[:-1] + ', "objects": [\n'
        data = opening.encode().replace(placeholder, value.encode()) + data[len(lines[0]) :]
        # Under trust, a forged filter runs on the target: the database sees the value.
        attempt(data, trust_dump_specs=where == "filter")

    forge()
    # Each is refused by the stage that reads it (the format, the header, the conversion of
    # values, the spec checks), not all by one; a value that fits where it lands loads.
    assert mutated(outcomes) >= 20, outcomes
    assert len(outcomes.keys() - {"unchanged"}) >= 2, outcomes


def test_values_only_the_database_refuses(fuzz_target):
    lines, attempt, outcomes = fuzz_target

    @FUZZ
    @given(index=POSITIONS, value=REFUSED_BY_THE_DATABASE)
    def forge(index, value):
        objects = object_lines(lines)
        at = index % len(objects)
        obj = json.loads(objects[at])
        names = sorted(obj["fields"])
        if names:
            obj["fields"][names[index % len(names)]] = value
        objects[at] = json.dumps(obj, ensure_ascii=False).encode()
        attempt(retrailer(lines, objects))

    forge()
    # Each loads, or is refused in one line naming the row: by the conversion, the checks of
    # references, or the database (LoadIntegrityError), not all by one.
    assert mutated(outcomes) >= 20, outcomes
    assert len(outcomes.keys() - {"unchanged"}) >= 2, outcomes


def test_forged_trailer_values(fuzz_target, settings):
    """The trailer is not covered by the digest; with a signing key, by the signature."""
    settings.DATASET_SYNC_SIGNING_KEY = "a key the dump was not signed with"
    lines, attempt, outcomes = fuzz_target

    @FUZZ
    @given(
        key=st.sampled_from(["count", "spec_counts", "sha256", "signature", "other"]),
        value=JSON | st.lists(st.integers(-3, 60), max_size=8),
    )
    def forge(key, value):
        trailer = json.loads(b"{" + lines[-1][3:])
        trailer[key] = value
        attempt(b"".join(lines[:-1]) + b"], " + json.dumps(trailer)[1:].encode() + b"\n")

    forge()
    # Refused by the count, the spec counts, the digest or the signature: not all by one.
    assert mutated(outcomes) >= 20, outcomes
    assert len(outcomes.keys() - {"unchanged"}) >= 2, outcomes


@pytest.mark.parametrize("suffix", list(COMPRESSIONS))
def test_flipped_bytes_in_a_compressed_dump(fuzz_target, suffix):
    lines, attempt, outcomes = fuzz_target
    compressed = COMPRESSIONS[suffix](b"".join(lines))

    @FUZZ
    @given(at=POSITIONS, mask=st.integers(1, 255))
    def flip(at, mask):
        at %= len(compressed)
        data = compressed[:at] + bytes([compressed[at] ^ mask]) + compressed[at + 1 :]
        attempt(data, f"fuzzed.json{suffix}")

    flip()
    # A flip is found by the decompressor (its checksums) or by the digest behind it; one
    # that loads changed only the header's time, or bytes the format ignores.
    assert mutated(outcomes) >= 20, outcomes
    assert outcomes["loaded"] <= mutated(outcomes) // 2, outcomes


@pytest.mark.parametrize("trusted", [False, True], ids=["declared", "trusted"])
def test_forged_header_specs(fuzz_target, trusted):
    """Under --trust-dump-specs the forged specs run: their filters, also where no spec
    deletes, must fail before the load writes anything."""
    lines, attempt, outcomes = fuzz_target

    @FUZZ
    @given(
        index=POSITIONS,
        change=st.one_of(
            st.tuples(st.just("filter"), st.dictionaries(LOOKUPS, JSON, max_size=2)),
            st.tuples(st.just("filter"), JSON),
            st.tuples(st.sampled_from(["model", "delete_missing", "save_as_new", "other"]), JSON),
            st.tuples(st.just("specs"), JSON),
            st.tuples(
                st.sampled_from(["dataset", "args", "vendor", "created", "rules", "identities"]),
                JSON,
            ),
        ),
    )
    def forge(index, change):
        header = json.loads(lines[0].rstrip(b"\n")[: -len(b', "objects": [')] + b"}")
        key, value = change
        if key in ("specs", "dataset", "args", "vendor", "created", "rules", "identities"):
            header[key] = value
        else:
            spec = header["specs"][index % len(header["specs"])]
            spec[key] = value
        opening = json.dumps(header, ensure_ascii=False)[:-1] + ', "objects": [\n'
        attempt(opening.encode() + b"".join(lines[1:]), trust_dump_specs=trusted)

    forge()
    # Forged specs are refused by the spec checks (InvalidSpecError) or by the comparison
    # with the target's declaration (UntrustedDumpError), and those that mean the same as
    # the declaration (an empty filter) load: not all by one check.
    assert mutated(outcomes) >= 20, outcomes
    assert len(outcomes.keys() - {"unchanged"}) >= 2, outcomes


# Regression tests for what the fuzzing found: each used to escape as another exception.
# They fail before the load writes anything, so the cheaper wrapping test transaction does.
in_a_test_transaction = pytest.mark.django_db(databases=["default", "target"])


@pytest.fixture
def loaded_target(tmp_path):
    make_everything()
    load(copy(tmp_path, "everything", "initial.json"), using="target")
    return rows("target")


def hand_made(tmp_path, specs, objects=()):
    path = tmp_path / "hand-made.json"
    path.write_text(json.dumps({"version": 1, "specs": specs, "objects": list(objects)}))
    return path


def test_a_delete_missing_filter_on_an_unknown_field_is_refused(tmp_path, loaded_target):
    path = hand_made(
        tmp_path, [{"model": "testapp.tag", "filter": {"nope": 1}, "delete_missing": True}]
    )
    refused(
        path,
        InvalidSpecError,
        f"{path}: Spec for testapp.tag: the filter {{'nope': 1}} cannot be used on the target"
        " (FieldError: Cannot resolve keyword 'nope' into field."
        " Choices are: books, id, name, questions).",
        loaded_target,
    )


@in_a_test_transaction
def test_a_delete_missing_filter_with_a_value_of_the_wrong_type_is_refused(tmp_path, loaded_target):
    path = hand_made(
        tmp_path, [{"model": "testapp.tag", "filter": {"pk__in": [[]]}, "delete_missing": True}]
    )
    refused(
        path,
        InvalidSpecError,
        f"{path}: Spec for testapp.tag: the filter {{'pk__in': [[]]}} cannot be used on the target"
        " (TypeError: Field 'id' expected a number but got [].).",
        loaded_target,
    )


@in_a_test_transaction
def test_a_spec_without_a_model_is_refused(tmp_path, loaded_target):
    path = hand_made(tmp_path, [{"model": None}])
    refused(
        path, InvalidSpecError, f"{path}: Spec {{'model': None}} has no 'model' key.", loaded_target
    )


@in_a_test_transaction
@pytest.mark.parametrize(
    ("flag", "value", "shape"),
    [
        ("ignore_missing_m2m", 5, "a list of field names, not 5"),
        ("allow_cascade", "yes", "true, false or a list of model labels, not 'yes'"),
    ],
)
def test_a_spec_flag_of_the_wrong_shape_is_refused(tmp_path, loaded_target, flag, value, shape):
    path = hand_made(tmp_path, [{"model": "testapp.tag", flag: value}])
    refused(
        path,
        InvalidSpecError,
        f"{path}: Spec for testapp.tag: '{flag}' must be {shape}.",
        loaded_target,
    )


@in_a_test_transaction
def test_a_foreign_key_written_as_a_natural_key_of_a_model_without_them_is_refused(
    tmp_path, loaded_target
):
    choice = {"model": "testapp.choice", "pk": 900, "fields": {"question": [], "text": "t"}}
    path = hand_made(tmp_path, [{"model": "testapp.choice"}], [choice])
    refused(
        path,
        SchemaMismatchError,
        f"{path}: testapp.choice(pk=900): field 'question' has an invalid value []"
        " (expected a primary key; testapp.question has no natural keys).",
        loaded_target,
    )


@in_a_test_transaction
@pytest.mark.parametrize("where", ["pk", "field"])
def test_an_integer_the_database_cannot_store_is_refused(tmp_path, loaded_target, where):
    huge = 2**70
    kind = "AutoField" if where == "pk" else "IntegerField"
    low, high = connections["target"].ops.integer_field_range(kind)
    # SQLite has no limits before Django 5.0, but its driver binds 64 bits at most.
    low, high = (-(2**63) if low is None else low), (2**63 - 1 if high is None else high)
    if where == "pk":
        tag = {"model": "testapp.tag", "pk": huge, "fields": {"name": "huge"}}
        message = (
            f"testapp.tag(pk={huge}): invalid primary key"
            f" ({huge} is out of range ({low} to {high}))."
        )
        objects = [tag]
    else:
        choice = {
            "model": "testapp.choice",
            "pk": 900,
            "fields": {"question": 1, "text": "t", "votes": huge},
        }
        message = (
            f"testapp.choice(pk=900): field 'votes' has an invalid value {huge}"
            f" ({huge} is out of range ({low} to {high}))."
        )
        objects = [choice]
    path = hand_made(tmp_path, [{"model": objects[0]["model"]}], objects)
    refused(path, SchemaMismatchError, f"{path}: {message}", loaded_target)


@in_a_test_transaction
def test_a_primary_key_the_database_refuses_is_refused(tmp_path, loaded_target):
    if connections["target"].features.allows_auto_pk_0:
        pytest.skip("this database accepts 0 as an automatic primary key")
    path = hand_made(
        tmp_path,
        [{"model": "testapp.tag"}],
        [{"model": "testapp.tag", "pk": 0, "fields": {"name": "zero"}}],
    )
    refused(
        path,
        SchemaMismatchError,
        f"{path}: testapp.tag(pk=0): invalid primary key"
        " (The database backend does not accept 0 as a value for AutoField.).",
        loaded_target,
    )


@in_a_test_transaction
def test_a_value_of_a_type_the_field_cannot_take_is_refused(tmp_path, loaded_target):
    question = {"model": "testapp.question", "pk": 900, "fields": {"author": 1, "pub_date": [1]}}
    path = hand_made(tmp_path, [{"model": "testapp.question"}], [question])
    refused(
        path,
        SchemaMismatchError,
        f"{path}: testapp.question(pk=900): field 'pub_date' has an invalid value [1]"
        " (fromisoformat: argument must be str).",
        loaded_target,
    )
