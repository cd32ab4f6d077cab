"""Write files so that they appear complete or not at all.

On Linux, writes go to an *unnamed* file in the destination's directory (``O_TMPFILE``): it
has no name while it is written, so a process killed outright (``SIGKILL``, out of memory)
leaves nothing behind, since the kernel frees an unnamed file with its last descriptor. Only
when writing ends normally is it flushed, synced, given a hidden name and renamed over the
destination. An exception (including ``KeyboardInterrupt``) discards it and leaves an existing
destination untouched.

Where ``O_TMPFILE`` is not available (another OS, or a file system without it), the file is
written under a hidden name, ``.NAME.PID.RANDOM.partial``, from the start. A process killed
outright then leaves that file (never under the destination's name), and the next write to the
same destination removes it once the process that wrote it is gone.

A set of files that belong together (a model and its report) is written into a new hidden
directory beside the destination, ``.NAME.PID.RANDOM.partial/``, which replaces the destination
directory in one step once every file in it is complete and synced (:func:`atomic_directory`).

Inside :func:`stopping_on_signals` (the command line runs every command in it), SIGINT and
SIGTERM are noted as well as raised, and nothing is put in place once one has come: Python
drops a ``KeyboardInterrupt`` raised inside a weakref callback, an at-fork function or a
``__del__`` (it prints "Exception ignored in" and goes on), and the note survives that.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, TextIO, cast

from predictor._processes import signals_held

PARTIAL_SUFFIX = ".partial"
OLD_SUFFIX = ".old"
"""Suffix of a replaced directory, ``.NAME.PID.RANDOM.old``, while it is set aside (only where
directories cannot be swapped in one step; see :func:`atomic_directory`)."""
NO_UNNAMED_FILES = "KETAMINE_PREDICTOR_NO_O_TMPFILE"
"""Set this environment variable to write through named temporary files even where O_TMPFILE
works (for a file system that mishandles it, and to test that path)."""

SECOND_SIGNAL_GRACE = 3.0
"""Seconds after a signal during which another is ignored by :func:`stopping_on_signals`."""

_SIGNALLED = threading.Event()
"""Set when SIGINT or SIGTERM comes inside :func:`stopping_on_signals`."""


def ignore_stop_signals() -> None:
    """Ignore SIGINT and SIGTERM from now on in this process, which is ending (interrupted and
    cleaned up, or done). Python sets its own handlers back to the default as it shuts down,
    so a second Ctrl-C then killed it (exit -2, not 130); an ignored signal stays ignored."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def stopping_on_signals(*, then_ignore: bool = False) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``KeyboardInterrupt`` that no write can miss.

    A signal is noted and raised; another within :data:`SECOND_SIGNAL_GRACE` seconds (an
    impatient second Ctrl-C) is ignored, so that it cannot cut short the first one's cleanup
    (a pool of worker processes half shut down then hung the run); one after that is raised
    again, for a first one that Python dropped (below). Every write of this module refuses to
    put its files in place once a signal was noted (it raises ``KeyboardInterrupt`` and
    discards them), and the block raises ``KeyboardInterrupt`` at its end if the exception was
    lost on the way: Python drops one raised inside a weakref callback (importlib's module
    locks), an at-fork function or a ``__del__``. A signal that was ignored when the block
    began (a shell's background job) stays ignored. Only the main thread can set handlers:
    elsewhere the block does nothing.

    ``then_ignore``: for a process that ends with the block (the command line's own). The
    block ignores both signals from its end on (:func:`ignore_stop_signals`), instead of
    putting the previous handlers back, and a signal while it ends is dropped: Python sets
    its handlers back to the default as it shuts down, so a second Ctrl-C then killed the
    process (exit -2, not 130). Without it, a signal that comes while the block ends is
    raised again once the previous handlers are back.

    Examples
    --------
    >>> with stopping_on_signals():
    ...     pass  # a long job that writes its outputs atomically
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ending = False
    late: list[int] = []
    first: float | None = None

    def stop(signum: int, frame: object) -> None:
        nonlocal first
        if ending:  # the handlers that follow the block decide
            late.append(signum)
            return
        now = time.monotonic()
        if first is not None and now - first < SECOND_SIGNAL_GRACE:
            return  # an impatient second Ctrl-C: the first one's cleanup goes on
        first = now
        _SIGNALLED.set()
        raise KeyboardInterrupt

    previous = {
        signum: signal.signal(signum, stop)
        for signum in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    _SIGNALLED.clear()
    try:
        yield
        _refuse_if_signalled()
    finally:
        ending = True
        if then_ignore:
            ignore_stop_signals()
        else:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        _SIGNALLED.clear()
        for received in () if then_ignore else dict.fromkeys(late):
            signal.raise_signal(received)


class InterruptedAfterWriting(KeyboardInterrupt):
    """SIGINT or SIGTERM that came while a set of files was being put in place: they were all
    put in place first (held by :func:`predictor._processes.signals_held`), and the signal is
    raised after."""


def _refuse_if_signalled() -> None:
    """Raise ``KeyboardInterrupt`` if a signal came inside :func:`stopping_on_signals`."""
    if _SIGNALLED.is_set():
        raise KeyboardInterrupt


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_partials(target: Path) -> list[Path]:
    """Remove what killed writers left beside ``target``; return the paths removed.

    Only hidden entries named for this destination are touched, and only when process PID no
    longer runs (a concurrent writer's are left alone): temporary files and staging directories
    ``.NAME.PID.RANDOM.partial`` are removed; a directory set aside while being replaced,
    ``.NAME.PID.RANDOM.old``, is put back as ``target`` if the writer died before ``target``
    was in place again, and removed otherwise.
    """
    prefix = f".{target.name}."
    removed = []
    with os.scandir(target.parent) as entries:
        found = [(entry.name, entry.path) for entry in entries if entry.name.startswith(prefix)]
    for name, path in found:
        set_aside = name.endswith(OLD_SUFFIX)
        if not (set_aside or name.endswith(PARTIAL_SUFFIX)):
            continue
        pid = name[len(prefix) :].split(".", 1)[0]
        if not pid.isdigit() or _running(int(pid)):
            continue
        if set_aside and not os.path.lexists(target):
            with contextlib.suppress(FileNotFoundError):
                os.rename(path, target)  # the writer died between its two renames
            continue
        with contextlib.suppress(FileNotFoundError):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(Path(path))
    return removed


def _unnamed_file(directory: Path) -> int | None:
    """A descriptor of a new unnamed file in ``directory`` (None where O_TMPFILE is missing)."""
    flag = getattr(os, "O_TMPFILE", None)
    if (
        flag is None
        or not os.path.isdir("/proc/self/fd")  # needed to name the file at the end
        or os.environ.get(NO_UNNAMED_FILES)
    ):
        return None
    try:
        return os.open(directory, flag | os.O_WRONLY, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None  # this file system cannot: fall back to a named temporary file
        raise


def _link_unnamed(descriptor: int, name: str) -> None:
    """Give the unnamed file open as ``descriptor`` the path ``name``.

    linkat(2) with AT_SYMLINK_FOLLOW on the descriptor's /proc entry; os.link takes that path
    only when given a directory descriptor (else it calls plain link(2), which cannot).
    """
    directory = os.open(Path(name).parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(
            f"/proc/self/fd/{descriptor}",
            Path(name).name,
            src_dir_fd=directory,
            dst_dir_fd=directory,
            follow_symlinks=True,
        )
    finally:
        os.close(directory)


def _hidden_name(target: Path) -> str:
    return f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"


class _Pending:
    """One output file being written: complete it with :meth:`finish` then :meth:`commit`, or
    :meth:`discard` it.

    A destination that exists but is not a regular file (a device such as ``/dev/null``, a
    FIFO, a terminal) is written directly: it cannot be replaced atomically, and replacing it
    would destroy it. A symbolic link is followed: the file it points to is replaced, the link
    kept (with ``follow=False``: the link is replaced by the file). A regular file that is
    replaced keeps its permission bits.
    """

    def __init__(self, path: str | os.PathLike[str], binary: bool, follow: bool = True) -> None:
        self.temporary: str | None = None  # the hidden name, once the file has one
        try:
            existing = os.stat(path) if follow else os.lstat(path)  # through links, or not
        except FileNotFoundError:
            existing = None
        if not follow and existing is not None and stat.S_ISLNK(existing.st_mode):
            existing = None  # the link itself is replaced, by a file of the default mode
        self.direct = existing is not None and not stat.S_ISREG(existing.st_mode)
        if self.direct:
            self.target = Path(path)
        elif follow:  # a link to a regular file: replace the file it points to
            self.target = Path(os.path.realpath(path))
        else:  # the path's folder resolved, not its last name
            self.target = Path(os.path.realpath(Path(path).parent)) / Path(path).name
        if existing is not None and not self.direct:
            self.mode = stat.S_IMODE(existing.st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            self.mode = 0o666 & ~umask
        if self.direct:
            descriptor = os.open(self.target, os.O_WRONLY)
        else:
            remove_stale_partials(self.target)
            unnamed = _unnamed_file(self.target.parent)
            if unnamed is not None:
                descriptor = unnamed
            else:
                descriptor, self.temporary = tempfile.mkstemp(
                    dir=self.target.parent,
                    prefix=f".{self.target.name}.{os.getpid()}.",
                    suffix=PARTIAL_SUFFIX,
                )
        self.handle: IO = (
            os.fdopen(descriptor, "wb")
            if binary
            else os.fdopen(descriptor, "w", encoding="utf-8", newline="")
        )

    def finish(self) -> None:
        """Flush and sync the complete file and give it its hidden name (nothing visible yet)."""
        self.handle.flush()
        if not self.direct:
            os.fchmod(self.handle.fileno(), self.mode)
            os.fsync(self.handle.fileno())
            if self.temporary is None:
                self.temporary = str(self.target.parent / _hidden_name(self.target))
                _link_unnamed(self.handle.fileno(), self.temporary)
        self.handle.close()

    def commit(self) -> None:
        """Put the finished file in place of the destination."""
        if self.temporary is not None:
            os.replace(self.temporary, self.target)

    def discard(self) -> None:
        """Drop the file: the destination is left as it was."""
        with contextlib.suppress(OSError):
            self.handle.close()
        if self.temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temporary)


@contextlib.contextmanager
def atomic_outputs(
    paths: Sequence[str | os.PathLike[str]],
    *,
    binary: bool = False,
    replace_links: Collection[str | os.PathLike[str]] = (),
) -> Iterator[list[IO]]:
    """Open several files for writing so that they appear together, once all are complete.

    Every file is finished (flushed, synced, named but still hidden) before any is put in
    place, so an error, an interrupt or a full disk while writing or syncing any of them
    leaves every destination as it was. ``"-"`` means standard output (not atomic).

    Parameters
    ----------
    paths : sequence of str or path-like
        Destination files.
    binary : bool
        Handles take bytes (else UTF-8 text).
    replace_links : collection of str or path-like
        Those of ``paths`` where a symbolic link is replaced by the new file rather than
        followed: files a command names itself inside a folder it was given (a report's
        figures), which a link must not redirect to another file (the input, say). A path the
        user named is followed, as the module says.
    """
    pending: list[_Pending] = []
    handles: list[IO] = []
    own = {os.fspath(path) for path in replace_links}
    try:
        for path in paths:
            if str(path) == "-":
                handles.append(sys.stdout.buffer if binary else sys.stdout)
            else:
                pending.append(_Pending(path, binary, follow=os.fspath(path) not in own))
                handles.append(pending[-1].handle)
        yield handles
        for output in pending:
            output.finish()
        _refuse_if_signalled()
        renamed = False
        try:
            with signals_held():  # a signal during the renames waits until all are done
                for output in pending:
                    output.commit()
                renamed = True
        except KeyboardInterrupt as exc:  # the held one, raised after the renames
            if renamed:
                raise InterruptedAfterWriting from exc
            raise
        if any(str(path) == "-" for path in paths):
            (sys.stdout.buffer if binary else sys.stdout).flush()
    except BaseException:
        for output in pending:
            output.discard()
        raise


SYNC_EVERY = 16 * 2**20
"""Bytes written to a file between two of :class:`WriteBehind`'s syncs."""


class WriteBehind:
    """Sync a big file while it is being written, every :data:`SYNC_EVERY` bytes, so that the
    sync that finishes it (:func:`atomic_outputs`) has little left to wait for: the disk then
    works while the next rows are computed rather than all at the end (512 MB took 0.6 s to
    sync in one go on the project's machine). Standard output (``"-"`` in
    :func:`atomic_outputs`: the user's file, even when redirected to one) and a handle that is
    not a regular file (a pipe, a terminal, a device) are left alone.

    Call it after each block written to ``handle``.
    """

    def __init__(self, handle: IO) -> None:
        self.handle = handle
        try:
            self.descriptor: int | None = handle.fileno()
            regular = stat.S_ISREG(os.fstat(self.descriptor).st_mode)
        except (AttributeError, OSError, ValueError):
            regular = False
        if not regular or handle in (sys.stdout, getattr(sys.stdout, "buffer", None)):
            self.descriptor = None
        self.synced = 0

    def __call__(self) -> None:
        if self.descriptor is None:
            return
        written = self.handle.tell()
        if written - self.synced >= SYNC_EVERY:
            self.handle.flush()
            # (macOS has no fdatasync: fsync there)
            getattr(os, "fdatasync", os.fsync)(self.descriptor)
            self.synced = written


@contextlib.contextmanager
def atomic_text_output(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """Open ``path`` for writing UTF-8 text so that it appears only once complete.

    ``"-"`` means standard output (not atomic). See the module's docstring for what happens
    on an exception and after a killed process.

    Parameters
    ----------
    path : str or path-like
        Destination file, or ``"-"``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.csv"
    >>> with atomic_text_output(target) as handle:
    ...     _ = handle.write("a,b\\n1,2\\n")
    >>> target.read_text()
    'a,b\\n1,2\\n'
    """
    with atomic_outputs([path]) as (handle,):
        yield cast(TextIO, handle)


@contextlib.contextmanager
def atomic_bytes_output(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open ``path`` for writing bytes so that it appears only once complete; ``"-"`` means
    standard output (not atomic). The same rules as :func:`atomic_text_output`.

    Parameters
    ----------
    path : str or path-like
        Destination file, or ``"-"``.
    """
    with atomic_outputs([path], binary=True) as (handle,):
        yield cast(BinaryIO, handle)


# ---------------------------------------------------------------------------------------------
# Directories

AT_FDCWD = -100
RENAME_EXCHANGE = 2
"""renameat2(2)'s flag: swap two paths in one step (Linux 3.15, glibc 2.28)."""


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """libc's ``renameat2``, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    path, descriptor = ctypes.c_char_p, ctypes.c_int
    function.argtypes = [descriptor, path, descriptor, path, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step; False where the system or file system cannot."""
    function = _renameat2()
    if function is None:
        return False
    if function(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # an old kernel, or a file system without RENAME_EXCHANGE
    raise OSError(code, os.strerror(code), str(second))


def _sync(path: str | os.PathLike[str], directory: bool = False) -> None:
    descriptor = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_tree(root: Path) -> None:
    """fsync every regular file and directory under ``root``, ``root`` last."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path) and os.path.isfile(path):
                _sync(path)
        _sync(folder, directory=True)


def _link_or_copy(source: str, destination: str) -> str:
    """A hard link of ``source`` at ``destination`` (a copy where links are not possible)."""
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, destination, follow_symlinks=False)
    return destination


def _carry(old: Path, new: Path, owned: Collection[str], *, move: bool = False) -> None:
    """Give ``new`` the entries of ``old`` that it lacks and the writer does not own: hard
    links (copies where links fail), or with ``move``, the entries themselves."""
    with os.scandir(old) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        source, destination = old / name, new / name
        ours = name.startswith(".") and name.endswith(PARTIAL_SUFFIX)  # a writer's leftover
        if name in owned or ours or os.path.lexists(destination):
            continue
        if move:
            os.rename(source, destination)
        elif source.is_dir() and not source.is_symlink():
            shutil.copytree(source, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(source), str(destination))


def _set_aside_name(target: Path) -> Path:
    return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{OLD_SUFFIX}"


def _put_in_place(staging: Path, target: Path) -> Path | None:
    """Put the directory ``staging`` in place of ``target``; return where the replaced
    directory now is (None: there was none)."""
    if not os.path.lexists(target):
        os.rename(staging, target)
        return None
    if _exchange(staging, target):
        return staging  # the old directory, now under the staging name
    old = _set_aside_name(target)  # two renames: a window without ``target``
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    return old


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike[str], *, owned: Collection[str] = ()
) -> Iterator[Path]:
    """Write a directory's files so that they appear together, as one set, or not at all.

    Yields a new, empty, hidden staging directory beside the destination (same parent, so the
    same file system), ``.NAME.PID.RANDOM.partial``. Write every file into it. When the block
    ends normally, every file and directory in it is synced and it takes the destination's
    place in one step: a plain rename when the destination does not exist, else the two are
    swapped (``renameat2(RENAME_EXCHANGE)`` on Linux) and the old directory is removed.
    Readers see the whole old set or the whole new set, never a mix.

    An exception (including ``KeyboardInterrupt``) removes the staging directory and leaves the
    destination as it was. A process killed outright leaves its staging directory, which the
    next ``atomic_directory`` for the same destination removes once that process is gone.

    Entries of an existing destination that the new set lacks and that are not in ``owned``
    (a user's own files in that folder) are carried into the new directory, as hard links
    (copies where links fail), before the swap: they are never lost. Entries in ``owned`` that
    the new set lacks are dropped with the old directory.

    Where directories cannot be swapped in one step (another OS, an old kernel, a file system
    without it), the old directory is renamed to ``.NAME.PID.RANDOM.old`` and the new one to the
    destination: a reader may then briefly find no destination, and if the process is killed in
    between, the next ``atomic_directory`` for that destination puts the old directory back.

    Parameters
    ----------
    path : str or path-like
        The destination directory; created with the set if it does not exist (its parents
        too). A symbolic link is followed: the directory it points to is replaced, the link
        kept.
    owned : collection of str
        Names of the entries (directly in the directory) that the writer writes: an old one of
        these is not carried across.

    Raises
    ------
    NotADirectoryError
        If ``path`` exists and is not a directory.
    OSError
        If the staging directory cannot be made, written, synced or put in place (the
        destination is then as it was).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> with atomic_directory(out) as staging:
    ...     _ = (staging / "a.txt").write_text("one")
    ...     _ = (staging / "b.txt").write_text("two")
    >>> sorted(p.name for p in out.iterdir())
    ['a.txt', 'b.txt']
    """
    target = Path(os.path.realpath(path))
    if os.path.lexists(target) and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it exists and is not a folder", str(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    staging = Path(
        tempfile.mkdtemp(
            dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=PARTIAL_SUFFIX
        )
    )
    old: Path | None = None
    try:
        yield staging
        if target.is_dir():
            _carry(target, staging, owned)
            mode = stat.S_IMODE(target.stat().st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o777 & ~umask
        _sync_tree(staging)
        os.chmod(staging, mode)  # mkdtemp made it private while it was written
        _refuse_if_signalled()
        old = _put_in_place(staging, target)
    except InterruptedAfterWriting as exc:
        # files put in place in the staging folder, which is dropped: nothing was written
        if old is None:
            shutil.rmtree(staging, ignore_errors=True)
            raise KeyboardInterrupt from exc
        raise
    except BaseException:
        if old is None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    _sync(target.parent, directory=True)
    if old is not None:
        with contextlib.suppress(OSError):  # files put in the old one since they were carried
            _carry(old, target, owned, move=True)
        shutil.rmtree(old, ignore_errors=True)
