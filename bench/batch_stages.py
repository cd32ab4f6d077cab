"""Where ``score``'s time goes: CPU seconds per million rows of each stage, in one process.

    python bench/batch_stages.py [--rows 200000] [--repeat 3]

``bench/bench_batch.py`` times ``score`` end to end against its I/O floor; this script splits
the work it does per row into the stages of the code path, each run on the same chunks as
``score`` reads them (``--chunk-rows`` 50,000; BLAS on one thread and the C allocator set as
in a worker process), and prints the best of ``--repeat`` runs of each, scaled to a million
rows:

* in the main process (with ``--workers`` above 1): cutting the file into segments of whole
  records (``CsvReader.segments``), and pickling each to send it to a worker process;
* in a worker process: unpickling it, reading and parsing its records (``read_segment``: with
  one worker, the main process reads the chunks the same way), validating
  (``data_schemas.validate``), encoding the
  sparse design, the model's numbers (contributions and ``x' V x``), labels, reasons, warnings,
  joining the notes into cells, and writing the CSV rows (pyarrow) into a file;
* once per run: starting Python and importing the package (a fresh interpreter), and
  ``fsync`` of an output file of the size ``score`` writes (its atomic write).

It also prints the I/O floor's two parts on the same rows (pandas ``read_csv``, the faster of
its C and pyarrow engines, and pyarrow's ``write_csv`` of the scored table), so that each stage
can be read as a multiple of the floor. Process CPU time, not wall time: a shared machine
changes both, CPU time less.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
from threadpoolctl import threadpool_limits

from data_schemas import validate
from predictor._explain import join_notes, reason_notes, warning_notes
from predictor._processes import reuse_freed_memory
from predictor.io._batch import _ChunkScorer, _csv_table, _records, _write_rows
from predictor.io._csv_reader import Segment, read_segment
from predictor.model import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import write_cohort

CHUNK_ROWS = 50_000


def best_cpu(work: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The least process CPU seconds of ``repeat`` runs of ``work``, and its last result."""
    least, result = float("inf"), None
    for _ in range(repeat):
        started = time.process_time()
        result = work()
        least = min(least, time.process_time() - started)
    return least, result


def read_segments(path: Path) -> list[Segment]:
    """The file's segments, cut as ``score --workers 2`` cuts them (a clean file: all of it)."""
    reading = {"separator": None, "decimal": None, "encoding": None}
    with _records(path, chunk_rows=CHUNK_ROWS, **reading) as (reader, _):
        segments = list(reader.segments())
    assert all(isinstance(s, Segment) for s in segments), "a clean file is cut into segments"
    return cast(list[Segment], segments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="patients in the file")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each stage")
    args = parser.parse_args()
    threadpool_limits(1)
    reuse_freed_memory()  # as a worker process
    model = load_model()
    scorer = _ChunkScorer(model, ".", explain=False, escape=True)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "cohort.csv"
        write_cohort(source, args.rows)
        per_million = 1_000_000 / args.rows
        stages: list[tuple[str, str, float]] = []

        def stage(where: str, name: str, work: Callable[[], Any]) -> Any:
            seconds, result = best_cpu(work, args.repeat)
            stages.append((where, name, seconds * per_million))
            return result

        segments = stage("main", "cut into segments", lambda: read_segments(source))
        # as the process pool pickles a task (with its default protocol, 4)
        blobs = stage(
            "main", "pickle segments", lambda: [ForkingPickler.dumps(s) for s in segments]
        )
        stage("worker", "unpickle segments", lambda: [pickle.loads(b) for b in blobs])
        chunks = stage("worker", "read and parse", lambda: [read_segment(s) for s in segments])
        cleans = stage(
            "worker", "validate", lambda: [validate(c.frame, decimal=".")[0] for c in chunks]
        )
        encoded = stage(
            "worker", "encode", lambda: [model.features.encode(c, sparse=True) for c in cleans]
        )
        scores = stage("worker", "model numbers", lambda: [model.score(e.design) for e in encoded])
        stage("worker", "labels", lambda: [model.labels(s.probability) for s in scores])
        pairs = list(zip(cleans, scores, encoded, strict=True))
        reasons = stage(
            "worker",
            "reasons",
            lambda: [reason_notes(model, c, s.contributions) for c, s, _ in pairs],
        )
        warnings = stage(
            "worker", "warnings", lambda: [warning_notes(model, c, e) for c, _, e in pairs]
        )
        stage(
            "worker",
            "join notes into cells",
            lambda: [
                (join_notes(r, len(c)), join_notes(w, len(c)))
                for r, w, c in zip(reasons, warnings, cleans, strict=True)
            ],
        )
        tables = [scorer.table(c.frame)[0] for c in chunks]
        output = Path(folder) / "scored.csv"

        def write_spool() -> None:  # as a worker writes its rows to its spool file
            with output.open("wb") as sink:
                for table in tables:
                    _write_rows(_csv_table([values for _, values in table], True), sink)

        stage("worker", "write CSV rows", write_spool)
        size = output.stat().st_size * per_million

        floor = []
        for engine in ("c", "pyarrow"):
            floor.append(best_cpu(lambda e=engine: pd.read_csv(source, engine=e), args.repeat)[0])
        read_floor = min(floor) * per_million
        scored = pcsv.read_csv(
            output, read_options=pcsv.ReadOptions(autogenerate_column_names=True)
        )
        write_floor = (
            best_cpu(lambda: pcsv.write_csv(scored, pa.BufferOutputStream()), args.repeat)[0]
            * per_million
        )

    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import predictor.io, predictor.model"], check=True)
    startup = time.perf_counter() - started
    with tempfile.NamedTemporaryFile() as sink:
        block = b"x" * (1 << 20)
        for _ in range(int(size) >> 20):
            sink.write(block)
        sink.flush()
        started = time.perf_counter()
        os.fsync(sink.fileno())
        fsync = time.perf_counter() - started

    print(
        f"{args.rows:,} rows, best of {args.repeat}, CPU seconds per million rows "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):"
    )
    total = 0.0
    for where, name, seconds in stages:
        total += seconds
        print(f"  {where:7s} {name:24s} {seconds:6.2f} s")
    print(f"  {'':7s} {'all stages':24s} {total:6.2f} s")
    print(f"once per run: start and import {startup:.2f} s (wall); fsync of {size / 2**20:.0f} MB "
          f"{fsync:.2f} s (wall)")  # fmt: skip
    floor = read_floor + write_floor
    print(
        f"I/O floor on the same rows: read {read_floor:.2f} s + write {write_floor:.2f} s = "
        f"{floor:.2f} s CPU; the stages are {total / floor:.1f} times it"
    )


if __name__ == "__main__":
    main()
