from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shlex
import socket
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core import serializers
from django.core.management import call_command
from django.core.management.base import CommandError

from dataset_sync import dump, load, registry
from testapp.models import (
    Article,
    Author,
    Category,
    Choice,
    Comment,
    Event,
    Item,
    Node,
    Question,
    Review,
    Tag,
)

SERVERS = {"postgresql": 5432, "mariadb": 3306}


def _server_unreachable() -> str | None:
    backend = os.environ.get("DATASET_SYNC_TEST_DB", "sqlite")
    if backend not in SERVERS:
        return None
    database = settings.DATABASES["default"]
    host, port = database["HOST"], int(database["PORT"])
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return f"{backend} at {host}:{port} is not reachable ({exc})"
    return None


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    reason = _server_unreachable()
    if reason is None:
        return
    if os.environ.get("DATASET_SYNC_REQUIRE_DB"):
        raise pytest.UsageError(f"{reason}, and DATASET_SYNC_REQUIRE_DB is set.")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_configure(config: Any) -> None:
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        _flush_postgresql_by_delete()


def _flush_postgresql_by_delete() -> None:
    """Empty the tables after each transactional test with DELETE rather than TRUNCATE.

    Nearly every test here commits, so Django empties both databases after each one. On
    PostgreSQL its flush is a TRUNCATE, which gives each table new files: 0.1 s per database,
    more than half of a typical test's time. The tables hold a few rows, and DELETE empties them
    in a millisecond; Django creates foreign keys DEFERRABLE INITIALLY DEFERRED, so the order
    does not matter. A flush that resets sequences or cascades still truncates.
    """
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(
        self: Any,
        style: Any,
        tables: Any,
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        if reset_sequences or allow_cascade:
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        return [f"DELETE FROM {self.quote_name(table)};" for table in tables]

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign]


def pytest_report_header(config: Any) -> str:
    return f"dataset_sync test database: {os.environ.get('DATASET_SYNC_TEST_DB', 'sqlite')}"


def rows(alias: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every test app table (m2m tables included) on ``alias``, ordered.

    Rows of many-to-many tables are (source, target) pairs: their own ids mean nothing.
    """
    state = {}
    for model in apps.get_app_config("testapp").get_models(include_auto_created=True):
        if model._meta.proxy:
            continue  # its rows are its concrete model's
        queryset = model._base_manager.using(alias)
        if model._meta.auto_created:
            names = [field.attname for field in model._meta.concrete_fields if field.is_relation]
            state[model._meta.label_lower] = sorted(queryset.values_list(*names))
        else:
            state[model._meta.label_lower] = list(queryset.order_by("pk").values_list())
    return state


def summary(out: str) -> tuple[list[str], dict[str, str]]:
    """loaddata-spec's output: its report lines, and its last line's fields parsed.

    The duration varies from run to run; it is checked for its form and left out.
    """
    *lines, last = out.splitlines()
    name, _space, rest = last.partition(" ")
    assert name == "dataset_sync.load", last
    fields = dict(field.split("=", 1) for field in shlex.split(rest))
    assert re.fullmatch(r"\d+\.\d{3}s", fields.pop("duration")), last
    return lines, fields


def run(*args: str) -> tuple[str, str]:
    """Run a management command; return its stdout and stderr."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(path: Any, exception: type[Exception], message: str, before: Any) -> None:
    """Load a hand-made dump (it names no dataset, so with its own specs) through ``load()``
    and through the command: both fail with ``message`` and leave the target as ``before``."""
    with pytest.raises(exception) as excinfo:
        load(path, using="target", trust_dump_specs=True)
    assert str(excinfo.value) == message
    with pytest.raises(CommandError) as excinfo:
        run("loaddata-spec", str(path), "--database", "target", "--trust-dump-specs")
    assert str(excinfo.value) == message
    assert rows("target") == before


@pytest.fixture
def target_with_rows(tmp_path):
    """A target that already holds a loaded dataset, so a failed load has rows to damage."""
    make_source()
    load(copy(tmp_path, "authors:1,2", "initial.json"), using="target")
    return rows("target")


@pytest.fixture
def good_dump(tmp_path):
    """A dump of authors:1,2 taken after the source changed, as lines of text.

    Loading it whole would update every question, so a failure that left any of it behind
    would show in the target's rows.
    """
    Question.objects.update(text="changed on the source")
    return copy(tmp_path, "authors:1,2", "good.json").read_text().splitlines(keepends=True)


def write(tmp_path, lines, name="bad.json"):
    path = tmp_path / name
    path.write_text("".join(lines))
    return path


def write_document(tmp_path, specs, objects, name="bad.json"):
    """A hand-made dump in the trailer-less layout feincms3-data writes."""
    return write(tmp_path, [json.dumps({"version": 1, "specs": specs, "objects": objects})], name)


@pytest.fixture(params=["api", "command"])
def fails(request):
    """Loads ``path`` into the target and checks the whole message and the untouched target."""

    def check(path, exception, message, before, *command_options, trusted=False, **options):
        """``trusted`` loads with the dump's own specs (hand-made dumps name no dataset)."""
        if request.param == "api":
            with pytest.raises(exception) as excinfo:
                load(path, using="target", trust_dump_specs=trusted, **options)
        else:
            if trusted:
                command_options = (*command_options, "--trust-dump-specs")
            with pytest.raises(CommandError) as excinfo:
                run("loaddata-spec", str(path), "--database", "target", *command_options)
            assert excinfo.value.returncode == exception.exit_code
        assert str(excinfo.value) == message
        assert rows("target") == before

    return check


WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)


def make_source(using: str = "default") -> None:
    """Two authors with questions, choices, tags, reviews and an FK cycle."""
    python, django = (Tag.objects.using(using).create(name=name) for name in ("python", "django"))
    news = Category.objects.using(using).create(name="news")
    for author_id in (1, 2):
        author = Author.objects.using(using).create(
            pk=author_id, name=f"Author {author_id}", email=f"a{author_id}@example.com"
        )
        for number in range(2):
            question = Question.objects.using(using).create(
                author=author,
                category=news if number else None,
                text=f"Q{author_id}.{number}",
                pub_date=WHEN,
            )
            question.tags.set([python, django] if number else [python])
            for choice in range(3):
                Choice.objects.using(using).create(
                    question=question, text=f"C{choice}", votes=choice, score=Decimal("1.25")
                )
            Review.objects.using(using).create(question=question, author=author, rating=4)
        author.favorite_question = author.questions.first()
        author.save(using=using)


def make_everything(using: str = "default") -> None:
    """make_source() plus a tree, an inheritance hierarchy and comments on several models."""
    make_source(using)
    root = Node.objects.using(using).create(name="root", data={"depth": 0})
    child = Node.objects.using(using).create(name="child", parent=root, data=[1, 2])
    Node.objects.using(using).create(name="grandchild", parent=child)
    Article.objects.using(using).create(title="article", body="text")
    Event.objects.using(using).create(title="event", starts=dt.date(2026, 12, 24))
    Item.objects.using(using).create(title="plain item")
    types = ContentType.objects.db_manager(using)
    question = Question.objects.using(using).order_by("pk").first()
    for target, text in ((root, "on a node"), (question, "on a question")):
        Comment.objects.using(using).create(
            content_type=types.get_for_model(target), object_id=target.pk, text=text
        )


def shift_content_types(using: str = "target") -> None:
    """Recreate the test app's content types on ``using`` so their ids differ from the source's.

    A dump that carried content type ids instead of natural keys would then point at the
    wrong models (or at none).
    """
    types = ContentType.objects.db_manager(using)
    labels = sorted(types.filter(app_label="testapp").values_list("model", flat=True))
    types.filter(app_label="testapp").delete()
    # New ids above every id of the source's make every id differ from the source's.
    ceiling = max(ContentType.objects.values_list("pk", flat=True))
    while (placeholder := types.create(app_label="testapp", model="placeholder")).pk < ceiling:
        placeholder.delete()
    placeholder.delete()
    for model in reversed(labels):
        types.create(app_label="testapp", model=model)
    types.clear_cache()
    source = dict(ContentType.objects.filter(app_label="testapp").values_list("model", "pk"))
    shifted = dict(types.filter(app_label="testapp").values_list("model", "pk"))
    assert all(source[label] != shifted[label] for label in labels), (source, shifted)


def copy(tmp_path: Any, dataset: Any, name: str = "dump.json") -> Any:
    """Dump ``dataset`` (a ``"name:args"`` string or a Dataset) from the source into a file."""
    path = tmp_path / name
    dump(dataset, output=path)
    return path


def dataset_state(dataset: str, alias: str) -> dict[tuple[str, Any], dict[str, Any]]:
    """The rows ``dataset`` selects on ``alias``, field by field, m2m included, per model and pk.

    Built with Django's own serializer and natural foreign keys, independently of the
    package's code, so that content types compare by what they name rather than by id.
    """
    name, args = registry.parse(dataset)
    state: dict[tuple[str, Any], dict[str, Any]] = {}
    for spec in registry.get_dataset(name).specs(args, alias):
        m2m = {field.name for field in spec.get_model()._meta.many_to_many}
        queryset = spec.queryset(alias).distinct()
        for obj in serializers.serialize("python", queryset, use_natural_foreign_keys=True):
            state[(obj["model"], obj["pk"])] = {
                field: sorted(value, key=repr) if field in m2m else value
                for field, value in obj["fields"].items()
            }
    return state


def retrailer(lines: list[bytes], objects: list[bytes]) -> bytes:
    """The dump with these object lines and a trailer that matches them, as a forger would."""
    digest = hashlib.sha256()
    for line in objects:
        digest.update(line + b"\n")
    trailer = json.loads(b"{" + lines[-1][3:])
    trailer.update(count=len(objects), sha256=digest.hexdigest())
    if sum(trailer.get("spec_counts") or []) != len(objects):
        trailer["spec_counts"] = [len(objects)]
    body = b",\n".join(objects) + (b"\n" if objects else b"")
    return lines[0] + body + b"], " + json.dumps(trailer)[1:].encode() + b"\n"


def object_lines(lines: list[bytes]) -> list[bytes]:
    return [line.rstrip(b"\n").removesuffix(b",") for line in lines[1:-1]]


class Statements:
    """Records the SQL a database connection runs (``connection.execute_wrapper``)."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.sql.append(sql)
        return execute(sql, params, many, context)

    def writes(self) -> list[str]:
        # COPY: PostgreSQL's inserts (dataset_sync.load.backends).
        verbs = (
            "INSERT",
            "UPDATE",
            "DELETE",
            "REPLACE",
            "TRUNCATE",
            "ALTER",
            "SELECT SETVAL",
            "COPY",
        )
        # SQLite's load lock is a DELETE that matches no row (see dataset_sync.load.backends).
        return [
            sql
            for sql in self.sql
            if sql.lstrip().upper().startswith(verbs) and not sql.endswith(" WHERE 0 = 1")
        ]


@pytest.fixture
def restore_registry():
    """Lets a test register and unregister datasets; afterwards the registry is as it was.

    Through the public API only. The test settings declare no DATASET_SYNC_DATASETS, so
    outside a test's override_settings() every dataset is a registration.
    """
    # datasets() imports the datasets modules first: they register only once, on first import.
    saved = registry.datasets()
    yield registry.register
    for name, dataset in registry.datasets().items():
        if saved.get(name) != dataset:
            registry.unregister(name)
    now = registry.datasets()
    for name, dataset in saved.items():
        if name not in now:
            registry.register(
                name,
                mappers=dataset.mappers,
                rules=dataset.rules,
                after_write=dataset.after_write,
                check_args=dataset.check_args,
            )(dataset.specs_function)
    assert registry.datasets() == saved
