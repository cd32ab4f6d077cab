"""Write files so that they appear complete or not at all."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO


@contextlib.contextmanager
def atomic_text_output(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """Open ``path`` for writing text so that it appears only once complete.

    Writes go to a temporary file in the same directory, which is flushed, synced and renamed
    over ``path`` when the ``with`` block ends normally. If the block raises (including
    ``KeyboardInterrupt``), the temporary file is removed and an existing ``path`` is left
    untouched. ``"-"`` means standard output (not atomic).

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
    if str(path) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with _atomic_output(path, binary=False) as handle:
        yield handle


@contextlib.contextmanager
def atomic_bytes_output(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open ``path`` for writing bytes so that it appears only once complete (as
    :func:`atomic_text_output`, without the ``"-"`` shortcut).

    Parameters
    ----------
    path : str or path-like
        Destination file.
    """
    with _atomic_output(path, binary=True) as handle:
        yield handle


@contextlib.contextmanager
def _atomic_output(path: str | os.PathLike[str], *, binary: bool) -> Iterator[Any]:
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
    )
    try:
        opened = (
            os.fdopen(descriptor, "wb")
            if binary
            else os.fdopen(descriptor, "w", encoding="utf-8", newline="")
        )
        with opened as handle:
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
