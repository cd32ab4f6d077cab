"""How fast :func:`predictor.io._input_stream.open_input` gives UTF-8 bytes, per encoding.

    python bench/bench_input_stream.py [--mb 100]

Writes a CSV-like file of about ``--mb`` MB of UTF-8 text (patient rows with some accented site
names, so every 1 MiB block of the cp1252 file needs decoding; not timed) in each form below,
then reads each through ``open_input`` in 1 MiB reads, as the CSV reader does, and prints the
throughput in MB of UTF-8 text given per second, and in MB of the file read per second:

- plain UTF-8 (passed through: the floor is the file system), and reading the file directly
  with ``open(..., "rb")`` for comparison;
- gzip (level 6) of it;
- UTF-16-LE with a byte-order mark;
- cp1252.

The file is read once before timing, so every form is timed from the page cache; each form is
timed three times and the fastest kept. Timings on a shared machine are noisy: the load average
is printed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from pathlib import Path

from predictor.io._input_stream import open_input

READ = 1 << 20
SITES = ("Leeds", "York", "Malmö", "Zürich", "Besançon", "Łódź")


def text_block(rows: int) -> str:
    """``rows`` CSV records of made-up patients (all sites encodable in UTF-8; cp1252 drops
    Łódź)."""
    return "".join(
        f"K-{k},{30 + k % 50},{'FM'[k % 2]},{0.5 + (k % 97) / 10:.2f},iv_ketamine,"
        f"{SITES[k % len(SITES)]},{k % 7}\n"
        for k in range(rows)
    )


def write_files(folder: Path, megabytes: int) -> dict[str, tuple[Path, str | None]]:
    """The input in each form, and the encoding to give ``open_input`` for it."""
    block = "patient_id,age_years,sex,crp_mg_l,route,site,score\n" + text_block(20_000)
    cp_block = block.replace("Łódź", "Lodz")
    repeats = max(1, megabytes * 1_000_000 // len(block.encode("utf-8")))
    forms: dict[str, tuple[Path, str | None]] = {
        "utf-8": (folder / "plain.csv", None),
        "gzip": (folder / "plain.csv.gz", None),
        "utf-16": (folder / "utf16.csv", None),
        "cp1252": (folder / "cp1252.csv", "cp1252"),
    }
    with (
        open(forms["utf-8"][0], "wb") as plain,
        gzip.open(forms["gzip"][0], "wb", compresslevel=6) as packed,
        open(forms["utf-16"][0], "wb") as utf16,
        open(forms["cp1252"][0], "wb") as single,
    ):
        utf16.write(b"\xff\xfe")
        encoded = block.encode("utf-8")
        wide = block.encode("utf-16-le")
        narrow = cp_block.encode("cp1252")
        for _ in range(repeats):
            plain.write(encoded)
            packed.write(encoded)
            utf16.write(wide)
            single.write(narrow)
    return forms


def time_read(path: Path, encoding: str | None) -> tuple[float, int]:
    """Seconds to read ``path`` through ``open_input`` in 1 MiB reads, and the bytes given."""
    given = 0
    started = time.perf_counter()
    with open_input(path, encoding=encoding) as opened:
        while data := opened.stream.read(READ):
            given += len(data)
    return time.perf_counter() - started, given


def time_raw(path: Path) -> tuple[float, int]:
    given = 0
    started = time.perf_counter()
    with open(path, "rb") as file:
        while data := file.read(READ):
            given += len(data)
    return time.perf_counter() - started, given


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the UTF-8 text, in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        forms = write_files(Path(tmp), args.mb)
        for path, _ in forms.values():
            time_raw(path)  # into the page cache
        print(f"load average: {os.getloadavg()[0]:.2f}")
        print(f"{'form':<22} {'file MB':>8} {'text MB/s':>10} {'file MB/s':>10}")
        seconds, given = time_raw(forms["utf-8"][0])
        print(f"{'open(rb) (floor)':<22} {given / 1e6:8.1f} {given / 1e6 / seconds:10.0f}")
        for form, (path, encoding) in forms.items():
            seconds, given = min(time_read(path, encoding) for _ in range(3))
            size = path.stat().st_size / 1e6
            print(f"{form:<22} {size:8.1f} {given / 1e6 / seconds:10.0f} {size / seconds:10.0f}")


if __name__ == "__main__":
    main()
