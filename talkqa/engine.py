"""Running a per-clip function over many clips: in-process, in a local process pool, or on Ray.

Stages give a top-level function `fn(task, *args) -> result` (picklable) and an iterable of tasks;
the engine yields (task, result) pairs as they finish. The caller owns progress and persistence,
so every engine behaves the same way for resume and status rows.
"""

from __future__ import annotations

import multiprocessing as mp
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator

from .errors import UsageError

ENGINES = ("local", "ray")


def run_tasks(fn: Callable, tasks: Iterable[Any], args: tuple = (), engine: str = "local", workers: int = 1,
              ray_address: str | None = None) -> Iterator[tuple[Any, Any]]:
    tasks = list(tasks)
    if engine == "local":
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield task, fn(task, *args)
            return
        yield from _pool(fn, tasks, args, workers)
    elif engine == "ray":
        yield from _ray(fn, tasks, args, workers, ray_address)
    else:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def _pool(fn, tasks, args, workers) -> Iterator[tuple[Any, Any]]:
    # spawn, not fork: MediaPipe and torch keep threads that do not survive a fork.
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending = {}
        todo = iter(tasks)
        for task in todo:
            pending[pool.submit(fn, task, *args)] = task
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                task = pending.pop(fut)
                yield task, fut.result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending[pool.submit(fn, nxt, *args)] = nxt


@contextmanager
def ray_session(workers: int, address: str | None):
    """Connect to the Ray cluster at `address`, or start a local one with `workers` CPUs; a session
    this call started is shut down on exit, an existing one is left running. Yields the ray module."""
    try:
        import ray  # lazy: optional dependency
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'talkqa[ray]'") from None
    started = False
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else max(1, workers), include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _ray(fn, tasks, args, workers, address) -> Iterator[tuple[Any, Any]]:
    with ray_session(workers, address) as ray:
        remote = ray.remote(num_cpus=1)(fn)
        refs = {remote.remote(task, *args): task for task in tasks}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                yield refs.pop(ref), ray.get(ref)
