"""Print every literature target next to the value the simulated cohort reaches.

python bench/simulator_targets.py                 # n = 50,000, default seed, plain text
python bench/simulator_targets.py --markdown      # the table the README shows
python bench/simulator_targets.py --seed 3 --n 200000
"""

from __future__ import annotations

import argparse
import time

from predictor.cohort_targets import measure_targets
from predictor.synthetic import DEFAULT_SEED, simulate_cohort


def targets_markdown(n: int = 50_000, seed: int = DEFAULT_SEED) -> str:
    """The targets table in Markdown, measured on ``simulate_cohort(n, seed=seed)``."""
    report = measure_targets(simulate_cohort(n, seed=seed))
    lines = [
        f"| id | quantity | target | reached (n = {n:,}, seed {seed}) |",
        "|---|---|---|---|",
    ]
    for row in report.itertuples():
        band = f"{row.low:.2f} to {row.high:.2f}"
        lines.append(f"| {row.id} | {row.quantity} | {band} | {row.value:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--markdown", action="store_true", help="print the README's table")
    args = parser.parse_args()
    if args.markdown:
        print(targets_markdown(args.n, args.seed), end="")
        return
    started = time.perf_counter()
    cohort = simulate_cohort(args.n, seed=args.seed)
    seconds = time.perf_counter() - started
    report = measure_targets(cohort)
    print(f"simulate_cohort({args.n:,}, seed={args.seed}) took {seconds:.2f} s")
    for row in report.itertuples():
        verdict = "ok  " if row.ok else "MISS"
        print(
            f"{verdict} {row.id:>4}  {row.value:8.3f}   target {row.target:6.2f} "
            f"[{row.low:.2f}, {row.high:.2f}]  {row.quantity}"
        )
    print(f"{int(report['ok'].sum())} of {len(report)} targets met")


if __name__ == "__main__":
    main()
