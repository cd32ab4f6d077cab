"""Open a patient-records input as a stream of UTF-8 bytes, whatever its encoding or compression.

The CSV reader works on raw UTF-8 bytes; this module is what stands between it and the file a
clinic sends. :func:`open_input` takes a path, ``"-"`` (standard input) or an open binary file,
and gives back a binary stream of UTF-8 bytes with any byte-order mark removed:

- A plain UTF-8 file is passed through untouched: its bytes are not decoded here (the reader
  checks them itself and names the line of a bad byte), so this costs nothing per byte.
- gzip data, recognised by its first two bytes (``1f 8b``) whatever the file is called, is
  decompressed as it is read. A zip archive (an Excel ``.xlsx`` workbook is one), an Excel
  ``.xls`` workbook, and bzip2, xz or zstd data are recognised and refused with a clear message.
- A byte-order mark decides the encoding: UTF-8 (dropped), UTF-16 or UTF-32 (little- or
  big-endian; decoded and re-encoded to UTF-8 as the stream is read). **A byte-order mark always
  wins over ``encoding``**: it is the file's own statement and cannot be mistaken for text in
  any of the encodings accepted (``"ï»¿"`` or ``"ÿþ"`` do not start a CSV file).
- Otherwise the file is read in ``encoding`` (one of :data:`ENCODINGS`; default UTF-8). cp1252,
  latin-1 and BOM-less UTF-16 are decoded in blocks of :data:`BLOCK_BYTES` and re-encoded to
  UTF-8, in bounded memory.
- UTF-16 without a byte-order mark is not detected, since nothing in its bytes says so with
  certainty; but a file whose first four bytes look like ASCII text in UTF-16 (``"p\\0a\\0"``) is
  refused with a message saying to give ``--encoding utf-16-le`` (or ``-be``), rather than left
  to the reader, which would only see NUL bytes.

Every problem is an :class:`InputError` with a one-line message that names the input and, for a
byte that cannot be decoded, its line (the first line is 1) and the byte's value, never the text
around it.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import gzip
import io
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from encodings import cp1252
from enum import StrEnum
from typing import Any, BinaryIO, cast

from data_schemas import PredictorError

ENCODINGS = ("utf-8", "cp1252", "latin-1", "utf-16", "utf-16-le", "utf-16-be")
"""Encodings ``encoding=`` (``--encoding``) accepts, in any spelling Python knows
(``"windows-1252"``, ``"iso-8859-1"``, ``"UTF-16LE"``...; ``"ascii"`` is read as UTF-8).
``"utf-16"`` reads a file without a byte-order mark as little-endian, as Windows writes it.
UTF-16 and UTF-32 files with a byte-order mark are read whatever ``encoding`` says."""

BLOCK_BYTES = 1 << 20
"""Bytes read from the input at a time when it is decoded here (memory stays within a few of
these)."""

_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_BYTES = 10
"""Bytes looked at before deciding how to read the input (the longest signature below)."""

_BYTE_ORDER_MARKS = (  # UTF-32-LE first: its mark starts with UTF-16-LE's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_SAVE_AS_CSV = "open it in the spreadsheet program and save the sheet as CSV UTF-8"
_DECOMPRESS = "decompress it first, or compress it with gzip, which is read directly"
_NOT_CSV = (  # signature at the start of the data, what it is, how to fix it
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one)", _SAVE_AS_CSV),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel .xls workbook", _SAVE_AS_CSV),
    (b"\xfd7zXZ\x00", "xz-compressed", _DECOMPRESS),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", _DECOMPRESS),
    (b"BZh", "bzip2-compressed", _DECOMPRESS),  # only with a block magic next: see _check_data
)
_BZIP2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")  # a compressed block, or the end of an empty file


class InputReason(StrEnum):
    """Stable reason codes of :class:`InputError`."""

    NO_SUCH_FILE = "no_such_file"
    NOT_A_FILE = "not_a_file"
    UNREADABLE = "unreadable"
    CORRUPT_GZIP = "corrupt_gzip"
    NOT_CSV = "not_csv"
    UNKNOWN_ENCODING = "unknown_encoding"
    NOT_DECODABLE = "not_decodable"
    UTF16_WITHOUT_BOM = "utf16_without_bom"


class InputError(PredictorError, ValueError):
    """The input cannot be read as text: it is missing or unreadable, corrupt gzip data, not a
    CSV file at all, or not in the encoding it is read in.

    Parameters
    ----------
    message : str
        One line: what is wrong and how to fix it; never a value from the file.
    reason : InputReason
        Stable reason code.
    line : int, optional
        The line of the input the problem is on (the first line is 1), when there is one.
    """

    def __init__(self, message: str, *, reason: InputReason, line: int | None = None) -> None:
        super().__init__(message)
        self.reason, self.line = InputReason(reason), line


@dataclass(frozen=True)
class _Codec:
    """How to decode one encoding in blocks: ``decode(data, final)`` gives the text and the
    bytes it used (a character cut by the end of a block waits for the next one)."""

    name: str
    decode: Callable[[bytes, bool], tuple[str, int]]
    single_byte: bool
    """One byte per character, ASCII as itself: a block of ASCII bytes is already UTF-8."""

    @property
    def label(self) -> str:
        return self.name.upper() if self.name.startswith("utf") else self.name


def _cp1252(data: bytes, final: bool) -> tuple[str, int]:
    return codecs.charmap_decode(data, "strict", cp1252.decoding_table)


def _latin_1(data: bytes, final: bool) -> tuple[str, int]:
    return codecs.latin_1_decode(data, "strict")


def _codec_table() -> dict[str, _Codec]:
    table = {
        "cp1252": _Codec("cp1252", _cp1252, True),
        "latin-1": _Codec("latin-1", _latin_1, True),
    }
    for name, decode in (
        ("utf-16-le", codecs.utf_16_le_decode),
        ("utf-16-be", codecs.utf_16_be_decode),
        ("utf-32-le", codecs.utf_32_le_decode),
        ("utf-32-be", codecs.utf_32_be_decode),
    ):
        table[name] = _Codec(name, functools.partial(_strict, decode), False)
    return table


def _strict(decode: Any, data: bytes, final: bool) -> tuple[str, int]:
    return decode(data, "strict", final)


_CODECS = _codec_table()
_SPELLINGS = {  # codecs.lookup(...).name -> our spelling (None: UTF-8, passed through)
    "utf-8": None,
    "utf-8-sig": None,
    "ascii": None,  # a subset of UTF-8
    "cp1252": "cp1252",
    "iso8859-1": "latin-1",
    "utf-16": "utf-16-le",
    "utf-16-le": "utf-16-le",
    "utf-16-be": "utf-16-be",
}


@dataclass(frozen=True)
class OpenedInput:
    """An input opened by :func:`open_input`.

    Attributes
    ----------
    stream : binary file
        The text as UTF-8 bytes, byte-order mark removed; ``read(n)`` gives at most ``n``
        bytes, and ``b""`` only at the end. Decoding and decompression errors are raised from
        it as :class:`InputError`.
    name : str
        The input's name for messages: the path as given, ``"standard input"``, or the file
        object's ``name`` (``"input"`` if it has none).
    size : int or None
        Bytes of the input when it is a regular file (from the current position for a file
        object or redirected standard input), for a progress bar; None for a pipe.
    encoding : str
        The encoding it is read in: ``"utf-8"``, ``"cp1252"``, ``"latin-1"``, ``"utf-16-le"``,
        ``"utf-16-be"``, ``"utf-32-le"`` or ``"utf-32-be"``.
    bom : bool
        Whether it starts with a byte-order mark (which then chose ``encoding``).
    compression : str or None
        ``"gzip"``, or None.
    """

    stream: BinaryIO
    name: str
    size: int | None
    encoding: str
    bom: bool = False
    compression: str | None = None
    _source: _Replay | None = field(default=None, repr=False, compare=False)

    def position(self) -> int:
        """Bytes of the input (compressed, before decoding) read so far; with :attr:`size`,
        the progress. It runs ahead of what ``stream`` gave by up to a block or so."""
        return self._source.count if self._source is not None else 0

    def describe(self) -> str:
        """``"UTF-16-LE (byte-order mark), gzip"``, for a summary."""
        text = _CODECS[self.encoding].label if self.encoding in _CODECS else "UTF-8"
        if self.bom:
            text += " (byte-order mark)"
        return f"{text}, {self.compression}" if self.compression else text


class _Stream(io.RawIOBase):
    """A read-only binary stream defined by its ``read(size)``."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:  # pragma: no cover - every subclass has one
        raise NotImplementedError

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        view = memoryview(buffer).cast("B")
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return b"".join(iter(functools.partial(self.read, BLOCK_BYTES), b""))


class _Replay(_Stream):
    """``inner`` with a look-ahead: bytes looked at are given again by ``read``. ``count``: the
    bytes read from ``inner`` so far. With ``name``, an ``OSError`` while reading is an
    :class:`InputError`."""

    def __init__(self, inner: Any, name: str | None = None) -> None:
        self._inner, self._name = inner, name
        self._head = b""
        self.count = 0

    def _read_inner(self, size: int) -> bytes:
        try:
            data = self._inner.read(size) or b""
        except OSError as exc:
            if self._name is None:
                raise
            raise InputError(
                f"{self._name}: cannot read it ({exc.strerror or exc})",
                reason=InputReason.UNREADABLE,
            ) from exc
        self.count += len(data)
        return data

    def look_ahead(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer at the end), which ``read`` will still give."""
        while len(self._head) < size:
            more = self._read_inner(size - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:size]

    def skip(self, size: int) -> None:
        """Drop ``size`` bytes already looked at."""
        self._head = self._head[size:]

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if not self._head:
            return self._read_inner(size)
        if len(self._head) >= size:
            data, self._head = self._head[:size], self._head[size:]
            return data
        data, self._head = self._head, b""
        return data + self._read_inner(size - len(data))


class _Gunzip(_Stream):
    """The decompressed data of a gzip stream; corrupt or truncated data is an InputError."""

    def __init__(self, inner: _Replay, name: str) -> None:
        self._gzip, self._name = gzip.GzipFile(fileobj=inner, mode="rb"), name

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._gzip.read(-1 if size is None else size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            problem = _gzip_problem(exc)
        raise InputError(  # not chained: gzip's message may quote bytes of the file
            f"{self._name}: the gzip data is corrupt or truncated ({problem})",
            reason=InputReason.CORRUPT_GZIP,
        )

    def close(self) -> None:
        self._gzip.close()
        super().close()


def _gzip_problem(exc: Exception) -> str:
    """What is wrong with gzip data, in words of ours: gzip's own message may quote its bytes."""
    if isinstance(exc, EOFError):
        return "it ends before the end of the compressed data"
    if isinstance(exc, zlib.error):
        return "invalid compressed data"
    text = str(exc)
    for start, problem in (
        ("CRC check", "CRC check failed"),
        ("Incorrect length", "length check failed"),
        ("Not a gzipped", "data after the compressed data is not gzip"),
    ):
        if text.startswith(start):
            return problem
    return "invalid gzip header"


_SURROGATE_REASONS = (  # Python's words for a UTF-16 or UTF-32 surrogate without its pair
    "illegal encoding",
    "illegal UTF-16 surrogate",
    "code point in surrogate code point range(0xd800, 0xe000)",
)


class _Transcoder(_Stream):
    """``inner``'s text in ``codec``, as UTF-8: decoded a block at a time."""

    def __init__(self, inner: _Stream, codec: _Codec, name: str) -> None:
        self._inner, self._codec, self._name = inner, codec, name
        self._out, self._at = b"", 0
        self._undecoded = b""
        self._lines = 0  # line ends in the output so far
        self._done = False

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        while self._at >= len(self._out):
            if self._done or size == 0:
                return b""
            self._out, self._at = self._next_block(), 0
        if self._at == 0 and size >= len(self._out):
            data, self._out = self._out, b""
            return data
        data = self._out[self._at : self._at + size]
        self._at += len(data)
        return data

    def _next_block(self) -> bytes:
        data = self._inner.read(BLOCK_BYTES)
        final = not data
        if self._undecoded:
            data = self._undecoded + data
        if self._codec.single_byte and data.isascii():
            out, used = data, len(data)
        else:
            try:
                text, used = self._codec.decode(data, final)
            except UnicodeDecodeError as exc:  # not chained: it holds the block's text
                raise self._error(data, exc, final) from None
            out = text.encode("utf-8")
        self._undecoded = data[used:]
        self._lines += out.count(b"\n")
        self._done = final
        return out

    def _error(self, data: bytes, exc: UnicodeDecodeError, final: bool) -> InputError:
        before = self._codec.decode(data[: exc.start], False)[0]
        line = self._lines + 1 + before.count("\n")
        bad = " ".join(f"0x{byte:02x}" for byte in data[exc.start : min(exc.end, exc.start + 4)])
        label = self._codec.label
        if self._codec.single_byte:
            message = (
                f"{self._name}: line {line} is not {label} text (byte {bad} has no character "
                f"in {label}); if the file is UTF-8, leave out --encoding, else save it as CSV "
                f"UTF-8"
            )
        elif final and exc.reason in ("truncated data", "unexpected end of data"):
            message = (
                f"{self._name}: the file ends in the middle of a {label} character (line "
                f"{line}); it is cut short"
            )
        else:
            problem = "a lone surrogate" if exc.reason in _SURROGATE_REASONS else exc.reason
            message = (
                f"{self._name}: line {line} is not valid {label} text ({problem}: bytes "
                f"{bad}); save the file as CSV UTF-8"
            )
        return InputError(message, reason=InputReason.NOT_DECODABLE, line=line)


def _codec_for(encoding: str | None) -> _Codec | None:
    """The codec for ``encoding`` (None: UTF-8, passed through)."""
    if encoding is None:
        return None
    accepted = ", ".join(ENCODINGS)
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(
            f"unknown encoding {encoding!r}; give one of {accepted}",
            reason=InputReason.UNKNOWN_ENCODING,
        ) from None
    if name not in _SPELLINGS:
        raise InputError(
            f"the encoding {encoding!r} is not read; give one of {accepted}, or save the file "
            f"as CSV UTF-8",
            reason=InputReason.UNKNOWN_ENCODING,
        )
    spelling = _SPELLINGS[name]
    return None if spelling is None else _CODECS[spelling]


def _size(file: Any) -> int | None:
    """Bytes from ``file``'s position to its end, if it is a regular file (or BytesIO)."""
    try:
        status = os.fstat(file.fileno())
    except (AttributeError, OSError, ValueError):
        if isinstance(file, io.BytesIO):
            return len(file.getbuffer()) - file.tell()
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    try:
        return max(status.st_size - file.tell(), 0)
    except (AttributeError, OSError, ValueError):
        return status.st_size


def _open_source(
    source: str | os.PathLike[str] | BinaryIO, stack: contextlib.ExitStack
) -> tuple[Any, str]:
    """The binary file to read and its name for messages; a file opened here closes with
    ``stack``."""
    if isinstance(source, io.TextIOBase):
        raise TypeError("open_input needs a binary file: open it with mode 'rb'")
    if isinstance(source, str) and source == "-":
        if sys.stdin is None:
            raise InputError("standard input is closed", reason=InputReason.UNREADABLE)
        return getattr(sys.stdin, "buffer", sys.stdin), "standard input"
    if not isinstance(source, (str, os.PathLike)):
        name = getattr(source, "name", None)
        return source, name if isinstance(name, str) else "input"
    name = os.fsdecode(source)
    try:
        file = open(source, "rb")  # noqa: SIM115 - closed by the stack
    except FileNotFoundError:
        raise InputError(f"{name}: no such file", reason=InputReason.NO_SUCH_FILE) from None
    except IsADirectoryError:
        raise InputError(
            f"{name}: is a directory, not a file", reason=InputReason.NOT_A_FILE
        ) from None
    except OSError as exc:
        raise InputError(
            f"{name}: cannot read it ({exc.strerror or exc})", reason=InputReason.UNREADABLE
        ) from None
    stack.enter_context(file)
    return file, name


def _check_data(head: bytes, name: str, *, decompressed: bool) -> None:
    """Refuse data that is not text: an archive, a workbook, other compression."""
    if decompressed and head.startswith(_GZIP_MAGIC):
        raise InputError(
            f"{name}: is compressed twice with gzip; decompress it once first",
            reason=InputReason.NOT_CSV,
        )
    for magic, what, fix in _NOT_CSV:
        if head.startswith(magic) and (magic != b"BZh" or head[4:10] in _BZIP2_BLOCKS):
            inside = "gzip data holding " if decompressed else ""
            raise InputError(
                f"{name}: is {inside}{what}, not a CSV text file; {fix}",
                reason=InputReason.NOT_CSV,
            )


def _check_not_utf16(head: bytes, name: str) -> None:
    """Refuse ASCII text in UTF-16 without a byte-order mark (every other byte NUL)."""
    if len(head) < 4:
        return
    even, odd = head[0:4:2], head[1:4:2]
    order = (
        "le"
        if odd == b"\0\0" and 0 not in even
        else "be"
        if even == b"\0\0" and 0 not in odd
        else None
    )
    if order is not None:
        raise InputError(
            f"{name}: looks like UTF-16 text without a byte-order mark; give --encoding "
            f"utf-16-{order}, or save the file as CSV UTF-8",
            reason=InputReason.UTF16_WITHOUT_BOM,
        )


@contextlib.contextmanager
def open_input(
    source: str | os.PathLike[str] | BinaryIO, *, encoding: str | None = None
) -> Iterator[OpenedInput]:
    """Open a patient-records input for reading as UTF-8 bytes.

    Parameters
    ----------
    source : path, ``"-"`` or binary file
        The input: a file (regular file, FIFO, device), ``"-"`` for standard input (a
        ``Path("-")`` is the file named ``-``), or a binary file object, read from its position
        and left open.
    encoding : str, optional
        The encoding of a file without a byte-order mark: one of :data:`ENCODINGS`; default
        UTF-8. A byte-order mark always wins.

    Yields
    ------
    OpenedInput
        The stream of UTF-8 bytes and what a caller needs for messages and progress. A file
        opened here is closed on leaving the ``with`` block.

    Raises
    ------
    InputError
        If the encoding is not accepted, the file is missing, a directory or unreadable, or
        its data is an archive, a workbook, or compressed other than with gzip; and, from the
        stream's ``read``, if its gzip data is corrupt or truncated or it cannot be decoded.
    TypeError
        If ``source`` is a text file object.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "in.csv"
    >>> _ = path.write_bytes("patient_id,site\\nK-1,Malmö\\n".encode("utf-16"))
    >>> with open_input(path) as opened:
    ...     print(opened.encoding, opened.bom, opened.size)
    ...     opened.stream.read().decode("utf-8")
    utf-16-le True 54
    'patient_id,site\\nK-1,Malmö\\n'
    """
    wanted = _codec_for(encoding)  # before opening: a pipe's writer may wait on us
    with contextlib.ExitStack() as stack:
        file, name = _open_source(source, stack)
        size = _size(file)
        counted = _Replay(file, name)
        stack.callback(counted.close)
        data, compression = counted, None
        head = counted.look_ahead(_SNIFF_BYTES)
        if head.startswith(_GZIP_MAGIC):
            gunzip = _Gunzip(counted, name)
            stack.callback(gunzip.close)
            data, compression = _Replay(gunzip), "gzip"
            stack.callback(data.close)
            head = data.look_ahead(_SNIFF_BYTES)
        _check_data(head, name, decompressed=compression is not None)
        marked = next(
            ((bom, codec) for bom, codec in _BYTE_ORDER_MARKS if head.startswith(bom)), None
        )
        codec = wanted
        if marked is not None:
            data.skip(len(marked[0]))
            codec = None if marked[1] == "utf-8" else _CODECS[marked[1]]
        elif codec is None or codec.single_byte:
            _check_not_utf16(head, name)
        stream: _Stream = data
        if codec is not None:
            stream = _Transcoder(data, codec, name)
            stack.callback(stream.close)
        yield OpenedInput(
            stream=cast(BinaryIO, stream),
            name=name,
            size=size,
            encoding="utf-8" if codec is None else codec.name,
            bom=marked is not None,
            compression=compression,
            _source=counted,
        )
