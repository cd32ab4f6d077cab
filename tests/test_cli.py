"""The command line: simulate, validate, schema; exit codes; atomic output."""

from __future__ import annotations

import io
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from data_schemas import markdown_table, validate
from predictor._atomic import atomic_bytes_output, atomic_text_output
from predictor._cli import main
from predictor.simulation._synthetic import simulate_cohort


def test_cli_simulate_writes_a_cohort_that_validates_without_problems(tmp_path: Path) -> None:
    out = tmp_path / "cohort.csv"
    assert main(["simulate", "--n", "1000", "--seed", "1", "--out", str(out)]) == 0
    clean, problems = validate(pd.read_csv(out, dtype=str, keep_default_na=False))
    assert problems.empty
    assert len(clean) == 1000
    expected = simulate_cohort(1000, seed=1)
    pd.testing.assert_frame_equal(clean, expected, check_exact=False, rtol=1e-15)


def test_cli_simulate_same_seed_gives_identical_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    main(["simulate", "--n", "300", "--seed", "4", "--out", str(first)])
    main(["simulate", "--n", "300", "--seed", "4", "--out", str(second)])
    assert first.read_bytes() == second.read_bytes()


def test_cli_simulate_writes_whole_numbers_without_decimals(tmp_path: Path) -> None:
    out = tmp_path / "cohort.csv"
    main(["simulate", "--n", "50", "--seed", "2", "--out", str(out)])
    row = pd.read_csv(out, dtype=str, keep_default_na=False).iloc[0]
    assert "." not in row["age_years"]
    assert row["responded"] in {"0", "1"}


def test_cli_simulate_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--n", "20", "--seed", "3", "--out", "-"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(frame) == 20
    assert frame["patient_id"].iloc[0] == "S3-01"


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--n", "0", "--out", "x.csv"],
        ["simulate", "--n", "ten", "--out", "x.csv"],
        ["simulate", "--seed", "-3", "--out", "x.csv"],
        ["simulate"],
        ["no-such-command"],
    ],
    ids=["zero-n", "text-n", "negative-seed", "no-out", "unknown-command"],
)
def test_cli_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_cli_simulate_unwritable_destination_exits_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing-dir" / "cohort.csv"
    assert main(["simulate", "--n", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and str(out) in err
    assert len(err.strip().splitlines()) == 1


def test_cli_validate_reports_problems_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("Age (years),CRP (mg/dL),sex\n45,0.1,F\n12,x,m\n50,0.2,other\n")
    problems = tmp_path / "problems.csv"
    assert main(["validate", str(source), "--problems", str(problems)]) == 1
    table = pd.read_csv(problems)
    assert table[["line", "column", "reason"]].values.tolist() == [
        [3, "Age (years)", "out_of_range"],
        [3, "CRP (mg/dL)", "not_a_number"],
        [4, "sex", "unknown_level"],
    ]
    err = capsys.readouterr().err
    assert "3 records: 1 valid, 2 with problems (3 problems)" in err
    assert "line 4: sex is not a known sex" in err
    assert "other" not in err and "12" not in err  # summaries carry no patient values
    assert "other" in problems.read_text()  # the file the user asked for has them


def test_cli_validate_summary_says_what_a_rejected_line_breaks_without_its_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_text('patient_id,crp_mg_l\nA1,0.9\nSECRET,"0.5\nA3,1.2,7\nA4,1\n')
    assert main(["validate", str(source)]) == 1
    err = capsys.readouterr().err
    assert "line 3: unclosed_quote: a quoted field that does not close" in err
    assert "line 4: wrong_field_count: more or fewer fields than the header" in err
    assert "SECRET" not in err and "1.2" not in err


def test_cli_validate_refuses_problems_and_rejects_with_two_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("crp_mg_l\nx\n")
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["validate", str(source), "--problems", str(a), "--rejects", str(b)]) == 2
    assert "give one" in capsys.readouterr().err  # one of them was silently not written
    assert not a.exists() and not b.exists()
    assert main(["validate", str(source), "--problems", str(a), "--rejects", str(a)]) == 1


def test_cli_validate_reads_bom_and_crlf_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = "\ufeffPatient ID,CRP (mg/L)\r\nA,0.9\r\nB,NA\r\n".encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["validate", "-"]) == 0
    assert "2 records: 2 valid" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty"), (b"age_years\n\x00\x01\x80\x81\n", "not a text file")],
    ids=["empty", "binary"],
)
def test_cli_validate_unusable_file_exits_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    assert main(["validate", str(source)]) == 2
    err = capsys.readouterr().err
    assert reason in err
    assert len(err.strip().splitlines()) == 1


def test_cli_schema_prints_the_field_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == markdown_table()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_cli_schema_to_a_full_or_closed_stdout_exits_2_in_one_line() -> None:
    for redirect in ("> /dev/full", ">&-"):
        result = subprocess.run(
            f"{shlex.quote(sys.executable)} -m predictor schema {redirect}",
            shell=True,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: cannot write to standard output")
        assert len(result.stderr.splitlines()) == 1


def test_ctrl_c_while_the_command_line_imports_its_libraries_exits_130_in_one_line(
    tmp_path: Path,
) -> None:
    # SIGINT sent by an import hook at the moment pandas is first imported (by data_schemas,
    # as python -m predictor starts): a traceback of the import and exit -2 before.
    (tmp_path / "sitecustomize.py").write_text(
        "import os, signal, sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pandas':\n"
        "            sys.meta_path.remove(self)\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Interrupt())\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    result = subprocess.run(
        [sys.executable, "-m", "predictor", "schema"],
        capture_output=True,
        text=True,
        env=environment,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr == "interrupted while starting: no output file was written\n"
    assert result.stdout == ""


@pytest.mark.slow
def test_python_m_predictor_help_lists_the_subcommands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "predictor", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("score", "simulate", "validate", "train", "evaluate", "schema"):
        assert command in result.stdout


def test_atomic_output_leaves_nothing_on_failure_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("previous\n")
    with pytest.raises(RuntimeError), atomic_text_output(target) as handle:
        handle.write("partial")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "previous\n"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_output_replaces_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("previous\n")
    with atomic_text_output(target) as handle:
        handle.write("new\n")
    assert target.read_text() == "new\n"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_bytes_output_writes_bytes_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "figure.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_bytes_output(target) as handle:
        handle.write(b"\x89PNG partial")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    with atomic_bytes_output(target) as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
    assert target.read_bytes() == b"\x89PNG\r\n\x1a\n"  # no newline translation
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize(
    ("content", "code", "summary"),
    [
        ("crp_mg_l,CRP (mg/dL)\n1,0.1\n", 2, "'crp_mg_l' and 'CRP (mg/dL)' both give crp_mg_l"),
        ("patient_id,crp_mg_l,crp_mg_l\nA,1.0,50\n", 2, "'crp_mg_l' and 'crp_mg_l' both give"),
        ("patient_id,CRP\nA,1.0\n", 2, "column 'CRP' does not say its unit"),
        ("note,crp_mg_l,note\nx,1.0,y\n", 0, "1 record: 1 valid"),
        ("patient_id,crp_mg_l\n", 0, "0 records"),
    ],
    ids=[
        "same-field-two-names",
        "repeated-header",
        "unit-unclear",
        "repeated-unknown-kept",
        "header-only",
    ],
)
def test_cli_validate_exit_code_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, code: int, summary: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(content)
    assert main(["validate", str(source)]) == code
    err = capsys.readouterr().err
    assert summary in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_score_does_not_import_scikit_learn_or_matplotlib() -> None:
    # Only training and evaluation need them; importing scikit-learn alone costs ``score``
    # about 0.7 s of start-up.
    check = (
        "import sys; from predictor._cli import build_parser; import predictor; "
        "build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'matplotlib')))"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _imported_scipy(stderr: str) -> list[str]:
    """The scipy modules a ``python -X importtime`` run imported, from its stderr."""
    names = [
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert names, "no -X importtime lines"
    return [name for name in names if name.split(".")[0] == "scipy"]


@pytest.mark.parametrize(
    "command",
    [["score", "examples/patients.csv", "--out", "{out}"], ["validate", "examples/patients.csv"]],
    ids=["score", "validate"],
)
def test_cli_score_and_validate_do_not_import_scipy(command: list[str], tmp_path: Path) -> None:
    # Only fitting needs scipy (its import is about 0.35 s of start-up): scoring evaluates the
    # splines from their pieces (numpy) and the logistic function in numpy.
    root = Path(__file__).resolve().parents[1]
    argv = [part.format(out=tmp_path / "scored.csv") for part in command]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "predictor", *argv],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert _imported_scipy(result.stderr) == []


def test_predict_does_not_import_scipy() -> None:
    check = (
        "import sys; import pandas as pd; import predictor, predictor._cli; "
        "from predictor import load_model, predict; "
        "rows = pd.read_csv('examples/patients.csv'); "
        "scored = predict(rows, model=load_model()); "
        "one = predict(rows.iloc[0].dropna().to_dict()); "
        "assert len(scored) == len(rows) and 0.0 < one.probability < 1.0; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_ctrl_c_caught_in_code_made_from_text_still_exits_130(tmp_path: Path) -> None:
    # CPython remembers a KeyboardInterrupt that ended code compiled from text (exec or eval of
    # a string, as namedtuple and dataclasses make classes) even once it is caught, and python
    # -m then killed the process with SIGINT after shutting down: exit -2 after "interrupted",
    # no traceback (about one run in fifty of the held-down Ctrl-C test of test_batch).
    (tmp_path / "interrupted_score.py").write_text(
        "import predictor._cli as cli\n"
        "def interrupted(args):\n"
        "    exec('raise KeyboardInterrupt')  # Ctrl-C while a namedtuple is made\n"
        "cli.run_score = interrupted\n"
        "raise SystemExit(cli.main())\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "scored.csv"
    result = subprocess.run(
        [sys.executable, "-m", "interrupted_score", "score", "examples/patients.csv", "--out",
         str(out)],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 130, result.stderr[-2000:]
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
