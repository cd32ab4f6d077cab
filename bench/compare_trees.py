"""Time ``python -m predictor score`` end to end for two source trees on the same file, runs
interleaved so that both see the same load: a before/after check of a change's throughput.

    git worktree add /tmp/before <commit>
    python bench/compare_trees.py /tmp/before . [--rows 1000000] [--runs 3]

Each tree's ``predictor`` is put first on ``PYTHONPATH`` (its own ``models/`` included). The
input is the simulated clinic export of ``bench_batch.py`` (no quotes: the fast path).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import write_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="source tree before the change")
    parser.add_argument("after", type=Path, help="source tree after the change")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source, out = Path(folder) / "export.csv", Path(folder) / "scored.csv"
        write_cohort(source, args.rows)
        trees = {"before": args.before.resolve(), "after": args.after.resolve()}
        seconds: dict[str, list[float]] = {name: [] for name in trees}
        for run in range(args.runs):
            for name, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": str(tree)}
                command = [sys.executable, "-m", "predictor", "score", str(source)]
                started = time.perf_counter()
                subprocess.run(
                    [*command, "--out", str(out), "--quiet"], env=env, cwd=tree, check=True
                )
                seconds[name].append(time.perf_counter() - started)
                print(f"run {run + 1}, {name}: {seconds[name][-1]:.2f} s", file=sys.stderr)
    print(f"{args.rows:,} rows, load average {os.getloadavg()[0]:.2f}")
    for name, values in seconds.items():
        print(
            f"{name} ({trees[name]}): best {min(values):.2f} s, median "
            f"{statistics.median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})"
        )
    ratio = min(seconds["after"]) / min(seconds["before"])
    print(f"after / before, best runs: {ratio:.3f}")


if __name__ == "__main__":
    main()
