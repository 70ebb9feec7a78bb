"""Run a producer generator on a background thread, a few items ahead of its consumer.

Why: decoding (PyAV), OpenCV and MediaPipe graphs release the GIL, so on a 2-core machine the video
decode + face detection of frame t+k overlaps the face mesh of frame t. The items and their order are
exactly those of the plain generator; only the wall time changes.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


class _End:
    def __init__(self, error: BaseException | None = None):
        self.error = error


def in_background(items: Iterable[T], depth: int = 8, name: str = "talkqa-producer") -> Iterator[T]:
    """Yield what `items` yields, produced on a daemon thread at most `depth` items ahead.

    An exception in the producer is raised in the consumer at the point where the item would have
    come. If the consumer stops early (break, exception, close), the producer stops after its current
    item and `items` is closed on its own thread (so `with` blocks in it exit where they began)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    return
            put(_End())
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_End(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()
