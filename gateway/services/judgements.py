"""What every judgement endpoint shares: who may judge what, and committing an upsert safely."""

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import ApiError
from gateway.services.auth import Caller
from store.enums import Role
from store.queries.feedback import CompletionFacts, completion_facts

T = TypeVar("T")
_sqlite_write_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def write_lock(session: AsyncSession):
    """SQLite has one writer at a time, and a blocked writer waits in sleep-and-retry steps (milliseconds each).
    Queueing this process's writers on an asyncio lock instead hands the lock over without those sleeps."""
    engine = session.get_bind()
    if engine.dialect.name != "sqlite":
        return nullcontext()
    lock = _sqlite_write_locks.get(engine)
    if lock is None:
        lock = _sqlite_write_locks[engine] = asyncio.Lock()
    return lock


def may_judge(caller: Caller, owner_key_id: int) -> bool:
    # Users judge their own traffic; reviewers may judge anyone's (that is what makes agreement measurable).
    return caller.key_id == owner_key_id or caller.has_role(Role.REVIEWER)


def completion_not_found(completion_id: str) -> ApiError:
    # One answer for "no such completion" and "someone else's": no existence leak.
    return ApiError(404, f"completion {completion_id!r} not found", code="completion_not_found", param="completion_id")


async def judgeable_completion(session: AsyncSession, caller: Caller, completion_id: str) -> CompletionFacts:
    """The completion, or the same 404 whether it does not exist or belongs to someone else."""
    facts = await completion_facts(session, completion_id)
    if facts is None or not may_judge(caller, facts.api_key_id):
        raise completion_not_found(completion_id)
    return facts


async def commit_upsert(session: AsyncSession, write: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """Run `write` (an INSERT .. ON CONFLICT) and commit; retry on IntegrityError.

    The upsert already resolves duplicate keys in the database; a retry covers what is left, e.g. a
    backend that reports a concurrent insert of the same key as a violation instead of a conflict.
    """
    for attempt in range(attempts):
        try:
            async with write_lock(session):
                result = await write()
                await session.commit()
            return result
        except IntegrityError:
            await session.rollback()
            if attempt == attempts - 1:
                raise ApiError(409, "a concurrent write conflicted with this one; retry", code="conflict") from None
    raise AssertionError("unreachable")
