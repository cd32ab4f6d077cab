"""Fault injection for batch scoring: an output folder that cannot be written, a full disk, a
writer that fails at the last step. In every case the previous output is untouched, no partial
file is left, and the exit code and one-line message say what happened. (Ctrl-C, SIGTERM and
SIGKILL mid-run are in test_batch.py.)"""

from __future__ import annotations

import errno
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from predictor.cli import main
from predictor.synthetic import simulate_cohort

PREVIOUS = "previous output\n"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cohort of 3,000 patients (about 1 MB of output), with one bad row."""
    path = tmp_path_factory.mktemp("input") / "cohort.csv"
    cohort = simulate_cohort(3000, seed=31).drop(columns=["responded", "true_probability"])
    cohort = cohort.astype(object)
    cohort.loc[cohort.index[5], "age_years"] = "old"
    cohort.to_csv(path, index=False)
    return path


def _folder_with_previous_outputs(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for name in ("out.csv", "rejects.csv"):
        (folder / name).write_text(PREVIOUS)


def _assert_untouched(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["out.csv", "rejects.csv"]
    for name in ("out.csv", "rejects.csv"):
        assert (folder / name).read_text() == PREVIOUS


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_score_into_a_folder_that_cannot_be_written_exits_2(source: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes anywhere a mode allows: use a file system that refuses
        folder = Path("/sys")
        if not folder.is_dir():
            pytest.skip("no /sys to stand for an unwritable folder")
    else:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
    result = subprocess.run(
        [sys.executable, "-m", "predictor", "score", str(source), "--out", str(folder / "o.csv")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line.startswith("error: ") and "o.csv" in line
    assert not (folder / "o.csv").exists()


def _limit_file_size(limit: int):
    def apply() -> None:  # in the child, before it runs: files may not grow beyond `limit`
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("explain", [False, True], ids=["plain", "explain"])
def test_score_on_a_full_disk_exits_2_and_keeps_the_previous_output(
    source: Path, tmp_path: Path, explain: bool
) -> None:
    folder = tmp_path / "out"
    _folder_with_previous_outputs(folder)
    command = [sys.executable, "-m", "predictor", "score", str(source),
               "--out", str(folder / "out.csv"), "--rejects", str(folder / "rejects.csv"),
               "--chunk-rows", "500", *(["--explain"] if explain else [])]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, preexec_fn=_limit_file_size(100_000)
    )
    assert result.returncode == 2, result.stderr
    line = _one_line(result.stderr)
    assert "File too large" in line or "No space left" in line
    _assert_untouched(folder)


def test_score_when_the_final_rename_fails_exits_2_and_leaves_nothing(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folder = tmp_path / "out"
    _folder_with_previous_outputs(folder)

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", failing_replace)
    code = main(["score", str(source), "--out", str(folder / "out.csv"),
                 "--rejects", str(folder / "rejects.csv")])  # fmt: skip
    assert code == 2
    assert "No space left on device" in _one_line(capsys.readouterr().err)
    _assert_untouched(folder)


def test_score_with_the_output_folder_missing_exits_2_before_reading(
    source: Path, tmp_path: Path, capsys
) -> None:
    code = main(["score", str(source), "--out", str(tmp_path / "nowhere" / "out.csv")])
    assert code == 2
    assert "there is no folder" in _one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_score_writes_through_to_a_device_or_fifo_instead_of_replacing_it(
    source: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with open(tmp_path / "received", "wb") as sink:  # a file: a pipe's buffer would fill up
        reader = subprocess.Popen(["cat", str(fifo)], stdout=sink)
        code = main(["score", str(source), "--out", str(fifo), "--rejects", os.devnull, "--quiet"])
        reader.wait(timeout=60)
    received = (tmp_path / "received").read_bytes()
    assert code == 1
    assert received.startswith(b"patient_id,response_probability,")
    assert received.count(b"\n") == 3000  # header + 2,999 scored rows
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still a FIFO
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)  # /dev/null still a device


def test_score_through_a_symlink_replaces_its_target_and_keeps_the_link_and_mode(
    source: Path, tmp_path: Path
) -> None:
    target, link = tmp_path / "target.csv", tmp_path / "link.csv"
    target.write_text(PREVIOUS)
    target.chmod(0o600)
    link.symlink_to(target)
    assert main(["score", str(source), "--out", str(link), "--quiet"]) == 1
    assert link.is_symlink() and target.read_text().startswith("patient_id,")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_score_output_and_rejects_appear_together_or_not_at_all(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure syncing the second file (after the first is complete) leaves both old."""
    folder = tmp_path / "out"
    _folder_with_previous_outputs(folder)
    calls = []
    real_fsync = os.fsync

    def fsync_fails_second_time(descriptor: int) -> None:
        calls.append(descriptor)
        if len(calls) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync_fails_second_time)
    code = main(["score", str(source), "--out", str(folder / "out.csv"),
                 "--rejects", str(folder / "rejects.csv"), "--quiet"])  # fmt: skip
    assert code == 2 and len(calls) == 2
    _assert_untouched(folder)


def test_score_refuses_the_same_file_for_output_and_rejects_under_two_spellings(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["score", str(source), "--out", "./o.csv", "--rejects", "o.csv"]) == 2
    assert "both" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "o.csv").exists()
