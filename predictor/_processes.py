"""Worker processes for work beside the main one: batch scoring's chunks, training's fit,
folds and figures. How they start (forked from this process where that is safe, else from a
fresh server process), what each does first (one BLAS thread, Ctrl-C left to the parent, dying
with the parent), and the signals held while they fork."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import multiprocessing
import multiprocessing.context
import os
import platform
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


def usable_cores() -> int:
    """The number of cores this process may run on (its CPU affinity; at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this worker process when its parent dies (killed
    outright, say), rather than leave it waiting for work forever."""
    if sys.platform != "linux":
        return
    import ctypes

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def reuse_freed_memory() -> None:
    """Have this process's C allocator (glibc's) keep the memory it frees for the allocations
    that follow, instead of giving it back to the kernel at once.

    Scoring a chunk allocates and frees the same arrays, chunk after chunk. With glibc's
    defaults, a freed block above its mapping threshold, and free memory at the top of its
    heap, are given back to the kernel, which zeroes every page again on its next first touch.
    Blocks up to 32 MiB (a chunk's largest arrays) now come from the heap, and the heap keeps up
    to 1 GiB free at its top: scoring a million rows with two workers took 40% fewer page
    faults and 0.3-0.7 s less system time (``/usr/bin/time python -m predictor score``). Peak
    memory is unchanged: what the process keeps is what it asks for again for the next chunk.

    Only for processes of this package (its worker processes, and the command line's), never
    a process that imported it: the setting is the whole process's (a Dask worker's tasks use
    :func:`freed_memory_kept`). A no-op where the C library is not glibc, or does not have
    ``mallopt``: a setting for speed, never an error.
    """
    _set_thresholds(mmap=32 << 20, trim=1 << 30)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_GLIBC_DEFAULT = 128 << 10
"""glibc's default trim and mapping thresholds (128 KiB; it raises them as a process runs,
unless they were set)."""


@functools.cache
def _glibc() -> Any:
    """The C library when it is glibc with ``mallopt`` and ``malloc_trim``, else None (found
    once: ``platform.libc_ver`` reads the Python executable's file)."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _set_thresholds(*, mmap: int, trim: int) -> None:
    """glibc's mapping and trim thresholds (a no-op without glibc)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, mmap)
        libc.mallopt(_M_TRIM_THRESHOLD, trim)


def _environment_threshold(name: str) -> int:
    """A threshold as this process's environment sets it for glibc (``MALLOC_TRIM_THRESHOLD_``
    or ``GLIBC_TUNABLES=glibc.malloc.trim_threshold=...``, and the same for ``mmap``), else
    glibc's default: also for a value that is not a whole number from 0 to 2**31 - 1 (never an
    error: the setting is for speed)."""
    tunables = dict(
        item.partition("=")[::2]
        for item in os.environ.get("GLIBC_TUNABLES", "").split(":")
        if "=" in item
    )
    for text in (
        tunables.get(f"glibc.malloc.{name}_threshold"),
        os.environ.get(f"MALLOC_{name.upper()}_THRESHOLD_"),
    ):
        try:
            value = int((text or "").strip(), 0)  # decimal or 0x...; mallopt takes a C int
        except ValueError:
            continue
        if 0 <= value < 2**31:
            return value
    return _GLIBC_DEFAULT


_kept = 0
"""How many :func:`freed_memory_kept` blocks are open in this process."""
_kept_lock = threading.Lock()


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[None]:
    """:func:`reuse_freed_memory` for the time of a block, in a process this package does not
    own: a Dask worker scoring a file.

    Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, so that they give freed
    memory back at once; scoring, which frees and allocates the same arrays chunk after chunk,
    then had every page zeroed again by the kernel (``bench/bench_batch.py``'s Dask path, a
    million rows in 4 files on 2 Dask workers: 6.0-6.1 s, 3.6 s with the memory kept). When
    the last block open in the process ends, the thresholds are set back to what the
    environment gave glibc (its defaults otherwise; glibc then no longer raises them by
    itself) and the free memory at the top of the heap is given back (``malloc_trim``).
    Blocks may be open in several threads.
    """
    global _kept
    with _kept_lock:
        _kept += 1
        if _kept == 1:
            reuse_freed_memory()
    try:
        yield
    finally:
        with _kept_lock:
            _kept -= 1
            if _kept == 0:
                _set_thresholds(
                    mmap=_environment_threshold("mmap"), trim=_environment_threshold("trim")
                )
                libc = _glibc()
                if libc is not None:
                    libc.malloc_trim(0)


def start_process() -> None:
    """Initialise a worker process: one BLAS thread (the processes are the parallelism), the
    memory it frees kept for its next chunk (:func:`reuse_freed_memory`), and leave Ctrl-C to
    the parent, which stops the workers and removes its unfinished files."""
    _die_with_parent()
    reuse_freed_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command line's handler, if forked
    from threadpoolctl import threadpool_info, threadpool_limits

    # For the whole life of the process. A forked worker has its parent's one thread already
    # (score holds one while its workers start); setting it again would make OpenBLAS start a
    # thread that spins for about 0.1 s of CPU, beside the workers and the reader.
    if any(library["num_threads"] != 1 for library in threadpool_info()):
        threadpool_limits(1)


def can_fork() -> bool:
    """Whether worker processes start by forking this one (:func:`process_context`): on Linux, when
    this process runs no other Python thread."""
    return sys.platform == "linux" and threading.active_count() == 1


def forked_pool(
    workers: int, inherited: tuple[Any, ...] = ()
) -> concurrent.futures.ProcessPoolExecutor:
    """``workers`` processes forked from this one, for work beside its own (training's fits
    and figures), started as the scoring workers are (:func:`start_process`). Only when
    :func:`can_fork`: a process started afresh would spend longer importing than such work
    takes. Submit the first task inside :func:`signals_held` (it forks the processes).

    ``inherited``: objects the tasks need, which the processes get as they fork: submit
    :func:`with_inherited` to call a function with them first among its arguments. A task's
    own arguments are pickled and sent through a pipe (the default training cohort, 7.7 MB,
    took 0.15 s to reach a process)."""
    assert can_fork(), "a pool of forked processes only where they can fork (can_fork)"
    return concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_forked,
        initargs=(inherited,),
    )


_inherited: tuple[Any, ...] = ()
"""In a process of :func:`forked_pool`, the objects it inherited."""


def _start_forked(objects: tuple[Any, ...]) -> None:
    """Initialise a process of :func:`forked_pool`: keep the objects it inherited, then as
    :func:`start_process`."""
    global _inherited
    _inherited = objects
    start_process()


def with_inherited(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """In a process of :func:`forked_pool`: ``function(*inherited, *args, **kwargs)``, with
    the objects the process inherited."""
    return function(*_inherited, *args, **kwargs)


def process_context(preload: str = __name__) -> multiprocessing.context.BaseContext:
    """How worker processes start. On Linux, when this process runs no other Python thread,
    by forking it: at once, with the model and modules already in memory (the BLAS and
    pyarrow reset their thread pools in a forked child). Otherwise from a fresh server process
    (``forkserver``; ``spawn`` where there is none), since forking a process whose other
    threads may hold a lock can copy the held lock into the child: the server imports the
    module ``preload`` (the one whose functions the workers run) once, and is started here
    (it goes on importing while this process does its own work)."""
    if can_fork():
        return multiprocessing.get_context("fork")
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([preload])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return context


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while worker processes may start (or a set of files is renamed
    into place: :func:`predictor._atomic.atomic_outputs`), and raise them after.

    ``pool.submit`` forks the workers, and ``os.fork`` runs the at-fork functions of other
    modules (:mod:`logging`'s, say) in this process: a KeyboardInterrupt raised by a signal
    handler inside one of them is printed ("Exception ignored in") and dropped, so that the run
    went on and wrote its output. Here the signal is only noted, and raised again once the
    handlers are back. A child forked meanwhile holds it too until :func:`start_process` sets
    its own handlers. Python's handlers only (only the main thread can set them).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: object) -> None:
        held.append(signum)

    previous = {
        signum: signal.signal(signum, hold)
        for signum in (signal.SIGINT, signal.SIGTERM)
        if callable(signal.getsignal(signum))
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for received in dict.fromkeys(held):
            signal.raise_signal(received)
