"""Batch scoring of CSV files: stream the input in chunks, score every valid row on the same path
as ``predict(DataFrame)``, and send every invalid row to a rejects table with its line number.

The reader takes what spreadsheets, R, EHR reports and lab systems write: UTF-8 with or without
a byte-order mark, LF or CRLF line ends, quoted fields (also with separators, quotes or line
breaks inside), blank lines, and ``;``-separated files with decimal commas. It works on raw
bytes, one chunk of about ``chunk_rows`` records at a time, so memory does not grow with the
file:

1. Records are found without parsing: a line end ends a record unless it is inside quotes, and
   a quote opens or closes a quoted field (RFC 4180). Counting the line ends before each record
   gives the line number it starts on (the header is line 1, blank lines and line breaks inside
   quoted fields count).
2. pyarrow's CSV parser splits the chunk into text cells, and reports every record with too many
   or too few fields, which is rejected (``wrong_field_count``), never the file.
3. ``data_schemas.validate`` checks the cells, :func:`predictor.scoring.scored_table` scores the
   valid rows, and the output and rejects are written with pyarrow's CSV writer.

A chunk whose quoting is not RFC 4180 (a quote inside an unquoted field, ``5"7``) or that uses
bare carriage returns as line ends is read instead, from that chunk to the end of the file, by
Python's ``csv`` module, which reads it the same way, line numbers included, only slower.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pac
import pyarrow.csv as pcsv

from data_schemas import SchemaError, match_columns, summary_lines, validate
from data_schemas.errors import Problem, wrong_field_count
from predictor.artifact import load_model
from predictor.atomic import atomic_outputs
from predictor.model import AdditiveModel
from predictor.scoring import ModelLike, scored_table

DEFAULT_CHUNK_ROWS = 50_000
"""Records per chunk: large enough for vectorised code to pay off, small enough that a chunk's
design matrix (about 100 columns of float64) stays near 40 MB."""

SEPARATORS = (",", ";", "\t", "|")
"""Field separators the reader accepts."""
DECIMALS = (".", ",")
"""Decimal marks the reader accepts."""

REJECT_COLUMNS = ("line", "patient_id", "column", "field", "value", "reason", "message")
"""Columns of the rejects file: one row per problem, so a row with two bad cells has two."""

_MAX_RECORD_BYTES = 64 * 2**20
"""A record longer than this is not looked for further by the fast reader (an unbalanced quote
would otherwise swallow the file); the ``csv`` module reads on and reports it."""
# Python's csv module refuses a field over 128 KiB by default; let it read what the fast reader
# reads, so a long field is the row's problem, never the file's (raised once, never lowered).
csv.field_size_limit(max(csv.field_size_limit(), _MAX_RECORD_BYTES))

_HEADER_BYTES = 2**20
"""The header line must end within this many bytes of the start of the file."""
_QUOTE, _NEWLINE, _RETURN = ord('"'), ord("\n"), ord("\r")


class BatchError(ValueError):
    """A batch run that cannot be done at all: the input is missing, empty or not UTF-8 text,
    its header breaks the schema, or an output cannot be created. Nothing is written."""


@dataclass(frozen=True)
class Dialect:
    """How a CSV file is read.

    Attributes
    ----------
    separator : str
        Field separator.
    decimal : str
        Decimal mark of numbers.
    detected : bool
        Whether the separator was detected from the header (rather than given).
    """

    separator: str
    decimal: str
    detected: bool = False

    def describe(self) -> str:
        """``"';'-separated, decimal ','"``, for messages."""
        return f"{self.separator!r}-separated, decimal {self.decimal!r}"


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run did.

    Attributes
    ----------
    rows_scored, rows_rejected : int
        Data rows scored, and rows that broke the schema or had the wrong number of fields
        (blank lines are neither).
    problems : int
        Rows of the rejects table (a rejected row may have several problems).
    seconds : float
        Wall-clock time of the run.
    dialect : Dialect
        How the input was read.
    first_problems : tuple of str
        The first few problems for a summary: line, column and rule, never the patient's value
        (values go only to the rejects file).
    csv_module_from : int or None
        The line from which the input was read by Python's ``csv`` module, because of quoting
        that is not RFC 4180 or bare carriage returns (None: the fast reader read it all).
    """

    rows_scored: int
    rows_rejected: int
    problems: int
    seconds: float
    dialect: Dialect
    first_problems: tuple[str, ...] = field(default=())
    csv_module_from: int | None = None


# --------------------------------------------------------------------------- reading


class _Scan(NamedTuple):
    """The complete records at the start of a buffer."""

    end: int
    """bytes they take, line ends included"""
    starts: np.ndarray
    """each record's first line, counted from the buffer's first line (0)"""
    lines: int
    """line ends in ``buffer[:end]``"""


def _scan(buffer: bytes, separator: int, final: bool) -> _Scan | None:
    """Find the complete records of ``buffer`` (which starts at a record boundary).

    Returns None when the buffer is not RFC 4180 in a way that would make a quote count wrong
    (a quote that opens inside a field or closes before text), or uses bare carriage returns
    as line ends; the caller then reads it with the ``csv`` module.
    """
    cut_pair = not final and buffer.endswith(b"\r")  # its line feed is in the next read
    if buffer.count(b"\r") - cut_pair != buffer.count(b"\r\n"):
        return None
    if b'"' not in buffer:  # the common case: one line, one record
        end = len(buffer) if final else buffer.rfind(b"\n") + 1
        lines = buffer.count(b"\n", 0, end)
        records = lines + (final and end > 0 and not buffer.endswith(b"\n"))
        return _Scan(end, np.arange(records, dtype=np.int64), lines)
    data = np.frombuffer(buffer, dtype=np.uint8)
    quotes = np.flatnonzero(data == _QUOTE)
    if not _quotes_are_rfc4180(data, quotes, separator):
        return None
    newlines = np.flatnonzero(data == _NEWLINE)
    outside = np.searchsorted(quotes, newlines) % 2 == 0  # an even number of quotes before it
    ends = np.flatnonzero(outside)  # indices into newlines of the line ends that end a record
    starts = np.concatenate([[0], ends + 1])  # the line each record starts on
    if final:
        if quotes.size % 2:  # a quoted field that never closes
            return None
        trailing = ends.size == 0 or newlines[ends[-1]] + 1 < len(buffer)
        return _Scan(len(buffer), starts[: ends.size + trailing], newlines.size)
    if ends.size == 0:
        return _Scan(0, starts[:0], 0)
    end = int(newlines[ends[-1]]) + 1
    return _Scan(end, starts[: ends.size], int(ends[-1]) + 1)


def _quotes_are_rfc4180(data: np.ndarray, quotes: np.ndarray, separator: int) -> bool:
    """Whether every quote opens a field, closes one, or is a doubled quote inside one.

    An opening quote (an even number of quotes before it) must start a field: it follows a
    separator, a line end, the start of the buffer or (a doubled quote) the quote before it. A
    closing quote must end the field: a separator, a line end or another quote follows it.
    """
    opening, closing = quotes[0::2], quotes[1::2]
    before = data[np.maximum(opening - 1, 0)]
    starts_field = (
        (opening == 0) | (before == separator) | (before == _NEWLINE) | (before == _QUOTE)
    )
    if not starts_field.all():
        return False
    last = len(data) - 1
    after = data[np.minimum(closing + 1, last)]
    ends_field = (
        (after == separator)
        | (after == _NEWLINE)
        | (after == _RETURN)
        | (after == _QUOTE)
        | (closing == last)  # the end of the buffer: the next byte is not read yet, or EOF
    )
    return bool(ends_field.all())


def _decode_check(data: bytes, name: str, first_line: int, final: bool = True) -> None:
    """Raise BatchError unless ``data`` is UTF-8 text without NUL bytes (``final``: it
    does not stop inside a character)."""
    nul = data.find(b"\x00")
    if nul >= 0:
        line = first_line + data.count(b"\n", 0, nul)
        raise BatchError(
            f"{name}: not a text file (a NUL byte on line {line}); give a CSV file saved as "
            f"UTF-8 text"
        )
    try:
        codecs.utf_8_decode(data, "strict", final)
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        raise BatchError(
            f"{name}: line {line} is not UTF-8 text (byte 0x{data[exc.start]:02x}); save the "
            f"file as CSV UTF-8"
        ) from None


class _Chunk(NamedTuple):
    """Records read from the input: the data rows as text cells and the ragged lines."""

    frame: pd.DataFrame
    """text cells, columns as the header names them, index: the line each row starts on"""
    ragged: list[Problem]
    consumed: int
    """bytes of the input read up to the end of this chunk"""


class _Blocks(io.RawIOBase):
    """A binary stream: ``head`` (bytes already read), then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = memoryview(head), stream
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            data = self._stream.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self.read_bytes += n
        return n


def _is_blank(cells: list[str]) -> bool:
    """A blank line: no cell, or only empty cells (a spreadsheet's ``,,,``), or one cell of
    spaces."""
    return all(cell == "" for cell in cells) or (len(cells) == 1 and not cells[0].strip())


class CsvReader:
    """Read a CSV file of patient records in chunks, with the line number of every row.

    Parameters
    ----------
    stream : binary file
        The input, positioned at its start.
    name : str
        The input's name, for messages.
    separator : str, optional
        Field separator; default: ``";"`` if the header line has semicolons and no commas,
        a tab if it has tabs and neither, else ``","``.
    decimal : str, optional
        Decimal mark; default ``","`` for ``;``-separated files, else ``"."``.
    chunk_rows : int
        About how many records each chunk holds.
    engine : {"fast", "csv"}
        ``"csv"`` reads every record with Python's ``csv`` module, as the fast reader does for
        a file it cannot read itself (tests hold the two to the same results).

    Raises
    ------
    BatchError
        If the input is empty, not UTF-8 text, or has no header line.
    """

    def __init__(
        self,
        stream: BinaryIO,
        name: str,
        *,
        separator: str | None = None,
        decimal: str | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        engine: str = "fast",
    ) -> None:
        if engine not in ("fast", "csv"):
            raise ValueError(f"engine must be 'fast' or 'csv', not {engine!r}")
        if separator is not None and separator not in SEPARATORS:
            raise ValueError(f"separator must be one of {SEPARATORS}, not {separator!r}")
        if decimal is not None and decimal not in DECIMALS:
            raise ValueError(f"decimal must be one of {DECIMALS}, not {decimal!r}")
        self.name, self._stream, self._chunk_rows = name, stream, chunk_rows
        self._engine = engine
        self.csv_module_from: int | None = None
        """The line from which the ``csv`` module read the file (None: the fast reader read it
        all)."""
        self._pending = stream.read(_HEADER_BYTES)
        self._eof = not self._pending
        self.consumed = 0
        if self._pending.startswith(codecs.BOM_UTF8):
            self._pending = self._pending[len(codecs.BOM_UTF8) :]
            self.consumed = len(codecs.BOM_UTF8)
        self.line = 1  # the line the pending bytes start on
        self.header, self.header_line, detected = self._read_header(separator)
        sep = separator or detected
        self.dialect = Dialect(
            sep, decimal or ("," if sep == ";" else "."), detected=separator is None
        )
        if self.dialect.separator == self.dialect.decimal:
            raise BatchError(
                f"the separator and the decimal mark are both {sep!r}; give --decimal or --sep"
            )
        sample = self._pending[: 1 << 16]
        self._bytes_per_record = len(sample) // max(sample.count(b"\n"), 1) + 1

    def _fill(self, size: int) -> None:
        """Read until ``size`` bytes are pending or the input ends."""
        while not self._eof and len(self._pending) < size:
            more = self._stream.read(max(size - len(self._pending), 1 << 16))
            self._eof = not more
            self._pending += more

    def _take(self, end: int, lines: int) -> bytes:
        data, self._pending = self._pending[:end], self._pending[end:]
        self.consumed += end
        self.line += lines
        return data

    def _read_header(self, separator: str | None) -> tuple[list[str], int, str]:
        """Skip blank lines, read the header record and detect the separator from it."""
        self._fill(_HEADER_BYTES)
        head = self._pending[:_HEADER_BYTES]
        _decode_check(head, self.name, self.line, final=len(self._pending) <= _HEADER_BYTES)
        text = codecs.utf_8_decode(head, "strict", False)[0]
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator or ",")
        blank_lines = 0
        try:
            for cells in reader:
                if not _is_blank(cells):
                    break
                blank_lines = reader.line_num
            else:
                if self._eof and len(self._pending) <= _HEADER_BYTES:
                    raise BatchError(f"{self.name}: the file is empty")
                raise BatchError(f"{self.name}: no header line in the first 1 MB")
        except csv.Error as exc:
            raise BatchError(f"{self.name}: the header line cannot be read ({exc})") from None
        start, end = _line_end(head, blank_lines), _line_end(head, reader.line_num)
        self._take(start, blank_lines)
        header_line = self.line
        record = self._pending[: end - start].decode("utf-8")
        self._take(end - start, reader.line_num - blank_lines)
        detected = separator or _detect_separator(record)
        cells = next(csv.reader(io.StringIO(record, newline=""), delimiter=detected))
        return cells, header_line, detected

    def chunks(self) -> Iterator[_Chunk]:
        """The data records, in chunks of about ``chunk_rows``."""
        sep = ord(self.dialect.separator)
        if self._engine == "csv":
            yield from self._chunks_by_csv_module()
            return
        limit = self._chunk_rows * self._bytes_per_record
        while True:
            self._fill(limit)
            if not self._pending:
                return
            window = self._pending[:limit]
            final = self._eof and len(window) == len(self._pending)
            scan = _scan(window, sep, final=final)
            if scan is not None and scan.end == 0 and not final:  # a record longer than that
                if limit > _MAX_RECORD_BYTES:
                    scan = None  # perhaps a quote never closed: the csv module will say
                else:
                    limit *= 2
                    continue
            if scan is None:
                yield from self._chunks_by_csv_module()
                return
            data = window[: scan.end]
            _decode_check(data, self.name, self.line)
            parsed = self._parse(data, scan.starts + self.line)
            if parsed is None:  # pyarrow and the scan disagree: let the csv module decide
                yield from self._chunks_by_csv_module()
                return
            self._take(scan.end, scan.lines)
            if scan.starts.size:
                self._bytes_per_record = max(1, scan.end // scan.starts.size)
            limit = self._chunk_rows * self._bytes_per_record
            yield _Chunk(*parsed, consumed=self.consumed)

    def _parse(self, data: bytes, lines: np.ndarray) -> tuple[pd.DataFrame, list[Problem]] | None:
        """Cells of the records in ``data`` (starting on ``lines``), and the ragged ones."""
        width = len(self.header)
        sep = self.dialect.separator
        names = [str(k) for k in range(width)]
        invalid: list[Any] = []

        def keep_aside(row: Any) -> str:
            invalid.append(row)
            return "skip"

        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(
                column_names=names, use_threads=False, block_size=max(len(data), 1 << 20) + 1
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=self.dialect.separator,
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=keep_aside,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=False,
            ),
        )
        if table.num_rows + len(invalid) != lines.size:
            return None
        ragged = []
        keep = np.ones(lines.size, dtype=bool)
        for row in invalid:
            if row.number is None:
                return None
            k = row.number - 1
            keep[k] = False
            cells = next(csv.reader(io.StringIO(row.text, newline=""), delimiter=sep), [])
            if not _is_blank(cells):
                ragged.append(
                    wrong_field_count(
                        int(lines[k]),
                        row.actual_columns,
                        width,
                        row.text.rstrip("\r\n"),
                        self.dialect.separator,
                    )
                )
        empty = None
        for column in table.columns:
            blank = pac.equal(pac.binary_length(column), 0)
            empty = blank if empty is None else pac.and_(empty, blank)
        if empty is not None and pac.any(empty).as_py():
            table = table.filter(pac.invert(empty))
            rows = np.flatnonzero(keep)
            keep[rows[empty.to_numpy()]] = False
        frame = table.to_pandas()
        frame.columns = self.header
        frame.index = pd.Index(lines[keep], name="line")
        return frame, ragged

    def _chunks_by_csv_module(self) -> Iterator[_Chunk]:
        """Read the rest of the input with Python's ``csv`` module (slower, any quoting)."""
        self.csv_module_from = self.line
        blocks = _Blocks(self._pending, self._stream)
        stream = io.TextIOWrapper(io.BufferedReader(blocks), encoding="utf-8", newline="")
        start = self.consumed
        taken: list[str] = []  # the lines of the record being read, as they are in the file

        def lines() -> Iterator[str]:
            for line in stream:
                taken.append(line)
                yield line

        reader = csv.reader(lines(), delimiter=self.dialect.separator, strict=False)
        width = len(self.header)
        rows: list[list[str]] = []
        numbers: list[int] = []
        ragged: list[Problem] = []
        before = 0
        try:
            for cells in reader:
                line = self.line + before
                before = reader.line_num
                text = "".join(taken)
                taken.clear()
                if _is_blank(cells):
                    continue
                if len(cells) != width:
                    ragged.append(
                        wrong_field_count(
                            line, len(cells), width, text.rstrip("\r\n"), self.dialect.separator
                        )
                    )
                    continue
                rows.append(cells)
                numbers.append(line)
                if len(rows) >= self._chunk_rows:
                    yield self._csv_chunk(rows, numbers, ragged, start + blocks.read_bytes)
                    rows, numbers, ragged = [], [], []
        except UnicodeDecodeError:
            raise BatchError(
                f"{self.name}: line {self.line + before + 1} or near it is not UTF-8 text; "
                f"save the file as CSV UTF-8"
            ) from None
        except csv.Error as exc:
            raise BatchError(
                f"{self.name}: line {self.line + before + 1}: {exc}; is it a CSV text file?"
            ) from None
        self._pending, self._eof = b"", True
        yield self._csv_chunk(rows, numbers, ragged, start + blocks.read_bytes)

    def _csv_chunk(
        self, rows: list[list[str]], lines: list[int], ragged: list[Problem], consumed: int
    ) -> _Chunk:
        frame = pd.DataFrame(rows, columns=range(len(self.header)), dtype="str")
        frame.columns = self.header
        frame.index = pd.Index(np.asarray(lines, dtype=np.int64), name="line")
        self.consumed = consumed
        return _Chunk(frame, ragged, consumed)


_LINE_ENDS = re.compile(rb"\r\n|\r|\n")


def _line_end(buffer: bytes, lines: int) -> int:
    """The byte offset just past the end of the first ``lines`` lines of ``buffer`` (line ends as
    the ``csv`` module reads them: CRLF, CR or LF; the end of the buffer ends the last line)."""
    if lines == 0:
        return 0
    for k, match in enumerate(_LINE_ENDS.finditer(buffer), start=1):
        if k == lines:
            return match.end()
    return len(buffer)


def _detect_separator(header: str) -> str:
    """``;`` for a header with semicolons and no commas; a tab for one with tabs and neither;
    otherwise ``,``."""
    if "," not in header and ";" in header:
        return ";"
    if "," not in header and ";" not in header and "\t" in header:
        return "\t"
    return ","


# --------------------------------------------------------------------------- writing


def _arrow_column(values: pd.Series) -> pa.Array:
    """One output column for pyarrow's CSV writer: whole-number flags as integers."""
    if values.name == "responded" and pd.api.types.is_float_dtype(values):
        return pa.array(values.to_numpy(), from_pandas=True).cast(pa.int64())
    if values.dtype == object:
        return pa.array(values.to_numpy(), type=pa.string(), from_pandas=True)
    return pa.array(values, from_pandas=True)


def _write_header(sink: BinaryIO, names: list[str]) -> None:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(names)
    sink.write(text.getvalue().encode("utf-8"))


# --------------------------------------------------------------------------- scoring


def _rejects(problems: pd.DataFrame, ragged: list[Problem], frame: pd.DataFrame) -> pd.DataFrame:
    """The rejects table of one chunk, in line order."""
    table = problems.rename(columns={"row": "line"})
    if ragged:
        extra = pd.DataFrame(
            [[p.row, p.column, p.field, p.value, str(p.reason), p.message] for p in ragged],
            columns=table.columns,
        )
        table = pd.concat([table, extra], ignore_index=True) if len(table) else extra
    table = table.sort_values("line", kind="stable", ignore_index=True)
    ids = {s.field.name: s.position for s in match_columns(tuple(frame.columns)).sources}
    patient_id = pd.Series("", index=table.index, dtype=object)
    if "patient_id" in ids and len(table):
        cells = frame.iloc[:, ids["patient_id"]]
        known = table["line"].isin(cells.index)
        patient_id[known] = cells.reindex(table.loc[known, "line"]).to_numpy(dtype=object)
    table.insert(1, "patient_id", patient_id)
    return table[list(REJECT_COLUMNS)]


@contextlib.contextmanager
def _opened(
    source: str | os.PathLike[str] | BinaryIO,
) -> Iterator[tuple[BinaryIO, str, int | None]]:
    """The input as a binary stream, its name for messages, and its size if known."""
    if not isinstance(source, (str, os.PathLike)):
        yield source, getattr(source, "name", "input"), None
        return
    if str(source) == "-":
        yield sys.stdin.buffer, "standard input", None
        return
    path = Path(source)
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise BatchError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise BatchError(f"{source}: is a directory, not a file") from None
    except OSError as exc:
        raise BatchError(f"{source}: cannot read it ({exc.strerror or exc})") from None
    with stream:
        status = os.fstat(stream.fileno())
        yield stream, str(source), status.st_size if stat.S_ISREG(status.st_mode) else None


def _check_writable(target: str | os.PathLike[str] | None) -> None:
    if target is None or str(target) == "-":
        return
    folder = Path(target).parent
    if not folder.is_dir():
        raise BatchError(f"cannot write {target}: there is no folder {str(folder)!r}")
    if Path(target).is_dir():
        raise BatchError(f"cannot write {target}: it is a folder")


def score_csv(
    source: str | os.PathLike[str] | BinaryIO,
    out: str | os.PathLike[str],
    *,
    rejects: str | os.PathLike[str] | None = None,
    model: ModelLike = None,
    explain: bool = False,
    separator: str | None = None,
    decimal: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = False,
) -> BatchSummary:
    """Score a CSV file of patients, chunk by chunk, into a scored CSV file and a rejects file.

    Every valid row is scored, in input order, exactly as ``predict(DataFrame)`` scores it; a
    row that breaks the schema or has the wrong number of fields goes to ``rejects`` instead,
    with the line it starts on in the input (the header is line 1). Both files appear only
    when complete: an interrupted run leaves neither behind, and an existing file untouched.

    Parameters
    ----------
    source : path, ``"-"`` or binary file
        The input CSV file; ``"-"`` reads standard input.
    out : path or ``"-"``
        The scored CSV file; ``"-"`` writes to standard output.
    rejects : path, optional
        Where to write the rejects table (:data:`REJECT_COLUMNS`); by default it is not kept.
    model : AdditiveModel or path, optional
        The model; default: the shipped one.
    explain : bool
        Add one ``contribution_<field>`` column per model field.
    separator, decimal : str, optional
        The input's field separator and decimal mark; detected from the header by default
        (see :class:`CsvReader`).
    chunk_rows : int
        About how many rows to read, score and write at a time.
    progress : bool
        Show a progress bar on standard error.

    Returns
    -------
    BatchSummary

    Raises
    ------
    BatchError
        If the input cannot be read as CSV text, or its header breaks the schema (a field
        given twice, a column whose unit is unclear).
    ModelFileError
        If the model cannot be loaded.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "in.csv").write_text("patient_id,crp_mg_l,route\\nA,0.9,iv\\nB,high,iv\\n")
    >>> summary = score_csv(folder / "in.csv", folder / "out.csv", rejects=folder / "rej.csv")
    >>> summary.rows_scored, summary.rows_rejected
    (1, 1)
    >>> import csv
    >>> rows = csv.DictReader(open(folder / "rej.csv"))
    >>> [(row["line"], row["patient_id"], row["reason"]) for row in rows]
    [('3', 'B', 'not_a_number')]
    """
    started = time.perf_counter()
    for target in (out, rejects):
        _check_writable(target)
    if rejects is not None and (
        str(out) == str(rejects)
        or (str(out) != "-" and os.path.realpath(out) == os.path.realpath(rejects))
    ):
        raise BatchError(f"the output and the rejects file are both {str(out)!r}")
    resolved = model if isinstance(model, AdditiveModel) else load_model(model)
    with _opened(source) as (stream, name, size):
        reader = CsvReader(
            stream, name, separator=separator, decimal=decimal, chunk_rows=chunk_rows
        )
        match = match_columns(tuple(reader.header))
        if match.problems:
            message = str(SchemaError(match.problems)).replace("\n", " ")
            raise BatchError(f"{name}, line {reader.header_line}: {message}")
        if not match.sources:  # scoring it would give every row the average patient's score
            shown = reader.dialect.separator.join(reader.header)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise BatchError(
                f"{name}: no column of the header ({shown!r}, read as "
                f"{reader.dialect.describe()}) is an input field; check --sep, or the column "
                f"names (python -m predictor schema lists them)"
            )
        summary = _score_chunks(
            reader,
            resolved,
            out,
            rejects,
            explain=explain,
            progress=progress,
            size=size,
        )
    return BatchSummary(
        summary.rows_scored,
        summary.rows_rejected,
        summary.problems,
        time.perf_counter() - started,
        reader.dialect,
        summary.first_problems,
        reader.csv_module_from,
    )


_SHOWN_PROBLEMS = 5


def _csv_rows(frame: pd.DataFrame) -> pa.Buffer:
    """The rows of ``frame`` as CSV (no header), written by pyarrow."""
    if frame.empty:
        return pa.py_buffer(b"")
    arrays = [_arrow_column(frame.iloc[:, j]) for j in range(frame.shape[1])]
    table = pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])
    sink = pa.BufferOutputStream()
    pcsv.write_csv(table, sink, write_options=pcsv.WriteOptions(include_header=False))
    return sink.getvalue()


class _Scored(NamedTuple):
    """One chunk scored: its output and rejects as CSV rows, and counts for the summary."""

    output: pa.Buffer
    rejects: pa.Buffer
    scored: int
    rejected: int
    problems: int
    messages: list[str]


@dataclass(frozen=True)
class _ChunkScorer:
    """Validates and scores one chunk at a time."""

    model: AdditiveModel
    decimal: str
    explain: bool

    def table(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        clean, problems = validate(frame, decimal=self.decimal)
        table = scored_table(
            self.model,
            clean,
            columns=tuple(frame.columns),
            row_numbers=clean.index.to_numpy(),
            explain=self.explain,
        )
        return table, problems

    def columns(self, header: list[str]) -> list[str]:
        """The output's columns, from an empty table with the input's header."""
        empty = pd.DataFrame({k: pd.Series([], dtype="str") for k in range(len(header))})
        empty.columns = header
        return [str(c) for c in self.table(empty)[0].columns]

    def __call__(self, frame: pd.DataFrame, ragged: list[Problem]) -> _Scored:
        table, problems = self.table(frame)
        bad = _rejects(problems, ragged, frame)
        return _Scored(
            _csv_rows(table),
            _csv_rows(bad),
            len(table),
            len(frame) - len(table) + len(ragged),
            len(bad),
            summary_lines(bad, _SHOWN_PROBLEMS, place="line"),
        )


def _score_chunks(
    reader: CsvReader,
    model: AdditiveModel,
    out: str | os.PathLike[str],
    rejects: str | os.PathLike[str] | None,
    *,
    explain: bool,
    progress: bool,
    size: int | None,
) -> BatchSummary:
    from tqdm import tqdm

    scorer = _ChunkScorer(model, reader.dialect.decimal, explain)
    totals = [0, 0, 0]  # scored, rejected, problems
    first: list[str] = []
    with contextlib.ExitStack() as stack:
        # Both files appear together, once both are complete (or neither does).
        sinks = stack.enter_context(
            atomic_outputs([out, *([rejects] if rejects else [])], binary=True)
        )
        sink, reject_sink = sinks[0], (sinks[1] if rejects else None)
        bar = stack.enter_context(
            tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                disable=not progress,
                file=sys.stderr,
                desc="scoring",
            )
        )
        _write_header(sink, scorer.columns(reader.header))
        if reject_sink is not None:
            _write_header(reject_sink, list(REJECT_COLUMNS))

        for chunk in reader.chunks():
            scored = scorer(chunk.frame, chunk.ragged)
            sink.write(scored.output)
            if reject_sink is not None:
                reject_sink.write(scored.rejects)
            totals[0] += scored.scored
            totals[1] += scored.rejected
            totals[2] += scored.problems
            first.extend(scored.messages[: _SHOWN_PROBLEMS - len(first)])
            bar.update(chunk.consumed - bar.n)
            bar.set_postfix(rows=f"{totals[0]:,}", rejected=f"{totals[1]:,}", refresh=False)
    return BatchSummary(*totals, 0.0, reader.dialect, tuple(first))
