"""Opening an input as UTF-8 bytes (``predictor.io._input_stream``): encodings, byte-order
marks, gzip, standard input, pipes and FIFOs, bounded memory, and clear one-line errors with
line numbers."""

from __future__ import annotations

import codecs
import errno
import gzip
import io
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from predictor.io import _input_stream as input_stream
from predictor.io._input_stream import (
    BLOCK_BYTES,
    ENCODINGS,
    InputError,
    InputReason,
    OpenedInput,
    open_input,
)

ROOT = Path(__file__).resolve().parents[1]
TEXT = "patient_id,site,crp_mg_l\nK-1,Malmö,0.9\nK-2,Besançon,5.2\n"
"""A small file whose non-ASCII letters exist in every encoding read."""
CP1252_UNDEFINED = (0x81, 0x8D, 0x8F, 0x90, 0x9D)
CP1252_TEXT = "".join(bytes([b]).decode("cp1252") for b in range(256) if b not in CP1252_UNDEFINED)
BOMS = (
    codecs.BOM_UTF8,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
    codecs.BOM_UTF32_LE,
    codecs.BOM_UTF32_BE,
)
SIGNATURES = (  # what open_input reads as something other than text at the start of the data
    b"\x1f\x8b",  # gzip
    b"PK\x03\x04",  # zip, xlsx
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # xls
    b"\xfd7zXZ\x00",  # xz
    b"\x28\xb5\x2f\xfd",  # zstd
    b"BZh",  # bzip2 (with a block magic after it)
)


def read_all(opened: OpenedInput, sizes: list[int] | None = None) -> bytes:
    """Everything the stream gives, in reads of ``sizes`` (cycled; default 1 MiB)."""
    sizes = sizes or [1 << 20]
    parts, k = [], 0
    while data := opened.stream.read(sizes[k % len(sizes)]):
        assert len(data) <= sizes[k % len(sizes)]
        parts.append(data)
        k += 1
    return b"".join(parts)


def decoded(data: bytes, **options: Any) -> bytes:
    with open_input(io.BytesIO(data), **options) as opened:
        return read_all(opened)


class Trickle(io.RawIOBase):
    """A pipe-like binary stream: each read gives at most ``step`` bytes."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step, self._at = data, step, 0
        self.largest_read = 0
        self.given = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        size = len(self._data) if size is None or size < 0 else size
        self.largest_read = max(self.largest_read, size)
        data = self._data[self._at : self._at + min(size, self._step)]
        self._at += len(data)
        self.given += len(data)
        return data


# -- encodings, byte-order marks, gzip ---------------------------------------------------------


def _gz(data: bytes) -> bytes:
    return gzip.compress(data)


CP1252_SPECIALS = bytes(b for b in range(0x80, 0xA0) if b not in CP1252_UNDEFINED) + b"\n"
"""Bytes 0x80-0x9f, where cp1252 differs from latin-1 (the euro sign, curly quotes...)."""

READS = [
    # (file bytes, encoding=, text, encoding used, bom, compression)
    pytest.param(TEXT.encode(), None, TEXT, "utf-8", False, None, id="utf-8"),
    pytest.param(codecs.BOM_UTF8 + TEXT.encode(), None, TEXT, "utf-8", True, None, id="utf-8-bom"),
    pytest.param(TEXT.encode(), "utf-8", TEXT, "utf-8", False, None, id="utf-8-given"),
    pytest.param(TEXT.encode(), "UTF8", TEXT, "utf-8", False, None, id="utf8-spelling"),
    pytest.param(TEXT.encode(), "us-ascii", TEXT, "utf-8", False, None, id="ascii-read-as-utf-8"),
    pytest.param(
        codecs.BOM_UTF8 + TEXT.encode(), "utf-8-sig", TEXT, "utf-8", True, None, id="utf-8-sig"
    ),
    pytest.param(TEXT.encode("utf-16"), None, TEXT, "utf-16-le", True, None, id="utf-16-le-bom"),
    pytest.param(
        codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
        None,
        TEXT,
        "utf-16-be",
        True,
        None,
        id="utf-16-be-bom",
    ),
    pytest.param(TEXT.encode("utf-32"), None, TEXT, "utf-32-le", True, None, id="utf-32-le-bom"),
    pytest.param(
        codecs.BOM_UTF32_BE + TEXT.encode("utf-32-be"),
        None,
        TEXT,
        "utf-32-be",
        True,
        None,
        id="utf-32-be-bom",
    ),
    pytest.param(
        TEXT.encode("utf-16-le"), "utf-16", TEXT, "utf-16-le", False, None, id="utf-16-no-bom-is-le"
    ),
    pytest.param(
        TEXT.encode("utf-16-le"), "utf-16-le", TEXT, "utf-16-le", False, None, id="utf-16-le-given"
    ),
    pytest.param(
        TEXT.encode("utf-16-be"), "UTF-16BE", TEXT, "utf-16-be", False, None, id="utf-16-be-given"
    ),
    pytest.param(
        TEXT.encode("utf-16"), "utf-16-be", TEXT, "utf-16-le", True, None, id="bom-wins-utf-16-be"
    ),
    pytest.param(TEXT.encode("cp1252"), "cp1252", TEXT, "cp1252", False, None, id="cp1252"),
    pytest.param(
        TEXT.encode("cp1252"), "windows-1252", TEXT, "cp1252", False, None, id="windows-1252"
    ),
    pytest.param(
        CP1252_SPECIALS,
        "cp1252",
        CP1252_SPECIALS.decode("cp1252"),
        "cp1252",
        False,
        None,
        id="cp1252-0x80-0x9f",
    ),
    pytest.param(TEXT.encode("latin-1"), "latin-1", TEXT, "latin-1", False, None, id="latin-1"),
    pytest.param(
        TEXT.encode("latin-1"), "iso-8859-1", TEXT, "latin-1", False, None, id="iso-8859-1"
    ),
    pytest.param(TEXT.encode("latin-1"), "latin1", TEXT, "latin-1", False, None, id="latin1"),
    pytest.param(
        CP1252_SPECIALS,
        "latin-1",
        CP1252_SPECIALS.decode("latin-1"),
        "latin-1",
        False,
        None,
        id="latin-1-0x80-0x9f-are-controls",
    ),
    pytest.param(
        TEXT.encode("utf-16"), "cp1252", TEXT, "utf-16-le", True, None, id="bom-wins-utf-16"
    ),
    pytest.param(
        codecs.BOM_UTF8 + TEXT.encode(), "cp1252", TEXT, "utf-8", True, None, id="bom-wins-utf-8"
    ),
    pytest.param(gzip.compress(TEXT.encode()), None, TEXT, "utf-8", False, "gzip", id="gzip"),
    pytest.param(
        gzip.compress(codecs.BOM_UTF8 + TEXT.encode()),
        None,
        TEXT,
        "utf-8",
        True,
        "gzip",
        id="gzip-utf-8-bom",
    ),
    pytest.param(
        gzip.compress(TEXT.encode("utf-16")),
        None,
        TEXT,
        "utf-16-le",
        True,
        "gzip",
        id="gzip-utf-16",
    ),
    pytest.param(
        gzip.compress(TEXT.encode("cp1252")),
        "cp1252",
        TEXT,
        "cp1252",
        False,
        "gzip",
        id="gzip-cp1252",
    ),
    pytest.param(
        gzip.compress(TEXT[:20].encode()) + gzip.compress(TEXT[20:].encode()),
        None,
        TEXT,
        "utf-8",
        False,
        "gzip",
        id="gzip-two-members",
    ),
    pytest.param(b"", None, "", "utf-8", False, None, id="empty"),
    pytest.param(gzip.compress(b""), None, "", "utf-8", False, "gzip", id="gzip-empty"),
    pytest.param(codecs.BOM_UTF16_LE, None, "", "utf-16-le", True, None, id="utf-16-bom-only"),
]


@pytest.mark.parametrize(("data", "encoding", "text", "used", "bom", "compression"), READS)
def test_open_input_gives_utf8_text(
    data: bytes, encoding: str | None, text: str, used: str, bom: bool, compression: str | None
) -> None:
    with open_input(io.BytesIO(data), encoding=encoding) as opened:
        out = read_all(opened)
        assert (opened.encoding, opened.bom, opened.compression) == (used, bom, compression)
        assert opened.position() == opened.size == len(data)
    assert out == text.encode("utf-8")


def test_open_input_passes_utf8_bytes_through_undecoded() -> None:
    # the reader checks UTF-8 itself, with line numbers: invalid bytes and NULs pass as they are
    data = b"a,b\n\xff\x00,\xc3\n"
    assert decoded(data) == data
    assert decoded(data, encoding="utf-8") == data


def test_open_input_recognises_gzip_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    path.write_bytes(gzip.compress(TEXT.encode("utf-16")))
    with open_input(path) as opened:
        assert read_all(opened) == TEXT.encode()
        assert opened.describe() == "UTF-16-LE (byte-order mark), gzip"
        assert opened.size == path.stat().st_size == opened.position()


def test_open_input_does_not_detect_utf16_without_a_byte_order_mark() -> None:
    # text that is not ASCII at its start is not recognised: it goes on as UTF-8 bytes, and
    # the reader refuses it for its NUL bytes
    data = "Ł,a\n".encode("utf-16-le")
    assert decoded(data) == data


@pytest.mark.parametrize(
    ("opened", "described"),
    [
        (OpenedInput(io.BytesIO(), "x", None, "utf-8"), "UTF-8"),
        (OpenedInput(io.BytesIO(), "x", None, "cp1252", compression="gzip"), "cp1252, gzip"),
        (
            OpenedInput(io.BytesIO(), "x", None, "utf-32-be", bom=True),
            "UTF-32-BE (byte-order mark)",
        ),
    ],
    ids=["utf-8", "cp1252-gzip", "utf-32-bom"],
)
def test_opened_input_describe(opened: OpenedInput, described: str) -> None:
    assert opened.describe() == described


def test_encodings_are_all_accepted() -> None:
    for encoding in ENCODINGS:
        assert decoded(TEXT.encode(encoding), encoding=encoding) == TEXT.encode()


# -- errors ------------------------------------------------------------------------------------


def _corrupt_gzip() -> bytes:
    data = bytearray(gzip.compress(TEXT.encode() * 50))
    data[20:30] = b"\xff" * 10
    return bytes(data)


def _bad_crc() -> bytes:
    data = bytearray(gzip.compress(TEXT.encode()))
    data[-8] ^= 0xFF
    return bytes(data)


LE, BE = codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE
ZIP = b"PK\x03\x04\x14\x00\x06\x00"
ERRORS = [
    # (file bytes, encoding=, reason, line, message)
    pytest.param(
        b"a\nb\n\x81\n",
        "cp1252",
        "not_decodable",
        3,
        r"^input: line 3 is not cp1252 text \(byte 0x81 has no character in cp1252\); "
        r"if the file is UTF-8, leave out --encoding, else save it as CSV UTF-8$",
        id="cp1252-0x81",
    ),
    pytest.param(
        b"\x8d", "cp1252", "not_decodable", 1, r"^input: line 1 .*0x8d ", id="cp1252-0x8d"
    ),
    pytest.param(
        b"a\r\n" * 5 + b"\x8f", "cp1252", "not_decodable", 6, r"line 6 .*0x8f ", id="cp1252-0x8f"
    ),
    pytest.param(
        b"\n\n\x90", "windows-1252", "not_decodable", 3, r"line 3 .*0x90 ", id="cp1252-0x90"
    ),
    pytest.param(
        "é\n".encode("cp1252") * 3 + b"\x9d",
        "cp1252",
        "not_decodable",
        4,
        r"line 4 .*0x9d ",
        id="cp1252-0x9d-after-accents",
    ),
    pytest.param(
        LE + "a\nb\n".encode("utf-16-le") + b"\x00\xdcc\x00",
        None,
        "not_decodable",
        3,
        r"^input: line 3 is not valid UTF-16-LE text \(a lone surrogate: bytes 0x00 0xdc\); "
        r"save the file as CSV UTF-8$",
        id="utf-16-le-lone-low-surrogate",
    ),
    pytest.param(
        BE + "a\n".encode("utf-16-be") + b"\xd8\x00\x00a",
        None,
        "not_decodable",
        2,
        r"line 2 is not valid UTF-16-BE text \(a lone surrogate: bytes 0xd8 0x00",
        id="utf-16-be-lone-high-surrogate",
    ),
    pytest.param(
        "a\n".encode("utf-16-le") + b"\x00\xd8",
        "utf-16-le",
        "not_decodable",
        2,
        r"^input: the file ends in the middle of a UTF-16-LE character \(line 2\); "
        r"it is cut short$",
        id="utf-16-le-ends-in-high-surrogate",
    ),
    pytest.param(
        LE + "a\n\n".encode("utf-16-le") + b"b",
        None,
        "not_decodable",
        3,
        r"ends in the middle of a UTF-16-LE character \(line 3\)",
        id="utf-16-le-odd-length",
    ),
    pytest.param(
        codecs.BOM_UTF32_LE + b"\x00\x00\x11\x00",
        None,
        "not_decodable",
        1,
        r"line 1 is not valid UTF-32-LE text \(code point not in range",
        id="utf-32-beyond-unicode",
    ),
    pytest.param(
        gzip.compress(TEXT.encode())[:-6],
        None,
        "corrupt_gzip",
        None,
        r"^input: the gzip data is corrupt or truncated "
        r"\(it ends before the end of the compressed data\)$",
        id="gzip-truncated",
    ),
    pytest.param(
        gzip.compress(TEXT.encode())[:12],
        None,
        "corrupt_gzip",
        None,
        r"corrupt or truncated \(it ends before",
        id="gzip-header-only",
    ),
    pytest.param(
        _corrupt_gzip(),
        None,
        "corrupt_gzip",
        None,
        r"corrupt or truncated \(invalid compressed data\)$",
        id="gzip-corrupt",
    ),
    pytest.param(_bad_crc(), None, "corrupt_gzip", None, r"\(CRC check failed\)$", id="gzip-crc"),
    pytest.param(
        gzip.compress(TEXT.encode()) + b"K-9,secret\n",
        None,
        "corrupt_gzip",
        None,
        r"corrupt or truncated \(data after the compressed data is not gzip\)$",
        id="gzip-trailing-text",
    ),
    pytest.param(
        b"\x1f\x8b\x07" + b"\x00" * 20,
        None,
        "corrupt_gzip",
        None,
        r"corrupt or truncated \(invalid gzip header\)$",
        id="gzip-unknown-method",
    ),
    pytest.param(
        ZIP,
        None,
        "not_csv",
        None,
        r"^input: is a zip archive \(an Excel .xlsx workbook is one\), not a CSV text file; "
        r"open it in the spreadsheet program and save the sheet as CSV UTF-8$",
        id="zip-xlsx",
    ),
    pytest.param(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00",
        None,
        "not_csv",
        None,
        r"^input: is an Excel .xls workbook, not a CSV text file",
        id="xls",
    ),
    pytest.param(
        b"BZh91AY&SY\x00",
        None,
        "not_csv",
        None,
        r"^input: is bzip2-compressed, not a CSV text file; "
        r"decompress it first, or compress it with gzip, which is read directly$",
        id="bzip2",
    ),
    pytest.param(b"\xfd7zXZ\x00\x00\x04", None, "not_csv", None, r"is xz-compressed", id="xz"),
    pytest.param(b"\x28\xb5\x2f\xfd\x00", None, "not_csv", None, r"is zstd-compr", id="zstd"),
    pytest.param(
        gzip.compress(ZIP),
        None,
        "not_csv",
        None,
        r"^input: is gzip data holding a zip archive",
        id="gzip-holding-zip",
    ),
    pytest.param(
        gzip.compress(gzip.compress(TEXT.encode())),
        None,
        "not_csv",
        None,
        r"^input: is compressed twice with gzip; decompress it once first$",
        id="gzip-twice",
    ),
    pytest.param(
        TEXT.encode("utf-16-le"),
        None,
        "utf16_without_bom",
        None,
        r"^input: looks like UTF-16 text without a byte-order mark; "
        r"give --encoding utf-16-le, or save the file as CSV UTF-8$",
        id="utf-16-le-no-bom",
    ),
    pytest.param(
        TEXT.encode("utf-16-be"),
        "cp1252",
        "utf16_without_bom",
        None,
        r"give --encoding utf-16-be",
        id="utf-16-be-no-bom-cp1252-given",
    ),
    pytest.param(
        gzip.compress(TEXT.encode("utf-16-le")),
        None,
        "utf16_without_bom",
        None,
        r"without a byte-order mark",
        id="gzip-utf-16-no-bom",
    ),
    pytest.param(
        TEXT.encode(),
        "klingon",
        "unknown_encoding",
        None,
        r"^unknown encoding 'klingon'; "
        r"give one of utf-8, cp1252, latin-1, utf-16, utf-16-le, utf-16-be$",
        id="unknown-encoding",
    ),
    pytest.param(
        TEXT.encode(),
        "shift_jis",
        "unknown_encoding",
        None,
        r"^the encoding 'shift_jis' is not read; give one of utf-8, cp1252, .*, "
        r"or save the file as CSV UTF-8$",
        id="unsupported-encoding",
    ),
    pytest.param(
        TEXT.encode(),
        "utf-32",
        "unknown_encoding",
        None,
        r"encoding 'utf-32' is not read",
        id="utf-32-only-by-its-bom",
    ),
]


@pytest.mark.parametrize(("data", "encoding", "reason", "line", "message"), ERRORS)
@pytest.mark.parametrize("read_size", [1, 3, 1 << 20], ids=["1-byte", "3-byte", "1-MiB"])
def test_open_input_errors(
    data: bytes, encoding: str | None, reason: str, line: int | None, message: str, read_size: int
) -> None:
    with (
        pytest.raises(InputError, match=message) as caught,
        open_input(io.BytesIO(data), encoding=encoding) as opened,
    ):
        read_all(opened, [read_size])
    assert (caught.value.reason, caught.value.line) == (reason, line)
    text = str(caught.value)
    assert "\n" not in text and "secret" not in text and "K-" not in text
    assert caught.value.__cause__ is None  # nothing chained that could quote the file


def test_open_input_names_the_line_of_a_bad_byte_blocks_later() -> None:
    data = "K-1,Malmö\r\n".encode("cp1252") * 300_000 + b"K-2,\x81\n"
    assert len(data) > 3 * BLOCK_BYTES
    with pytest.raises(InputError, match=r"line 300001 is not cp1252 text"):
        decoded(data, encoding="cp1252")
    data = codecs.BOM_UTF16_LE + ("K-1,Malmö\n" * 200_000).encode("utf-16-le") + b"\x00\xdc"
    with pytest.raises(InputError, match=r"line 200001 is not valid UTF-16-LE"):
        decoded(data)


def test_input_error_pickles_with_its_reason_and_line() -> None:
    error = InputError("x.csv: line 3 ...", reason=InputReason.NOT_DECODABLE, line=3)
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.reason, again.line) == (
        InputError,
        "x.csv: line 3 ...",
        "not_decodable",
        3,
    )
    assert isinstance(again, ValueError)


# -- files, directories, standard input, pipes ------------------------------------------------


def test_open_input_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    with (
        pytest.raises(InputError, match=rf"^{path}: no such file$") as caught,
        open_input(path),
    ):
        pass
    assert caught.value.reason == "no_such_file"


def test_open_input_directory(tmp_path: Path) -> None:
    with (
        pytest.raises(InputError, match=rf"^{tmp_path}: is a directory, not a file$"),
        open_input(str(tmp_path)),
    ):
        pass


def test_open_input_unreadable_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(input_stream, "open", refuse, raising=False)
    with (
        pytest.raises(InputError, match=r"^x.csv: cannot read it \(Permission denied\)$"),
        open_input("x.csv"),
    ):
        pass


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_open_input_file_without_read_permission(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(TEXT)
    path.chmod(0)
    with (
        pytest.raises(InputError, match=r"cannot read it \(Permission denied\)"),
        open_input(path),
    ):
        pass


def test_open_input_read_error_is_an_input_error() -> None:
    class Failing(io.RawIOBase):
        name = "x.csv"

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            raise OSError(errno.EIO, "Input/output error")

    with (
        pytest.raises(InputError, match=r"^x.csv: cannot read it \(Input/output error\)$"),
        open_input(Failing()) as opened,
    ):
        read_all(opened)


def test_open_input_closes_the_file_it_opened_only(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(gzip.compress(TEXT.encode()))
    with open_input(path) as opened:
        assert opened.name == str(path)
        read_all(opened)
    assert opened.stream.closed
    with open(path, "rb") as mine:
        with open_input(mine) as opened:
            assert opened.name == str(path)
            assert read_all(opened) == TEXT.encode()
        assert not mine.closed


def test_open_input_file_object_from_its_position(tmp_path: Path) -> None:
    buffer = io.BytesIO(b"skipped\n" + TEXT.encode())
    buffer.read(8)
    with open_input(buffer) as opened:
        assert (opened.name, opened.size) == ("input", len(TEXT.encode()))
        assert read_all(opened) == TEXT.encode()


def test_open_input_refuses_a_text_file_object() -> None:
    with (
        pytest.raises(TypeError, match="binary"),
        open_input(io.StringIO(TEXT)),  # type: ignore[arg-type]
    ):
        pass


def test_open_input_path_dash_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_text(TEXT)
    with open_input(Path("-")) as opened:
        assert (opened.name, read_all(opened)) == ("-", TEXT.encode())


def _write_in_thread(target: str | int | Path, data: bytes) -> threading.Thread:
    """Write ``data`` to ``target`` (a path, or a file descriptor it closes), in a thread."""

    def write() -> None:
        with open(target, "wb") as pipe:
            for k in range(0, len(data), 4096):
                pipe.write(data[k : k + 4096])

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_open_input_reads_standard_input_from_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    data = gzip.compress(LE + TEXT.encode("utf-16-le") * 1000)
    with open(read_end, "rb") as pipe:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(pipe))
        thread = _write_in_thread(write_end, data)
        with open_input("-") as opened:
            assert (opened.name, opened.size) == ("standard input", None)
            assert read_all(opened, [7]) == TEXT.encode() * 1000
            assert opened.position() == len(data)
        thread.join()


def test_open_input_reads_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    data = TEXT.encode("cp1252") * 1000
    thread = _write_in_thread(fifo, data)
    with open_input(fifo, encoding="cp1252") as opened:
        assert (opened.name, opened.size) == (str(fifo), None)
        assert read_all(opened) == TEXT.encode() * 1000
    thread.join()


CHILD = """\
import sys
from predictor.io._input_stream import open_input
with open_input("-", encoding=sys.argv[1] or None) as opened:
    sys.stdout.buffer.write(opened.stream.read())
    print(f"|{opened.name}|{opened.size}|{opened.encoding}|{opened.position()}", file=sys.stderr)
"""


@pytest.mark.slow
@pytest.mark.parametrize("redirected", [False, True], ids=["pipe", "file"])
def test_open_input_reads_standard_input_of_a_process(tmp_path: Path, redirected: bool) -> None:
    data = gzip.compress(TEXT.encode("cp1252"))
    path = tmp_path / "in.csv.gz"
    path.write_bytes(data)
    with open(path, "rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, "cp1252"],
            stdin=stdin if redirected else None,
            input=None if redirected else data,
            capture_output=True,
            cwd=ROOT,
            check=True,
        )
    assert done.stdout == TEXT.encode()
    size = len(data) if redirected else None
    assert f"|standard input|{size}|cp1252|{len(data)}" in done.stderr.decode()


# -- memory and pass-through ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (codecs.BOM_UTF16_LE + "K-1,Malmö\n".encode("utf-16-le") * 1_000_000, None),
        ("K-1,Malmö\n".encode("cp1252") * 2_000_000, "cp1252"),
        (gzip.compress("K-1,Malmö\n".encode() * 2_000_000), None),
    ],
    ids=["utf-16", "cp1252", "gzip"],
)
def test_open_input_reads_in_bounded_blocks(data: bytes, encoding: str | None) -> None:
    source = Trickle(data, step=1 << 30)
    with open_input(source, encoding=encoding) as opened:
        assert opened.stream.read(100).startswith(b"K-1,Malm\xc3\xb6\n")
        assert source.given <= 2 * BLOCK_BYTES
        while opened.stream.read(BLOCK_BYTES):
            assert source.largest_read <= BLOCK_BYTES
    assert source.given == len(data)


def test_open_input_pass_through_reads_what_is_asked() -> None:
    # UTF-8 is not decoded here: after the few bytes looked at first, each read is one read of
    # the file, of the size asked, given as it is
    data = TEXT.encode() * 10_000
    source = Trickle(data, step=1 << 30)
    with open_input(source) as opened:
        looked_at = source.given
        assert opened.stream.read(4) == data[:4]
        assert opened.stream.read(5000) == data[4:5004]  # the rest looked at, then the file
        assert (source.given, source.largest_read) == (5004, 5004 - looked_at)
        assert opened.stream.read(7000) == data[5004:12004]
        assert (source.given, source.largest_read) == (12004, 7000)


def test_open_input_stream_works_under_a_buffered_reader() -> None:
    with open_input(io.BytesIO(TEXT.encode("utf-16"))) as opened:
        text = io.TextIOWrapper(io.BufferedReader(opened.stream), encoding="utf-8").read()
    assert text == TEXT


# -- any text, in any encoding that can hold it --------------------------------------------

ALPHABETS = {
    "utf": st.text(),
    "cp1252": st.text(alphabet=CP1252_TEXT),
    "latin-1": st.text(alphabet=st.characters(max_codepoint=0xFF)),
}
FORMS = [
    # (name, alphabet, encoding=, byte-order mark, how the text is encoded)
    ("utf-8", "utf", None, b"", "utf-8"),
    ("utf-8-given", "utf", "utf-8", b"", "utf-8"),
    ("utf-8-bom", "utf", None, codecs.BOM_UTF8, "utf-8"),
    ("utf-16-le-bom", "utf", None, codecs.BOM_UTF16_LE, "utf-16-le"),
    ("utf-16-be-bom", "utf", None, codecs.BOM_UTF16_BE, "utf-16-be"),
    ("utf-16-le-given", "utf", "utf-16-le", b"", "utf-16-le"),
    ("utf-16-be-given", "utf", "utf-16-be", b"", "utf-16-be"),
    ("utf-32-le-bom", "utf", None, codecs.BOM_UTF32_LE, "utf-32-le"),
    ("utf-32-be-bom", "utf", None, codecs.BOM_UTF32_BE, "utf-32-be"),
    ("cp1252", "cp1252", "cp1252", b"", "cp1252"),
    ("latin-1", "latin-1", "latin-1", b"", "latin-1"),
]


@st.composite
def encoded_texts(draw: st.DrawFn) -> tuple[str, bytes, str | None, bytes]:
    """A text, its bytes in one of the FORMS, the encoding to give, the byte-order mark."""
    _, alphabet, given, bom, codec = draw(st.sampled_from(FORMS))
    text = draw(ALPHABETS[alphabet])
    return text, bom + text.encode(codec), given, bom


def _read_otherwise(data: bytes, bom: bytes, given: str | None) -> bool:
    """Whether the start of ``data`` says something else than its form: a longer byte-order
    mark than the one put there, or, without one, a signature, a mark, or (UTF-8 or a
    single-byte encoding) NUL bytes like UTF-16's. Such text cannot be told apart."""
    if bom:
        return any(data.startswith(mark) and len(mark) > len(bom) for mark in BOMS)
    text_like = given is None or not given.startswith("utf-16")
    return any(data.startswith(start) for start in SIGNATURES + BOMS) or (
        text_like and 0 in data[:4]
    )


@given(
    encoded_texts(),
    st.booleans(),
    st.lists(st.sampled_from([1, 2, 3, 5, 64, 1 << 20]), min_size=1, max_size=4),
    st.sampled_from([1, 2, 3, 7, 1 << 20]),
    st.sampled_from([1, 3, 1 << 30]),
)
def test_open_input_gives_any_text_as_utf8(
    case: tuple[str, bytes, str | None, bytes],
    compressed: bool,
    sizes: list[int],
    block: int,
    step: int,
) -> None:
    text, data, given, bom = case
    assume(not _read_otherwise(data, bom, given))
    source = Trickle(gzip.compress(data) if compressed else data, step)
    with (
        mock.patch.object(input_stream, "BLOCK_BYTES", block),
        open_input(source, encoding=given) as opened,
    ):
        out = read_all(opened, sizes)
    assert out == text.encode("utf-8")
    assert (b"\x00" in out) == ("\x00" in text)
