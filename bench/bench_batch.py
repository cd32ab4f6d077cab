"""How fast ``python -m predictor score`` scores a big CSV file, against its I/O floor and a naive
pipeline, and how much memory it takes.

    python bench/bench_batch.py [--rows 1000000] [--skip-naive]

Writes a simulated cohort of ``--rows`` patients as a clinic would export it (every schema
field a clinic has, no outcome; not timed), then times, in one run:

(a) ``score`` end to end with top reasons, in a fresh interpreter as a user runs it (imports and
    model loading included), with its peak resident memory; and ``score_csv`` in this process;
(b) the I/O floor: reading the same file with pandas (the faster of its C and pyarrow engines)
    plus writing a table of the output's shape (the scored file, read back) with pyarrow's CSV
    writer, the fastest writer and the one ``score`` uses;
(c) the naive path: ``pandas.read_csv``, ``predict_proba`` of the same kind of model built as a
    scikit-learn Pipeline (fitted beforehand, not timed), reasons built row by row in Python,
    ``DataFrame.to_csv``.

Targets (issue 4): (a) <= 2 x (b), and (a) <= 10 s for 1,000,000 rows on the project's 2-core
machine. Timings on that machine are noisy (it is shared): the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from predictor import load_model, simulate_cohort
from predictor.io._batch import score_csv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import as_frame, pipeline

TARGET_SECONDS = 10.0
TARGET_RATIO = 2.0
CHILD = """\
import resource, sys
from predictor._cli import main
code = main(sys.argv[1:])
try:  # this process's own peak: Linux's ru_maxrss also counts the parent's at fork time
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"peak_rss_kb={peak}", file=sys.stderr)
sys.exit(code)
"""


def write_cohort(path: Path, rows: int) -> None:
    """A simulated clinic export, in slices of a million (bounded memory), unquoted."""
    with path.open("wb") as sink:
        for k, start in enumerate(range(0, rows, 1_000_000)):
            cohort = simulate_cohort(min(1_000_000, rows - start), seed=100 + k)
            cohort = cohort.drop(columns=["responded", "true_probability"])
            cohort["patient_id"] = [f"P{start + i + 1:08d}" for i in range(len(cohort))]
            table = pa.Table.from_pandas(cohort.astype({"sex": object, "route": object,
                                                        "substance_use_disorder": object}),
                                         preserve_index=False)  # fmt: skip
            options = pcsv.WriteOptions(include_header=k == 0, quoting_style="none")
            pcsv.write_csv(table, sink, write_options=options)


def end_to_end(source: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``python -m predictor score`` in a fresh process."""
    command = [sys.executable, "-c", CHILD, "score", str(source), "--out", str(out), "--quiet"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"score failed: {result.stderr}")
    rss_kb = int(result.stderr.rsplit("peak_rss_kb=", 1)[1])
    return seconds, rss_kb / 1024


def io_floor(source: Path, scored: Path, sink: Path) -> tuple[float, str]:
    """Seconds to read ``source`` with pandas plus write a table like ``scored``."""
    output = pcsv.read_csv(scored)  # the output's shape, built outside the timed region
    best, engine = np.inf, ""
    for name in ("c", "pyarrow"):
        started = time.perf_counter()
        frame = pd.read_csv(source, engine=name)
        seconds = time.perf_counter() - started
        if seconds < best:
            best, engine = seconds, name
        del frame
    started = time.perf_counter()
    pcsv.write_csv(output, sink)
    return best + time.perf_counter() - started, engine


def field_columns(prepare: object) -> dict[str, list[int]]:
    """The Pipeline's design columns of each input field (to sum its contribution)."""
    groups: dict[str, list[int]] = {}
    for name, transformer, columns in prepare.transformers_:
        if name == "remainder":
            continue
        block = prepare.output_indices_[name]
        if name == "missing":
            widths = [1] * len(columns)
        elif name in ("categories", "flags"):
            widths = [len(levels) for levels in transformer[-1].categories_]
        else:  # splines: the same number of columns for each field
            widths = [(block.stop - block.start) // len(columns)] * len(columns)
        start = block.start
        for column, width in zip(columns, widths, strict=True):
            groups.setdefault(column, []).extend(range(start, start + width))
            start += width
    return groups


def naive(source: Path, sink: Path) -> float:
    """Seconds for the naive path: pandas, a fitted Pipeline, reasons row by row, to_csv."""
    model = load_model()
    training = simulate_cohort(20_000, seed=0)
    fitted = pipeline(model.summary().settings["penalty_c"]).fit(
        as_frame(training), training["responded"].to_numpy()
    )
    groups = field_columns(fitted[0])
    logistic = fitted[-1]
    started = time.perf_counter()
    frame = pd.read_csv(source)
    X = as_frame(frame)
    probability = fitted.predict_proba(X)[:, 1]
    design = fitted[0].transform(X)
    weighted = np.asarray(design) * logistic.coef_[0]
    contributions = np.column_stack([weighted[:, js].sum(axis=1) for js in groups.values()])
    fields = list(groups)
    reasons = []
    for row in contributions:  # the naive part: one Python loop iteration per patient
        top = sorted(range(len(fields)), key=lambda j, r=row: -abs(r[j]))[:3]
        reasons.append(
            " | ".join(
                f"{fields[j]} {'raises' if row[j] > 0 else 'lowers'} the chance of response"
                for j in top
            )
        )
    out = pd.DataFrame(
        {
            "patient_id": frame["patient_id"],
            "response_probability": probability,
            "predicted_label": np.where(probability >= 0.5, "likely", "unlikely"),
            "top_reasons": reasons,
        }
    )
    out.to_csv(sink, index=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-naive", action="store_true", help="leave out (c), the slowest")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source, out = root / "cohort.csv", root / "scored.csv"
        started = time.perf_counter()
        write_cohort(source, args.rows)
        size = source.stat().st_size / 2**20
        print(
            f"input: {args.rows:,} simulated patients, {size:.0f} MB "
            f"(written in {time.perf_counter() - started:.1f} s); load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        a, rss = end_to_end(source, out)
        rate = args.rows / a
        print(
            f"(a) score, end to end:        {a:6.2f} s ({rate:,.0f} rows/s), peak RSS {rss:,.0f} MB"
        )
        load_model()
        started = time.perf_counter()
        score_csv(source, root / "again.csv")
        inside = time.perf_counter() - started
        print(f"    score_csv in this process: {inside:6.2f} s (no start-up, model loaded)")
        b, engine = io_floor(source, out, root / "floor.csv")
        print(f"(b) I/O floor:                {b:6.2f} s (pandas read_csv engine={engine}, "
              f"pyarrow write_csv)")  # fmt: skip
        print(f"    (a) / (b) = {a / b:.1f} (end to end), {inside / b:.1f} (in process)")
        if not args.skip_naive:
            c = naive(source, root / "naive.csv")
            print(f"(c) naive path:               {c:6.2f} s ({c / a:.1f} x (a))")
        if args.rows == 1_000_000:
            for target, met in (
                (f"(a) <= {TARGET_SECONDS:.0f} s", a <= TARGET_SECONDS),
                (f"(a) <= {TARGET_RATIO:.0f} x (b)", a <= TARGET_RATIO * b),
            ):
                print(f"target {target}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
