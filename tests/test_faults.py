"""Fault injection for batch scoring: an output folder that cannot be written, a full disk, a
writer that fails at the last step. In every case the previous output is untouched, no partial
file is left, and the exit code and one-line message say what happened. (Ctrl-C, SIGTERM and
SIGKILL mid-run are in test_batch.py.) The same for a folder written as one set
(``atomic_directory``, which training uses): an error, Ctrl-C, a failed sync or SIGKILL
half-way leaves the old folder whole, and nothing is left that the next run does not remove."""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from predictor import _atomic as atomic
from predictor._atomic import atomic_directory
from predictor._cli import main
from predictor.simulation._synthetic import simulate_cohort

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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_score_syncs_a_big_output_while_writing_it_and_writes_the_same_bytes(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments = ["score", str(source), "--chunk-rows", "500", "--quiet"]
    # exit 1: the source's one bad row is rejected
    assert main([*arguments, "--out", str(tmp_path / "once.csv")]) == 1  # one sync, at the end
    synced: list[int] = []
    real = getattr(os, "fdatasync", os.fsync)

    def fdatasync(descriptor: int) -> None:
        synced.append(os.fstat(descriptor).st_size)
        real(descriptor)

    monkeypatch.setattr(os, "fdatasync", fdatasync, raising=False)
    monkeypatch.setattr(atomic, "SYNC_EVERY", 100_000)
    assert main([*arguments, "--out", str(tmp_path / "behind.csv")]) == 1
    size = (tmp_path / "behind.csv").stat().st_size
    assert size > 500_000
    # a sync once 100 kB more were written (after a chunk: about 270 kB here)
    assert len(synced) >= 3
    assert all(b - a >= 100_000 for a, b in zip([0, *synced], synced, strict=False))
    assert synced[-1] <= size
    assert (tmp_path / "behind.csv").read_bytes() == (tmp_path / "once.csv").read_bytes()


def test_score_when_a_sync_while_writing_fails_exits_2_and_keeps_the_previous_output(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folder = tmp_path / "out"
    _folder_with_previous_outputs(folder)

    def failing_sync(descriptor: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fdatasync", failing_sync, raising=False)
    monkeypatch.setattr(atomic, "SYNC_EVERY", 100_000)
    code = main(["score", str(source), "--out", str(folder / "out.csv"),
                 "--rejects", str(folder / "rejects.csv"), "--chunk-rows", "500"])  # fmt: skip
    assert code == 2
    assert "Input/output error" in _one_line(capsys.readouterr().err)
    _assert_untouched(folder)


def test_score_to_standard_output_redirected_to_a_file_does_not_sync_it(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the shell's file, not one score opened: syncing (or counting bytes already in it with
    # >>) is not score's business
    synced: list[int] = []
    monkeypatch.setattr(os, "fdatasync", synced.append, raising=False)
    monkeypatch.setattr(atomic, "SYNC_EVERY", 100_000)
    with (tmp_path / "shell.csv").open("w", encoding="utf-8") as redirected:
        monkeypatch.setattr(sys, "stdout", redirected)
        assert main(["score", str(source), "--out", "-", "--chunk-rows", "500", "--quiet"]) == 1
    assert (tmp_path / "shell.csv").stat().st_size > 500_000
    assert synced == []


def test_write_behind_leaves_a_pipe_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "SYNC_EVERY", 1)
    monkeypatch.setattr(os, "fdatasync", lambda d: pytest.fail("synced a pipe"), raising=False)
    reading, writing = os.pipe()
    with os.fdopen(reading, "rb") as source, os.fdopen(writing, "wb") as sink:
        behind = atomic.WriteBehind(sink)
        sink.write(b"rows\n")
        behind()
        sink.flush()
        assert source.read(5) == b"rows\n"


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


# --------------------------------------------------------------------------- directories as one set


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder``: a file's bytes, None for a directory."""
    return {
        str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


def _previous_model_folder(folder: Path) -> dict[str, bytes | None]:
    (folder / "figures").mkdir(parents=True)
    (folder / "model.json").write_text("old model\n")
    (folder / "report.md").write_text("old report\n")
    (folder / "figures" / "roc.png").write_bytes(b"old figure")
    (folder / "notes.txt").write_text("the user's own notes\n")
    return _tree(folder)


@pytest.fixture(params=[True, False], ids=["rename-exchange", "two-renames"])
def exchange(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run a test with renameat2(RENAME_EXCHANGE), and with the fallback of two renames."""
    if request.param and atomic._renameat2() is None:
        pytest.skip("no renameat2 here")
    if not request.param:
        monkeypatch.setattr(atomic, "_exchange", lambda first, second: False)
    return request.param


def test_atomic_directory_replaces_the_set_and_keeps_the_users_other_files(
    tmp_path: Path, exchange: bool
) -> None:
    out = tmp_path / "model"
    _previous_model_folder(out)
    with atomic_directory(out, owned=("model.json", "report.md", "figures")) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".model.")
        (staging / "model.json").write_text("new model\n")
        (staging / "manifest.json").write_text("new manifest\n")
    # The new set, and the user's file; report.md and figures/ are the writer's: not carried.
    assert _tree(out) == {
        "manifest.json": b"new manifest\n",
        "model.json": b"new model\n",
        "notes.txt": b"the user's own notes\n",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing hidden left


def test_atomic_directory_creates_a_new_folder_with_the_usual_mode(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    with atomic_directory(out) as staging:
        (staging / "x").write_text("x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0o700
    assert _tree(out) == {"x": b"x"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["b"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt], ids=["error", "ctrl-c"])
def test_atomic_directory_exception_midway_keeps_the_old_folder_and_leaves_no_staging(
    tmp_path: Path, exchange: bool, error: type[BaseException]
) -> None:
    out = tmp_path / "model"
    before = _previous_model_folder(out)
    with pytest.raises(error), atomic_directory(out) as staging:
        (staging / "model.json").write_text("new model\n")
        raise error("stopped half-way")
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_directory_failing_to_sync_keeps_the_old_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model"
    before = _previous_model_folder(out)

    def fsync_fails(descriptor: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(OSError, match="Input/output error"), atomic_directory(out) as staging:
        (staging / "model.json").write_text("new model\n")
        monkeypatch.setattr(os, "fsync", fsync_fails)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_directory_refuses_a_file_as_destination(tmp_path: Path) -> None:
    (tmp_path / "model").write_text("a file")
    with pytest.raises(NotADirectoryError), atomic_directory(tmp_path / "model"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_directory_through_a_symlink_replaces_its_target_and_keeps_the_link(
    tmp_path: Path,
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with atomic_directory(tmp_path / "link") as staging:
        (staging / "x").write_text("new")
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "real" / "x").read_text() == "new"


def _dead_pid() -> int:
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    return int(process.stdout)


def test_atomic_directory_removes_stale_staging_of_dead_writers_only(tmp_path: Path) -> None:
    out = tmp_path / "model"
    before = _previous_model_folder(out)
    dead = tmp_path / f".model.{_dead_pid()}.abcd1234.partial"
    (dead / "figures").mkdir(parents=True)
    (dead / "figures" / "roc.png").write_bytes(b"half")
    alive = tmp_path / f".model.{os.getppid()}.abcd1234.partial"  # a running process's
    alive.mkdir()
    other = tmp_path / f".other.{_dead_pid()}.abcd1234.partial"  # another destination's
    other.mkdir()
    with atomic_directory(out) as staging:
        assert not dead.exists()
        (staging / "model.json").write_text("new model\n")
    assert alive.is_dir() and other.is_dir()
    assert _tree(out) == {**before, "model.json": b"new model\n"}  # no `owned`: all carried


@pytest.mark.slow
def test_atomic_directory_killed_leaves_the_old_folder_and_the_next_run_cleans_up(
    tmp_path: Path,
) -> None:
    """SIGKILL while writing: the old folder is whole, and the staging folder left behind is
    removed by the next write to the same destination."""
    out = tmp_path / "model"
    before = _previous_model_folder(out)
    child = (
        "import sys, time\n"
        "from predictor._atomic import atomic_directory\n"
        "with atomic_directory(sys.argv[1]) as staging:\n"
        "    (staging / 'model.json').write_text('new model')\n"
        "    print(staging, flush=True)\n"
        "    time.sleep(600)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", child, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        staging = Path(process.stdout.readline().strip())
    finally:
        process.kill()
        process.wait(timeout=60)
        process.stdout.close()
    assert staging.name.startswith(".model.") and staging.is_dir()
    assert _tree(out) == before
    with atomic_directory(out) as again:
        (again / "model.json").write_text("newer model\n")
    assert not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_directory_puts_back_a_folder_set_aside_by_a_writer_killed_between_renames(
    tmp_path: Path,
) -> None:
    """The fallback's window (old folder renamed away, new one not yet in place): the next run
    restores the old folder before anything else."""
    out = tmp_path / "model"
    aside = tmp_path / f".model.{_dead_pid()}.abcd1234.old"
    before = _previous_model_folder(aside)
    assert atomic.remove_stale_partials(out) == []
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


class _DropsAnInterrupt:
    """Sends SIGTERM from ``__del__``, where Python prints the ``KeyboardInterrupt`` its
    handler raises ("Exception ignored in") and drops it, as inside importlib's weakref
    callbacks and at-fork functions (where CI once lost a signal this way)."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGTERM)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_python_drops_still_stops_a_file_from_being_put_in_place(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text(PREVIOUS)
    with (
        pytest.raises(KeyboardInterrupt),
        atomic.stopping_on_signals(),
        atomic.atomic_text_output(target) as handle,
    ):
        handle.write("new output\n")
        _DropsAnInterrupt()  # freed at once: the exception is dropped, the run goes on
        handle.write("more\n")
    assert target.read_text() == PREVIOUS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_python_drops_still_stops_a_folder_from_being_put_in_place(
    tmp_path: Path,
) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "model.json").write_text(PREVIOUS)
    with (
        pytest.raises(KeyboardInterrupt),
        atomic.stopping_on_signals(),
        atomic_directory(target, owned={"model.json"}) as staging,
    ):
        (staging / "model.json").write_text("new model\n")
        _DropsAnInterrupt()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert (target / "model.json").read_text() == PREVIOUS


def test_a_signal_while_a_set_of_files_is_put_in_place_comes_after_all_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C between two of the renames that put a report's files in place left one new file
    # among old ones (a helper's attack sent SIGINT when the first file changed).
    targets = [tmp_path / f"{name}.txt" for name in "abc"]
    for target in targets:
        target.write_text(PREVIOUS)
    commit = atomic._Pending.commit

    def commit_then_signal(self: atomic._Pending) -> None:
        commit(self)
        signal.raise_signal(signal.SIGINT)  # after the first file is in place

    monkeypatch.setattr(atomic._Pending, "commit", commit_then_signal)
    with (
        pytest.raises(atomic.InterruptedAfterWriting),
        atomic.stopping_on_signals(),
        atomic.atomic_outputs(targets) as handles,
    ):
        for handle in handles:
            handle.write("new\n")
    assert [target.read_text() for target in targets] == ["new\n"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "c.txt"]


def test_a_signal_held_while_files_go_into_a_folder_being_staged_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The set was put in place in the staging folder, which is then dropped: the interrupt
    # must not say the output files were written.
    commit = atomic._Pending.commit

    def commit_then_signal(self: atomic._Pending) -> None:
        commit(self)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(atomic._Pending, "commit", commit_then_signal)
    target = tmp_path / "model"
    with (
        pytest.raises(KeyboardInterrupt) as caught,
        atomic.stopping_on_signals(),
        atomic_directory(target) as staging,
        atomic.atomic_outputs([staging / "a"]) as (handle,),
    ):
        handle.write("new\n")
    assert not isinstance(caught.value, atomic.InterruptedAfterWriting)
    assert list(tmp_path.iterdir()) == []


def test_a_second_signal_soon_after_the_first_does_not_cut_its_cleanup_short() -> None:
    cleaned = []
    with pytest.raises(KeyboardInterrupt), atomic.stopping_on_signals():
        try:
            signal.raise_signal(signal.SIGINT)
        finally:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C again, at once: ignored
            cleaned.append(True)
    assert cleaned == [True]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_later_signal_stops_a_run_whose_first_one_python_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(atomic, "SECOND_SIGNAL_GRACE", 0.0)  # "later": at once, here
    went_on = []
    with pytest.raises(KeyboardInterrupt), atomic.stopping_on_signals():
        _DropsAnInterrupt()  # dropped: the run goes on
        went_on.append(True)
        signal.raise_signal(signal.SIGINT)  # stops it here, not at the block's end
        went_on.append(False)
    assert went_on == [True]


def test_then_ignore_leaves_both_signals_ignored_after_the_block() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt), atomic.stopping_on_signals(then_ignore=True):
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.raise_signal(signal.SIGINT)  # ignored: nothing raised
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])


def test_without_a_signal_the_block_writes_and_puts_the_handlers_back(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with atomic.stopping_on_signals():
        assert signal.getsignal(signal.SIGTERM) not in before
        with atomic.atomic_text_output(tmp_path / "out.csv") as handle:
            handle.write("new output\n")
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert (tmp_path / "out.csv").read_text() == "new output\n"
    with atomic.atomic_text_output(tmp_path / "out.csv") as handle:  # no signal is remembered
        handle.write("again\n")
    assert (tmp_path / "out.csv").read_text() == "again\n"
