"""The CSV reader's shortcuts give the records its plain path gives: segments read by another
process (``score --workers N``), and the ways it spends less time on a stray quote (short slow
reads, small first windows, a line swallowed whole rejected without reading on).

Files are built from lines that exercise every rule of the reader: quoted cells, stray quotes
that close and do not, records of two lines, ragged lines, blank lines, CR and CRLF line ends,
text that is not ASCII, and a byte that is not UTF-8. The bound of a multi-line record is
scaled down to 16 bytes, so that short files reach it.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import predictor.io._csv_reader as reader_module
from predictor.io._csv_reader import BatchError, CsvReader, decode_check, read_segment

HEADER = "patient_id,age_years,crp_mg_l\n"
LINES = st.sampled_from(
    [
        "A,45,0.9",
        "B,18,12",
        "",
        ",,",
        'C,"4,5",1',  # a quoted cell
        'D,5"7,1',  # a quote inside an unquoted cell: text
        'E,"x',  # a quote that does not close on its line
        'y",3',  # ... and a line that would close it
        '"F',  # a record of several lines opens...
        'G",1,2',  # ... and closes
        "H,1,2,3",  # a field too many
        "I,1",  # one too few
        "K,\xe9,1",  # not ASCII
    ]
)
ENDS = st.sampled_from(["\n", "\n", "\n", "\r\n", "\r"])
FILES = {
    "lines": st.lists(st.tuples(LINES, ENDS), max_size=60),
    "chunk_rows": st.integers(1, 9),
    "bad_byte": st.one_of(st.none(), st.integers(0, 59)),
}


def _content(lines: list[tuple[str, str]], bad_byte: int | None) -> bytes:
    text = [line + end for line, end in lines]
    content = HEADER.encode() + "".join(text).encode()
    if bad_byte is not None and bad_byte < len(text):  # a byte that is not UTF-8 on that line
        at = len(HEADER) + len("".join(text[:bad_byte]).encode())
        content = content[:at] + b"\xff" + content[at:]
    return content


def _read(content: bytes, chunk_rows: int, segments: bool = False, engine: str = "fast") -> tuple:
    """Every record the reader gives (rows, problems, patient_ids, the first line read by the
    csv module), reading segments as a worker would; or the error, as a worker's would come
    first."""
    chunks = []
    try:
        reader = CsvReader(io.BytesIO(content), "t", chunk_rows=chunk_rows, engine=engine)
        for item in reader.segments() if segments else reader.chunks():
            chunk = read_segment(item) if segments else item
            # memory set by chunk_rows: a segment holds at most about twice as many records
            assert len(chunk.frame) + len(chunk.problems) <= 2 * chunk_rows + 1
            chunks.append(chunk)
    except BatchError as exc:
        return ("error", str(exc))
    by_csv = [c.csv_module_from for c in chunks if c.csv_module_from is not None]
    if reader.csv_module_from is not None:
        by_csv.append(reader.csv_module_from)
    frames = [c.frame for c in chunks if len(c.frame)]
    return (
        pd.concat(frames) if frames else None,
        [p for c in chunks for p in c.problems],
        {k: v for c in chunks for k, v in c.ids.items()},
        min(by_csv, default=None),
    )


def _assert_same(one: tuple, other: tuple, *, csv_module_from: bool = True) -> None:
    if isinstance(one[0], str) or isinstance(other[0], str):
        assert one == other
        return
    if one[0] is None or other[0] is None:
        assert one[0] is other[0] is None
    else:
        pd.testing.assert_frame_equal(one[0], other[0])
    assert one[1:3] == other[1:3]
    if csv_module_from:
        assert one[3] == other[3]


@settings(max_examples=max(10, settings.default.max_examples * 2))
@example(  # a segment that ends after a stretch without quotes, past a line the reader rejects
    lines=[('E,"x', "\n"), *[("A,45,0.9", "\n")] * 30], chunk_rows=10, bad_byte=None
)
@example(  # ... past a record of two lines
    lines=[('"F', "\n"), ('G",1,2', "\r\n"), *[("B,18,12", "\n")] * 30], chunk_rows=10, bad_byte=20
)
@given(**FILES)
def test_segments_read_elsewhere_give_the_records_the_reader_gives(lines, chunk_rows, bad_byte):
    content = _content(lines, bad_byte)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader_module, "MAX_MULTILINE_RECORD_BYTES", 16)
        _assert_same(_read(content, chunk_rows), _read(content, chunk_rows, segments=True))


@settings(max_examples=max(10, settings.default.max_examples * 2))
@example(  # a cut after a quote that opens a record of two lines (not a whole record)
    lines=[("A,45,0.9", "\n"), ('E,"x', "\n"), ('y",3', "\n"), ("A,45,0.9", "\n")], chunk_rows=1
)
@given(lines=st.lists(st.tuples(LINES, st.sampled_from(["\n", "\r\n"])), max_size=60),
       chunk_rows=st.integers(1, 9))  # fmt: skip
def test_segments_cut_among_quotes_give_the_records_the_reader_gives(lines, chunk_rows):
    """Without bare CRs and bytes that are not UTF-8 (where no segment is cut, or reading
    stops), most cuts fall among quotes: each must be where the reader ends a record."""
    content = _content(lines, None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader_module, "MAX_MULTILINE_RECORD_BYTES", 16)
        _assert_same(_read(content, chunk_rows), _read(content, chunk_rows, segments=True))


@settings(max_examples=max(10, settings.default.max_examples * 2))
@example(  # a stray quote whose next line is a whole record: rejected without reading on
    lines=[('E,"x', "\n"), ("A,45,0.9", "\n"), ('y",3', "\n")],
    chunk_rows=9,
    bad_byte=None,
    slow=16,
    probe=64,
)
@example(  # a record of two lines, whose second line has the header's width on its own
    lines=[('"F', "\n"), ('G",1,2', "\n"), ("A,45,0.9", "\n")],
    chunk_rows=9,
    bad_byte=None,
    slow=16,
    probe=64,
)
@given(**FILES, slow=st.integers(1, 2_000), probe=st.integers(1, 4_096))
def test_the_shortcuts_around_stray_quotes_change_no_record(
    lines, chunk_rows, bad_byte, slow, probe
):
    # The plain path: the csv module reads a stray quote's record to its end, 1,000 records at
    # a time, the fast path then looks at a whole chunk's bytes.
    content = _content(lines, bad_byte)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader_module, "MAX_MULTILINE_RECORD_BYTES", 16)
        patch.setattr(reader_module, "_SLOW_RECORDS", slow)
        patch.setattr(reader_module, "_PROBE_BYTES", probe)
        shortcut = _read(content, chunk_rows)
        patch.setattr(CsvReader, "_whole_record_without_quotes", lambda self, data: False)
        patch.setattr(reader_module, "_SLOW_RECORDS", 1_000)
        patch.setattr(reader_module, "_PROBE_BYTES", reader_module.MAX_CHUNK_BYTES)
        plain = _read(content, chunk_rows)
    # The first line the csv module reads depends on where the fast path stops looking.
    _assert_same(shortcut, plain, csv_module_from=False)


@settings(max_examples=max(10, settings.default.max_examples))
@given(**FILES)
def test_records_pyarrow_does_not_read_as_the_scan_does_are_read_by_the_csv_module(
    lines, chunk_rows, bad_byte
):
    # pyarrow is never known to disagree with the scan; were it to, on any records, the csv
    # module reads them (the records are parsed once a chunk's are all found).
    content = _content(lines, bad_byte)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader_module, "MAX_MULTILINE_RECORD_BYTES", 16)
        patch.setattr(CsvReader, "_parse", lambda self, data, lines: None)
        disagreeing = _read(content, chunk_rows)
        by_csv = _read(content, chunk_rows, engine="csv")
    _assert_same(disagreeing, by_csv, csv_module_from=False)


@pytest.mark.parametrize(
    ("first", "second", "named"),
    [(b"\xff", b"\x00", "line 3 is not UTF-8"), (b"\x00", b"\xff", "a NUL byte on line 3")],
    ids=["not-utf8-first", "nul-first"],
)
def test_an_unreadable_byte_is_named_by_the_first_in_the_text(first, second, named) -> None:
    # Line ends of every kind count; whichever bad byte comes first is the one named, so the
    # message does not depend on how the file was cut into chunks or segments.
    data = b"a\rb\r\nc" + first + b"\nd" + second + b"\n"
    with pytest.raises(BatchError, match=named):
        decode_check(data, "t", 1)


@pytest.mark.parametrize(
    ("first", "second", "named"),
    [(b"\xff", b"\x00", r"line 3 is not UTF-8 text \(byte 0xff\)"), (b"\x00", b"\xff", "NUL")],
    ids=["not-utf8-first", "nul-first"],
)
def test_a_line_over_the_bound_names_its_first_unreadable_byte(first, second, named) -> None:
    # Past the first MiB, which the header's reading checks; the line is skipped unread, but a
    # byte in it that is not text still refuses the file, with the same message as elsewhere.
    long = b"B," + b"x" * (1 << 20) + first + b"x" * 100 + second + b",1\n"
    content = b"patient_id,age_years,crp_mg_l\nA,1,2\n" + long + b"C,3,4\n"
    with pytest.raises(BatchError, match=named):
        list(CsvReader(io.BytesIO(content), "t").chunks())


def test_what_the_reader_cannot_cut_it_hands_over_unparsed(monkeypatch) -> None:
    """Around stray quotes no segment can be cut: the reader finds those records itself (its
    scan, and the csv module at each stray quote) and another process parses them."""
    lines = [f"P{k},{20 + k % 50},{k % 7}.5" for k in range(2_000)]
    for k in range(900, 1_100, 5):
        lines[k] = lines[k].replace(",", ',"', 1)  # a quote that does not close
    content = (HEADER + "\n".join(lines) + "\n").encode()
    reader = CsvReader(io.BytesIO(content), "t", chunk_rows=100)
    with monkeypatch.context() as patch:
        patch.setattr(CsvReader, "_parse", lambda *args: pytest.fail("parsed here"))
        items = list(reader.segments())
    assert {type(i).__name__ for i in items} == {"Segment", "Pieces"}
    chunks = [read_segment(i) for i in items]
    assert sum(len(c.problems) for c in chunks) == 40
    assert sum(len(c.frame) for c in chunks) == 1_960
    _assert_same(_read(content, 100), _read(content, 100, segments=True))


def test_segments_of_bare_cr_lines_are_bounded_by_chunk_rows() -> None:
    content = b"patient_id,crp_mg_l\r" + b"P,1\r" * 3_000
    reader = CsvReader(io.BytesIO(content), "t", chunk_rows=100)
    items = [read_segment(i) for i in reader.segments()]
    assert sum(len(c.frame) for c in items) == 3_000
    assert max(len(c.frame) for c in items) <= 100


@pytest.mark.parametrize("every", [3, 10, 1_000])
def test_the_csv_module_reads_more_at_a_time_where_bad_records_come_often(every: int) -> None:
    # A stray quote every few lines: the csv module's reads grow (not 16 records, a scan, 16
    # records... for the whole file); rare ones cost a short read each.
    rows = [f"P{k},{k % 90},1.5" for k in range(20_000)]
    rows = [row.replace(",", ',"', 1) if k % every == 0 else row for k, row in enumerate(rows)]
    content = (HEADER + "\n".join(rows) + "\n").encode()
    reads = []
    original = CsvReader._read_slowly

    def counted(self, count, budget):
        reads.append(count)
        return original(self, count, budget)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CsvReader, "_read_slowly", counted)
        chunks = list(CsvReader(io.BytesIO(content), "t").chunks())
    assert sum(len(c.frame) + len(c.problems) for c in chunks) == 20_000
    assert len(reads) <= (60 if every < 100 else 20_000 // every + 10)


@pytest.mark.parametrize("chunk_rows", [1, 2, 1_000])
def test_a_byte_order_mark_inside_the_file_is_kept_wherever_chunks_are_cut(chunk_rows) -> None:
    # pyarrow drops one at the start of what it parses; the csv module keeps it: kept always.
    content = b"patient_id,age\nA,1\n\xef\xbb\xbfB,2\n"
    chunks = list(CsvReader(io.BytesIO(content), "t", chunk_rows=chunk_rows).chunks())
    assert [i for c in chunks for i in c.frame["patient_id"]] == ["A", "\ufeffB"]
