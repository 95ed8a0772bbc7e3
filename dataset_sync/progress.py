"""Progress of a long dump or load on a terminal: rows per model and their rate.

:func:`~dataset_sync.dump` and :func:`~dataset_sync.load` call ``on_batch(label, done)``
after each batch with what they work on (a model label, or the file being read) and how
many rows of it are done. The commands pass a :class:`TerminalProgress` when their stderr
is a terminal and the verbosity is at least 1, so logs and pipes stay quiet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

OnBatch = Callable[[str, int], Any]


def _plain(text: str) -> str:
    return text


class TerminalProgress:
    """Rewrites one line per label as batches finish; each label keeps its last line.

    ``stream`` is a management command's ``OutputWrapper``; progress is written without its
    style, which colours stderr as errors.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._label: str | None = None
        self._started = 0.0
        self._open = False

    def __call__(self, label: str, done: int) -> None:
        now = time.monotonic()
        if label != self._label:
            self._end_line()
            self._label, self._started = label, now
        elapsed = now - self._started
        rate = f", {done / elapsed:,.0f} rows/s" if elapsed > 0 else ""
        self._stream.write(f"\r{label}: {done:,} rows{rate}", style_func=_plain, ending="")
        self._stream.flush()
        self._open = True

    def line(self, text: str) -> None:
        """Write a line of its own (such as -v2 detail) below the progress line."""
        self._end_line()
        self._stream.write(text)

    def close(self) -> None:
        """End the last progress line."""
        self._end_line()
        self._label = None

    def _end_line(self) -> None:
        if self._open:
            self._stream.write("", style_func=_plain)
            self._open = False
