"""Batch scoring with several worker processes (``score --workers N``): the same bytes as one
worker, in input order, with rejects; memory bounded by the chunks in flight; errors raised in a
worker reach the caller as themselves."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import io
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor import InvalidParameterError, load_model
from predictor._cli import main
from predictor._processes import _environment_threshold
from predictor.io import _batch
from predictor.io._batch import (
    IN_FLIGHT_PER_WORKER,
    SPOOL_PREFIX,
    BatchError,
    CsvReader,
    _ChunkScorer,
    _scored_in_order,
    score_csv,
    usable_cores,
)
from predictor.io._csv_reader import Segment
from predictor.model import AdditiveModel, Scores
from predictor.simulation._synthetic import simulate_cohort

CHUNK_ROWS = 40


@pytest.fixture(scope="module")
def messy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 600 records over 15 chunks of 40: bad cells, ragged lines, a stray quote, blank
    lines, and an unknown column."""
    cohort = simulate_cohort(600, seed=17).drop(columns=["true_probability"])
    cohort.insert(1, "Site", np.where(np.arange(600) % 3, "Leeds", "=York"))
    text = io.StringIO()
    cohort.to_csv(text, index=False, lineterminator="\n")
    lines = text.getvalue().split("\n")
    for k in range(5, 600, 47):  # a bad number
        cells = lines[k].split(",")
        cells[3] = "high"
        lines[k] = ",".join(cells)
    for k in range(11, 600, 89):  # a field too many
        lines[k] += ",extra"
    lines[200] += ' 5"7'  # a quote inside an unquoted field: text
    lines[300:300] = ["", ",,,,"]  # blank lines
    path = tmp_path_factory.mktemp("workers") / "messy.csv"
    path.write_text("\n".join(lines))
    return path


def _score(source: Path, folder: Path, workers: int, **options) -> tuple[bytes, bytes, tuple]:
    out, rejects = folder / f"out{workers}.csv", folder / f"rejects{workers}.csv"
    summary = score_csv(
        source, out, rejects=rejects, chunk_rows=CHUNK_ROWS, workers=workers, **options
    )
    counts = (summary.rows_scored, summary.rows_rejected, summary.problems, summary.first_problems)
    return out.read_bytes(), rejects.read_bytes(), counts


@pytest.mark.parametrize("explain", [False, True], ids=["plain", "explain"])
def test_two_workers_write_the_same_bytes_as_one(
    messy_file: Path, tmp_path: Path, explain: bool
) -> None:
    one = _score(messy_file, tmp_path, 1, explain=explain)
    two = _score(messy_file, tmp_path, 2, explain=explain)
    assert one == two
    scored, rejected, problems, _ = one[2]
    assert scored > 500 and rejected >= 15 and problems >= rejected
    # in input order, every record scored or rejected
    out = pd.read_csv(io.BytesIO(one[0]), dtype=str, keep_default_na=False)
    assert len(out) == scored
    ids = out["patient_id"].str.removeprefix("S17-").astype(int)  # S17-001, S17-002...
    assert ids.is_monotonic_increasing and ids.is_unique


def test_a_file_that_quotes_its_text_cells_is_read_by_the_workers(tmp_path: Path) -> None:
    """R's write.csv and REDCap quote every text cell, so every line has quotes: such a file
    is still cut into segments for the workers to read (not read by this process), with the
    same bytes out as one worker."""
    cohort = simulate_cohort(600, seed=18).drop(columns=["true_probability"])
    path = tmp_path / "quoted.csv"
    cohort.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    assert all(line.count('"') >= 2 for line in path.read_text().splitlines())
    with path.open("rb") as stream:
        items = list(CsvReader(stream, str(path), chunk_rows=CHUNK_ROWS).segments())
    assert len(items) >= 600 // CHUNK_ROWS and all(isinstance(i, Segment) for i in items)
    one, two = _score(path, tmp_path, 1), _score(path, tmp_path, 2)
    assert one == two and one[2][0] == 600


def test_three_workers_on_two_cores_and_a_big_chunk_give_the_same_bytes(
    messy_file: Path, tmp_path: Path
) -> None:
    assert _score(messy_file, tmp_path, 1) == _score(messy_file, tmp_path, 3)


def test_no_more_processes_start_than_the_file_has_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pool starts every process at its first submit: --workers 300 on 4 chunks started 300.
    started = []
    pool = _batch._pool
    monkeypatch.setattr(
        _batch,
        "_pool",
        lambda scorer, workers, spool: started.append(workers) or pool(scorer, workers, spool),
    )
    cohort = simulate_cohort(4 * CHUNK_ROWS - 5, seed=19)
    path = tmp_path / "four.csv"
    cohort.to_csv(path, index=False)
    assert _score(path, tmp_path, 1) == _score(path, tmp_path, 40)
    assert started == [4]
    with pytest.raises(InvalidParameterError, match=r"workers = 257 must be"):
        score_csv(path, tmp_path / "o.csv", workers=_batch.MAX_WORKERS + 1)


def test_command_line_workers_1_and_2_write_the_same_files(
    messy_file: Path, tmp_path: Path
) -> None:
    files = {}
    for workers in ("1", "2"):
        out, rejects = tmp_path / f"o{workers}.csv", tmp_path / f"r{workers}.csv"
        args = ["score", str(messy_file), "--out", str(out), "--rejects", str(rejects)]
        args += ["--chunk-rows", str(CHUNK_ROWS), "--workers", workers, "--quiet"]
        assert main(args) == 1  # some rows rejected
        files[workers] = (out.read_bytes(), rejects.read_bytes())
    assert files["1"] == files["2"]


def test_two_workers_write_standard_output_as_one(
    messy_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # standard output here has no file descriptor: the rows are copied by hand, not sendfile
    written = {}
    for workers in (1, 2):
        stdout = io.TextIOWrapper(io.BytesIO())
        monkeypatch.setattr(sys, "stdout", stdout)
        args = ["score", str(messy_file), "--out", "-", "--chunk-rows", str(CHUNK_ROWS)]
        assert main([*args, "--workers", str(workers), "--quiet"]) == 1
        stdout.flush()
        written[workers] = stdout.buffer.getvalue()
    assert written[1] == written[2] == (_score(messy_file, tmp_path, 1)[0])


def test_progress_bar_with_two_workers_reaches_the_end_of_the_file(
    messy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = score_csv(
        messy_file, tmp_path / "out.csv", chunk_rows=CHUNK_ROWS, workers=2, progress=True
    )
    err = capsys.readouterr().err  # the bar follows the reading, the counts the writing
    assert "scoring" in err and "100%" in err
    assert f"rows={summary.rows_scored:,}" in err


def test_command_line_refuses_zero_workers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["score", "in.csv", "--out", "out.csv", "--workers", "0"])
    assert exited.value.code == 2
    assert "--workers: 0 is below the minimum, 1" in capsys.readouterr().err


def test_score_csv_refuses_zero_workers(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="workers = 0"):
        score_csv(tmp_path / "in.csv", tmp_path / "out.csv", workers=0)


def test_usable_cores_is_the_affinity() -> None:
    assert usable_cores() == len(os.sched_getaffinity(0)) >= 1


REUSE_PROBE = """
import resource
import numpy as np
from predictor._processes import start_process
start_process()  # what a worker process does first
for _ in range(2):  # the first round may map memory: it is counted from the second
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):  # a chunk's arrays, allocated and freed chunk after chunk
        arrays = [np.ones(3 << 20) for _ in range(3)]  # 24 MiB each
        del arrays
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="a glibc setting"
)
def test_a_worker_process_reuses_the_memory_it_frees() -> None:
    # 20 rounds of 72 MiB touch 368,640 pages; glibc 2.36's defaults fault in about 20,000
    # of them afresh (its heap's top is given back when freed), a worker none.
    probe = [sys.executable, "-c", REUSE_PROBE]
    faults = int(subprocess.run(probe, capture_output=True, text=True, check=True).stdout)
    assert faults < 1_000


KEPT_PROBE = """
import resource
import numpy as np
from predictor._processes import freed_memory_kept

def faults():
    for _ in range(2):  # the first round may map memory: counted from the second
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):  # a chunk's arrays, allocated and freed chunk after chunk
            arrays = [np.ones(3 << 20) for _ in range(3)]  # 24 MiB each
            del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

before = faults()
with freed_memory_kept():
    with freed_memory_kept():  # as two tasks on two threads: kept until the last one ends
        pass
    inside = faults()
after = faults()
print(before, inside, after)
"""


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="a glibc setting"
)
def test_a_dask_task_keeps_freed_memory_only_while_it_runs() -> None:
    # A Dask worker gives freed memory back at once (MALLOC_TRIM_THRESHOLD_=65536): about
    # 20,000 pages faulted in afresh per 20 rounds. A scoring task keeps it (none), and the
    # worker's own setting is back once the task ends.
    probe = [sys.executable, "-c", KEPT_PROBE]
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    done = subprocess.run(probe, capture_output=True, text=True, check=True, env=env)
    before, inside, after = map(int, done.stdout.split())
    assert before > 10_000 and after > 10_000
    assert inside < 1_000


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, (128 << 10, 128 << 10)),
        ({"MALLOC_TRIM_THRESHOLD_": "65536"}, (65536, 128 << 10)),
        ({"MALLOC_MMAP_THRESHOLD_": " 4096 ", "MALLOC_TRIM_THRESHOLD_": "x"}, (128 << 10, 4096)),
        (
            {
                "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=7:glibc.malloc.mmap_threshold=9",
                "MALLOC_TRIM_THRESHOLD_": "65536",
            },
            (7, 9),
        ),
        ({"MALLOC_TRIM_THRESHOLD_": "0x10000"}, (65536, 128 << 10)),
        ({"MALLOC_TRIM_THRESHOLD_": "\u00b2"}, (128 << 10, 128 << 10)),
        ({"MALLOC_TRIM_THRESHOLD_": "4294967296"}, (128 << 10, 128 << 10)),
        ({"MALLOC_MMAP_THRESHOLD_": "-1"}, (128 << 10, 128 << 10)),
    ],
    ids=["defaults", "dask", "mmap-only", "tunables", "hex", "superscript", "huge", "negative"],
)
def test_the_thresholds_set_back_are_the_environments(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: tuple[int, int]
) -> None:
    for name in ("GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    trim, mmap = _environment_threshold("trim"), _environment_threshold("mmap")
    assert (trim, mmap) == expected


THREADS_PROBE = """
import os
from threadpoolctl import threadpool_info, threadpool_limits
from predictor._processes import start_process

def blas_threads():
    return sorted({library["num_threads"] for library in threadpool_info()})

start_process()  # a worker started afresh (forkserver)
print(blas_threads())
held = threadpool_limits(1)  # as score holds it while its workers fork
child = os.fork()
if child == 0:
    start_process()
    print(blas_threads(), len(os.listdir("/proc/self/task")), flush=True)
    os._exit(0)
os.waitpid(child, 0)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="fork and /proc")
def test_a_worker_process_has_one_blas_thread_and_starts_no_other() -> None:
    # A forked worker inherits its parent's one BLAS thread; setting it again made OpenBLAS
    # start a thread (which spun for 0.1 s of CPU): the forked worker has one thread in all.
    probe = [sys.executable, "-c", THREADS_PROBE]
    fresh, forked = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.split(
        "\n", 1
    )
    assert fresh == "[1]"
    assert forked.split() == ["[1]", "1"]


def test_chunks_in_flight_are_bounded(messy_file: Path) -> None:
    pulled = 0

    def counted(chunks):
        nonlocal pulled
        for chunk in chunks:
            pulled += 1
            yield chunk

    with open(messy_file, "rb") as stream:
        reader = CsvReader(stream, "messy.csv", chunk_rows=CHUNK_ROWS)
        scorer = _ChunkScorer(load_model(), ".", False, True)
        ahead = []
        written = 0
        for _ in _scored_in_order(counted(reader.chunks()), scorer, 2, CHUNK_ROWS):
            written += 1
            ahead.append(pulled - written)
    assert written == pulled >= 15
    assert max(ahead) <= IN_FLIGHT_PER_WORKER * 2


def test_a_killed_runs_spool_folder_is_removed_by_the_next_run(
    messy_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f"{SPOOL_PREFIX}{int(dead.stdout)}-abc"
    stale.mkdir()
    (stale / "rows.csv").write_text("left by a killed run")
    alive = tmp_path / f"{SPOOL_PREFIX}{os.getpid()}-xyz"  # a run going on: kept
    alive.mkdir()
    _score(messy_file, tmp_path, 2)
    assert not stale.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.glob(f"{SPOOL_PREFIX}*")) == [alive.name]


# --------------------------------------------------------------------------- errors


@dataclasses.dataclass(frozen=True, eq=False)
class _FailingModel(AdditiveModel):
    """The shipped model, failing in ``how`` when it scores a chunk of ``rows`` rows (pickled
    to the worker processes, as a model is)."""

    rows: int = -1
    how: str = ""

    def score(self, design) -> Scores:
        n = design.n if hasattr(design, "n") else len(design)
        if n == self.rows:
            if self.how == "predictor-error":
                raise BatchError(f"scoring a chunk of {n} rows failed on purpose")
            if self.how == "bug":
                raise ZeroDivisionError("a bug")
            os._exit(7)  # the worker dies
        return super().score(design)


def _failing(rows: int, how: str) -> _FailingModel:
    shipped = load_model()
    values = {f.name: getattr(shipped, f.name) for f in dataclasses.fields(AdditiveModel)}
    return _FailingModel(**values, rows=rows, how=how)


def _last_chunk_rows(path: Path) -> int:
    with open(path, "rb") as stream:
        chunks = list(CsvReader(stream, "x", chunk_rows=CHUNK_ROWS).chunks())
    return len(chunks[-2].frame)  # not the last chunk: the others are still in flight


@pytest.mark.parametrize(
    ("how", "error", "match"),
    [
        ("predictor-error", BatchError, "failed on purpose"),
        ("bug", ZeroDivisionError, "a bug"),
        ("killed", BatchError, "worker process stopped without a result"),
    ],
    ids=["predictor-error", "bug", "killed"],
)
def test_an_error_in_a_worker_reaches_the_caller_and_nothing_is_written(
    tmp_path: Path, how: str, error: type[Exception], match: str
) -> None:
    source = tmp_path / "in.csv"
    simulate_cohort(300, seed=2).to_csv(source, index=False)
    rows = _last_chunk_rows(source)
    out, rejects = tmp_path / "out.csv", tmp_path / "rejects.csv"
    with pytest.raises(error, match=match):
        score_csv(
            source,
            out,
            rejects=rejects,
            model=_failing(rows, how),
            chunk_rows=CHUNK_ROWS,
            workers=2,
        )
    assert not out.exists() and not rejects.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


# --------------------------------------------------------------------------- property

CELLS = {
    "patient_id": st.sampled_from(["K-1", "K-2", "", "=x"]),
    "age_years": st.sampled_from(["45", "18", "101", "x", ""]),
    "crp_mg_l": st.sampled_from(["0.9", "12", "-1", "NA", ""]),
    "route": st.sampled_from(["iv", "esketamine", "oral", ""]),
    "Site": st.sampled_from(["Leeds", 'a "b"', "c,d", ""]),
}
ROW = st.tuples(*CELLS.values())
LINE = st.one_of(ROW.map(lambda r: ("row", r)), st.sampled_from([("blank", ()), ("ragged", ())]))


@settings(max_examples=max(5, settings.default.max_examples // 2))
@given(lines=st.lists(LINE, min_size=0, max_size=40), chunk_rows=st.integers(1, 6))
def test_every_record_is_scored_or_rejected_with_two_workers(lines, chunk_rows):
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(list(CELLS))
    records = 0
    for kind, row in lines:
        if kind == "row":
            writer.writerow(row)
            records += any(cell.strip() for cell in row)
        elif kind == "ragged":
            text.write("K-9,45,1.0\n")
            records += 1
        else:
            text.write("\n")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        source = folder / "in.csv"
        source.write_text(text.getvalue())
        results = {}
        for workers in (1, 2):
            out, rejects = folder / f"o{workers}.csv", folder / f"r{workers}.csv"
            with contextlib.suppress(BatchError):  # a file of blank lines only: exit 2 alike
                summary = score_csv(
                    source, out, rejects=rejects, chunk_rows=chunk_rows, workers=workers
                )
                assert summary.rows_scored + summary.rows_rejected == records
                scored = pd.read_csv(out, dtype=str, keep_default_na=False)
                bad = pd.read_csv(rejects, dtype=str, keep_default_na=False)
                assert len(scored) == summary.rows_scored
                assert bad["line"].nunique() == summary.rows_rejected
                results[workers] = (out.read_bytes(), rejects.read_bytes())
        assert results.get(1) == results.get(2)


@pytest.mark.parametrize(
    ("chunk_rows", "later"), [(200, 11_400), (12_000, 14_500)], ids=["in-flight", "first"]
)
def test_an_unreadable_line_a_worker_meets_is_reported_before_a_later_one(
    tmp_path: Path, chunk_rows: int, later: int
) -> None:
    # Past the first megabyte (which the header's reading checks): line 11,000 in a segment
    # that a worker reads, a later line, after a quote, in a chunk this process reads while that
    # segment is still being scored (or, with chunks of 12,000 rows, before the first segment
    # has gone to a worker). The error names line 11,000, as with one worker.
    lines = _csv_lines(simulate_cohort(15_000, seed=3))
    lines[10_999] = lines[10_999].replace(",", ",\xff", 1)
    lines[later - 1] = lines[later - 1].replace(",", ',"x\xff', 1)
    source = tmp_path / "in.csv"
    source.write_bytes("\n".join(lines).encode("utf-8").replace("\xff".encode(), b"\xff"))
    assert source.stat().st_size > 1 << 20
    for workers in (1, 2):
        with pytest.raises(BatchError, match=r"line 11000 is not UTF-8"):
            score_csv(source, tmp_path / "out.csv", chunk_rows=chunk_rows, workers=workers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.parametrize("chunk_rows", [2_000, 12_000], ids=["in-flight", "first"])
def test_an_unreadable_line_is_reported_before_a_truncated_gzip_after_it(
    tmp_path: Path, chunk_rows: int
) -> None:
    # The input stream's own errors (here: gzip data that ends too soon) wait for the segments
    # before them too.
    lines = _csv_lines(simulate_cohort(15_000, seed=3))
    lines[10_999] = lines[10_999].replace(",", ",\xff", 1)
    data = gzip.compress("\n".join(lines).encode("utf-8").replace("\xff".encode(), b"\xff"))
    source = tmp_path / "in.csv.gz"
    source.write_bytes(data[: len(data) * 97 // 100])
    for workers in (1, 2):
        with pytest.raises(BatchError, match=r"line 11000 is not UTF-8"):
            score_csv(source, tmp_path / "out.csv", chunk_rows=chunk_rows, workers=workers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv.gz"]


def _csv_lines(frame: pd.DataFrame) -> list[str]:
    text = io.StringIO()
    frame.to_csv(text, index=False, lineterminator="\n")
    return text.getvalue().split("\n")
