"""Schema drift between the dumping and the loading database, decided before anything is
written.

The drift app has two real states built by real migrations: ``testapp.drift_v1`` and
``testapp.drift_v2`` (v1's migrations plus 0002_ahead: a field with a default, one with a
database default, a NOT NULL field without a default, a renamed field, a new model, a renamed
model). This process runs v2; :class:`~tests.older.OlderState` runs v1 in processes of its own
against a database of its own. Dumps of each state are loaded into the other.
"""

from __future__ import annotations

import hashlib
import json
import os

import django
import pytest
from django.contrib.contenttypes.models import ContentType
from django.core import checks as django_checks
from django.core.management import load_command_class
from django.core.management.base import CommandError
from django.db import connections

from dataset_sync import check, load
from dataset_sync.errors import InvalidSpecError, SchemaDriftError
from dataset_sync.format import DumpReader, Header
from dataset_sync.identity import Identities, Identity
from dataset_sync.renames import Renames
from testapp.drift_v2.models import Accessory, Component, Gadget, Maker, Part, Sticker

from .conftest import Statements, copy, run, summary
from .older import OlderState

pytestmark = pytest.mark.django_db(databases=["default", "target"], transaction=True)

#: Django 4.2 has no db_default: there stock has a plain default (see drift_v2.models).
STOCK_DEFAULT = 7


@pytest.fixture(scope="module")
def older_database(tmp_path_factory):
    """One database in the older state for the module's tests, made and migrated once."""
    settings = connections["default"].settings_dict
    if connections["default"].vendor == "sqlite":
        name = str(tmp_path_factory.mktemp("older") / "drift_v1.sqlite3")
    else:
        name = f"{os.environ.get('DATASET_SYNC_DB_PREFIX', 'dataset_sync')}_drift_v1"
    assert name != settings["NAME"]
    state = OlderState(name)
    state.create()
    yield state
    if connections["default"].vendor != "sqlite":
        state.destroy()


@pytest.fixture
def older(older_database):
    """The older state's database, empty."""
    older_database.command("flush", "--noinput")
    return older_database


def drift_rows(alias):
    """Every row of the drift app's tables on ``alias``, ordered by primary key."""
    return {
        model._meta.label_lower: list(model.objects.using(alias).order_by("pk").values_list())
        for model in (Maker, Gadget, Part, Accessory, Component, Sticker)
    }


def older_dump(older, tmp_path, dataset, name="older.json"):
    path = tmp_path / name
    older.command("dumpdata-spec", dataset, "-o", str(path))
    return path


def header_of(path):
    with open(path, encoding="utf-8") as stream:
        return DumpReader(stream).header


def test_a_dump_records_the_schema_it_was_written_with(tmp_path):
    path = copy(tmp_path, "gadgets")
    text = {"null": False, "type": "CharField"}
    assert header_of(path).schema == {
        "django": django.get_version(),
        "migrations": {"drift": ["0002_ahead"]},
        "models": {
            "drift.gadget": {
                "id": {"column": "id", "type": "AutoField", "null": False},
                "name": {"column": "name", **text},
                "maker": {
                    "column": "maker_id",
                    "type": "ForeignKey",
                    "null": True,
                    "to": "drift.maker",
                },
                "weight": {"column": "weight", "type": "IntegerField", "null": False},
                "colour": {"column": "colour", **text},
                "stock": {"column": "stock", "type": "IntegerField", "null": False},
            }
        },
    }


def test_identical_schemas_load_without_drift(tmp_path):
    Gadget.objects.create(name="kettle")
    report = load(copy(tmp_path, "gadgets"), using="target")
    assert report.drift == []
    assert report.counts["drift.gadget"].created == 1


def test_a_dump_without_a_schema_record_loads_as_before(tmp_path):
    Gadget.objects.create(pk=1, name="kettle", colour="red")
    path = copy(tmp_path, "gadgets")
    head, rest = path.read_text().split("\n", 1)
    start = head.index(', "schema": ')
    head = head[:start] + head[head.index(', "vendor": ') :]
    path.write_text(head + "\n" + rest)
    assert header_of(path).schema is None
    report = load(path, using="target")
    assert report.drift == []
    assert list(Gadget.objects.using("target").values_list("pk", "name", "colour")) == [
        (1, "kettle", "red")
    ]


def test_a_signature_covers_the_schema_record(tmp_path, settings):
    settings.DATASET_SYNC_SIGNING_KEY = "both sides"
    Gadget.objects.create(name="kettle")
    path = copy(tmp_path, "gadgets")
    path.write_text(path.read_text().replace('"0002_ahead"', '"0001_initial"', 1))
    before = drift_rows("target")
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target")
    assert str(excinfo.value) == (
        f"{path}: the dump's signature does not match: it was signed with another key, or"
        " changed after it was dumped. Use the same DATASET_SYNC_SIGNING_KEY on both sides and"
        " dump it again."
    )
    assert excinfo.value.returncode == 5
    assert drift_rows("target") == before


def test_a_target_ahead_loads_and_keeps_the_values_of_fields_the_dump_lacks(older, tmp_path):
    older.execute(
        "from testapp.drift_v1.models import Gadget\n"
        "Gadget.objects.create(pk=1, name='kettle', weight=2)\n"
        "Gadget.objects.create(pk=3, name='lamp', weight=5)\n"
    )
    path = older_dump(older, tmp_path, "gadgets")
    Gadget.objects.using("target").create(pk=1, name="old kettle", weight=1, colour="red", stock=3)
    Gadget.objects.using("target").create(pk=2, name="stale", colour="blue", stock=1)

    out, err = run("loaddata-spec", str(path), "--database", "target")

    lines, fields = summary(out)
    assert lines == [
        "schema drift: drift: this database has applied 0002_ahead, which the dump's source had"
        " not",
        "schema drift: drift.gadget.colour: not in the dump; rows it updates keep this"
        " database's values, new rows get the field's default",
        "schema drift: drift.gadget.stock: not in the dump; rows it updates keep this"
        " database's values, new rows get the field's default",
        "drift.gadget: 1 created, 1 updated, 0 unchanged, 1 deleted",
        f"Changed 3 rows ({path}).",
    ]
    assert fields["status"] == "changed"
    assert list(
        Gadget.objects.using("target")
        .order_by("pk")
        .values_list("pk", "name", "weight", "colour", "stock")
    ) == [(1, "kettle", 2, "red", 3), (3, "lamp", 5, "grey", STOCK_DEFAULT)]
    # Loading it again finds nothing to change: the target-only values do not count.
    again = load(path, using="target")
    assert not again.changed


def test_the_json_report_lists_the_drift(older, tmp_path):
    older.execute("from testapp.drift_v1.models import Gadget\nGadget.objects.create(name='a')\n")
    path = older_dump(older, tmp_path, "gadgets")

    out, _err = run("loaddata-spec", str(path), "--database", "target", "--json")

    assert json.loads(out)["drift"] == [
        {
            "change": "migrations_ahead",
            "app": "drift",
            "model": None,
            "field": None,
            "migrations": ["0002_ahead"],
            "message": "schema drift: drift: this database has applied 0002_ahead, which the"
            " dump's source had not",
        },
        *(
            {
                "change": "field_not_in_dump",
                "app": "drift",
                "model": "drift.gadget",
                "field": name,
                "migrations": [],
                "message": f"schema drift: drift.gadget.{name}: not in the dump; rows it updates"
                " keep this database's values, new rows get the field's default",
            }
            for name in ("colour", "stock")
        ),
    ]


def test_drift_that_several_dumps_share_is_listed_once(older, tmp_path, settings):
    settings.DATASET_SYNC_RENAMES = RENAMES
    older.execute("from testapp.drift_v1.models import Part\nPart.objects.create(label='p')\n")
    gadgets = older_dump(older, tmp_path, "gadgets", "gadgets.json")
    parts = older_dump(older, tmp_path, "parts", "parts.json")

    out, _err = run("loaddata-spec", str(gadgets), str(parts), "--database", "target", "--json")

    assert [(drift["change"], drift["model"]) for drift in json.loads(out)["drift"]] == [
        ("migrations_ahead", None),
        ("field_not_in_dump", "drift.gadget"),
        ("field_not_in_dump", "drift.gadget"),
        ("field_renamed", "drift.part"),
    ]


def refused_everywhere(path, message, before, *options):
    """``load()``, ``check()`` and the command, with and without --check, all refuse the dump
    with ``message`` and exit code 4, and the target is as ``before``."""
    for api in (load, check):
        with pytest.raises(SchemaDriftError) as excinfo:
            api(path, using="target", ignorenonexistent="-i" in options)
        assert str(excinfo.value) == message
    for flags in ([], ["--check"]):
        with pytest.raises(CommandError) as excinfo:
            run("loaddata-spec", str(path), "--database", "target", *flags, *options)
        assert str(excinfo.value) == message
        assert excinfo.value.returncode == 4
    assert drift_rows("target") == before


def test_a_new_not_null_field_without_a_default_is_refused(older, tmp_path):
    older.execute("from testapp.drift_v1.models import Maker\nMaker.objects.create(name='Acme')\n")
    path = older_dump(older, tmp_path, "makers")
    Maker.objects.using("target").create(pk=5, name="Other", code="X")
    message = (
        f"{path}: the dump's schema does not fit this database's: drift.maker.code: only this"
        " database has this field, and it is NOT NULL without a default, so rows the dump"
        " creates could not be written. Give the field a default (or db_default) on this"
        " database, or migrate the source as far as this database and dump again."
    )
    refused_everywhere(path, message, drift_rows("target"))
    refused_everywhere(path, message, drift_rows("target"), "-i")


def test_a_renamed_field_is_refused_naming_both_names(older, tmp_path):
    older.execute("from testapp.drift_v1.models import Part\nPart.objects.create(label='axle')\n")
    path = older_dump(older, tmp_path, "parts")
    Part.objects.using("target").create(title="wheel")
    refused_everywhere(
        path,
        f"{path}: the dump's schema does not fit this database's: drift.part.label: the dump has"
        " this field (CharField), this database's model has 'title' instead (renamed?"
        " DATASET_SYNC_RENAMES = {'drift.part': {'label': 'title'}}). Migrate the source as far"
        " as this database and dump again, or declare fields renamed here in"
        " DATASET_SYNC_RENAMES.",
        drift_rows("target"),
    )


def test_a_target_behind_is_refused_naming_migration_and_fields(older, tmp_path):
    Gadget.objects.create(name="kettle", colour="red")
    path = copy(tmp_path, "gadgets")
    older.execute("from testapp.drift_v1.models import Gadget\nGadget.objects.create(name='x')\n")
    before = older.rows()

    for flags in ([], ["--check"]):
        code, out, err = older.run("loaddata-spec", str(path), *flags)
        assert (code, err) == (
            4,
            f"CommandError: {path}: the dump's schema does not fit this database's: drift: the"
            " dump was made after migration 0002_ahead, which this database has not applied;"
            " drift.gadget.colour: the dump has this field (CharField), this database's model"
            " does not; drift.gadget.stock: the dump has this field (IntegerField), this"
            " database's model does not. Migrate the target (manage.py migrate), or load with"
            " --ignorenonexistent to skip what this database lacks.\n",
        )
        assert older.rows() == before


def test_a_target_behind_loads_with_ignorenonexistent_skipping_what_it_lacks(older, tmp_path):
    Gadget.objects.create(pk=4, name="kettle", weight=3, colour="red")
    path = copy(tmp_path, "gadgets")

    code, out, err = older.run("loaddata-spec", str(path), "-i")

    assert (code, err) == (0, "")
    lines, _fields = summary(out)
    assert lines == [
        "schema drift: drift: the dump's source had applied 0002_ahead, which this database has"
        " not (--ignorenonexistent)",
        "schema drift: drift.gadget.colour: not on this database; the dump's values are skipped"
        " (--ignorenonexistent)",
        "schema drift: drift.gadget.stock: not on this database; the dump's values are skipped"
        " (--ignorenonexistent)",
        "drift.gadget: 1 created, 0 updated, 0 unchanged, 0 deleted",
        f"Changed 1 row ({path}).",
    ]
    assert older.rows() == [
        {"model": "drift.gadget", "pk": 4, "fields": {"name": "kettle", "maker": None, "weight": 3}}
    ]


def test_a_model_the_target_lacks_is_refused(older, tmp_path):
    gadget = Gadget.objects.create(name="kettle")
    Accessory.objects.create(gadget=gadget, name="lid")
    path = copy(tmp_path, "accessories")
    before = older.rows()

    code, _out, err = older.run("loaddata-spec", str(path), "-i")

    assert (code, err) == (
        4,
        f"CommandError: {path}: the dump's schema does not fit this database's: drift.accessory:"
        " the dump has this model, this database does not. Migrate the target (manage.py"
        " migrate).\n",
    )
    assert older.rows() == before


def test_a_changed_type_or_a_field_made_not_null_is_refused(tmp_path):
    Gadget.objects.create(name="kettle")
    path = copy(tmp_path, "gadgets")
    original = path.read_text()
    # As if the source's weight were text and its name nullable: the header says so.
    weight = '"weight": {"column": "weight", "type": "IntegerField", "null": false}'
    name = '"name": {"column": "name", "type": "CharField", "null": false}'
    path.write_text(
        original.replace(weight, weight.replace("IntegerField", "CharField"), 1).replace(
            name, name.replace("false", "true"), 1
        )
    )
    refused_everywhere(
        path,
        f"{path}: the dump's schema does not fit this database's: drift.gadget.name: NOT NULL on"
        " this database, but the dump's source allows NULL; drift.gadget.weight: the dump has"
        " it as CharField, this database as IntegerField. Migrate the source as far as this"
        " database and dump again.",
        drift_rows("target"),
    )


def test_check_writes_nothing_and_takes_no_lock(older, tmp_path):
    older.execute("from testapp.drift_v1.models import Gadget\nGadget.objects.create(name='a')\n")
    path = older_dump(older, tmp_path, "gadgets")
    Gadget.objects.using("target").create(name="stale")
    before = drift_rows("target")
    statements = Statements()

    with connections["target"].execute_wrapper(statements):
        out, err = run("loaddata-spec", str(path), "--database", "target", "--check")

    lines, fields = summary(out)
    assert lines[-1] == f"Checked {path}: it would load; nothing was written."
    assert len(lines) == 4  # the drift, then the verdict
    assert (fields["status"], fields["exit_code"]) == ("checked", "0")
    assert statements.writes() == []
    assert not any(
        marker in sql
        for sql in statements.sql
        for marker in ("LOCK", "GET_LOCK", "advisory", "FOR UPDATE", "WHERE 0 = 1")
    )
    assert drift_rows("target") == before


def test_check_refuses_what_the_deletion_limit_would(older, tmp_path):
    path = older_dump(older, tmp_path, "gadgets")
    Gadget.objects.using("target").create(name="stale")
    before = drift_rows("target")
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target", "--check", "--max-delete", "0")
    assert excinfo.value.returncode == 5
    assert str(excinfo.value) == (
        f"{path}: the load would delete 1 row, more than --max-delete 0 allows (1 row here match"
        " the dataset's delete_missing specs); nothing was changed. Check the dump (a truncated"
        " export looks like this), or raise the limit."
    )
    assert drift_rows("target") == before


def test_check_refuses_a_truncated_dump(tmp_path):
    Gadget.objects.create(name="kettle")
    path = copy(tmp_path, "gadgets")
    path.write_text(path.read_text().rsplit("\n", 2)[0] + "\n")
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target", "--check")
    assert excinfo.value.returncode == 4
    assert str(excinfo.value) == (
        f"{path}: trailer missing after 1 object; the file is truncated. Dump it again."
    )


def test_a_column_renamed_or_a_field_made_nullable_loads_and_is_listed(tmp_path):
    Gadget.objects.create(pk=1, name="kettle", weight=2)
    path = copy(tmp_path, "gadgets")
    # As if the source's weight had another column and its maker could not be NULL.
    weight = '"weight": {"column": "weight", '
    maker = '"maker": {"column": "maker_id", "type": "ForeignKey", "null": true'
    path.write_text(
        path.read_text()
        .replace(weight, weight.replace('"weight",', '"weight_g",'), 1)
        .replace(maker, maker.replace("true", "false"), 1)
    )

    out, _err = run("loaddata-spec", str(path), "--database", "target")

    lines, _fields = summary(out)
    assert lines == [
        "schema drift: drift.gadget.maker: NULL is allowed here, not where the dump was made",
        "schema drift: drift.gadget.weight: column 'weight' here, 'weight_g' where dumped",
        "drift.gadget: 1 created, 0 updated, 0 unchanged, 0 deleted",
        f"Changed 1 row ({path}).",
    ]
    assert list(Gadget.objects.using("target").values_list("pk", "name", "weight")) == [
        (1, "kettle", 2)
    ]


def test_an_app_the_target_does_not_install_is_refused(tmp_path):
    Gadget.objects.create(name="kettle")
    path = copy(tmp_path, "gadgets")
    path.write_text(
        path.read_text().replace(
            '"migrations": {"drift": ["0002_ahead"]}',
            '"migrations": {"drift": ["0002_ahead"], "gone": ["0001_initial"]}',
            1,
        )
    )
    refused_everywhere(
        path,
        f"{path}: the dump's schema does not fit this database's: gone: the app is not installed"
        " on this database. Migrate the source as far as this database and dump again.",
        drift_rows("target"),
    )


def test_a_malformed_schema_record_is_refused(tmp_path):
    Gadget.objects.create(name="kettle")
    path = copy(tmp_path, "gadgets")
    path.write_text(
        path.read_text().replace('"migrations": {"drift": ["0002_ahead"]}', '"migrations": [0]')
    )
    before = drift_rows("target")
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target", "--check")
    assert excinfo.value.returncode == 4
    assert str(excinfo.value) == (
        f"{path}: the header's 'schema' must hold the Django version, the migrations per app and"
        " the fields per model. Dump it again."
    )
    assert drift_rows("target") == before


RENAMES = {"drift.part": {"label": "title"}}


def test_a_declared_rename_loads_a_dump_from_before_it(older, tmp_path, settings):
    settings.DATASET_SYNC_RENAMES = RENAMES
    older.execute(
        "from testapp.drift_v1.models import Part\n"
        "Part.objects.create(pk=1, label='axle')\n"
        "Part.objects.create(pk=2, label='wheel')\n"
    )
    path = older_dump(older, tmp_path, "parts")
    Part.objects.using("target").create(pk=1, title="old axle")

    out, _err = run("loaddata-spec", str(path), "--database", "target")

    lines, _fields = summary(out)
    assert lines == [
        "schema drift: drift.part.title: loaded from the dump's 'label' (DATASET_SYNC_RENAMES)",
        "schema drift: drift: this database has applied 0002_ahead, which the dump's source had"
        " not",
        "drift.part: 1 created, 1 updated, 0 unchanged, 0 deleted",
        f"Changed 2 rows ({path}).",
    ]
    assert list(Part.objects.using("target").order_by("pk").values_list("pk", "title")) == [
        (1, "axle"),
        (2, "wheel"),
    ]
    assert not load(path, using="target").changed


def test_a_declared_rename_changes_nothing_for_a_dump_from_after_it(tmp_path, settings):
    settings.DATASET_SYNC_RENAMES = RENAMES
    Part.objects.create(pk=1, title="axle")
    report = load(copy(tmp_path, "parts"), using="target")
    assert report.drift == []
    assert list(Part.objects.using("target").values_list("pk", "title")) == [(1, "axle")]


def test_a_declared_rename_applies_to_a_dump_without_a_schema_record(tmp_path, settings):
    settings.DATASET_SYNC_RENAMES = RENAMES
    path = tmp_path / "old.json"
    document = {
        "format": "dataset_sync",
        "version": 1,
        "dataset": "parts",
        "args": "",
        "specs": [{"model": "drift.part", "filter": {"label__isnull": False}}],
        "objects": [{"model": "drift.part", "pk": 3, "fields": {"label": "axle"}}],
    }
    document["count"] = 1
    document["sha256"] = hashlib.sha256(
        b'{"model": "drift.part", "pk": 3, "fields": {"label": "axle"}}\n'
    ).hexdigest()
    path.write_text(json.dumps(document))
    report = load(path, using="target")
    assert [str(drift) for drift in report.drift] == [
        "schema drift: drift.part.title: loaded from the dump's 'label' (DATASET_SYNC_RENAMES)"
    ]
    assert list(Part.objects.using("target").values_list("pk", "title")) == [(3, "axle")]


@pytest.mark.parametrize(
    ("renames", "messages"),
    [
        (
            {"drift.part": ["label"]},
            [
                "DATASET_SYNC_RENAMES must map model labels to dicts of old field names to new"
                " ones, not {'drift.part': ['label']}."
            ],
        ),
        (
            {"drift.gone": {"a": "b"}},
            ["DATASET_SYNC_RENAMES: 'drift.gone' is not an installed model."],
        ),
        (
            {"drift.part": {"title": "name"}},
            [
                "DATASET_SYNC_RENAMES: drift.part has no field 'name' to load 'title' into.",
                "DATASET_SYNC_RENAMES: drift.part still has a field 'title'; only a name the model"
                " no longer has can be renamed.",
            ],
        ),
        (RENAMES, []),
    ],
)
def test_renames_that_cannot_work_are_system_check_errors(settings, renames, messages):
    settings.DATASET_SYNC_RENAMES = renames
    found = [
        (message.id, message.msg)
        for message in django_checks.run_checks()
        if message.id and message.id.startswith("dataset_sync.")
    ]
    assert found == [("dataset_sync.E009", message) for message in messages]


def test_a_rename_reaches_every_place_a_header_names_the_field():
    header = Header(
        specs=[
            {
                "model": "drift.part",
                "filter": {"label__startswith": "a", "id__in": [1]},
                "defer_values": ["label"],
                "rules": {"label": "keep"},
                "identity": ["label"],
            },
            {"model": "drift.gadget", "filter": {"label": "x"}},
        ],
        rules={"drift.part": {"label": "keep"}, "drift.gadget": {"label": "keep"}},
        identities={"drift.part": ["label"], "drift.gadget": "natural_key"},
    )
    renamed = Renames(RENAMES).header(header)
    assert (renamed.specs, renamed.rules, renamed.identities) == (
        [
            {
                "model": "drift.part",
                "filter": {"title__startswith": "a", "id__in": [1]},
                "defer_values": ["title"],
                "rules": {"title": "keep"},
                "identity": ["title"],
            },
            {"model": "drift.gadget", "filter": {"label": "x"}},
        ],
        {"drift.part": {"title": "keep"}, "drift.gadget": {"label": "keep"}},
        {"drift.part": ["title"], "drift.gadget": "natural_key"},
    )
    # The header as read is left as it was: the signature is checked against it.
    assert header.specs[0]["defer_values"] == ["label"]


MODEL_RENAMES = {"drift.widget": "drift.component"}
#: A renamed model's fields are declared under its new label.
COMPONENT_RENAMES = {"drift.component": {"name": "title"}}


@pytest.fixture
def renamed(settings):
    """The declarations of the release that renamed Widget, with the older state's identities:
    none (a sticker's generic foreign key may name a row of any model, so the two states must
    agree on the identities of all)."""
    settings.DATASET_SYNC_IDENTITIES = {}
    settings.DATASET_SYNC_MODEL_RENAMES = MODEL_RENAMES
    settings.DATASET_SYNC_RENAMES = COMPONENT_RENAMES
    return settings


def widgets_on(older):
    """Two widgets on the older state, and two stickers on the first: one names it by foreign
    key, the other by foreign key and by content type."""
    older.execute(
        "from django.contrib.contenttypes.models import ContentType\n"
        "from testapp.drift_v1.models import Sticker, Widget\n"
        "axle = Widget.objects.create(pk=1, name='axle')\n"
        "Widget.objects.create(pk=2, name='wheel')\n"
        "Sticker.objects.create(pk=1, text='on the axle', widget=axle)\n"
        "Sticker.objects.create(pk=2, text='about the axle', widget=axle,"
        " content_type=ContentType.objects.get_for_model(Widget), object_id=axle.pk)\n"
    )


def widgets_as_loaded():
    """What the target holds once the older state's widgets (``widgets_on()``) are loaded."""
    component_type = ContentType.objects.db_manager("target").get_for_model(Component)
    return (
        [(1, "axle", None), (2, "wheel", None)],
        [
            (1, "on the axle", 1, None, None),
            (2, "about the axle", 1, component_type.pk, 1),
        ],
    )


def widget_rows(alias):
    return (
        list(Component.objects.using(alias).order_by("pk").values_list()),
        list(Sticker.objects.using(alias).order_by("pk").values_list()),
    )


def test_a_declared_model_rename_loads_a_dump_from_before_it(older, tmp_path, renamed):
    widgets_on(older)
    path = older_dump(older, tmp_path, "widgets")
    Component.objects.using("target").create(pk=1, title="old axle")
    # Selected by the dataset here and not in the dump: delete_missing deletes it.
    Component.objects.using("target").create(pk=3, title="gone")

    out, _err = run("loaddata-spec", str(path), "--database", "target")

    lines, _fields = summary(out)
    assert lines == [
        "schema drift: drift.component: loaded from the dump's drift.widget"
        " (DATASET_SYNC_MODEL_RENAMES)",
        "schema drift: drift.component.title: loaded from the dump's 'name' (DATASET_SYNC_RENAMES)",
        "schema drift: drift: this database has applied 0002_ahead, which the dump's source had"
        " not",
        "drift.component: 1 created, 1 updated, 0 unchanged, 1 deleted",
        "drift.sticker: 2 created, 0 updated, 0 unchanged, 0 deleted",
        f"Changed 5 rows ({path}).",
    ]
    assert widget_rows("target") == widgets_as_loaded()

    statements = Statements()
    with connections["target"].execute_wrapper(statements):
        report = load(path, using="target")
    assert not report.changed
    assert statements.writes() == []
    assert widget_rows("target") == widgets_as_loaded()


def test_the_json_report_lists_a_model_rename(older, tmp_path, renamed):
    widgets_on(older)
    path = older_dump(older, tmp_path, "widgets")

    out, _err = run("loaddata-spec", str(path), "--database", "target", "--check", "--json")

    assert json.loads(out)["drift"][0] == {
        "change": "model_renamed",
        "app": "drift",
        "model": "drift.component",
        "field": None,
        "migrations": [],
        "message": "schema drift: drift.component: loaded from the dump's drift.widget"
        " (DATASET_SYNC_MODEL_RENAMES)",
    }
    assert widget_rows("target") == ([], [])


def test_a_renamed_model_is_refused_without_the_declaration(older, tmp_path, settings):
    settings.DATASET_SYNC_IDENTITIES = {}
    widgets_on(older)
    path = older_dump(older, tmp_path, "widgets")
    Component.objects.using("target").create(pk=1, title="old axle")
    before = drift_rows("target")
    refused_everywhere(
        path,
        f"{path}: the dump's schema does not fit this database's: drift.sticker.widget: the"
        " dump has it as ForeignKey to drift.widget, this database as ForeignKey to"
        " drift.component; drift.widget: the dump has this model, this database does not."
        " Migrate the source as far as this database and dump again, or declare models"
        " renamed here in DATASET_SYNC_MODEL_RENAMES.",
        before,
    )
    # The model's rename alone: its renamed field is refused as any renamed field is.
    settings.DATASET_SYNC_MODEL_RENAMES = MODEL_RENAMES
    refused_everywhere(
        path,
        f"{path}: the dump's schema does not fit this database's: drift.component.name: the"
        " dump has this field (CharField), this database's model has 'title' instead"
        " (renamed? DATASET_SYNC_RENAMES = {'drift.component': {'name': 'title'}}). Migrate"
        " the source as far as this database and dump again, or declare fields renamed here"
        " in DATASET_SYNC_RENAMES.",
        before,
    )


def test_a_declared_model_rename_changes_nothing_for_a_dump_from_after_it(tmp_path, renamed):
    axle = Component.objects.create(pk=1, title="axle")
    Sticker.objects.create(pk=1, text="about the axle", widget=axle, target=axle)

    report = load(copy(tmp_path, "widgets"), using="target")

    assert report.drift == []
    assert widget_rows("target") == (
        [(1, "axle", None)],
        [(1, "about the axle", 1, widgets_as_loaded()[1][1][3], 1)],
    )


def test_a_declared_model_rename_applies_to_a_dump_without_a_schema_record(tmp_path, renamed):
    lines = [
        {"model": "drift.widget", "pk": 1, "fields": {"name": "axle", "maker": None}},
        {"model": "drift.widget", "pk": 2, "fields": {"name": "wheel", "maker": None}},
        {
            "model": "drift.sticker",
            "pk": 1,
            "fields": {"text": "on the axle", "widget": 1, "content_type": None, "object_id": None},
        },
        {
            "model": "drift.sticker",
            "pk": 2,
            "fields": {
                "text": "about the axle",
                "widget": 1,
                "content_type": ["drift", "widget"],
                "object_id": 1,
            },
        },
    ]
    document = {
        "format": "dataset_sync",
        "version": 1,
        "dataset": "widgets",
        "args": "",
        "specs": [
            {"model": "drift.widget", "filter": {"name__isnull": False}, "delete_missing": True},
            {
                "model": "drift.sticker",
                "filter": {"widget__name__isnull": False},
                "delete_missing": True,
            },
        ],
        "objects": lines,
        "count": len(lines),
        "sha256": hashlib.sha256(
            "".join(json.dumps(line) + "\n" for line in lines).encode()
        ).hexdigest(),
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(document))

    report = load(path, using="target")

    assert [str(drift) for drift in report.drift] == [
        "schema drift: drift.component: loaded from the dump's drift.widget"
        " (DATASET_SYNC_MODEL_RENAMES)",
        "schema drift: drift.component.title: loaded from the dump's 'name' (DATASET_SYNC_RENAMES)",
    ]
    assert widget_rows("target") == widgets_as_loaded()
    assert not load(path, using="target").changed


@pytest.mark.parametrize(
    ("model_renames", "renames", "messages"),
    [
        (
            {"drift.widget": ["drift.component"]},
            {},
            [
                "DATASET_SYNC_MODEL_RENAMES must map old model labels to new ones, like"
                " {'shop.part': 'shop.component'}, not {'drift.widget': ['drift.component']}."
            ],
        ),
        (
            {"drift.part": "drift.component"},
            {},
            [
                "DATASET_SYNC_MODEL_RENAMES: 'drift.part' is still a model here; only a label"
                " that no installed model has any more can be renamed."
            ],
        ),
        (
            {"drift.widget": "drift.gone"},
            {},
            [
                "DATASET_SYNC_MODEL_RENAMES: 'drift.gone', which 'drift.widget' is renamed to,"
                " is not an installed model."
            ],
        ),
        (
            {"drift.widget": "drift.component", "drift.gizmo": "drift.component"},
            {},
            [
                "DATASET_SYNC_MODEL_RENAMES: 'drift.gizmo' and 'drift.widget' are both renamed"
                " to 'drift.component'; the rows of two models cannot load into one."
            ],
        ),
        (
            MODEL_RENAMES,
            {"drift.widget": {"name": "title"}},
            [
                "DATASET_SYNC_RENAMES: 'drift.widget' is renamed to drift.component"
                " (DATASET_SYNC_MODEL_RENAMES); declare its fields under 'drift.component'."
            ],
        ),
        (MODEL_RENAMES, COMPONENT_RENAMES, []),
    ],
)
def test_model_renames_that_cannot_work_are_system_check_errors(
    settings, model_renames, renames, messages
):
    settings.DATASET_SYNC_MODEL_RENAMES = model_renames
    settings.DATASET_SYNC_RENAMES = renames
    found = [
        (message.id, message.msg)
        for message in django_checks.run_checks()
        if message.id and message.id.startswith("dataset_sync.")
    ]
    assert found == [("dataset_sync.E009", message) for message in messages]


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "DATASET_SYNC_RENAMES",
            {"drift.part": ["label"]},
            "DATASET_SYNC_RENAMES must map model labels to dicts of old field names to new"
            " ones, not {'drift.part': ['label']}.",
        ),
        (
            "DATASET_SYNC_MODEL_RENAMES",
            {"drift.widget": "drift.gone"},
            "DATASET_SYNC_MODEL_RENAMES: 'drift.gone', which 'drift.widget' is renamed to, is"
            " not an installed model.",
        ),
    ],
)
def test_renames_that_cannot_work_refuse_a_load_in_one_line(
    tmp_path, settings, setting, value, message
):
    Component.objects.create(pk=1, title="axle")
    path = copy(tmp_path, "widgets")
    before = drift_rows("target")
    setattr(settings, setting, value)

    for api in (load, check):
        with pytest.raises(InvalidSpecError) as excinfo:
            api(path, using="target")
        assert str(excinfo.value) == f"{path}: {message}"
    assert drift_rows("target") == before


def from_the_shell(*argv):
    """Run a command as manage.py does, system checks included; its exit code."""
    command = load_command_class("dataset_sync", argv[0])
    with pytest.raises(SystemExit) as exit_info:
        command.run_from_argv(["manage.py", *argv])
        raise SystemExit(0)
    return exit_info.value.code


def test_renames_that_cannot_work_refuse_a_load_from_the_shell_with_exit_code_4(
    tmp_path, settings, capsys
):
    """No system check gets there first (exit code 1, no summary line); and a setting that
    only loads read does not stop a dump."""
    path = copy(tmp_path, "widgets")
    settings.DATASET_SYNC_MODEL_RENAMES = {"drift.widget": "drift.gone"}
    message = (
        "DATASET_SYNC_MODEL_RENAMES: 'drift.gone', which 'drift.widget' is renamed to, is not"
        " an installed model."
    )
    assert from_the_shell("loaddata-spec", str(path), "--database", "target") == 4
    out, err = capsys.readouterr()
    assert err == f"CommandError: {path}: {message}\n"
    assert out.splitlines()[-1].startswith("dataset_sync.load status=bad_input exit_code=4")
    assert from_the_shell("dumpdata-spec", "widgets", "-o", str(tmp_path / "again.json")) == 0


def test_a_model_rename_reaches_every_place_a_header_names_the_model():
    field = {"column": "name", "type": "CharField", "null": False}
    header = Header(
        specs=[
            {
                "model": "drift.widget",
                "filter": {"name__startswith": "a", "maker__name": "Acme", "pk__in": [1]},
                "delete_missing": {"map": [["pk__in", "drift.widget"]]},
                "rules": {"name": "keep"},
                "identity": ["name"],
            },
            # Reverse relations are called after the model that holds them, by default.
            {"model": "drift.maker", "filter": {"widget__name": "axle", "name": "Acme"}},
            {"model": "drift.sticker", "filter": {"widget__name__in": ["axle"]}},
        ],
        rules={"drift.widget": {"name": "keep"}},
        identities={"drift.widget": ["name"], "drift.maker": "natural_key"},
        schema={
            "django": "5.2",
            # An app whose models all moved into other apps, and which is gone here.
            "migrations": {"drift": ["0001_initial"], "store": ["0003_last"]},
            "models": {
                "drift.widget": {"name": field},
                "drift.sticker": {
                    "widget": {
                        "column": "widget_id",
                        "type": "ForeignKey",
                        "null": True,
                        "to": "drift.widget",
                    },
                },
                "store.shelf": {"name": field},
            },
        },
    )
    renames = Renames(
        COMPONENT_RENAMES, {"drift.widget": "drift.component", "store.shelf": "drift.part"}
    )

    renamed = renames.header(header)

    assert renamed.specs == [
        {
            "model": "drift.component",
            "filter": {"title__startswith": "a", "maker__name": "Acme", "pk__in": [1]},
            "delete_missing": {"map": [["pk__in", "drift.component"]]},
            "rules": {"title": "keep"},
            "identity": ["title"],
        },
        {"model": "drift.maker", "filter": {"component__title": "axle", "name": "Acme"}},
        {"model": "drift.sticker", "filter": {"widget__title__in": ["axle"]}},
    ]
    assert (renamed.rules, renamed.identities) == (
        {"drift.component": {"title": "keep"}},
        {"drift.component": ["title"], "drift.maker": "natural_key"},
    )
    assert renamed.schema == {
        "django": "5.2",
        "migrations": {"drift": ["0001_initial"]},
        "models": {
            # RenameField renamed the column too: the old one is not compared.
            "drift.component": {"title": {"type": "CharField", "null": False}},
            "drift.sticker": {
                "widget": {
                    "column": "widget_id",
                    "type": "ForeignKey",
                    "null": True,
                    "to": "drift.component",
                },
            },
            "drift.part": {"name": field},
        },
    }
    # The header as read is left as it was: the signature is checked against it.
    assert header.specs[0]["model"] == "drift.widget"
    assert header.schema["models"]["drift.sticker"]["widget"]["to"] == "drift.widget"


def test_a_model_rename_reaches_every_label_in_the_objects():
    batch = [
        {
            "model": "drift.sticker",
            "pk": 1,
            "fields": {"text": "x", "widget": 1, "content_type": ["drift", "widget"]},
        },
        # Content types themselves, and natural keys that hold one (a permission's).
        {
            "model": "contenttypes.contenttype",
            "pk": 7,
            "fields": {"app_label": "drift", "model": "widget"},
        },
        {
            "model": "auth.group",
            "pk": 1,
            "fields": {
                "name": "staff",
                "permissions": [["view_widget", "drift", "widget"], ["view_part", "drift", "part"]],
            },
        },
        {"model": "drift.widget", "pk": 1, "fields": {"name": "axle", "maker": None}},
    ]

    Renames(COMPONENT_RENAMES, MODEL_RENAMES).objects(batch, Identities.of())

    assert batch == [
        {
            "model": "drift.sticker",
            "pk": 1,
            "fields": {"text": "x", "widget": 1, "content_type": ["drift", "component"]},
        },
        {
            "model": "contenttypes.contenttype",
            "pk": 7,
            "fields": {"app_label": "drift", "model": "component"},
        },
        {
            "model": "auth.group",
            "pk": 1,
            "fields": {
                "name": "staff",
                "permissions": [
                    ["view_widget", "drift", "component"],
                    ["view_part", "drift", "part"],
                ],
            },
        },
        {"model": "drift.component", "pk": 1, "fields": {"title": "axle", "maker": None}},
    ]


def test_a_model_rename_reaches_content_types_in_identities():
    # Stickers recognised by (content type, text): their identities hold a content type, and
    # so does a generic foreign key's object id that names a sticker.
    identities = Identities({"drift.sticker": Identity("fields", ("content_type", "text"))})
    batch = [
        {
            "model": "drift.sticker",
            "pk": 1,
            "identity": [["drift", "widget"], "x"],
            "fields": {"text": "x", "content_type": ["drift", "widget"], "object_id": 1},
        },
        {
            "model": "drift.sticker",
            "pk": 2,
            "identity": [["drift", "sticker"], "y"],
            "fields": {
                "text": "y",
                "content_type": ["drift", "sticker"],
                "object_id": [["drift", "widget"], "x"],
            },
        },
    ]

    Renames({}, MODEL_RENAMES).objects(batch, identities)

    assert [(data["identity"], data["fields"]) for data in batch] == [
        (
            [["drift", "component"], "x"],
            {"text": "x", "content_type": ["drift", "component"], "object_id": 1},
        ),
        (
            [["drift", "sticker"], "y"],
            {
                "text": "y",
                "content_type": ["drift", "sticker"],
                "object_id": [["drift", "component"], "x"],
            },
        ),
    ]


def test_check_reports_as_json(older, tmp_path):
    path = older_dump(older, tmp_path, "gadgets")
    before = drift_rows("target")

    out, _err = run("loaddata-spec", str(path), "--database", "target", "--check", "--json")

    report = json.loads(out)
    assert report.pop("duration") >= 0
    assert [drift["change"] for drift in report.pop("drift")] == [
        "migrations_ahead",
        "field_not_in_dump",
        "field_not_in_dump",
    ]
    assert report == {
        "status": "checked",
        "exit_code": 0,
        "error": None,
        "dry_run": False,
        "sources": [str(path)],
        "datasets": [{"dataset": "gadgets", "args": ""}],
        "models": {},
        "totals": {
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "deleted": 0,
            "cascaded": 0,
            "cascade_updated": 0,
        },
    }
    assert drift_rows("target") == before
