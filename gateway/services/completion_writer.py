from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.services.group_commit import GroupCommit
from store.queries.completions import CompletionRecord, insert_completions


class CompletionWriter(GroupCommit[CompletionRecord, None]):
    """Served completions, group-committed: a chat response is sent only after its row committed."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], max_batch: int = 256):
        super().__init__(max_batch)
        self._sessionmaker = sessionmaker

    async def _transaction(self, records: list[CompletionRecord]) -> list[None]:
        async with self._sessionmaker() as session, session.begin():
            await insert_completions(session, records)
        return [None] * len(records)
