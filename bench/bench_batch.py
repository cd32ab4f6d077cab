"""How fast ``python -m predictor score`` scores a big CSV file with 1 and 2 worker processes
and with Dask, against its I/O floor and a naive pipeline, and how much memory it takes.

    python bench/bench_batch.py [--rows 1000000] [--repeat 3] [--skip-naive] [--skip-dask]
                                [--skip-quotes]

Writes a simulated cohort of ``--rows`` patients as a clinic would export it (every schema
field a clinic has, no outcome; not timed), then times, in one run, each ``--repeat`` times
(best and spread printed):

(a) ``score`` end to end with ``--workers 1`` and ``--workers 2``, in a fresh interpreter as a
    user runs it (imports, model loading and starting the workers included), with the peak
    resident memory of the whole process tree (the main process and its workers, sampled);
(d) the Dask path on the same rows: the file split into 4 part files (not timed), then
    ``score 'parts/*.csv' --engine dask --scheduler ADDRESS`` on a local cluster of 2 worker
    processes started beforehand (as a real cluster would be running; its workers run with
    the settings Dask gives them, the ``score`` processes of (a) and (e) with this process's
    environment as it was before the cluster started: see :data:`ENVIRONMENT`);
(b) the I/O floor: reading the same file with pandas (the faster of its C and pyarrow engines)
    plus writing a table of the output's shape (the scored file, read back) with pyarrow's CSV
    writer, the fastest writer and the one ``score`` uses;
(c) the naive path: ``pandas.read_csv``, ``predict_proba`` of the same kind of model built as a
    scikit-learn Pipeline (fitted beforehand, not timed), reasons built row by row in Python,
    ``DataFrame.to_csv``.
(e) ``score`` end to end, as (a), on two other exports of the same rows (written beforehand,
    not timed). A messy export: a stray quote that never closes on its line before a cell of
    about one line in 1,000. The fast reader stops at each and the ``csv`` module reads on from
    there, 16 records at a time; the pieces they read are put together into chunks of
    ``--chunk-rows``, so the time should stay near (a)'s, not grow with the number of stray
    quotes. With 2 workers the main process finds the records of most of this file itself (a
    quote every few hundred lines leaves no place to cut it into segments for the workers to
    read), and the workers parse them. And an export with every text cell in quotes, as R's
    ``write.csv`` and REDCap write them: the workers read it, as they read (a)'s.
(f) one more run of (a) with 2 workers, for where its CPU goes: the main process (start-up,
    cutting the file into segments, appending the workers' files to the output) against the
    workers (everything else, reading the segments included), from ``getrusage`` at its
    exit;
(g) what a re-run pays on top: its output replaces the last one's, and the file system frees
    the old file's blocks inside that rename (0.4-0.5 s for 513 MB on the project's machine,
    whose ext4 is mounted with ``discard``). Every timed run of (a), (b), (d) and (e) writes
    files that do not exist yet (the old ones are removed and the removal synced first, not
    timed), so that none of them pays it and the floor is not favoured.

Targets (issue 17): (a) with 2 workers <= 3 x (b) (goal 1.5 x), for 1,000,000 and 5,000,000
rows; (d) <= 1.5 x (a) with 2 workers. Timings on the project's 2-core machine are noisy (it is
shared): the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from predictor import simulate_cohort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import as_frame, pipeline

TARGET_RATIO = 3.0
GOAL_RATIO = 1.5
TARGET_DASK = 1.5
DASK_PARTS = 4

ENVIRONMENT = dict(os.environ)
"""This process's environment before any Dask cluster starts, for the ``score`` processes.
Starting a ``LocalCluster`` sets variables in its parent's environment for its workers,
``MALLOC_TRIM_THRESHOLD_=65536`` among them: a ``score`` started afterwards with it spent
about 4 s more in the kernel per million rows (glibc then returns freed memory at once and
maps every large array afresh), which made (a) 40% slower in the runs with (d) than without.
``score`` now sets its processes' thresholds itself, but (a) should measure ``score`` as a
user's shell starts it, not as a Dask cluster left this process."""


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


EXPORTS = {"messy": "messy export", "quoted": "text cells quoted"}
"""The exports of (e): a stray quote on ~1 line in 1,000; every text cell in quotes."""


def write_stray_quotes(source: Path, path: Path, every: int = 1_000) -> int:
    """``source`` with a quote opened before a cell (and closed by no later quote on its line)
    on about one line in ``every``, at random lines; returns how many lines have one."""
    rng = random.Random(5)
    damaged = 0
    with source.open("rb") as lines, path.open("wb") as sink:
        sink.write(next(lines))  # the header
        for line in lines:
            if rng.random() < 1 / every:
                cells = line.split(b",")
                k = rng.randrange(1, len(cells))
                cells[k] = b'"' + cells[k]
                line = b",".join(cells)
                damaged += 1
            sink.write(line)
    return damaged


def write_quoted_text(source: Path, path: Path) -> None:
    """``source`` as R's ``write.csv`` and REDCap write it: the header's names and every text
    cell in quotes (so every line has quotes), numbers bare."""
    with source.open("rb") as lines, path.open("wb") as sink:
        header = next(lines).rstrip(b"\n").split(b",")
        sink.write(b",".join(b'"%s"' % name.strip(b'"') for name in header) + b"\n")
        names = [name.strip(b'"').decode() for name in header]
        text = {names.index(n) for n in ("patient_id", "sex", "route", "substance_use_disorder")}
        for line in lines:
            cells = line.rstrip(b"\n").split(b",")
            for k in text:
                if cells[k]:
                    cells[k] = b'"%s"' % cells[k]
            sink.write(b",".join(cells) + b"\n")


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):  # it ended meanwhile
            total += process.memory_info().rss
    return total


def removed(path: Path) -> None:
    """Remove the file or folder ``path`` if it exists (not timed): every timed run writes
    outputs that do not exist yet, as the floor does, since replacing an existing file costs
    the freeing of the old one on top (see :func:`replacing`)."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    os.sync()  # the removed file's blocks are freed now, not during the next timed run


def replacing(path: Path) -> float:
    """Wall seconds that putting a new file in place of the existing ``path`` (a re-run's
    ``score``) costs on this file system: ``os.replace`` of a copy over it, which frees the old
    file's blocks (the copy is made and synced beforehand, not timed)."""
    spare = path.with_name(path.name + ".spare")
    shutil.copyfile(path, spare)
    os.sync()
    started = time.perf_counter()
    os.replace(spare, path)
    return time.perf_counter() - started


def end_to_end(arguments: list[str], out: Path) -> tuple[float, float]:
    """Wall seconds of ``python -m predictor ARGUMENTS`` in a fresh process, and the peak
    resident memory (MB) of its process tree (the forkserver and its workers included),
    sampled every 50 ms. ``out``, the run's output, is removed first (not timed)."""
    removed(out)
    command = [sys.executable, "-m", "predictor", *arguments, "--quiet"]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENVIRONMENT
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(child.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = child.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if child.returncode not in (0, 1):
        raise SystemExit(f"score failed: {err}")
    return seconds, peak / 2**20


_CPU_SPLIT = """
import atexit, resource, runpy, sys

def report():
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(own.ru_utime, own.ru_stime, workers.ru_utime, workers.ru_stime, file=sys.stderr)

atexit.register(report)
sys.argv = ["predictor", *sys.argv[1:]]
runpy.run_module("predictor", run_name="__main__", alter_sys=True)
"""
"""``python -m predictor`` run by runpy as ``-m`` runs it, printing at exit the CPU seconds
(user, system) of its own process and of its worker processes together (waited for)."""


def cpu_split(arguments: list[str]) -> tuple[float, float, float, float]:
    """CPU seconds of ``python -m predictor ARGUMENTS`` (one run): user and system time of the
    main process, then of its worker processes together."""
    command = [sys.executable, "-c", _CPU_SPLIT, *arguments, "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env=ENVIRONMENT, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"score failed: {done.stderr}")
    user, system, workers_user, workers_system = map(float, done.stderr.split()[-4:])
    return user, system, workers_user, workers_system


def split(source: Path, folder: Path, parts: int) -> None:
    """The file as ``parts`` files of about equal rows, each with the header (not timed)."""
    folder.mkdir()
    lines = source.read_bytes().split(b"\n")
    header, rows = lines[0], [line for line in lines[1:] if line]
    size = -(-len(rows) // parts)
    for k in range(parts):
        part = rows[k * size : (k + 1) * size]
        (folder / f"part{k}.csv").write_bytes(b"\n".join([header, *part]) + b"\n")


def best(times: list[float]) -> str:
    return f"{min(times):6.2f} s (spread {max(times) - min(times):.2f} s over {len(times)})"


def io_floor(source: Path, scored: Path, sink: Path) -> tuple[float, str]:
    """Seconds to read ``source`` with pandas plus write a table like ``scored`` into the new
    file ``sink`` (removed first, not timed)."""
    output = pcsv.read_csv(scored)  # the output's shape, built outside the timed region
    removed(sink)
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
    training = simulate_cohort(20_000, seed=0)
    fitted = pipeline().fit(as_frame(training), training["responded"].to_numpy())
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
    parser.add_argument("--rows", type=int, default=1_000_000, help="patients in the file")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timing")
    parser.add_argument("--skip-naive", action="store_true", help="leave out (c), the slowest")
    parser.add_argument("--skip-dask", action="store_true", help="leave out (d)")
    parser.add_argument("--skip-quotes", action="store_true", help="leave out (e)")
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
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine)"
        )
        exports = {} if args.skip_quotes else {kind: root / f"{kind}.csv" for kind in EXPORTS}
        if exports:
            stray = write_stray_quotes(source, exports["messy"])
            write_quoted_text(source, exports["quoted"])
            print(f"messy export (e): {stray:,} lines with a stray quote")
        cluster = client = None
        if not args.skip_dask:
            from distributed import Client, LocalCluster

            split(source, root / "parts", DASK_PARTS)
            cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # a worker's heartbeat that meets the scheduler closing at the end printed a
                # page of traceback; a failed run still fails score, which the bench raises
                silence_logs=logging.CRITICAL,
            )
            client = Client(cluster)
        runs: dict[str, list[float]] = {
            "1": [],
            "2": [],
            "dask": [],
            "floor": [],
            **{f"{kind} {workers}": [] for kind in exports for workers in ("1", "2")},
        }
        peaks: dict[str, float] = {}
        for _ in range(args.repeat):  # interleaved, so that a burst of load hits all alike
            for workers in ("1", "2"):
                seconds, rss = end_to_end(
                    ["score", str(source), "--out", str(out), "--workers", workers], out
                )
                runs[workers].append(seconds)
                peaks[workers] = max(peaks.get(workers, 0.0), rss)
                for kind, export in exports.items():
                    seconds, rss = end_to_end(
                        [
                            "score",
                            str(export),
                            "--out",
                            str(root / "e-out.csv"),
                            "--workers",
                            workers,
                        ],
                        root / "e-out.csv",
                    )
                    runs[f"{kind} {workers}"].append(seconds)
                    peaks[f"{kind} {workers}"] = max(peaks.get(f"{kind} {workers}", 0.0), rss)
            if client is not None:
                parts = str(root / "parts" / "*.csv")
                command = ["score", parts, "--out", str(root / "dask-out"), "--engine", "dask"]
                seconds, _ = end_to_end(
                    [*command, "--scheduler", client.scheduler.address], root / "dask-out"
                )
                runs["dask"].append(seconds)
            runs["floor"].append(io_floor(source, out, root / "floor.csv")[0])
        if client is not None:
            client.close()
            cluster.close()
        floor = min(runs["floor"])
        one, two = min(runs["1"]), min(runs["2"])
        rate = args.rows / two
        print(
            f"(a) score --workers 1, end to end: {best(runs['1'])}, peak RSS {peaks['1']:,.0f} MB"
        )
        print(
            f"(a) score --workers 2, end to end: {best(runs['2'])} ({rate:,.0f} rows/s), "
            f"peak RSS {peaks['2']:,.0f} MB (all processes)"
        )
        if runs["dask"]:
            print(
                f"(d) score --engine dask, {DASK_PARTS} parts, "
                f"2-worker local cluster: {best(runs['dask'])}"
            )
        for key in [f"{kind} {workers}" for kind in exports for workers in ("1", "2")]:
            kind, workers = key.split()
            print(
                f"(e) score --workers {workers}, {EXPORTS[kind]}: {best(runs[key])} "
                f"({min(runs[key]) / min(runs[workers]):.2f} x (a)), peak RSS {peaks[key]:,.0f} MB"
            )
        print(f"(b) I/O floor (pandas read_csv + pyarrow write_csv): {best(runs['floor'])}")
        print(f"    (a) / (b): {one / floor:.2f} with 1 worker, {two / floor:.2f} with 2 workers")
        if runs["dask"]:
            print(f"    (d) / (a, 2 workers): {min(runs['dask']) / two:.2f}")
        print(
            f"(g) a re-run's output replaces the last one's: freeing the old "
            f"{out.stat().st_size / 2**20:,.0f} MB file adds {replacing(out):.2f} s on this "
            "file system (not in (a) or (b): both write new files)"
        )
        removed(out)
        user, system, workers_user, workers_system = cpu_split(
            ["score", str(source), "--out", str(out), "--workers", "2"]
        )
        print(
            f"(f) CPU of one more run of (a) with 2 workers: main process {user:.2f} s user + "
            f"{system:.2f} s system, its workers together {workers_user:.2f} s user + "
            f"{workers_system:.2f} s system"
        )
        if not args.skip_naive:
            c = naive(source, root / "naive.csv")
            print(f"(c) naive path: {c:6.2f} s ({c / two:.1f} x (a) with 2 workers)")
        checks = [
            (f"(a, 2 workers) <= {TARGET_RATIO:g} x (b)", two <= TARGET_RATIO * floor),
            (f"(a, 2 workers) <= {GOAL_RATIO:g} x (b) (goal)", two <= GOAL_RATIO * floor),
        ]
        if runs["dask"]:
            checks.append(
                (f"(d) <= {TARGET_DASK:g} x (a, 2 workers)", min(runs["dask"]) <= TARGET_DASK * two)
            )
        for target, met in checks:
            print(f"target {target}: {'met' if met else 'NOT met'}")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
