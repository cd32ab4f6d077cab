"""Write files so that they appear complete or not at all.

Writes go to a hidden temporary file beside the destination, ``.NAME.PID.RANDOM.partial``,
which is flushed, synced and renamed over the destination only when writing ends normally. An
exception (including ``KeyboardInterrupt``) removes it and leaves an existing destination
untouched. A process killed outright (``SIGKILL``, a power cut) cannot clean up: its hidden
file stays, never under the destination's name, and the next write to the same destination
removes it once the process that wrote it is gone.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, TextIO

PARTIAL_SUFFIX = ".partial"


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


@contextlib.contextmanager
def _atomic(path: str | os.PathLike[str], binary: bool) -> Iterator[IO]:
    if str(path) == "-":
        stream = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    target = Path(path)
    remove_stale_partials(target)
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=PARTIAL_SUFFIX
    )
    try:
        if binary:
            handle = os.fdopen(descriptor, "wb")
        else:
            handle = os.fdopen(descriptor, "w", encoding="utf-8", newline="")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
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
    with _atomic(path, binary=False) as handle:
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
    with _atomic(path, binary=True) as handle:
        yield handle
