"""Group commit: writes that arrive together share one transaction; each caller awaits its own outcome.

Nothing waits to fill a batch: an item that arrives while the writer is idle goes alone at once; items
that arrive while a transaction is in flight are taken together by the next one. On SQLite (one writer
at a time) this turns N small transactions with N lock hand-overs into one; on PostgreSQL it saves
round trips. A failed batch is replayed one item per transaction, so one bad item fails alone.
The drain task runs only while items are queued, so there is nothing to start or stop with the app.
"""

import asyncio
import logging
from collections import deque
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError

from gateway.errors import ApiError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, max_batch: int = 128):
        self._max_batch = max_batch
        self._queue: deque[tuple[T, asyncio.Future]] = deque()
        self._task: asyncio.Task | None = None

    async def submit(self, item: T) -> R:
        """Resolves only after the transaction holding `item` committed (or raises its error)."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _transaction(self, items: list[T]) -> list[R | Exception]:
        """Write `items` in one transaction; one outcome (result or error to raise) per item."""
        raise NotImplementedError

    async def _failed_alone(self, item: T, exc: DBAPIError) -> R | Exception:
        log.error("%s write failed: %s", type(self).__name__, exc)
        return ApiError(503, "the database is busy or unreachable; retry shortly", code="database_unavailable",
                        headers={"Retry-After": "1"})  # fmt: skip

    async def _drain(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            try:
                await self._commit(batch)
            except Exception as exc:  # never leave a caller waiting forever
                log.exception("%s batch failed unexpectedly", type(self).__name__)
                for _, future in batch:
                    _settle(future, exc)

    async def _commit(self, batch: list[tuple[T, asyncio.Future]]) -> None:
        try:
            outcomes = await self._transaction([item for item, _ in batch])
        except DBAPIError as exc:  # integrity, lock timeout, lost connection: replay, then answer per item
            if len(batch) > 1:
                for entry in batch:  # replay alone: the failure belongs to one item, not to all
                    await self._commit([entry])
                return
            outcomes = [await self._failed_alone(batch[0][0], exc)]
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)

    async def wait_idle(self) -> None:
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


def _settle(future: asyncio.Future, outcome) -> None:
    if future.done():  # the caller went away; its write still stands
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
