"""The drift app in its older state, in a process of its own.

The test process runs the newer state (``testapp.drift_v2``, installed by the test settings);
:class:`OlderState` runs ``python -m tests.older`` with ``testapp.settings_drift_v1``, which
installs ``testapp.drift_v1`` under the same app label, against a database of its own that
drift_v1's migrations made. A dump made by one state is loaded by the other, so the schema
tests compare two real schemas that real migrations built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "testapp.settings_drift_v1"
#: A failsafe against a hung process, not a synchronisation.
LIMIT = 300


class OlderState:
    """Management commands and Python code in a drift_v1 process, on the database ``name``."""

    def __init__(self, name: str) -> None:
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DATASET_SYNC_DRIFT_DB": name,
        }

    def run(self, *args: str) -> tuple[int, str, str]:
        """Run a management command; its exit status, stdout and stderr."""
        done = subprocess.run(
            [sys.executable, "-m", "tests.older", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=LIMIT,
        )
        return done.returncode, done.stdout, done.stderr

    def command(self, *args: str) -> str:
        """Run a management command that must succeed; its stdout."""
        code, out, err = self.run(*args)
        assert code == 0, (args, code, out, err)
        return out

    def execute(self, code: str) -> None:
        """Run Python ``code`` in the older state (its models import from testapp.drift_v1)."""
        self.command("--execute", code)

    def create(self) -> None:
        """Make the database afresh and migrate it with drift_v1's migrations."""
        self.command("--create")

    def destroy(self) -> None:
        self.command("--destroy")

    def rows(self) -> list[dict[str, Any]]:
        """Every row of the drift app's tables, as Django's dumpdata writes them."""
        rows: list[dict[str, Any]] = json.loads(self.command("dumpdata", "drift"))
        return rows


def main() -> None:
    import django

    django.setup()
    from django.core.management import execute_from_command_line
    from django.db import connection

    if sys.argv[1] == "--create":
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    elif sys.argv[1] == "--destroy":
        name = connection.settings_dict["NAME"]
        connection.creation.destroy_test_db(name, verbosity=0)
    elif sys.argv[1] == "--execute":
        exec(sys.argv[2], {})
    else:
        execute_from_command_line(["manage.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
