"""How fast the schema validates: one record (the predict() path) and whole frames (batch).

    python bench/bench_validate.py [--rows 200000] [--repeats 2000]

Prints the median latency of ``validate_record`` on a typical full record, and the throughput of
``validate`` on a frame of text cells (as a CSV reader gives them), both measured here.
"""

from __future__ import annotations

import argparse
import statistics
import time

from data_schemas import validate, validate_record
from predictor.simulation._synthetic import simulate_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2_000)
    args = parser.parse_args()

    cohort = simulate_cohort(args.rows, seed=1).drop(columns=["responded", "true_probability"])
    record = {k: v for k, v in cohort.iloc[0].items() if v == v}  # a record without NaNs
    for _ in range(100):
        validate_record(record)
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        validate_record(record)
        times.append(time.perf_counter() - started)
    print(
        f"validate_record, one record of {len(record)} fields: median "
        f"{statistics.median(times) * 1e6:.1f} us over {args.repeats:,} calls"
    )

    text = cohort.astype("str").where(cohort.notna(), "")
    for label, frame in (("text cells", text), ("typed columns", cohort)):
        started = time.perf_counter()
        clean, problems = validate(frame)
        seconds = time.perf_counter() - started
        assert problems.empty and len(clean) == len(frame)
        print(
            f"validate, {len(frame):,} rows of {label}: {seconds:.2f} s "
            f"({len(frame) / seconds:,.0f} rows/s)"
        )


if __name__ == "__main__":
    main()
