"""Print every literature target next to the value the simulated cohort reaches.

python bench/simulator_targets.py                 # n = 50,000, default seed, plain text
python bench/simulator_targets.py --markdown      # the table the README shows
python bench/simulator_targets.py --seed 3 --n 200000
python bench/simulator_targets.py --sweep 40      # seeds 0..39: spread and misses per target
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from predictor.simulation._synthetic import DEFAULT_SEED, simulate_cohort
from predictor.simulation._targets import measure_targets, targets_markdown


def sweep(seeds: int, n: int) -> None:
    """Print each target's spread over seeds 0..seeds-1: how robust the default seed's pass is."""
    reports = pd.concat(
        [measure_targets(simulate_cohort(n, seed=seed)).assign(seed=seed) for seed in range(seeds)]
    )
    print(f"{seeds} seeds, n = {n:,} each")
    for target_id, rows in reports.groupby("id", sort=False):
        values, missed = rows["value"], rows.loc[~rows["ok"], "seed"].tolist()
        print(
            f"{target_id:>4}  mean {values.mean():8.3f}  sd {values.std():.4f}  "
            f"range [{values.min():.3f}, {values.max():.3f}]  "
            f"band [{rows['low'].iloc[0]:.2f}, {rows['high'].iloc[0]:.2f}]  "
            f"missed on seeds {missed or 'none'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--markdown", action="store_true", help="print the README's table")
    parser.add_argument("--sweep", type=int, metavar="K", help="run seeds 0..K-1 and summarise")
    args = parser.parse_args()
    if args.sweep:
        sweep(args.sweep, args.n)
        return
    if args.markdown:
        cohort = simulate_cohort(args.n, seed=args.seed)
        print(targets_markdown(cohort, label=f" (n = {args.n:,}, seed {args.seed})"), end="")
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
