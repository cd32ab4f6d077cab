"""Batch scoring (``python -m predictor score``): CSV dialects, rejects with line numbers, carried
columns, stdin/stdout, atomic output under interruption, and agreement with ``predict``."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor import predict
from predictor._atomic import _unnamed_file
from predictor._cli import main
from predictor._explain import NOTE_SEPARATOR
from predictor._scoring import OUTPUT_COLUMNS
from predictor.io._batch import REJECT_COLUMNS, BatchError, CsvReader, score_csv
from predictor.simulation._synthetic import simulate_cohort

ROOT = Path(__file__).resolve().parents[1]

HEADER = ["patient_id", "age_years", "sex", "crp_mg_l", "route", "family_history_aud", "Site"]
ROWS = [
    ["K-1", "45", "F", "0.9", "IV", "yes", "Leeds"],
    ["K-2", "58", "m", "5.2", "esketamine", "no", "York"],
    ["K-3", "41", "female", "", "iv_ketamine", "", "York"],
]
"""Three patients, written in each dialect below; every dialect must give the same scores."""


def _canonical() -> pd.DataFrame:
    return predict(pd.DataFrame(ROWS, columns=HEADER))


def _csv(rows: list[list[str]], sep: str = ",", end: str = "\n", quote: bool = False) -> str:
    def cell(text: str) -> str:
        return '"' + text.replace('"', '""') + '"' if quote else text

    return "".join(sep.join(cell(c) for c in row) + end for row in rows)


def _semicolon_decimal_comma() -> str:
    rows = [[c.replace(".", ",") for c in row] for row in [HEADER, *ROWS]]
    return _csv(rows, sep=";")


DIALECTS = {
    "plain": (_csv([HEADER, *ROWS]), []),
    "utf8-bom": ("\ufeff" + _csv([HEADER, *ROWS]), []),
    "crlf": (_csv([HEADER, *ROWS], end="\r\n"), []),
    "every-field-quoted": (_csv([HEADER, *ROWS], quote=True), []),
    "r-write-csv-na": (
        _csv([HEADER, *ROWS], quote=True).replace('""', "NA"),  # R: strings quoted, NA bare
        [],
    ),
    "units-and-odd-case": (
        _csv(
            [
                [
                    "Patient ID",
                    "AGE (years)",
                    "Sex",
                    "CRP (mg/L)",
                    "Route",
                    "Family History AUD",
                    "Site",
                ],
                *ROWS,
            ]
        ),
        [],
    ),
    "columns-in-any-order": (
        _csv([[row[k] for k in (6, 3, 0, 5, 1, 4, 2)] for row in [HEADER, *ROWS]]),
        [],
    ),
    "blank-lines": (
        "\n"
        + _csv([HEADER])
        + "\n"
        + _csv([ROWS[0]])
        + ",,,,,,\n   \n\r\n"
        + _csv(ROWS[1:])
        + "\n\n",
        [],
    ),
    "no-final-line-end": (_csv([HEADER, *ROWS]).rstrip("\n"), []),
    "semicolon-decimal-comma-detected": (_semicolon_decimal_comma(), []),
    "semicolon-decimal-comma-given": (_semicolon_decimal_comma(), ["--sep", ";", "--decimal", ","]),
    "tab-detected": (_csv([HEADER, *ROWS], sep="\t"), []),
    "pipe-given": (_csv([HEADER, *ROWS], sep="|"), ["--sep", "|"]),
}


def _score(
    tmp_path: Path, content: str | bytes, *args: str
) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    source = tmp_path / "in.csv"
    if isinstance(content, str):
        content = content.encode("utf-8")
    source.write_bytes(content)
    out, rejects = tmp_path / "out.csv", tmp_path / "rejects.csv"
    code = main(["score", str(source), "--out", str(out), "--rejects", str(rejects), *args])
    read = {"dtype": str, "keep_default_na": False}
    return code, pd.read_csv(out, **read), pd.read_csv(rejects, **read)


@pytest.mark.parametrize("dialect", list(DIALECTS), ids=list(DIALECTS))
def test_score_reads_each_dialect_to_the_same_scores(tmp_path: Path, dialect: str) -> None:
    content, args = DIALECTS[dialect]
    code, out, rejects = _score(tmp_path, content, *args)
    assert code == 0
    assert rejects.empty
    expected = _canonical()
    assert out["patient_id"].tolist() == ["K-1", "K-2", "K-3"]
    assert out["Site"].tolist() == ["Leeds", "York", "York"]
    for column in ("response_probability", "probability_low", "probability_high"):
        np.testing.assert_allclose(out[column].astype(float), expected[column], rtol=0, atol=1e-12)
    assert out["top_reasons"].tolist() == expected["top_reasons"].tolist()
    assert out["warnings"].tolist() == expected["warnings"].tolist()


BAD_CELLS = {
    "text-in-a-number": ("crp_mg_l", "high", "not_a_number"),
    "out-of-range": ("age_years", "12", "out_of_range"),
    "unknown-level": ("route", "subcutaneous", "unknown_level"),
    "bad-boolean": ("family_history_aud", "maybe", "not_a_boolean"),
    "inf": ("crp_mg_l", "inf", "not_finite"),
}


@pytest.mark.parametrize("case", list(BAD_CELLS), ids=list(BAD_CELLS))
def test_score_rejects_a_bad_cell_with_its_line_and_scores_the_rest(
    tmp_path: Path, case: str
) -> None:
    column, value, reason = BAD_CELLS[case]
    bad = list(ROWS[1])
    bad[HEADER.index(column)] = value
    code, out, rejects = _score(tmp_path, _csv([HEADER, ROWS[0], bad, ROWS[2]]))
    assert code == 1
    assert out["patient_id"].tolist() == ["K-1", "K-3"]
    assert list(rejects.columns) == list(REJECT_COLUMNS)
    assert rejects[["line", "patient_id", "column", "value", "reason"]].values.tolist() == [
        ["3", "K-2", column, value, reason]
    ]
    assert column in rejects["message"].iloc[0]


@pytest.mark.parametrize(
    ("line", "fields"),
    [("K-9,50,F,1.0,IV,yes,Leeds,extra", 8), ("K-9,50,F", 3)],
    ids=["too-many-fields", "too-few-fields"],
)
def test_score_rejects_a_ragged_row_and_keeps_the_others(
    tmp_path: Path, line: str, fields: int
) -> None:
    content = _csv([HEADER, ROWS[0]]) + line + "\n" + _csv(ROWS[1:])
    code, out, rejects = _score(tmp_path, content)
    assert code == 1
    assert out["patient_id"].tolist() == ["K-1", "K-2", "K-3"]
    assert rejects[["line", "reason", "value"]].values.tolist() == [
        ["3", "wrong_field_count", line]
    ]
    assert f"line 3 has {fields} fields" in rejects["message"].iloc[0]


def test_score_line_numbers_count_blank_lines_and_line_breaks_in_quoted_fields(
    tmp_path: Path,
) -> None:
    content = (
        "patient_id,crp_mg_l,note\n"  # line 1
        "A,1.0,plain\n"  # line 2
        '"B",2.0,"first line\nsecond line, with a comma"\n'  # lines 3-4
        "\n"  # line 5
        '"C","x","a ""quoted"" word"\n'  # line 6: bad
        "\r\n"  # line 7
        '"D","3.0","three\nline\nnote"\n'  # lines 8-10
        "E,-1,\n"  # line 11: bad
        "F,1,2,3\n"  # line 12: ragged
    )
    code, out, rejects = _score(tmp_path, content)
    assert code == 1
    assert out["patient_id"].tolist() == ["A", "B", "D"]
    assert out["note"].tolist() == [
        "plain",
        "first line\nsecond line, with a comma",
        "three\nline\nnote",
    ]
    assert rejects[["line", "patient_id", "reason"]].values.tolist() == [
        ["6", "C", "not_a_number"],
        ["11", "E", "out_of_range"],
        ["12", "F", "wrong_field_count"],  # a ragged row keeps its patient_id
    ]


def test_score_reads_a_stray_quote_with_the_csv_module_and_keeps_line_numbers(
    tmp_path: Path,
) -> None:
    content = 'patient_id,crp_mg_l,note\nA,1.0,a 5" screen\nB,x,\nC,2.0,"ok"\n'
    code, out, rejects = _score(tmp_path, content)
    assert code == 1
    assert out["note"].tolist() == ['a 5" screen', "ok"]
    assert rejects[["line", "patient_id"]].values.tolist() == [["3", "B"]]
    summary = score_csv(tmp_path / "in.csv", tmp_path / "again.csv")
    assert summary.csv_module_from == 2


@pytest.mark.slow
@pytest.mark.parametrize("quoted", [False, True], ids=["bare", "quoted"])
def test_score_reads_standard_files_without_the_csv_module(tmp_path: Path, quoted: bool) -> None:
    # Chunks of 1 to 9 rows end at every byte of a CRLF line, quotes included.
    source = tmp_path / "in.csv"
    source.write_text(_csv([HEADER, *ROWS * 6], end="\r\n", quote=quoted), newline="")
    for chunk_rows in range(1, 10):
        summary = score_csv(source, tmp_path / "out.csv", chunk_rows=chunk_rows)
        assert summary.rows_scored == 18
        assert summary.csv_module_from is None


def test_score_carries_unknown_columns_and_responded_untouched(tmp_path: Path) -> None:
    content = "Note,patient_id,Responded,crp_mg_l,Code\nNA,A,yes,1.0,007\n,B,0,2.0,1e3\n"
    code, out, _ = _score(tmp_path, content)
    assert code == 0
    assert list(out.columns) == [*OUTPUT_COLUMNS, "responded", "Note", "Code"]
    assert out["responded"].tolist() == ["1", "0"]
    assert out["Note"].tolist() == ["NA", ""]
    assert out["Code"].tolist() == ["007", "1e3"]


def test_score_without_patient_id_uses_the_line_number(tmp_path: Path) -> None:
    code, out, _ = _score(tmp_path, "crp_mg_l\n1.0\n\n2.0\n")
    assert code == 0
    assert out["patient_id"].tolist() == ["2", "4"]


def test_score_explain_adds_one_contribution_per_model_field(tmp_path: Path) -> None:
    code, out, _ = _score(tmp_path, _csv([HEADER, *ROWS]), "--explain")
    assert code == 0
    expected = predict(pd.DataFrame(ROWS, columns=HEADER), explain=True)
    contributions = [c for c in expected.columns if c.startswith("contribution_")]
    assert list(out.columns) == list(expected.columns)
    np.testing.assert_allclose(
        out[contributions].astype(float), expected[contributions], rtol=0, atol=1e-12
    )


def test_score_and_predict_give_the_same_numbers_on_the_same_rows(tmp_path: Path) -> None:
    patients = simulate_cohort(2_000, seed=11).drop(columns=["true_probability"])
    source = tmp_path / "cohort.csv"
    patients.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    summary = score_csv(source, out, explain=True, chunk_rows=300)
    assert summary.rows_scored == 2_000
    batch = pd.read_csv(out, keep_default_na=False)
    single = predict(pd.read_csv(source, dtype=str, keep_default_na=False), explain=True)
    numbers = [c for c in single.columns if c.startswith(("response_", "probability_", "contrib"))]
    assert np.abs(batch[numbers].to_numpy() - single[numbers].to_numpy()).max() <= 1e-12
    for column in ("patient_id", "predicted_label", "top_reasons", "warnings"):
        assert batch[column].tolist() == single[column].tolist()
    assert batch["responded"].tolist() == patients["responded"].astype(int).tolist()
    raw = pd.read_csv(source, dtype=str, keep_default_na=False)
    for i in range(0, len(raw), 250):  # and one patient at a time, as predict(dict) scores them
        one = predict(raw.iloc[i].to_dict())
        row = batch.iloc[i]
        got = [row["response_probability"], row["probability_low"], row["probability_high"]]
        assert np.abs(np.array(got) - [one.probability, *one.interval]).max() <= 1e-12
        # Cells split back into the lists predict(dict) gives.
        for column, notes in (("top_reasons", one.reasons), ("warnings", one.warnings)):
            assert (row[column].split(NOTE_SEPARATOR) if row[column] else []) == list(notes)
        for field, value in one.contributions.items():
            assert abs(row[f"contribution_{field}"] - value) <= 1e-12


@pytest.mark.parametrize("chunk_rows", [1, 2, 7], ids=["1", "2", "7"])
def test_score_output_does_not_depend_on_the_chunk_size(tmp_path: Path, chunk_rows: int) -> None:
    content = DIALECTS["blank-lines"][0] + "K-4,12,F,x,IV,yes,Leeds\n" + _csv(ROWS)
    source = tmp_path / "in.csv"
    source.write_text(content)
    whole = score_csv(source, tmp_path / "a.csv", rejects=tmp_path / "ra.csv")
    parts = score_csv(
        source, tmp_path / "b.csv", rejects=tmp_path / "rb.csv", chunk_rows=chunk_rows
    )
    assert (whole.rows_scored, whole.rows_rejected) == (parts.rows_scored, parts.rows_rejected)
    # The same numbers to rounding: BLAS sums in another order for another number of rows.
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"), rtol=0, atol=1e-12
    )
    assert (tmp_path / "ra.csv").read_bytes() == (tmp_path / "rb.csv").read_bytes()


@pytest.mark.parametrize("name", ["model.json", "manifest.json"])
@pytest.mark.parametrize("which", ["out", "rejects"])
def test_score_csv_from_python_refuses_to_write_over_the_models_files(
    tmp_path: Path, name: str, which: str
) -> None:
    # The command line refused this before score_csv ran; from Python nothing did, and
    # score_csv(out=".../model.json") replaced the model with a scored table.
    base = tmp_path / "base"
    base.mkdir()
    for file in ("model.json", "manifest.json"):
        (base / file).write_bytes((ROOT / "models" / file).read_bytes())
    before = (base / name).read_bytes()
    source = tmp_path / "in.csv"
    source.write_text("patient_id,crp_mg_l,route\nA,0.9,iv\n")
    link = tmp_path / "link.json"
    link.symlink_to(base / name)  # through a link too
    outputs = {"out": tmp_path / "o.csv", "rejects": tmp_path / "r.csv", which: link}
    with pytest.raises(BatchError, match=f"is the model's own {name}"):
        score_csv(source, outputs["out"], rejects=outputs["rejects"], model=base)
    assert (base / name).read_bytes() == before
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "r.csv").exists()
    summary = score_csv(source, tmp_path / "o.csv", model=base)  # another file: scored
    assert summary.rows_scored == 1


def test_score_header_only_file_gives_an_output_with_only_the_header(tmp_path: Path) -> None:
    code, out, rejects = _score(tmp_path, "patient_id,crp_mg_l,Site\n")
    assert code == 0
    assert list(out.columns) == [*OUTPUT_COLUMNS, "Site"]
    assert out.empty and rejects.empty


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "the file is empty"),
        (b"\n\n  \r\n", "the file is empty"),
        (b"patient_id,crp_mg_l\nA,\x00\x01\x80\x81\n", "not a text file"),
        ("patient_id,crp_mg_l\nA,1\nB,caf\xe9\n".encode("latin-1"), "line 3 is not UTF-8"),
        (b"crp_mg_l,CRP (mg/dL)\n1,0.1\n", "both give crp_mg_l"),
        (b"patient_id,CRP\nA,1\n", "does not say its unit"),
        (b"patient_id,crp_mg_l\nA,1\n", "read as ';'-separated"),
        (b"K-101,0.9,iv\nK-102,1.2,in\n", "none of the 3 column names is an input field"),
    ],
    ids=[
        "empty",
        "only-blank-lines",
        "binary",
        "latin-1",
        "field-twice",
        "unit-unclear",
        "wrong-separator",
        "no-schema-column",
    ],
)
def test_score_unusable_input_exits_2_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, said: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    out = tmp_path / "out.csv"
    sep = ["--sep", ";"] if b"patient_id,crp_mg_l\n" in content else []
    assert (
        main(["score", str(source), "--out", str(out), "--rejects", str(tmp_path / "r"), *sep]) == 2
    )
    err = capsys.readouterr().err
    assert said in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.parametrize(
    "argv",
    [
        ["score", "missing.csv", "--out", "out.csv"],
        ["score", "in.csv", "--out", "no-such-folder/out.csv"],
        ["score", "in.csv", "--out", "-", "--rejects", "-"],
        ["score", "in.csv", "--out", "out.csv", "--model", "no-such-model"],
    ],
    ids=["missing-input", "missing-folder", "both-stdout", "missing-model"],
)
def test_score_bad_arguments_exit_2_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_text(_csv([HEADER, *ROWS]))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [["--sep", "::"], ["--decimal", ";"], ["--chunk-rows", "0"]],
    ids=["two-char-separator", "bad-decimal", "zero-chunk"],
)
def test_score_bad_option_values_are_refused_by_argparse(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["score", "in.csv", "--out", "out.csv", *argv])
    assert exc.value.code == 2


def test_score_reads_stdin_and_writes_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(DIALECTS["crlf"][0].encode()))
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["score", "-", "--out", "-", "--quiet"]) == 0
    stdout.flush()
    out = pd.read_csv(io.BytesIO(stdout.buffer.getvalue()), dtype=str, keep_default_na=False)
    assert out["patient_id"].tolist() == ["K-1", "K-2", "K-3"]


def test_score_summary_on_stderr_and_no_progress_bar_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(_csv([HEADER, ROWS[0], ["K-2", "x", *ROWS[1][2:]], ROWS[2]]))
    assert main(["score", str(source), "--out", str(tmp_path / "out.csv")]) == 1
    # The summary names line, column and rule, never the value ('x') nor the patient ('K-2').
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("2 rows scored, 1 rejected (1 problem) in ")
    assert "read as ','-separated, decimal '.' (detected)" in err[0]
    assert (
        err[1] == "  line 3: age_years is not a number; give the value in years, or leave "
        "it empty if not measured"
    )
    assert "--rejects FILE" in err[-1]
    assert main(["score", str(source), "--out", str(tmp_path / "o.csv"), "--quiet"]) == 1
    assert capsys.readouterr().err == ""


def test_score_progress_bar_goes_to_stderr_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(_csv([HEADER, *ROWS]))
    score_csv(source, tmp_path / "out.csv", progress=True)
    assert "scoring" in capsys.readouterr().err


@pytest.mark.slow
def test_ketamine_predictor_console_script_scores(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "ketamine-predictor"
    if not script.exists():
        pytest.skip("the package is not installed with its console script")
    source = tmp_path / "in.csv"
    source.write_text(_csv([HEADER, *ROWS]))
    result = subprocess.run(
        [str(script), "score", str(source), "--out", "-", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("patient_id,response_probability")


# --------------------------------------------------------------------------- interruption


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file that takes a few seconds to score in chunks of 50 rows."""
    source = tmp_path_factory.mktemp("big") / "big.csv"
    source.write_text(_csv([HEADER]) + _csv(ROWS * 10_000))
    return source


def _writing_into(pid: int, folder: Path) -> bool:
    """Whether process ``pid`` has a file open in ``folder`` (named, or unnamed: O_TMPFILE)."""
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{descriptor}").startswith(f"{folder}/"):
                return True
    return False


def _workers_running(pid: int) -> bool:
    """Whether the scorer ``pid``'s worker processes have written rows into its spool folder."""
    from predictor.io._batch import SPOOL_PREFIX

    base = Path(tempfile.gettempdir())
    return any(any(folder.iterdir()) for folder in base.glob(f"{SPOOL_PREFIX}{pid}-*"))


def _sigint_default() -> None:
    """Run in the scorer before it starts: Python leaves an inherited ignored SIGINT ignored
    (a shell's background job), where this test needs it to interrupt the scorer."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _score_command(source: Path, folder: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "predictor", "score", str(source), "--out",
            str(folder / "out.csv"), "--rejects", str(folder / "rejects.csv"),
            "--chunk-rows", "50", "--workers", str(workers)]  # fmt: skip


def _start_and_wait_for_partial(
    source: Path, folder: Path, environment: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        _score_command(source, folder, 1), stderr=subprocess.PIPE, env=environment
    )
    deadline = time.monotonic() + 60
    while not _writing_into(process.pid, folder):
        assert process.poll() is None, "the scorer ended before it was interrupted"
        assert time.monotonic() < deadline, "no partial output appeared"
        time.sleep(0.02)
    time.sleep(0.2)  # well into the file
    return process


MOMENTS = {1: (0.2,), 2: (0.0, 0.1, 0.3)}
"""When to signal a scorer with 1 or 2 workers: seconds after it opened its partial output.
Its signal handlers are in place by then; its 2 workers are forked about 0.1 s later and write
their first rows about 0.4 s later (0.3 to 0.5 s, on 2 busy cores)."""


def _signal_each(
    processes: list[subprocess.Popen[bytes]],
    folders: list[Path],
    moments: tuple[float, ...],
    signum: int,
) -> None:
    """Send ``signum`` to each scorer ``moments[k]`` seconds after it opened its output."""
    opened: dict[int, float] = {}
    pending = set(range(len(processes)))
    deadline = time.monotonic() + 60
    while pending:
        for k in sorted(pending):
            assert processes[k].poll() is None, "the scorer ended before it was interrupted"
            if k not in opened and _writing_into(processes[k].pid, folders[k]):
                opened[k] = time.monotonic()
            if k in opened and time.monotonic() >= opened[k] + moments[k]:
                processes[k].send_signal(signum)
                pending.discard(k)
        assert time.monotonic() < deadline, "no partial output appeared"
        time.sleep(0.002)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("workers", [1, 2], ids=["1-worker", "2-workers"])
def test_score_interrupted_leaves_no_partial_output_and_the_old_file_untouched(
    tmp_path: Path, big_input: Path, signum: int, workers: int
) -> None:
    """Interrupted once it runs (with 2 workers: as they start, at the three moments of
    :data:`MOMENTS`, three scorers at once), the scorer exits 130 and leaves only the old file.

    Two ways a signal used to be lost (the run then finished, exit 0), about 1 run in 10 when
    signalled as the workers start: a KeyboardInterrupt raised inside an at-fork function of
    another module (logging's) while ``os.fork`` started the workers, which Python prints and
    drops; and a signal that arrived while pyarrow read a chunk, which pyarrow's own handler
    passes on from a thread of its own, too late if the read ends first."""
    moments = MOMENTS[workers]
    folders = [tmp_path / f"at-{moment}" for moment in moments]
    processes = []
    try:
        for folder in folders:
            folder.mkdir()
            (folder / "out.csv").write_text("previous output\n")
            processes.append(
                subprocess.Popen(
                    _score_command(big_input, folder, workers),
                    stderr=subprocess.PIPE,
                    preexec_fn=_sigint_default,
                )
            )
        _signal_each(processes, folders, moments, signum)
        for process, folder, moment in zip(processes, folders, moments, strict=True):
            _, err = process.communicate(timeout=60)
            assert process.returncode == 130, f"signalled at {moment} s: {err.decode()}"
            assert b"interrupted" in err and b"Traceback" not in err, err.decode()
            assert sorted(p.name for p in folder.iterdir()) == ["out.csv"], moment
            assert (folder / "out.csv").read_text() == "previous output\n"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2], ids=["1-worker", "2-workers"])
def test_score_interrupted_again_and_again_still_exits_130_and_leaves_the_old_file(
    tmp_path: Path, big_input: Path, workers: int
) -> None:
    """Ctrl-C held down: SIGINT every 0.2 ms until the scorer ends. A second signal used to
    cut the first one's cleanup short (with 2 workers the run could hang), or to kill the
    scorer as Python shut down (its handlers then back to the default: exit -2, in about half
    the runs)."""
    (tmp_path / "out.csv").write_text("previous output\n")
    process = subprocess.Popen(
        _score_command(big_input, tmp_path, workers),
        stderr=subprocess.PIPE,
        preexec_fn=_sigint_default,
    )
    try:
        _signal_each([process], [tmp_path], [0.1], signal.SIGINT)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            process.send_signal(signal.SIGINT)
            time.sleep(0.0002)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err.decode()
    assert b"interrupted" in err and b"Traceback" not in err, err.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    assert (tmp_path / "out.csv").read_text() == "previous output\n"


@pytest.mark.slow
@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named-temporary"])
def test_score_killed_leaves_no_partial_file_or_one_the_next_run_removes(
    tmp_path: Path, big_input: Path, unnamed: bool
) -> None:
    """SIGKILL mid-run: with O_TMPFILE (Linux) nothing at all is left; without it, only a
    hidden partial file, which the next write to the same output removes."""
    if unnamed and _unnamed_file(tmp_path) is None:
        pytest.skip("this file system has no O_TMPFILE")
    (tmp_path / "out.csv").write_text("previous output\n")
    environment = None if unnamed else {**os.environ, "KETAMINE_PREDICTOR_NO_O_TMPFILE": "1"}
    process = _start_and_wait_for_partial(big_input, tmp_path, environment)
    process.kill()
    process.wait(timeout=60)
    assert (tmp_path / "out.csv").read_text() == "previous output\n"
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "out.csv")
    if unnamed:
        assert left == []
        return
    assert left and all(name.startswith(".") and name.endswith(".partial") for name in left)
    source = tmp_path / "small.csv"
    source.write_text(_csv([HEADER, *ROWS]))
    score_csv(source, tmp_path / "out.csv", rejects=tmp_path / "rejects.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "rejects.csv", "small.csv"]


def test_stale_partial_of_a_running_writer_is_kept(tmp_path: Path) -> None:
    from predictor._atomic import remove_stale_partials

    mine = tmp_path / f".out.csv.{os.getpid()}.abc.partial"
    mine.write_text("being written")
    other = tmp_path / ".other.csv.1.abc.partial"
    other.write_text("another file's")
    assert remove_stale_partials(tmp_path / "out.csv") == []
    assert mine.exists() and other.exists()


# --------------------------------------------------------------------------- the reader


def _read_all(content: bytes, engine: str, chunk_rows: int) -> tuple[list, list, list]:
    reader = CsvReader(io.BytesIO(content), "test", chunk_rows=chunk_rows, engine=engine)
    rows, lines, ragged = [], [], []
    for chunk in reader.chunks():
        rows += chunk.frame.to_numpy().tolist()
        lines += chunk.frame.index.tolist()
        ragged += [(p.row, p.value, str(p.reason)) for p in chunk.problems]
    return [reader.header, reader.header_line, *rows], lines, ragged


CELL_TEXT = st.text(alphabet=st.sampled_from('ab,"\n\r ;x1'), max_size=6)


@settings(max_examples=settings.default.max_examples * 3 // 4, deadline=None)
@given(
    rows=st.lists(st.lists(CELL_TEXT, min_size=1, max_size=4), min_size=1, max_size=8),
    quote_all=st.booleans(),
    crlf=st.booleans(),
    chunk_rows=st.integers(1, 4),
)
def test_fast_reader_and_csv_module_read_any_file_alike(rows, quote_all, crlf, chunk_rows):
    def cell(text: str) -> str:
        if quote_all or any(c in text for c in ',"\n\r'):
            return '"' + text.replace('"', '""') + '"'
        return text

    end = "\r\n" if crlf else "\n"
    content = ("h1,h2,h3" + end + "".join(",".join(map(cell, r)) + end for r in rows)).encode()
    fast = _read_all(content, "fast", chunk_rows)
    assert fast == _read_all(content, "csv", chunk_rows)


@settings(max_examples=settings.default.max_examples // 2, deadline=None)
@given(text=st.text(alphabet=st.sampled_from('ab,"\n\r x'), max_size=40))
def test_reader_reads_any_text_or_refuses_it_clearly(text):
    content = ("h1,h2\n" + text).encode()
    try:
        fast = _read_all(content, "fast", 3)
    except BatchError as exc:
        assert "line" in str(exc)
        return
    assert fast == _read_all(content, "csv", 3)


def test_score_summary_never_shows_a_patients_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("patient_id,CRP (mg/dL),sex\nK-7,100,F\nK-8,0.1,robot\n")
    assert main(["score", str(source), "--out", str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert "line 2: CRP (mg/dL) is outside the plausible range 0 to 500 mg/L" in err
    assert "line 3: sex is not a known sex" in err
    for value in ("100", "1000", "robot", "K-7", "K-8"):
        assert value not in err


@pytest.mark.parametrize("slow_reader", [False, True], ids=["fast-reader", "csv-module"])
def test_score_a_field_over_128_kib_is_the_rows_problem_not_the_files(
    tmp_path: Path, slow_reader: bool
) -> None:
    rows = [["A", "1", "iv"], ["B", "x" * 200_000, "iv", "extra"], ["C", "1", "iv"]]
    if slow_reader:  # a quote inside an unquoted field sends the file to the csv module
        rows.insert(0, ["Z", '5"7', "iv"])
    content = _csv([["patient_id", "crp_mg_l", "route"], *rows])
    code, out, rejects = _score(tmp_path, content)
    assert code == 1
    assert "A" in out["patient_id"].tolist() and "C" in out["patient_id"].tolist()
    assert "wrong_field_count" in rejects["reason"].tolist()


def test_score_a_route_the_model_never_saw_contributes_zero_and_is_warned(tmp_path: Path) -> None:
    # the shipped model knows IV and intranasal; the schema also intramuscular, oral, sublingual
    routes = ["IM", "PO", "iv", "troche", "Sublingual", "esketamine", ""]
    levels = [
        "intramuscular_ketamine",
        "oral_ketamine",
        None,
        "sublingual_ketamine",
        "sublingual_ketamine",
        None,
        None,
    ]
    rows = [[f"P{k}", "0.9", route] for k, route in enumerate(routes)]
    source = tmp_path / "in.csv"
    source.write_text(_csv([["patient_id", "crp_mg_l", "Route"], *rows]))
    read = {"dtype": str, "keep_default_na": False}
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}.csv"
        summary = score_csv(source, out, explain=True, chunk_rows=2, workers=workers)
        assert (summary.rows_scored, summary.rows_rejected) == (len(rows), 0)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    scored = pd.read_csv(tmp_path / "out1.csv", **read)
    expected = predict(pd.DataFrame(rows, columns=["patient_id", "crp_mg_l", "route"]))
    assert scored["warnings"].tolist() == expected["warnings"].tolist()
    for i, level in enumerate(levels):
        warnings = scored["warnings"].iloc[i].split(NOTE_SEPARATOR)
        note = [w for w in warnings if w.startswith("route = ")]
        if level is None:
            assert note == []
            continue
        assert note == [
            f"route = {level} was not seen when this model was trained: its route term is "
            "that of an average training patient (contribution 0), and the interval does not "
            "cover what this route changes"
        ]
        assert float(scored["contribution_route"].iloc[i]) == 0.0
        assert "route not measured" not in scored["warnings"].iloc[i]
        assert "ketamine" not in scored["top_reasons"].iloc[i].lower()
