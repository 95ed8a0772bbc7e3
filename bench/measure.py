"""Run one command; print its wall time, peak RSS and exit code as JSON.

    python bench/measure.py STDOUT_FILE STDERR_FILE -- command [args...]

The benchmark starts every tool through this small wrapper so that the tool's peak resident
set size can be read from ``getrusage(RUSAGE_CHILDREN)``: a child started directly by the
benchmark process would inherit that (much larger) process's high-water mark on Linux.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    stdout_path, stderr_path, separator, *command = argv
    if separator != "--" or not command:
        sys.stderr.write(__doc__ or "")
        return 2
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        started = time.perf_counter()
        returncode = subprocess.run(command, stdout=stdout, stderr=stderr).returncode
        wall = time.perf_counter() - started
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # Kilobytes on Linux, bytes on macOS.
    rss_bytes = maxrss if sys.platform == "darwin" else maxrss * 1024
    json.dump({"wall": wall, "rss": rss_bytes, "returncode": returncode}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
