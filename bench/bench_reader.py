"""How fast the CSV reader reads a clean clinic export and exports with stray quotes.

    python bench/bench_reader.py [--rows 200000] [--repeat 3]

Writes a simulated export of ``--rows`` patients (as ``bench/bench_batch.py`` does; not timed)
and copies of it with a quote that never closes on its line before a cell of about one line in
1,000, 100, 10 and 3 (``write_stray_quotes``), then prints, for each, the process CPU seconds
of reading every record with ``CsvReader.chunks()`` (chunks of 50,000 rows, as ``score``
reads them; best of ``--repeat``), per million rows, and as a multiple of the clean file's.
Each stray quote costs its line (rejected) and sends the reader to Python's ``csv`` module
for a while; the time should grow with their number, not jump. (A stray quote that a later
one closes as RFC 4180 allows, into a record of the header's width, joins those lines into
one record: with many stray quotes a file has a few records fewer than lines.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import write_cohort, write_stray_quotes

from predictor.io._csv_reader import DEFAULT_CHUNK_ROWS, CsvReader


def read_cpu(path: Path, repeat: int) -> tuple[float, int]:
    """The least CPU seconds of ``repeat`` reads of the file, and its records."""
    least, records = float("inf"), 0
    for _ in range(repeat):
        started = time.process_time()
        with path.open("rb") as stream:
            reader = CsvReader(stream, path.name, chunk_rows=DEFAULT_CHUNK_ROWS)
            records = sum(len(c.frame) + len(c.problems) for c in reader.chunks())
        least = min(least, time.process_time() - started)
    return least, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="patients in the file")
    parser.add_argument("--repeat", type=int, default=3, help="reads of each file")
    args = parser.parse_args()
    per_million = 1_000_000 / args.rows
    with tempfile.TemporaryDirectory() as folder:
        clean = Path(folder) / "clean.csv"
        write_cohort(clean, args.rows)
        files = [("clean", clean)]
        for every in (1_000, 100, 10, 3):
            messy = Path(folder) / f"stray{every}.csv"
            stray = write_stray_quotes(clean, messy, every=every)
            files.append((f"a stray quote on ~1 line in {every:,} ({stray:,})", messy))
        print(
            f"{args.rows:,} rows, best of {args.repeat}, CPU seconds per million rows "
            f"(load average {os.getloadavg()[0]:.1f}):"
        )
        base = None
        for name, path in files:
            seconds, records = read_cpu(path, args.repeat)
            assert records <= args.rows, f"{name}: {records:,} records read"
            base = base or seconds
            print(
                f"  {name:44s} {seconds * per_million:6.2f} s  ({seconds / base:4.1f} x clean; "
                f"{records:,} records)"
            )


if __name__ == "__main__":
    main()
