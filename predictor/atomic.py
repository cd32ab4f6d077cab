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
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, TextIO

PARTIAL_SUFFIX = ".partial"
NO_UNNAMED_FILES = "KETAMINE_PREDICTOR_NO_O_TMPFILE"
"""Set this environment variable to write through named temporary files even where O_TMPFILE
works (for a file system that mishandles it, and to test that path)."""


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_partials(target: Path) -> list[Path]:
    """Remove the temporary files that killed writers left beside ``target``; return them.

    Only files named ``.NAME.PID.RANDOM.partial`` for this destination are touched, and only when
    process PID no longer runs (a concurrent writer's file is left alone).
    """
    prefix = f".{target.name}."
    removed = []
    with os.scandir(target.parent) as entries:
        for entry in entries:
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(PARTIAL_SUFFIX)):
                continue
            pid = name[len(prefix) :].split(".", 1)[0]
            if pid.isdigit() and not _running(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
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
    kept. A regular file that is replaced keeps its permission bits.
    """

    def __init__(self, path: str | os.PathLike[str], binary: bool) -> None:
        self.temporary: str | None = None  # the hidden name, once the file has one
        try:
            existing = os.stat(path)  # through symbolic links
        except FileNotFoundError:
            existing = None
        self.direct = existing is not None and not stat.S_ISREG(existing.st_mode)
        # A link to a regular file: replace the file it points to.
        self.target = Path(path) if self.direct else Path(os.path.realpath(path))
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
            descriptor = _unnamed_file(self.target.parent)
            if descriptor is None:
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
    paths: Sequence[str | os.PathLike[str]], *, binary: bool = False
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
    """
    pending: list[_Pending] = []
    handles: list[IO] = []
    try:
        for path in paths:
            if str(path) == "-":
                handles.append(sys.stdout.buffer if binary else sys.stdout)
            else:
                pending.append(_Pending(path, binary))
                handles.append(pending[-1].handle)
        yield handles
        for output in pending:
            output.finish()
        for output in pending:
            output.commit()
        if any(str(path) == "-" for path in paths):
            (sys.stdout.buffer if binary else sys.stdout).flush()
    except BaseException:
        for output in pending:
            output.discard()
        raise


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
        yield handle


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
        yield handle
