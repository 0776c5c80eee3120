"""Thumbs up/down on one choice of a stored completion: one current verdict per key, with history."""

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import ApiError
from gateway.schemas.feedback import FeedbackOut, FeedbackRequest
from gateway.services.auth import Caller
from gateway.services.judgements import commit_upsert, judgeable_completion
from store.queries.feedback import upsert_feedback


def normalize_reasons(reasons: list[str], vocabulary: list[str]) -> list[str]:
    """Reasons from the configured vocabulary, de-duplicated, in the order given."""
    unknown = [r for r in reasons if r not in vocabulary]
    if unknown:
        raise ApiError(
            400, f"unknown reason(s) {unknown}; allowed: {list(vocabulary)}", code="invalid_reason", param="reasons"
        )
    return list(dict.fromkeys(reasons))


async def submit_feedback(
    session: AsyncSession, caller: Caller, req: FeedbackRequest, vocabulary: list[str]
) -> FeedbackOut:
    reasons = normalize_reasons(req.reasons, vocabulary)
    facts = await judgeable_completion(session, caller, req.completion_id)
    if req.choice_index >= facts.n_choices:
        raise ApiError(
            400,
            f"choice_index {req.choice_index} is out of range: completion {req.completion_id!r} has "
            f"{facts.n_choices} choice(s) (0..{facts.n_choices - 1})",
            code="invalid_choice_index",
            param="choice_index",
        )
    stored = await commit_upsert(
        session,
        lambda: upsert_feedback(
            session, api_key_id=caller.key_id, completion_id=req.completion_id, choice_index=req.choice_index,
            rating=req.rating, reasons=reasons, comment=req.comment, correction=req.correction,
        ),  # fmt: skip
    )
    return FeedbackOut(
        id=stored.id, completion_id=req.completion_id, choice_index=req.choice_index, rating=req.rating,
        reasons=reasons, comment=req.comment, correction=req.correction,
        created_at=stored.created_at, updated_at=stored.updated_at,
    )  # fmt: skip
