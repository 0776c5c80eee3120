"""Best-to-worst orderings of the choices of one n>1 completion: one current ranking per key."""

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import ApiError
from gateway.schemas.rankings import RankingOut, RankingRequest
from gateway.services.auth import Caller
from gateway.services.judgements import commit_upsert, judgeable_completion
from store.queries.feedback import upsert_ranking


def check_permutation(order: list[int], n_choices: int) -> None:
    """`order` must name every choice index 0..n-1 exactly once."""
    if n_choices < 2:
        raise ApiError(400, "rankings need a completion with n > 1 choices; use /v1/feedback for a single answer",
                       code="not_rankable", param="completion_id")  # fmt: skip
    expected = set(range(n_choices))
    out_of_range = sorted({i for i in order if i not in expected})
    duplicates = sorted({i for i in order if order.count(i) > 1})
    missing = sorted(expected - set(order))
    if out_of_range or duplicates or missing:
        problems = [
            f"{label} {values}"
            for label, values in (("out of range", out_of_range), ("repeated", duplicates), ("missing", missing))
            if values
        ]
        raise ApiError(
            400,
            f"order must be a permutation of the choice indices 0..{n_choices - 1}, best first; "
            + "; ".join(problems),
            code="invalid_order",
            param="order",
        )


async def submit_ranking(session: AsyncSession, caller: Caller, req: RankingRequest) -> RankingOut:
    facts = await judgeable_completion(session, caller, req.completion_id)
    check_permutation(req.order, facts.n_choices)
    stored = await commit_upsert(
        session,
        lambda: upsert_ranking(session, api_key_id=caller.key_id, completion_id=req.completion_id, order=req.order),
    )
    return RankingOut(
        id=stored.id, completion_id=req.completion_id, order=req.order,
        created_at=stored.created_at, updated_at=stored.updated_at,
    )  # fmt: skip
