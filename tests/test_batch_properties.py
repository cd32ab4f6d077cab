"""Properties of batch scoring over generated files: any CSV text ends in exit code 0, 1 or 2
with a message (never a traceback); every data row is either scored or rejected; column order,
row order and chunk size change no number; a file scores as its rows do one by one."""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor import predict
from predictor._cli import main
from predictor.io._batch import score_csv

# A property that runs the scorer three times per example gets a quarter of the profile's examples.
FEWER = settings(max_examples=max(10, settings.default.max_examples // 4))

COLUMNS = {  # column -> valid cells (a row also draws junk)
    "patient_id": ["K-1", "K-2", "x", ""],
    "Age (years)": ["45", "18", "100", "61.5", ""],
    "sex": ["F", "male", "M", ""],
    "crp_mg_l": ["0.9", "0.04", "12", "499", ""],
    "route": ["iv", "esketamine", "IV_KETAMINE", ""],
    "bdnf_ng_ml": ["27", "3.5", ""],
    "family history of alcohol use disorder": ["yes", "n", "1", "NA", ""],
    "history_of_psychosis": ["no", "yes", ""],
    "Site": ["Leeds", "York, North", 'say "hi"', ""],
}
JUNK = st.text(alphabet=st.sampled_from('ab1.,;"\n -éx'), max_size=6)
"""Junk cells (no bare CR: csv.writer leaves it unquoted, where it reads as a line end)."""
ROWS = st.lists(
    st.tuples(*(st.one_of(st.sampled_from(cells), JUNK) for cells in COLUMNS.values())),
    min_size=0,
    max_size=8,
)


def _write(path: Path, header: list[str], rows: list[tuple[str, ...]], *, quote_all: bool,
           line_end: str) -> None:  # fmt: skip
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(
            handle,
            quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
            lineterminator=line_end,
        )
        writer.writerow(header)
        writer.writerows(rows)


def _score(folder: Path, name: str, header, rows, chunk_rows: int, **dialect):
    source = folder / f"{name}.csv"
    _write(source, header, rows, **dialect)
    out, rejects = folder / f"{name}.out.csv", folder / f"{name}.rejects.csv"
    summary = score_csv(source, out, rejects=rejects, chunk_rows=chunk_rows)
    read = {"dtype": str, "keep_default_na": False}
    return summary, pd.read_csv(out, **read), pd.read_csv(rejects, **read)


def _data_rows(rows: list[tuple[str, ...]]) -> int:
    """Rows a reader sees as records: a row of empty cells is a blank line."""
    return sum(any(cell.strip() for cell in row) for row in rows)


@pytest.mark.slow
@FEWER
@given(
    rows=ROWS,
    order=st.permutations(range(len(COLUMNS))),
    chunk_rows=st.integers(1, 5),
    quote_all=st.booleans(),
    line_end=st.sampled_from(["\n", "\r\n"]),
)
def test_score_invariants_over_generated_files(rows, order, chunk_rows, quote_all, line_end):
    header = list(COLUMNS)
    dialect = {"quote_all": quote_all, "line_end": line_end}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        summary, out, rejects = _score(folder, "a", header, rows, 1000, **dialect)
        # every data row is scored or rejected, never both, never neither
        assert summary.rows_scored == len(out)
        assert summary.rows_rejected == rejects["line"].nunique()
        assert summary.rows_scored + summary.rows_rejected == _data_rows(rows)
        # columns in another order, rows in reverse, another chunk size: the same numbers
        permuted = [header[k] for k in order]
        reordered = [tuple(row[k] for k in order) for row in reversed(rows)]
        _, out2, rejects2 = _score(folder, "b", permuted, reordered, chunk_rows, **dialect)
        numbers = ["response_probability", "probability_low", "probability_high"]
        texts = ["patient_id", "predicted_label", "top_reasons", "warnings"]
        assert out[texts].iloc[::-1].values.tolist() == out2[texts].values.tolist()
        assert np.allclose(
            out[numbers].astype(float).iloc[::-1], out2[numbers].astype(float), rtol=0, atol=1e-12
        )
        assert sorted(rejects[["column", "value", "reason"]].values.tolist()) == sorted(
            rejects2[["column", "value", "reason"]].values.tolist()
        )


@FEWER
@given(rows=ROWS)
def test_score_file_equals_each_row_predicted_alone(rows):
    header = list(COLUMNS)
    with tempfile.TemporaryDirectory() as scratch:
        _, out, rejects = _score(Path(scratch), "a", header, rows, 3, quote_all=False,
                                 line_end="\n")  # fmt: skip
    bad_lines = set(rejects["line"].astype(int))
    scored = iter(out["response_probability"].astype(float))
    line = 2
    for row in rows:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerow(row)
        here, line = line, line + text.getvalue().count("\n")
        if not any(cell.strip() for cell in row) or here in bad_lines:
            continue
        record = dict(zip(header, row, strict=True))
        alone = predict(record).probability
        assert np.isclose(next(scored), alone, rtol=0, atol=1e-12)
    assert next(scored, None) is None


CSV_TEXT = st.lists(
    st.sampled_from(list('ab,;\t"\n\r 1.x\ufeff\x00é'))
    | st.sampled_from([*COLUMNS, "crp_mg_dl", "CRP", "age_years", "NA"]),
    max_size=30,
).map("".join)


@given(text=CSV_TEXT, as_bytes=st.binary(max_size=20), use_bytes=st.booleans())
def test_score_command_on_any_text_exits_0_1_or_2_with_a_message(text, as_bytes, use_bytes):
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "in.csv"
        source.write_bytes(as_bytes if use_bytes else text.encode("utf-8"))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["score", str(source), "--out", str(Path(scratch) / "out.csv"), "--quiet"])
    assert code in (0, 1, 2)
    if code == 2:
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
