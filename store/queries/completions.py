from dataclasses import dataclass, field

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.enums import CompletionStatus
from store.models import Completion, CompletionChoice


@dataclass
class ChoiceRecord:
    index: int
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int | None = None


@dataclass
class CompletionRecord:
    """Everything stored about one served chat request; built by the gateway, written in one transaction."""

    id: str
    api_key_id: int
    policy_version_id: int
    messages: list
    params: dict
    stream: bool = False
    end_user: str | None = None
    status: CompletionStatus = CompletionStatus.COMPLETE
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    choices: list[ChoiceRecord] = field(default_factory=list)


async def insert_completions(session: AsyncSession, records: list[CompletionRecord]) -> None:
    """Many completions and their choices in two bulk INSERTs (the gateway's group commit)."""
    await session.execute(
        insert(Completion),
        [
            {
                "id": r.id, "api_key_id": r.api_key_id, "policy_version_id": r.policy_version_id,
                "end_user": r.end_user, "messages": r.messages, "params": r.params, "stream": r.stream,
                "status": CompletionStatus(r.status).value, "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens, "latency_ms": r.latency_ms,
            }  # fmt: skip
            for r in records
        ],
    )
    choices = [
        {"completion_id": r.id, "index": c.index, "text": c.text, "finish_reason": c.finish_reason,
         "completion_tokens": c.completion_tokens}  # fmt: skip
        for r in records
        for c in r.choices
    ]
    if choices:
        await session.execute(insert(CompletionChoice), choices)
