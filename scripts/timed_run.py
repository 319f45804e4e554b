"""Run a command and record its wall time: ``python scripts/timed_run.py OUT -- CMD ...``.

(``OUT --results DIR -- CMD`` when the run's results folder is not ``results/``.)

``make run`` wraps the workflow in this, so that ``make bench`` can report the default
run's wall time (``default_run_wall_s``) as measured, with the machine's core count and
whether the run started from an empty ``results/`` (only such a run is the figure the
README quotes). The command's exit status is passed through; nothing is written when it
fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    results = Path("results")
    if len(argv) > 2 and argv[1] == "--results":  # OUT --results DIR -- CMD ...
        results, argv = Path(argv[2]), [argv[0], *argv[3:]]
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    out, command = Path(argv[0]), argv[2:]
    fresh = not (results / "metrics.csv").exists()
    start = time.perf_counter()
    status = subprocess.call(command)
    wall = time.perf_counter() - start
    if status == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "wall_s": round(wall, 1),
            "cores": os.cpu_count(),
            "from_empty_results": fresh,
            "command": " ".join(command),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        out.write_text(json.dumps(record, indent=2) + "\n")
        how = "from empty results/" if fresh else "incremental"
        print(f"{' '.join(command)}: {wall:.0f} s wall ({how})")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
