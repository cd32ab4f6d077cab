"""Memory of many single predictions: RSS after warm-up and as calls go on.

    python bench/bench_memory.py              # 1,000,000 predict(dict) calls
    python bench/bench_memory.py --calls 100000

Calls cycle through 1,000 different simulated patients (so the caches see varied input).
The figure that matters is the growth of the resident set after warm-up: a leak (a cache
that grows per call, say) would show as steady growth.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from predictor import predict, simulate_cohort

WARM_UP = 10_000


def rss_mib() -> float:
    """Resident set size of this process, MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    args = parser.parse_args()
    cohort = simulate_cohort(1000, seed=5).drop(columns=["responded", "true_probability"])
    records = [
        {k: v for k, v in row.items() if not pd.isna(v)} for row in cohort.to_dict("records")
    ]
    for i in range(WARM_UP):
        predict(records[i % len(records)])
    start = rss_mib()
    print(f"after {WARM_UP:,} warm-up calls: RSS {start:.1f} MiB")
    started = time.perf_counter()
    step = max(args.calls // 10, 1)
    peak = start
    for i in range(1, args.calls + 1):
        predict(records[i % len(records)])
        if i % step == 0:
            now = rss_mib()
            peak = max(peak, now)
            print(
                f"{i:>10,} calls: RSS {now:.1f} MiB ({now - start:+.1f}), "
                f"{(time.perf_counter() - started) / i * 1e3:.3f} ms per call"
            )
    end = rss_mib()
    print(
        f"growth over {args.calls:,} calls: {end - start:+.1f} MiB "
        f"(peak {peak - start:+.1f} MiB above the post-warm-up RSS)"
    )


if __name__ == "__main__":
    main()
