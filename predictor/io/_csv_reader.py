"""The one CSV reader of every command that reads a file of patient records (``score``,
``validate``, ``train --data``, ``evaluate --data``).

It takes what spreadsheets, R, EHR reports and lab systems write: UTF-8 with or without a
byte-order mark (other encodings are turned into UTF-8 by :mod:`predictor.io._input_stream`), LF,
CRLF or bare CR line ends, quoted fields (also with separators, quotes or line breaks inside),
blank lines (also a spreadsheet's ``,,,,`` rows), Excel's ``sep=;`` first line, trailing empty
header cells, and ``;``-separated files with decimal commas. It works on raw bytes, one chunk of
``chunk_rows`` records (and at most :data:`MAX_CHUNK_BYTES`) at a time, so memory does not grow
with the file, whatever its row lengths.

Every record of the input ends up in exactly one place: a chunk's rows (text cells, indexed by
the line the record starts on; the header is line 1, blank lines and line breaks inside quoted
fields count), or a chunk's problems (a line the reader rejects), or nowhere for a blank line:

* ``wrong_field_count``: more or fewer fields than the header;
* ``unclosed_quote``: a quoted field that does not close as RFC 4180 says (a closing quote
  followed by anything but a separator, a quote or the line end; a quote still open at the end
  of the file; a record that spans several lines and runs past
  :data:`MAX_MULTILINE_RECORD_BYTES`, or has more or fewer fields than the header). The line
  where the quote opened is rejected, and reading resumes on the next line, so one bad cell
  never costs the rest of the file. (Quoting that RFC 4180 allows is read as it says: a stray
  quote that a later quote happens to close, into a record of the header's width, joins those
  lines into one record);
* ``record_too_long``: a line longer than :data:`MAX_RECORD_BYTES` (skipped without being held
  in memory).

How: records are found without parsing (numpy over the bytes: a line end ends a record unless
it is inside quotes), pyarrow's CSV parser splits them into cells, and a record that the fast
path cannot vouch for (one of the problems above, a quote inside an unquoted field such as
``5"7``, a bare CR line end) is read with Python's ``csv`` module in strict mode, one record at
a time, with the same results and line numbers, before the fast path takes over again. What the
two read in turn is put together into chunks of ``chunk_rows`` records, so that a file with a
stray quote every few hundred lines is scored in chunks as large as a clean file's.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pac
import pyarrow.csv as pcsv

from data_schemas import PredictorError, match_columns
from data_schemas.errors import Problem, Reason, shortened, wrong_field_count

DEFAULT_CHUNK_ROWS = 50_000
"""Records per chunk: large enough for vectorised code to pay off, small enough that a chunk's
design matrix (about 100 columns of float64) stays near 40 MB."""
SEPARATORS = (",", ";", "\t", "|")
"""Field separators the reader accepts."""
DECIMALS = (".", ",")
"""Decimal marks the reader accepts."""

MAX_RECORD_BYTES = 1 << 20
"""A line longer than this (1 MiB) is rejected as ``record_too_long`` and skipped unread."""
MAX_MULTILINE_RECORD_BYTES = 64 << 10
"""A record that spans several lines (line breaks inside a quoted field) may be at most this long
(64 KiB); past that, its quote is taken as never closed (``unclosed_quote``)."""
MAX_CHUNK_BYTES = 32 << 20
"""At most this many bytes (32 MiB) are read and parsed at a time, whatever ``chunk_rows`` says."""
_HEADER_BYTES = 1 << 20
"""The header line must end within this many bytes of the start of the file."""
_SLOW_RECORDS = 16
"""Records read one by one with the ``csv`` module before the fast path is tried again (four
times as many each time the fast path then reads fewer records than this before it stops
again, so that a file with a bad record every few lines is read by the ``csv`` module in long
runs; back to this many once it reads more: a turn of the fast path costs about what the
``csv`` module spends on this many records)."""
_PROBE_BYTES = 64 << 10
"""Bytes the fast path looks at first after the ``csv`` module read (four times as many each
time it reads them all), so that a stray quote every thousand lines costs a few small scans,
not a scan of a whole chunk's bytes."""
_QUOTE, _NEWLINE, _RETURN = ord('"'), ord("\n"), ord("\r")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BLANK = re.compile(r"[,;\t| ]*")
"""A blank line: nothing but separators and spaces (a spreadsheet's ``,,,,`` row)."""
_EXCEL_SEPARATOR = re.compile(r"sep=(.)(?:\r\n|\r|\n|$)")

# The csv module refuses a field over 128 KiB by default; a record is bounded by
# MAX_RECORD_BYTES here, so let it read up to that (raised once, never lowered).
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES + 1))


class BatchError(PredictorError, ValueError):
    """Input that cannot be read at all: missing, empty, not text, a header that cannot be read
    or that breaks the schema, or an output that cannot be created. Nothing is written."""


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
        Whether the separator was detected from the file (rather than given).
    encoding : str
        The file's encoding as read (``"utf-8"``, ``"cp1252"``, ``"utf-16-le"``, with
        ``" (gzip)"`` for a compressed file).
    """

    separator: str
    decimal: str
    detected: bool = False
    encoding: str = "utf-8"

    def describe(self) -> str:
        """``"';'-separated, decimal ','"``, for messages (with the encoding unless UTF-8)."""
        text = f"{self.separator!r}-separated, decimal {self.decimal!r}"
        return text if self.encoding == "utf-8" else f"{text}, {self.encoding}"


def decode_check(data: bytes, name: str, first_line: int, final: bool = True) -> None:
    """Raise :class:`BatchError` unless ``data`` is UTF-8 text without NUL bytes (``final``: it
    does not stop inside a character). The message names the line, never its text."""
    nul = data.find(b"\x00")
    try:  # whichever comes first: a byte that is not UTF-8, or a NUL byte
        codecs.utf_8_decode(data if nul < 0 else data[:nul], "strict", final or nul >= 0)
    except UnicodeDecodeError as exc:
        raise _not_utf8(name, first_line + _line_ends(data, exc.start), data[exc.start]) from None
    if nul >= 0:
        raise _not_text(name, first_line + _line_ends(data, nul))


def _not_utf8(name: str, line: int, byte: int) -> BatchError:
    return BatchError(
        f"{name}: line {line} is not UTF-8 text (byte 0x{byte:02x}); give --encoding cp1252 (or "
        f"latin-1) for a file saved by Excel on Windows, or save it as CSV UTF-8"
    )


def _not_text(name: str, line: int) -> BatchError:
    return BatchError(
        f"{name}: not a text file (a NUL byte on line {line}); give a CSV file saved as text"
    )


def _line_ends(data: bytes, stop: int) -> int:
    """Line ends (LF, CRLF or a bare CR) in ``data[:stop]``."""
    return data.count(b"\n", 0, stop) + data.count(b"\r", 0, stop) - data.count(b"\r\n", 0, stop)


# --------------------------------------------------------------------------- finding records


class _Scan(NamedTuple):
    """The records at the start of a buffer that the fast path can read."""

    end: int
    """bytes they take, line ends included"""
    starts: np.ndarray
    """each record's first line, counted from the buffer's first line (0)"""
    lines: int
    """line ends in ``buffer[:end]``"""
    stop: bool
    """the record at ``end`` must be read by the ``csv`` module"""
    bounds: np.ndarray
    """the byte each record ends at (past its line end)"""

    def first(self, count: int) -> _Scan:
        """The scan of the first ``count`` records only (the rest are read later)."""
        if self.starts.size <= count:
            return self
        return _Scan(
            int(self.bounds[count - 1]),
            self.starts[:count],
            int(self.starts[count]),
            False,
            self.bounds[:count],
        )


def _first_quote_violation(
    data: np.ndarray, quotes: np.ndarray, separator: int, final: bool
) -> int:
    """The position of the first quote that is not RFC 4180 (an opening quote that does not
    start a field, or whose closing quote is followed by text, or that never closes in a final
    buffer), or ``len(data)`` when there is none.

    An opening quote (an even number of quotes before it) must follow a separator, a line end,
    the start of the buffer or (a doubled quote) the quote before it; its closing quote must be
    followed by a separator, a line end, another quote or the end of the buffer.
    """
    n = len(data)
    opening, closing = quotes[0::2], quotes[1::2]
    before = data[np.maximum(opening - 1, 0)]
    starts_field = (
        (opening == 0) | (before == separator) | (before == _NEWLINE) | (before == _QUOTE)
    )
    after = data[np.minimum(closing + 1, n - 1)]
    ends_field = (
        (after == separator)
        | (after == _NEWLINE)
        | (after == _RETURN)
        | (after == _QUOTE)
        | (closing == n - 1)
    )
    found = [n + 1]
    if not starts_field.all():
        found.append(int(opening[np.argmin(starts_field)]))
    if not ends_field.all():
        found.append(int(opening[np.argmin(ends_field)]))
    if final and quotes.size % 2:
        found.append(int(opening[-1]))
    return min(found)


def _scan(buffer: bytes, separator: int, final: bool) -> _Scan:
    """Find the records of ``buffer`` (which starts at a record boundary) that the fast path can
    read: complete, RFC 4180 quoting, no bare CR, within the length bounds.

    ``final``: the buffer ends the input (else its last, incomplete record is left for the next
    read).
    """
    n = len(buffer)
    data = np.frombuffer(buffer, dtype=np.uint8)
    violation = n + 1  # the first byte the fast path cannot vouch for
    if b"\r" in buffer:
        returns = np.flatnonzero(data == _RETURN)
        following = data[np.minimum(returns + 1, n - 1)]
        bare = returns[(following != _NEWLINE) | (returns == n - 1)]
        if not final:
            bare = bare[bare != n - 1]  # its line feed may be in the next read
        if bare.size:
            violation = int(bare[0])
    quotes = np.flatnonzero(data == _QUOTE) if b'"' in buffer else np.empty(0, dtype=np.intp)
    if quotes.size:
        violation = min(violation, _first_quote_violation(data, quotes, separator, final))
    newlines = np.flatnonzero(data == _NEWLINE)
    # Indices (into newlines) of the line feeds that end a record: those outside quotes.
    if quotes.size:
        ends = np.flatnonzero(np.searchsorted(quotes, newlines) % 2 == 0)
    else:
        ends = np.arange(newlines.size)
    stops = newlines[ends]  # their positions
    violation = min(violation, _first_overlong(n, newlines.size, ends, stops))
    if violation <= n:
        k = int(np.searchsorted(stops, violation))  # records that end before it
        end = int(stops[k - 1]) + 1 if k else 0
        lines = int(ends[k - 1]) + 1 if k else 0
        return _Scan(end, _record_lines(ends[:k]), lines, True, stops[:k] + 1)
    trailing = (int(stops[-1]) + 1 if ends.size else 0) < n
    if final:
        records, bounds = _record_lines(ends), stops + 1
        if trailing:
            records = np.append(records, int(ends[-1]) + 1 if ends.size else 0)
            bounds = np.append(bounds, n)
        return _Scan(n, records, newlines.size, False, bounds)
    if not ends.size:
        return _Scan(0, _record_lines(ends), 0, False, stops + 1)
    return _Scan(int(stops[-1]) + 1, _record_lines(ends), int(ends[-1]) + 1, False, stops + 1)


def _first_overlong(n: int, line_ends: int, ends: np.ndarray, stops: np.ndarray) -> int:
    """The start of the first record over :data:`MAX_RECORD_BYTES` or that spans several lines
    (the ``csv`` module reads those: it checks them for lines a stray quote swallowed), the
    trailing incomplete one included, or ``n + 1`` when there is none.

    ``ends`` are the indices of the record-ending line feeds among the buffer's ``line_ends``
    line feeds, and ``stops`` their positions.
    """
    starts = np.concatenate([[0], stops + 1])
    extents = np.concatenate([stops + 1, [n]]) - starts  # the last: the trailing record
    spans = np.diff(np.concatenate([[-1], ends, [line_ends]]))  # line feeds in each record
    if extents[-1] == 0:
        extents, spans, starts = extents[:-1], spans[:-1], starts[:-1]
    over = (extents > MAX_RECORD_BYTES) | (spans > 1)
    return int(starts[np.argmax(over)]) if over.any() else n + 1


def _record_lines(ends: np.ndarray) -> np.ndarray:
    """The line each record starts on, from the indices of the line ends that end records."""
    return (
        np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        if ends.size
        else np.zeros(0, np.int64)
    )


# --------------------------------------------------------------------------- the reader


class Chunk(NamedTuple):
    """Records read from the input."""

    frame: pd.DataFrame
    """text cells of the data rows, columns as the header names them, index: the line each row
    starts on"""
    problems: list[Problem]
    """lines rejected by the reader (wrong field count, unclosed quote, too long)"""
    ids: dict[int, str]
    """line -> the patient_id read from a rejected line, where it has one"""
    csv_module_from: int | None = None
    """the first line of it the ``csv`` module read, for a chunk read from a :class:`Segment`
    (for the others the reader's :attr:`CsvReader.csv_module_from` says)"""


class _Layout(NamedTuple):
    """What a reader learnt from the header, for reading records elsewhere (:class:`Segment`)."""

    name: str
    header: list[str]
    width: int
    dialect: Dialect
    header_line: int
    id_position: int | None
    engine: str


class Segment(NamedTuple):
    """Whole records of the input as bytes, for another process to read
    (:meth:`CsvReader.segments`, :func:`read_segment`)."""

    data: bytes
    """the records' bytes, from a record's start to a record's end"""
    line: int
    """the line they start on"""
    lines: int
    """line ends in them"""
    layout: _Layout


_Piece = tuple[pd.DataFrame, list[Problem], dict[int, str]]
"""Records read in one go, as :class:`Chunk` holds them but with the columns numbered."""


class _Read(NamedTuple):
    """Records the ``csv`` module read, not made into a frame yet (one frame per chunk)."""

    rows: list[list[str]]
    numbers: list[int]
    """the line each row starts on"""
    problems: list[Problem]
    ids: dict[int, str]


class _Vouched(NamedTuple):
    """Records the fast path vouched for, taken from the input, not parsed yet."""

    data: bytes
    lines: np.ndarray
    """the line each starts on"""


class Pieces(NamedTuple):
    """A chunk's records as a reader found them, not parsed yet, for another process to
    parse (:meth:`CsvReader.segments`, :func:`read_segment`): the bytes of those the fast path
    vouched for, and the cells of those the ``csv`` module read."""

    held: list[_Read | _Vouched]
    """in line order"""
    layout: _Layout

    @property
    def line(self) -> int:
        """The line the first record starts on (0 for blank lines only)."""
        for piece in self.held:
            if isinstance(piece, _Vouched):
                return int(piece.lines[0])
            if starts := [*piece.numbers[:1], *(p.row for p in piece.problems[:1])]:
                return min(starts)
        return 0

    @property
    def records(self) -> int:
        """Records held (rows, rejected lines, and blank lines the fast path vouched for)."""
        return sum(
            p.lines.size if isinstance(p, _Vouched) else len(p.rows) + len(p.problems)
            for p in self.held
        )


def _joined(pieces: list[_Piece]) -> _Piece:
    """One piece of consecutive ``pieces`` (their records stay in line order)."""
    if len(pieces) == 1:
        return pieces[0]
    frames = [frame for frame, _, _ in pieces if len(frame)] or [pieces[0][0]]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames)
    problems = [problem for _, found, _ in pieces for problem in found]
    ids = {line: value for _, _, kept in pieces for line, value in kept.items()}
    return frame, problems, ids


class _Overlong(Exception):
    """A record spanning several lines ran past MAX_MULTILINE_RECORD_BYTES, or would hold a
    whole record of the file: its first line is rejected."""


def _is_blank(cells: list[str]) -> bool:
    """A blank record: no cell, or only empty cells (a spreadsheet's ``,,,``), or one cell of
    spaces."""
    return all(cell == "" for cell in cells) or (len(cells) == 1 and not cells[0].strip(" \t"))


def _before_closing_quote(text: str) -> str:
    """The text of a quoted field's last line up to its closing quote (the first quote that is
    not doubled)."""
    k = 0
    while (k := text.find('"', k)) >= 0:
        if text[k + 1 : k + 2] != '"':
            return text[:k]
        k += 2
    return text


def _detect_separator(header: str) -> str:
    """``;`` for a header with semicolons and no commas; a tab for one with tabs and neither;
    otherwise ``,``."""
    if "," not in header and ";" in header:
        return ";"
    if "," not in header and ";" not in header and "\t" in header:
        return "\t"
    return ","


class CsvReader:
    """Read a CSV file of patient records in chunks, with the line number of every row.

    Parameters
    ----------
    stream : binary file
        The input as UTF-8 bytes, positioned at its start (a UTF-8 byte-order mark is skipped).
    name : str
        The input's name, for messages.
    separator : str, optional
        Field separator; default: the one an Excel ``sep=`` first line gives, else ``";"`` if
        the header line has semicolons and no commas, a tab if it has tabs and neither, else
        ``","``.
    decimal : str, optional
        Decimal mark; default ``","`` for ``;``-separated files, else ``"."``.
    chunk_rows : int
        How many records each chunk holds (fewer in the last, and in one that reached
        :data:`MAX_CHUNK_BYTES` of the input).
    engine : {"fast", "csv"}
        ``"csv"`` reads every record with Python's ``csv`` module, as the fast path does for a
        record it cannot read itself (tests hold the two to the same results).
    encoding : str
        The file's encoding, for :attr:`dialect` (the stream is UTF-8 whatever it is).

    Raises
    ------
    BatchError
        If the input is empty, not UTF-8 text, or has no readable header line (a quote that
        does not close, a line break inside a quoted name).
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
        encoding: str = "utf-8",
    ) -> None:
        if engine not in ("fast", "csv"):
            raise ValueError(f"engine must be 'fast' or 'csv', not {engine!r}")
        if separator is not None and separator not in SEPARATORS:
            raise ValueError(f"separator must be one of {SEPARATORS}, not {separator!r}")
        if decimal is not None and decimal not in DECIMALS:
            raise ValueError(f"decimal must be one of {DECIMALS}, not {decimal!r}")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
        self._open(stream, name, chunk_rows, engine)
        self._fill(_HEADER_BYTES)
        if self._pending.startswith(codecs.BOM_UTF8):
            self._take(len(codecs.BOM_UTF8), 0)
        header, self.header_line, sep, detected = self._read_header(separator)
        self.width = len(header)
        """Fields of the header, trailing empty ones included (every row must have as many)."""
        while len(header) > 1 and not header[-1].strip():
            header.pop()  # a spreadsheet's trailing empty header cells: their columns go
        self.header = header
        """The header's column names, without trailing empty ones."""
        self.dialect = Dialect(
            sep, decimal or ("," if sep == ";" else "."), detected=detected, encoding=encoding
        )
        if self.dialect.separator == self.dialect.decimal:
            raise BatchError(
                f"the separator and the decimal mark are both {sep!r}; give --decimal or --sep"
            )
        sample = self._pending[: 1 << 16]
        self._bytes_per_record = len(sample) // max(sample.count(b"\n"), 1) + 1
        ids = [
            s.position for s in match_columns(tuple(header)).sources if s.field.name == "patient_id"
        ]
        self._id_position = ids[0] if ids else None

    def _open(self, stream: BinaryIO, name: str, chunk_rows: int, engine: str) -> None:
        self.name, self._stream, self._chunk_rows = name, stream, chunk_rows
        self._engine = engine
        self.csv_module_from: int | None = None
        """The first line the ``csv`` module read (None: the fast path read every record)."""
        self._pending = b""
        self._consumed = 0  # bytes taken from the input
        self._eof = False
        self.line = 1  # the line the pending bytes start on
        self._slow = _SLOW_RECORDS
        """Records the ``csv`` module reads next time (see :data:`_SLOW_RECORDS`)."""
        self._at_stop = False
        """Whether the last fast read stopped before a record it cannot read (the ``csv``
        module reads on from there, without another scan)."""
        self._window = MAX_CHUNK_BYTES
        """Bytes the fast path looks at next, at most (see :data:`_PROBE_BYTES`)."""

    @classmethod
    def _resumed(cls, segment: Segment) -> CsvReader:
        """A reader of the records of ``segment`` (its layout stands for the header), in one
        chunk."""
        layout = segment.layout
        reader = cls.__new__(cls)
        reader._open(io.BytesIO(segment.data), layout.name, segment.lines + 1, layout.engine)
        reader.line = segment.line
        reader.header, reader.width, reader.dialect = layout.header, layout.width, layout.dialect
        reader.header_line, reader._id_position = layout.header_line, layout.id_position
        reader._bytes_per_record = len(segment.data) // max(segment.lines, 1) + 1
        return reader

    def _layout(self) -> _Layout:
        return _Layout(
            self.name,
            self.header,
            self.width,
            self.dialect,
            self.header_line,
            self._id_position,
            self._engine,
        )

    # ----------------------------------------------------------------------- buffer

    def _fill(self, size: int) -> None:
        """Read until ``size`` bytes are pending or the input ends."""
        while not self._eof and len(self._pending) < size:
            try:
                more = self._stream.read(max(size - len(self._pending), 1 << 16))
            except OSError as exc:
                raise BatchError(f"{self.name}: cannot read it ({exc.strerror or exc})") from None
            self._eof = not more
            self._pending += more

    def _take(self, end: int, lines: int) -> bytes:
        data, self._pending = self._pending[:end], self._pending[end:]
        self.line += lines
        self._consumed += end
        return data

    def _line_end_at(self, pos: int) -> int | None:
        """The end (past its line end) of the line that starts at ``pos`` of the pending bytes;
        None at the end of the input; -1 for a line longer than :data:`MAX_RECORD_BYTES`."""
        searched = pos
        while True:
            bound = pos + MAX_RECORD_BYTES + 2
            match = _LINE_END.search(self._pending, searched, bound)
            if match is not None and not (
                match.group() == b"\r" and match.end() == len(self._pending) and not self._eof
            ):  # a CR at the end of what was read may be the first half of a CRLF
                return match.end() if match.start() - pos <= MAX_RECORD_BYTES else -1
            if len(self._pending) - pos > MAX_RECORD_BYTES:
                return -1
            if self._eof:
                return len(self._pending) if len(self._pending) > pos else None
            searched = max(pos, len(self._pending) - 1)  # a CR there may start a CRLF
            # Grow geometrically: each fill copies the pending bytes once.
            self._fill(len(self._pending) + max(1 << 16, min(len(self._pending), 1 << 24)))

    def _skip_line(self) -> bytes:
        """Drop the (too long) line the pending bytes start with, without holding it; return
        its first bytes."""
        head = self._pending[: 64 << 10]
        checker = codecs.getincrementaldecoder("utf-8")()
        while True:
            match = _LINE_END.search(self._pending)
            end = match.end() if match is not None else len(self._pending)
            block = self._pending[:end]
            nul = block.find(b"\x00")
            try:  # whichever comes first, as decode_check
                checker.decode(block if nul < 0 else block[:nul], match is not None or nul >= 0)
            except UnicodeDecodeError as exc:
                raise _not_utf8(self.name, self.line, exc.object[exc.start]) from None
            if nul >= 0:
                raise _not_text(self.name, self.line)
            if match is not None and (
                match.group() != b"\r" or match.end() < len(self._pending) or self._eof
            ):
                self._take(match.end(), 1)
                return head
            self._take(len(self._pending), 0)
            self._fill(1 << 20)
            if not self._pending:
                self.line += 1
                return head

    # ----------------------------------------------------------------------- header

    def _read_header(self, separator: str | None) -> tuple[list[str], int, str, bool]:
        """Skip an Excel ``sep=`` line and blank lines, and read the header record; the
        separator is the one given, else the ``sep=`` line's, else detected from the header."""
        head = self._pending[:_HEADER_BYTES]
        decode_check(head, self.name, self.line, final=len(self._pending) <= _HEADER_BYTES)
        detected = separator is None
        excel = _EXCEL_SEPARATOR.match(codecs.utf_8_decode(head[:8], "replace")[0])
        if excel is not None and excel.group(1) in SEPARATORS:
            separator = separator or excel.group(1)
            self._take(len(excel.group(0)), 1 if excel.group(0)[-1:] in "\r\n" else 0)
        while True:
            end = self._line_end_at(0)
            if end is None:
                raise BatchError(f"{self.name}: the file is empty (it has no header line)")
            if end < 0:
                raise BatchError(f"{self.name}: no header line in the first 1 MB")
            decode_check(self._pending[:end], self.name, self.line)
            line = self._pending[:end].decode("utf-8")
            if not _BLANK.fullmatch(line.rstrip("\r\n")):
                break
            self._take(end, 1)
        sep = separator or _detect_separator(line)
        reader = csv.reader([line], delimiter=sep, strict=True)
        try:
            cells = next(reader)
        except csv.Error:
            raise BatchError(
                f"{self.name}, line {self.line}: the header's quotes do not close on its line "
                f"(a quote left open, text after a closing quote, or a line break inside a "
                f"quoted column name); fix the quoting of the column names"
            ) from None
        header_line = self.line
        self._take(end, 1)
        return cells, header_line, sep, detected

    # ----------------------------------------------------------------------- records

    def chunks(self) -> Iterator[Chunk]:
        """The data records, in chunks of ``chunk_rows`` records (rows and rejected lines; blank
        lines are in neither); a chunk holds fewer at the end of the input, when it has read
        :data:`MAX_CHUNK_BYTES` of it, and by the blank lines among what the fast path read
        (counted as records until the chunk's records are parsed)."""
        while (chunk := self._next_chunk()) is not None:
            yield chunk

    def segments(self) -> Iterator[Segment | Pieces]:
        """The data records, as :meth:`chunks` gives them, but for another process to read
        (:func:`read_segment`): as a :class:`Segment` of bytes wherever that process can read
        it on its own, about ``chunk_rows`` records that start and end where this reader would
        start and end a record, whatever comes before or after; elsewhere as :class:`Pieces`,
        the records this reader found (a chunk of them) but did not parse: the fast path's
        bytes, the ``csv`` module's cells. Parsing them is most of reading; finding them (the
        scan, and the ``csv`` module around stray quotes) is done here.

        That holds for a run of records, ending with a line end, that has no quote, or whose last
        quote is more than twice :data:`MAX_MULTILINE_RECORD_BYTES` before its end: a record that
        a quote opened before that stretch has either closed or been rejected (too long) before
        its end, and within it every line is a record. It holds too for a run of lines that the
        fast path vouches for as whole records, each on its own line, from this reader's place
        (a record's start) on: RFC 4180 quotes, no line end inside them (a file that quotes its
        text cells, as R's ``write.csv`` and REDCap write them). Elsewhere (a stray quote or a
        record of several lines near the end, a line with no line end within the bytes of
        ``chunk_rows`` records, bare CRs) this reader finds the next chunk's records itself: a
        file with a stray quote every few hundred lines mostly so, one with a stray quote every
        few thousand lines mostly in segments.
        """
        while True:
            size = min(self._chunk_rows * self._bytes_per_record, MAX_CHUNK_BYTES)
            self._fill(size)
            if not self._pending:
                return
            segment = self._segment(size)
            if segment is not None:
                yield segment
            elif (held := self._held()) is not None:
                yield Pieces(held, self._layout())
            else:  # pragma: no cover - bytes were pending, so _held read them
                return

    def _segment(self, size: int) -> Segment | None:
        """The next :class:`Segment` of at most ``size`` bytes (see :meth:`segments`), taken from
        the pending bytes; None where this reader must read the next chunk itself."""
        window = self._pending[:size]
        end = len(window) if self._eof and size >= len(self._pending) else 0
        end = end or window.rfind(b"\n") + 1
        if end == 0:
            return None  # no line end: a long line (or bare CRs), for the reader
        lines = window.count(b"\n", 0, end)
        if lines > 2 * self._chunk_rows:  # shorter records than the last ones: keep to chunk_rows
            found = np.flatnonzero(np.frombuffer(window, np.uint8, count=end) == _NEWLINE)
            end, lines = int(found[self._chunk_rows - 1]) + 1, self._chunk_rows
        data = window if end == len(window) else window[:end]
        if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
            return None  # bare CRs end lines too: this reader bounds them by --chunk-rows
        quote = data.rfind(b'"')
        if quote >= 0 and end - quote <= 2 * MAX_MULTILINE_RECORD_BYTES:
            # quotes near the end: a cut only where the fast path vouches for every line as a
            # whole record (an export that quotes its text cells: R's write.csv, REDCap)
            final = self._eof and end == len(self._pending)
            scan = _scan(data, ord(self.dialect.separator), final)
            if scan.stop or scan.end != end:
                return None
        segment = Segment(data, self.line, lines, self._layout())
        self._bytes_per_record = max(1, end // max(lines, 1))
        self._take(end, lines)
        self._at_stop = False  # what follows the segment is for the fast path to try first
        return segment

    def _next_chunk(self) -> Chunk | None:
        """The next chunk of :meth:`chunks`; None at the end of the input."""
        held = self._held()
        return None if held is None else self._chunk(*self._put_together(held))

    def _held(self) -> list[_Read | _Vouched] | None:
        """The pieces of the next chunk, not put together yet; None at the end of the input.

        The fast path stops at each record it cannot vouch for and the ``csv`` module reads on
        from there, so a file with a stray quote every few hundred lines is read in pieces of a
        few hundred records; they are put together into full chunks, since each chunk costs the
        same fixed time to validate, score and write, whatever its size."""
        sep = ord(self.dialect.separator)
        held: list[_Read | _Vouched] = []  # the pieces of the chunk
        room, start = self._chunk_rows, self._consumed  # records it lacks; where it starts
        limit = min(self._limit(room), self._window)
        while True:
            budget = MAX_CHUNK_BYTES - (self._consumed - start)  # bytes it may still read
            if held and (room <= 0 or budget <= 0):
                return held
            self._fill(limit)
            if not self._pending:
                return held or None
            window = self._pending[: min(limit, budget) if held else limit]
            final = self._eof and len(window) == len(self._pending)
            fast = self._engine == "fast" and not self._at_stop
            scan = _scan(window, sep, final) if fast else None
            if scan is not None and scan.starts.size:
                scan = scan.first(room)  # rows bounded as well as bytes
                data = window[: scan.end]
                decode_check(data, self.name, self.line)
                piece: _Read | _Vouched = _Vouched(data, scan.starts + self.line)
                self._take(scan.end, scan.lines)
                self._bytes_per_record = max(1, scan.end // scan.starts.size)
                if scan.stop and scan.starts.size < _SLOW_RECORDS:
                    self._slow *= 4  # records it cannot read come every few lines
                else:
                    self._slow = _SLOW_RECORDS
                self._at_stop = scan.stop  # the next record is for the csv module
                self._window *= 4
            elif scan is not None and not scan.stop and not final:
                if held and limit >= budget:
                    room = 0  # the record does not fit in this chunk's bytes: the next reads it
                else:
                    limit *= 2  # no record ends in the window: a long one (bounded by the scan)
                continue
            else:
                if self.csv_module_from is None:
                    self.csv_module_from = self.line
                size = self._chunk_rows if self._engine == "csv" else self._slow
                piece = self._read_slowly(min(size, room), budget)
                if scan is not None:  # the fast path stopped at once: bigger slow reads next
                    self._slow *= 4  # (a file with a bare CR or 5"7 on every line)
                self._at_stop, self._window = False, _PROBE_BYTES
            held.append(piece)
            if isinstance(piece, _Vouched):
                room -= piece.lines.size
            else:
                room -= len(piece.rows) + len(piece.problems)
            limit = min(self._limit(room), self._window)

    def _put_together(self, held: list[_Read | _Vouched]) -> _Piece:
        """One piece of a chunk's pieces, in line order: the records the fast path vouched for
        parsed by pyarrow in one call, and those the ``csv`` module read made into one frame
        (either costs about a millisecond a time whatever its size, and a file with a stray
        quote every hundred lines has a piece of each for every one)."""
        vouched = [piece for piece in held if isinstance(piece, _Vouched)]
        read = [piece for piece in held if isinstance(piece, _Read)]
        pieces = []
        if read:
            pieces.append(
                self._piece(
                    _Read(
                        [row for piece in read for row in piece.rows],
                        [number for piece in read for number in piece.numbers],
                        [problem for piece in read for problem in piece.problems],
                        {k: v for piece in read for k, v in piece.ids.items()},
                    )
                )
            )
        if vouched:
            data = b"".join(piece.data for piece in vouched)
            parsed = self._parse(data, np.concatenate([piece.lines for piece in vouched]))
            if parsed is None:  # pyarrow and the scan disagree somewhere: each on its own
                parsed = _joined(
                    [self._parse(*piece) or self._read_aside(piece) for piece in vouched]
                )
            pieces.insert(0, parsed)
        frame, problems, ids = _joined(pieces)
        if len(pieces) > 1:
            frame = frame.sort_index(kind="stable")
        return frame, problems, ids

    def _piece(self, read: _Read) -> _Piece:
        """The records the ``csv`` module read, as a frame (columns numbered, index: lines)."""
        frame = pd.DataFrame(read.rows, columns=range(self.width), dtype="str")
        frame.index = pd.Index(np.asarray(read.numbers, dtype=np.int64), name="line")
        return frame, read.problems, read.ids

    def _read_aside(self, vouched: _Vouched) -> _Piece:
        """The records of bytes already taken, read by the ``csv`` module (where pyarrow does
        not read them as the fast path's scan does)."""
        line = int(vouched.lines[0])
        count = _line_ends(vouched.data, len(vouched.data))
        reader = CsvReader._resumed(Segment(vouched.data, line, count, self._layout()))
        if self.csv_module_from is None or line < self.csv_module_from:
            self.csv_module_from = line
        return reader._piece(reader._read_slowly(vouched.lines.size, len(vouched.data)))

    def _limit(self, records: int) -> int:
        """Bytes to look at for ``records`` records: an eighth more than the last ones took, so
        that a chunk is one piece when records are about as long as those."""
        return max(1, min(records * self._bytes_per_record * 9 // 8, MAX_CHUNK_BYTES))

    def _parse(self, data: bytes, lines: np.ndarray) -> _Piece | None:
        """Cells of the records in ``data`` (starting on ``lines``) by pyarrow, and the ragged
        ones; None if pyarrow and the scan disagree on the records, or a ragged record spans
        several lines (the ``csv`` module then reads them: see :meth:`_read_slowly`)."""
        if data.startswith(codecs.BOM_UTF8):
            return None  # pyarrow would drop a byte-order mark there; the csv module keeps it
        names = [str(k) for k in range(self.width)]
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
        problems: list[Problem] = []
        ids: dict[int, str] = {}
        keep = np.ones(lines.size, dtype=bool)
        for row in invalid:
            if row.number is None or any(c in row.text.rstrip("\r\n") for c in "\r\n"):
                return None
            k = row.number - 1
            keep[k] = False
            cells = next(csv.reader([row.text], delimiter=self.dialect.separator), [])
            if not _is_blank(cells):
                self._reject_ragged(int(lines[k]), cells, row.text, problems, ids)
        empty = None
        for column in table.columns:
            if self.width == 1:  # one cell of spaces is a blank line (as _is_blank says)
                column = pac.utf8_trim(column, characters=" \t")
            blank = pac.equal(pac.binary_length(column), 0)
            empty = blank if empty is None else pac.and_(empty, blank)
        if empty is not None and pac.any(empty).as_py():
            table = table.filter(pac.invert(empty))
            rows = np.flatnonzero(keep)
            keep[rows[empty.to_numpy()]] = False
        frame = table.to_pandas()
        frame.columns = range(self.width)  # as the csv module's pieces have them
        frame.index = pd.Index(lines[keep], name="line")
        return frame, problems, ids

    def _read_slowly(self, count: int, budget: int) -> _Read:
        """Read up to ``count`` records (and about ``budget`` bytes: the last record read may
        go past it) one at a time with the ``csv`` module (strict RFC 4180 quoting; a quote
        inside an unquoted field is text), rejecting a line whose quote does not close (or that
        quotes join to the next lines into a record of the wrong width), or that is too long,
        and going on from the next line."""
        sep = self.dialect.separator
        rows: list[list[str]] = []
        numbers: list[int] = []
        problems: list[Problem] = []
        ids: dict[int, str] = {}
        pos, line = 0, self.line
        while len(rows) + len(problems) < count and pos < budget:
            first = self._line_end_at(pos)
            if first is None:
                break
            if first < 0:  # a line over MAX_RECORD_BYTES: skipped without being held
                self._take(pos, line - self.line)
                head = self._skip_line().decode("utf-8", "replace")
                self._reject_line(line, Reason.RECORD_TOO_LONG, head, problems, ids)
                pos, line = 0, self.line
                continue
            ends: list[int] = []
            reader = csv.reader(self._lines(pos, line, ends), delimiter=sep, strict=True)
            try:
                cells = next(reader)
            except (csv.Error, _Overlong):
                text = self._pending[pos:first].decode("utf-8")
                self._reject_line(line, Reason.UNCLOSED_QUOTE, text, problems, ids)
                pos, line = first, line + 1
                continue
            text = self._pending[pos : ends[-1]].decode("utf-8")
            if len(ends) > 1 and (len(cells) != self.width or self._swallows(pos, ends)):
                # Several lines joined by quotes into a record of the wrong width, or holding a
                # line that is a whole record by itself: a stray quote on the first line, most
                # likely. Reject that line alone and read on from the next.
                text = self._pending[pos:first].decode("utf-8")
                self._reject_line(line, Reason.UNCLOSED_QUOTE, text, problems, ids)
                pos, line = first, line + 1
                continue
            if not _is_blank(cells):
                if len(cells) != self.width:
                    self._reject_ragged(line, cells, text, problems, ids)
                else:
                    rows.append(cells)
                    numbers.append(line)
            pos, line = ends[-1], line + len(ends)
        self._take(pos, line - self.line)
        return _Read(rows, numbers, problems, ids)

    def _swallows(self, pos: int, ends: list[int]) -> bool:
        """Whether a record of several lines (from ``pos``, its lines ending at ``ends``) holds
        a whole record of the file inside a quoted field: a line between its first and last
        that has the header's width on its own (and whose own quotes close: a line that ends
        one quoted field and opens the next is part of a quoted record), or a last line whose
        text up to the closing quote has it. That is patients a stray quote joined into one
        cell."""
        sep = self.dialect.separator
        starts = [pos, *ends[:-1]]
        for k in range(1, len(ends)):
            text = self._pending[starts[k] : ends[k]].decode("utf-8").rstrip("\r\n")
            if k == len(ends) - 1:
                text = _before_closing_quote(text)
            try:  # strict: a line whose own quotes do not close is part of a quoted field
                cells = next(csv.reader([text], delimiter=sep, strict=True), [])
            except csv.Error:
                continue
            if len(cells) == self.width:
                return True
        return False

    def _lines(self, pos: int, line: int, ends: list[int]) -> Iterator[str]:
        """The lines of the pending bytes from ``pos`` (the line numbered ``line``) as text,
        recording where each ends; raises _Overlong once a record of several lines runs past
        :data:`MAX_MULTILINE_RECORD_BYTES` (the caller reads one record from it)."""
        start = pos
        while True:
            end = self._line_end_at(pos)
            if end is None:
                return
            if ends and (end < 0 or end - start > MAX_MULTILINE_RECORD_BYTES):
                raise _Overlong
            data = self._pending[pos:end]
            decode_check(data, self.name, line + len(ends))
            if len(ends) == 1 and self._whole_record_without_quotes(data):
                # A second line is wanted (a quoted field is open) and it is a record of the
                # header's width with no quote to close the field: the record would hold it
                # whole (see _swallows), so its first line is rejected, without reading on.
                raise _Overlong
            ends.append(end)
            yield data.decode("utf-8")
            pos = end

    def _whole_record_without_quotes(self, data: bytes) -> bool:
        """Whether a line is a whole record of the header's width on its own, with no quote (as
        :meth:`_swallows` reads a line inside a record)."""
        if b'"' in data:
            return False
        text = data.decode("utf-8").rstrip("\r\n")
        return (
            len(next(csv.reader([text], delimiter=self.dialect.separator, strict=True), []))
            == self.width
        )

    def _keep_id(self, line: int, cells: list[str], ids: dict[int, str]) -> None:
        """Record the patient_id that a rejected line's ``cells`` hold, if any."""
        k = self._id_position
        if k is not None and k < len(cells) and cells[k]:
            ids[line] = cells[k]

    def _reject_ragged(
        self, line: int, cells: list[str], text: str, problems: list[Problem], ids: dict[int, str]
    ) -> None:
        problems.append(
            wrong_field_count(
                line, len(cells), self.width, text.rstrip("\r\n"), self.dialect.separator
            )
        )
        self._keep_id(line, cells, ids)

    def _reject_line(
        self, line: int, reason: Reason, text: str, problems: list[Problem], ids: dict[int, str]
    ) -> None:
        text = text.rstrip("\r\n")
        problems.append(rejected_line(line, reason, text))
        cells = next(csv.reader([text], delimiter=self.dialect.separator), [])
        if self._id_position is not None and len(cells) <= self._id_position:
            cells = text.split(self.dialect.separator)  # a quote that never closed took them
        self._keep_id(line, cells, ids)

    def _chunk(self, frame: pd.DataFrame, problems: list[Problem], ids: dict[int, str]) -> Chunk:
        """Name the columns; a row with a value under a trailing unnamed header cell is
        rejected, and those columns are dropped."""
        named = len(self.header)
        if self.width > named:
            extra = frame.iloc[:, named:]
            stray = (extra.apply(lambda column: column.str.strip() != "")).any(axis=1)
            for line in frame.index[stray.to_numpy()].tolist():
                cells = frame.loc[line].tolist()
                text = self.dialect.separator.join(cells)
                problems.append(rejected_line(line, Reason.WRONG_FIELD_COUNT, text, named=named))
                self._keep_id(line, cells, ids)
            frame = frame.loc[~stray.to_numpy()].iloc[:, :named]
        frame.columns = self.header
        problems.sort(key=lambda p: p.row)
        return Chunk(frame, problems, ids)


def read_segment(segment: Segment | Pieces) -> Chunk:
    """The records of a :class:`Segment` or :class:`Pieces` (from :meth:`CsvReader.segments`)
    as one chunk: the same rows, problems and line numbers as the reader that made it would have
    read there."""
    if isinstance(segment, Pieces):
        reader = CsvReader._resumed(Segment(b"", segment.line, 0, segment.layout))
        chunk = reader._chunk(*reader._put_together(segment.held))
        return chunk._replace(csv_module_from=reader.csv_module_from)
    reader = CsvReader._resumed(segment)
    chunks = list(reader.chunks())
    if not chunks:  # blank lines only
        chunks = [reader._chunk(*reader._piece(_Read([], [], [], {})))]
    assert len(chunks) == 1, "a segment is at most chunk_rows records and MAX_CHUNK_BYTES"
    return chunks[0]._replace(csv_module_from=reader.csv_module_from)


def rejected_line(line: int, reason: Reason, text: str, *, named: int = 0) -> Problem:
    """The problem of a line the reader rejects whole (``unclosed_quote``,
    ``record_too_long``, or a value under a header's trailing unnamed cells).

    Parameters
    ----------
    line : int
        The line number in the file (the header is line 1).
    reason : Reason
        Why.
    text : str
        The line as read (cut by ``shortened`` for the rejects file).
    named : int
        For a value under an unnamed header cell: how many header cells have names.
    """
    shown = shortened(text)
    if reason is Reason.UNCLOSED_QUOTE:
        message = (
            f"line {line} opens a quoted field that does not close as CSV requires (a closing "
            f"quote must be followed by the separator or the line end, within "
            f"{MAX_MULTILINE_RECORD_BYTES // 1024} KiB, and a quoted field may not hold whole "
            f"records of the file); the line is rejected and reading goes on at line "
            f"{line + 1}: check its quotes"
        )
    elif reason is Reason.RECORD_TOO_LONG:
        message = (
            f"line {line} is longer than {MAX_RECORD_BYTES // 2**20} MiB; it is skipped: check "
            f"that the file is a CSV file of patient records"
        )
    else:
        message = (
            f"line {line} has a value after the header's last named column ({named}); name "
            f"that column in the header, or remove the value"
        )
    return Problem(line, "", "", shown, reason, message)
