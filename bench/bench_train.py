"""How long training takes: the fit itself, and the whole ``python train.py``.

    python bench/bench_train.py [--repeats 3]

Prints the fit of the additive model on the default cohort (50,000 patients, seed 0;
``fit_additive_model``, the smoothing parameters chosen by LAML) and the wall time of the whole
``python train.py`` (simulation, fit, cross-validation, the fresh cohort, the report and its
figures, the model card) in a fresh process writing to a temporary folder, each the best of
``--repeats`` runs, with the load average before each (a busy machine is slower; issue 14's
targets, on a quiet 2-core machine: the fit at most 2 s, ``train.py`` at most 8 s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from predictor.model import fit_additive_model
from predictor.simulation import simulate_cohort

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args()
    cohort = simulate_cohort(50_000, seed=0)
    y = cohort["responded"].to_numpy()
    fits = []
    for _ in range(args.repeats):
        load = os.getloadavg()[0]
        start = time.perf_counter()
        _, report = fit_additive_model(cohort, y)
        fits.append(time.perf_counter() - start)
        print(f"fit: {fits[-1]:.2f} s ({report.iterations} iterations; load {load:.2f})")
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            load = os.getloadavg()[0]
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, str(ROOT / "train.py"), "--out", str(Path(folder) / "m")],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            runs.append(time.perf_counter() - start)
        print(f"python train.py: {runs[-1]:.1f} s (load {load:.2f})")
    print(
        f"best of {args.repeats} on {os.cpu_count()} cores: fit {min(fits):.2f} s (target 2 s), "
        f"python train.py {min(runs):.1f} s (target 8 s)"
    )


if __name__ == "__main__":
    main()
