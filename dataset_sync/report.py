"""What a load did: counts per model, and the forms the commands print them in."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from django.template.defaultfilters import pluralize

from dataset_sync.errors import (
    EXIT_BAD_INPUT,
    EXIT_LOCK_TIMEOUT,
    EXIT_REFUSED,
    DatasetSyncError,
)
from dataset_sync.format import Header
from dataset_sync.schema import Drift

_ACTIONS = ("created", "updated", "unchanged", "deleted", "cascaded", "cascade_updated")
_FAILURES = {
    EXIT_BAD_INPUT: "bad_input",
    EXIT_REFUSED: "refused",
    EXIT_LOCK_TIMEOUT: "lock_timeout",
}


@dataclass
class ModelCounts:
    """What a load did, or would do, to the rows of one model."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    #: Rows deleted because a deleted row's relation said CASCADE.
    cascaded: int = 0
    #: Rows updated because a deleted row's relation said SET_NULL, SET_DEFAULT or SET().
    cascade_updated: int = 0

    @property
    def changed(self) -> int:
        """The rows written: created, updated or deleted (by the load or by a cascade)."""
        return self.created + self.updated + self.deleted + self.cascaded + self.cascade_updated


@dataclass
class LoadReport:
    """The outcome of :func:`~dataset_sync.load`: counts per model, in the order written.

    Pass one to ``load(report=...)`` to keep what a failed load had done before it was rolled
    back; the commands print that in their summary line.
    """

    sources: list[str] = field(default_factory=list)
    dry_run: bool = False
    counts: dict[str, ModelCounts] = field(default_factory=dict)
    headers: list[Header] = field(default_factory=list)
    duration: float = 0.0
    #: How this database's schema differs from the dumps' where the load went on anyway.
    drift: list[Drift] = field(default_factory=list)
    #: Made by :func:`~dataset_sync.load.check`: the dumps were checked, nothing was loaded.
    checked: bool = False

    def add(self, label: str, **counts: int) -> None:
        """Add ``counts`` (``created=2``, ...) to the model ``label``, listing it if it is new."""
        entry = self.counts.setdefault(label, ModelCounts())
        for action, count in counts.items():
            setattr(entry, action, getattr(entry, action) + count)

    @property
    def changed(self) -> bool:
        return any(counts.changed for counts in self.counts.values())

    def lines(self) -> list[str]:
        """A line per schema difference, one summary line per model, then a closing line."""
        lines = [str(drift) for drift in self.drift]
        sources = ", ".join(self.sources)
        if self.checked:
            lines.append(f"Checked {sources}: it would load; nothing was written.")
            return lines
        for label, counts in self.counts.items():
            parts = [
                f"{counts.created:,} created",
                f"{counts.updated:,} updated",
                f"{counts.unchanged:,} unchanged",
                f"{counts.deleted:,} deleted",
            ]
            if counts.cascaded:
                parts.append(f"{counts.cascaded:,} deleted by cascade")
            if counts.cascade_updated:
                parts.append(f"{counts.cascade_updated:,} updated by cascade")
            lines.append(f"{label}: {', '.join(parts)}")
        if not self.changed:
            verb = "Dry run: nothing to change" if self.dry_run else "Nothing to change"
            lines.append(f"{verb} ({sources}).")
        else:
            total = sum(counts.changed for counts in self.counts.values())
            verb = "Would change" if self.dry_run else "Changed"
            suffix = "; dry run, nothing was written" if self.dry_run else ""
            lines.append(f"{verb} {total:,} row{pluralize(total)} ({sources}){suffix}.")
        return lines

    def as_dict(self, exit_code: int = 0, error: DatasetSyncError | None = None) -> dict[str, Any]:
        """The report as plain data (``loaddata-spec --json``), with the run's outcome.

        ``status`` is ``changed``, ``unchanged``, ``checked`` (``--check``), or for a failed
        load ``bad_input``, ``refused`` or ``lock_timeout`` (by ``exit_code``); nothing was
        written unless it is ``changed`` and ``dry_run`` is false.
        """
        if error is None and self.checked:
            status = "checked"
        elif error is None:
            status = "changed" if self.changed else "unchanged"
        else:
            status = _FAILURES.get(exit_code, "bad_input")
        models = {label: asdict(counts) for label, counts in self.counts.items()}
        totals = {key: sum(counts[key] for counts in models.values()) for key in _ACTIONS}
        return {
            "status": status,
            "exit_code": exit_code,
            "error": None
            if error is None
            else {"type": type(error).__name__, "message": str(error)},
            "dry_run": self.dry_run,
            "sources": self.sources,
            "datasets": [
                {"dataset": header.dataset, "args": header.args} for header in self.headers
            ],
            "drift": [drift.as_dict() for drift in self.drift],
            "models": models,
            "totals": totals,
            "duration": round(self.duration, 3),
        }

    def summary_line(self, exit_code: int = 0, error: DatasetSyncError | None = None) -> str:
        """The outcome as one ``key=value`` line for log aggregators, failed loads included."""
        data = self.as_dict(exit_code, error)
        fields: dict[str, Any] = {
            "status": data["status"],
            "exit_code": exit_code,
            # "-": a dump that names no dataset, or a load refused before any header was read.
            "dataset": ",".join(
                f"{d['dataset'] or '-'}:{d['args']}" if d["args"] else d["dataset"] or "-"
                for d in data["datasets"]
            )
            or "-",
            "source": ",".join(self.sources),
            **data["totals"],
            "dry_run": str(self.dry_run).lower(),
            "duration": f"{self.duration:.3f}s",
        }
        if error is not None:
            fields["error"] = type(error).__name__
        return "dataset_sync.load " + " ".join(
            f"{key}={_logfmt(value)}" for key, value in fields.items()
        )


def _logfmt(value: Any) -> str:
    text = str(value)
    if not text or any(char in text for char in ' "=\\'):
        return json.dumps(text, ensure_ascii=False)
    return text
