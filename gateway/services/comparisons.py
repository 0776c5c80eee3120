"""Anonymous A/B comparisons: two stored completions for the same messages, voted on by label.

Which policy made which candidate stays hidden until the caller has voted, so the vote is blind.
"""

import asyncio
import random
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import ApiError
from gateway.policy import LivePolicy, PolicyManager
from gateway.schemas.comparisons import Candidate, ComparisonOut, ComparisonRequest, VoteOut, VoteRequest
from gateway.services.auth import Caller
from gateway.services.chat import ChatService
from gateway.services.judgements import commit_upsert, may_judge
from store.base import utcnow
from store.queries import comparisons as queries

_rng = random.SystemRandom()


def new_comparison_id() -> str:
    return f"cmp-{uuid.uuid4().hex}"


def pick_pair(
    policies: PolicyManager, challenger_share: float = 1.0, rng: random.Random = _rng
) -> tuple[LivePolicy, LivePolicy]:
    """(a, b) in random order. With probability `challenger_share`, and when another version (a canary)
    is live, the champion against it; otherwise two samples of the champion (they still teach the
    learner which answer was better, though not which version is)."""
    champion = policies.champion
    if champion is None:
        raise ApiError(503, "no champion policy is ready yet", code="policy_not_ready", headers={"Retry-After": "2"})
    others = [p for p in policies.live() if p.version_id != champion.version_id]
    opponent = rng.choice(others) if others and rng.random() < challenger_share else champion
    pair = [champion, opponent]
    rng.shuffle(pair)
    return pair[0], pair[1]


def _content(body: dict) -> str:
    choices = body.get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content") or ""


async def create_comparison(
    session: AsyncSession, chat: ChatService, policies: PolicyManager, caller: Caller, req: ComparisonRequest,
    *, started: float | None = None, challenger_share: float = 1.0,
) -> ComparisonOut:  # fmt: skip
    started = started or time.perf_counter()
    policy_a, policy_b = pick_pair(policies, challenger_share)
    results = await asyncio.gather(
        chat.complete(caller, req, started, policy=policy_a),
        chat.complete(caller, req, started, policy=policy_b),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result  # an ApiError from the chat service (upstream down, bad params): passed through
    result_a, result_b = results
    comparison = queries.add_comparison(
        session, comparison_id=new_comparison_id(), api_key_id=caller.key_id,
        messages=[m.model_dump(exclude_none=True) for m in req.messages], params=req.sampling_params(),
        completion_a_id=result_a.body["id"], completion_b_id=result_b.body["id"],
    )  # fmt: skip
    comparison.created_at = utcnow()
    await session.commit()
    return ComparisonOut(
        id=comparison.id,
        created_at=comparison.created_at,
        candidates=[Candidate(label="a", content=_content(result_a.body)), Candidate(label="b", content=_content(result_b.body))],
    )


def _not_found(comparison_id: str) -> ApiError:
    return ApiError(404, f"comparison {comparison_id!r} not found", code="comparison_not_found")


async def vote(session: AsyncSession, caller: Caller, comparison_id: str, req: VoteRequest) -> VoteOut:
    comparison = await queries.get_comparison(session, comparison_id)
    if comparison is None or not may_judge(caller, comparison.api_key_id):
        raise _not_found(comparison_id)
    stored = await commit_upsert(
        session,
        lambda: queries.upsert_vote(
            session, comparison_id=comparison_id, api_key_id=caller.key_id, winner=req.winner, reason=req.reason
        ),
    )
    return VoteOut(
        id=stored.id, comparison_id=comparison_id, winner=req.winner, reason=req.reason,
        created_at=stored.created_at, updated_at=stored.updated_at,
    )  # fmt: skip


async def get_comparison(session: AsyncSession, caller: Caller, comparison_id: str) -> ComparisonOut:
    view = await queries.comparison_view(session, comparison_id)
    if view is None or not may_judge(caller, view.api_key_id):
        raise _not_found(comparison_id)
    stored_vote = await queries.get_vote(session, comparison_id, caller.key_id)
    reveal = stored_vote is not None
    candidates = [
        Candidate(label="a", content=view.content_a, policy_version=view.policy_a if reveal else None),
        Candidate(label="b", content=view.content_b, policy_version=view.policy_b if reveal else None),
    ]
    vote_out = (
        VoteOut(
            id=stored_vote.id, comparison_id=comparison_id, winner=stored_vote.winner, reason=stored_vote.reason,
            created_at=stored_vote.created_at, updated_at=stored_vote.updated_at,
        )  # fmt: skip
        if stored_vote
        else None
    )
    return ComparisonOut(id=view.id, created_at=view.created_at, candidates=candidates, revealed=reveal, vote=vote_out)
