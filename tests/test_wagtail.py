"""docs/wagtail.md, step by step, against real Wagtail: a news section synced from prod to stage.

Each environment is the Wagtail site in tests/wagtail_site with its own database on the backend
under test, driven in subprocesses by the commands the page shows (``migrate``,
``dumpdata-spec``, ``loaddata-spec``) and by the ``scenario`` command, which edits pages the
way Wagtail's editors do. Stage's content type ids differ from prod's, and stage's editors
create pages outside the section and inside it between syncs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

needs_wagtail = pytest.mark.skipif(
    importlib.util.find_spec("wagtail") is None,
    reason=(
        "Wagtail is not installed: it is in the 'wagtail' dependency group, which"
        " `python3 dev.py test` installs for the newest Django series only."
    ),
)

SITE = Path(__file__).resolve().parent / "wagtail_site"
MANAGE = SITE / "manage.py"
ROOT = SITE.parents[1]
SECTION = "wagtail-section:/home/news/"


class Environment:
    """prod or stage: ``manage.py`` of the Wagtail site with that environment's database."""

    def __init__(self, name: str, sqlite_dir: Path) -> None:
        self.name = name
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.wagtail_site.settings",
            "DATASET_SYNC_WAGTAIL_ENV": name,
            "DATASET_SYNC_SQLITE_DIR": str(sqlite_dir),
        }

    def run(self, *args: str, returncode: int = 0, output: str = "stdout") -> str:
        result = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == returncode, (self.name, args, result.stdout, result.stderr)
        return getattr(result, output)

    def state(self) -> dict[str, Any]:
        return json.loads(self.run("scenario", "state"))


def migrate_prod(prod: Environment) -> None:
    prod.run("scenario", "create-database")
    prod.run("migrate", "-v0")
    prod.run("scenario", "home")


def migrate_stage(stage: Environment) -> None:
    stage.run("scenario", "create-database")
    # Content types of another app first: every Wagtail content type gets another id than
    # on prod, as happens when two databases were migrated in other orders.
    stage.run("migrate", "contenttypes", "-v0")
    stage.run("scenario", "content-types")
    stage.run("migrate", "-v0")
    stage.run("scenario", "home")
    stage.run("scenario", "stage-users")


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """Prod and stage, each migrated once for the module (migrations are the slow part)."""
    sqlite_dir = tmp_path_factory.mktemp("wagtail")
    prod, stage = Environment("prod", sqlite_dir), Environment("stage", sqlite_dir)
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(migrate_prod, prod), pool.submit(migrate_stage, stage)]:
            future.result()
    yield prod, stage
    prod.run("scenario", "drop-database")
    stage.run("scenario", "drop-database")


def sync(prod: Environment, stage: Environment, path: Path) -> str:
    """One nightly run, as docs/wagtail.md shows it: dump on prod, load on stage."""
    prod.run("dumpdata-spec", SECTION, "-o", str(path))
    return stage.run("loaddata-spec", str(path))


def as_on_stage(section: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prod's section as stage must hold it while bob exists only on prod: he owns nothing."""
    return [
        {**page, "owner": None if page["owner"] == "bob" else page["owner"]} for page in section
    ]


@needs_wagtail
def test_a_wagtail_section_syncs_from_prod_to_stage(sites, tmp_path):
    prod, stage = sites
    prod.run("scenario", "prod-build")

    # A page that stage made beside the section holds the section's tree position: refused.
    stage.run("scenario", "stage-early")
    before = stage.state()
    prod.run("dumpdata-spec", SECTION, "-o", str(tmp_path / "first.json"))
    error = stage.run("loaddata-spec", str(tmp_path / "first.json"), returncode=4, output="stderr")
    page = r"wagtailcore\.page\(pk=\d+\)"
    assert re.fullmatch(
        f"CommandError: {re.escape(str(tmp_path / 'first.json'))}: {page}: deferred field"
        f" 'path' value '000100010001' would duplicate {page}, which is still there after the"
        " deletions. Add that row to the dataset with delete_missing, or change it on the"
        " target.\n",
        error,
    )
    assert stage.state() == before
    stage.run("scenario", "stage-early-gone")

    # The first sync creates the section on stage; loading the same dump again writes nothing.
    stage.run("loaddata-spec", str(tmp_path / "first.json"))
    stage.run("loaddata-spec", str(tmp_path / "first.json"), "--detailed-exitcode", returncode=3)
    assert stage.state()["section"] == as_on_stage(prod.state()["section"])

    # Stage's editors add pages beside the section and in it, and save a draft of a synced page.
    stage.run("scenario", "stage-editors")
    edited = stage.state()
    own = [page for page in edited["outside"] if page["depth"] > 2]
    assert [page["url_path"] for page in own] == ["/home/about/", "/home/about/team/"]
    assert [page["in_editor"] for page in edited["section"]][:2] == [
        "News",
        "Launch, a draft on stage",
    ]

    # Prod edits, adds a page at the tree position stage's own section page holds, moves one.
    prod.run("scenario", "prod-round2")
    sync(prod, stage, tmp_path / "second.json")
    # Prod deletes a page with children and adds one.
    prod.run("scenario", "prod-round3")
    out = sync(prod, stage, tmp_path / "third.json")
    assert out.splitlines()[-1].split()[1:3] == ["status=changed", "exit_code=0"]
    stage.run("loaddata-spec", str(tmp_path / "third.json"), "--detailed-exitcode", returncode=3)

    on_prod, on_stage = prod.state(), stage.state()
    # Now that stage has a user bob, the pages he owns on prod are his on stage too. The editor
    # shows each page as prod's editor does: stage's draft of "launch" is no longer its draft.
    assert on_stage["section"] == on_prod["section"]
    assert [page["url_path"] for page in on_stage["section"]] == [
        "/home/news/",
        "/home/news/launch/",
        "/home/news/funding/",
        "/home/news/later/",
    ]
    # Stage's own pages outside the section are as its editors left them.
    assert [page for page in on_stage["outside"] if page["depth"] > 2] == own
    # The tree is consistent, the parent of the section included (treebeard's fixtree finds
    # nothing to fix): counts of wrong characters, step lengths, orphans, depths, child counts.
    assert on_stage["problems"] == [0, 0, 0, 0, 0]
    # Revisions stay where they were made: stage keeps its own of pages that are still there
    # (its draft of "launch"), its page that prod's sync deleted took its revision along, and
    # no synced page points at a revision.
    assert on_stage["revisions"] == [
        ["/home/about/", 1],
        ["/home/about/team/", 1],
        ["/home/news/launch/", 1],
    ]
    assert on_stage["pointing_at_revisions"] == []
    # The content types were matched by what they are, not by their ids, which differ.
    assert on_stage["content_type_ids"] != on_prod["content_type_ids"]
    assert on_stage["content_type_ids"].keys() == on_prod["content_type_ids"].keys()


def test_the_docs_show_the_models_settings_and_dataset_that_the_test_runs():
    models, settings, dataset = re.findall(
        r"```python\n(.*?)```", (ROOT / "docs" / "wagtail.md").read_text(), re.DOTALL
    )
    assert models in (SITE / "news" / "models.py").read_text()
    assert settings in (SITE / "settings.py").read_text()
    # The whole module, but for its docstring.
    module = (SITE / "news" / "datasets.py").read_text()
    assert dataset == module.split('"""\n\n', 1)[1]
