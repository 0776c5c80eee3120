import asyncio
import logging
from collections.abc import Coroutine

log = logging.getLogger(__name__)


class BackgroundWrites:
    """Writes that must outlive the request that started them (a stream whose client went away).

    Tasks are held so they are not garbage-collected, and drained at shutdown so nothing accepted is lost.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background write failed", exc_info=task.exception())

    async def drain(self, timeout_s: float = 30.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
