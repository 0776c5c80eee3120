"""Thumbs up/down on one choice of a stored completion: one current verdict per key, with history."""

from fastapi import FastAPI

from gateway.errors import ApiError
from gateway.schemas.feedback import FeedbackOut, FeedbackRequest
from gateway.services.auth import Caller
from gateway.services.feedback_writer import FeedbackWriter
from store.queries.feedback import FeedbackWrite


def writer_for(app: FastAPI) -> FeedbackWriter:
    """The app's feedback writer, made on first use (it needs the sessionmaker the lifespan created)."""
    writer = getattr(app.state, "feedback_writer", None)
    if writer is None:
        writer = app.state.feedback_writer = FeedbackWriter(app.state.sessionmaker)
    return writer


def normalize_reasons(reasons: list[str], vocabulary: list[str]) -> list[str]:
    """Reasons from the configured vocabulary, de-duplicated, in the order given."""
    unknown = [r for r in reasons if r not in vocabulary]
    if unknown:
        raise ApiError(
            400, f"unknown reason(s) {unknown}; allowed: {list(vocabulary)}", code="invalid_reason", param="reasons"
        )
    return list(dict.fromkeys(reasons))


async def submit_feedback(writer: FeedbackWriter, caller: Caller, req: FeedbackRequest, vocabulary: list[str]) -> FeedbackOut:
    """Store the verdict; returns only after it committed. Unknown or foreign completions → 404."""
    write = FeedbackWrite(
        api_key_id=caller.key_id, completion_id=req.completion_id, choice_index=req.choice_index, rating=req.rating,
        reasons=normalize_reasons(req.reasons, vocabulary), comment=req.comment, correction=req.correction,
    )  # fmt: skip
    stored = await writer.write(caller, write)
    return FeedbackOut(
        id=stored.id, completion_id=write.completion_id, choice_index=write.choice_index, rating=write.rating,
        reasons=write.reasons, comment=write.comment, correction=write.correction,
        created_at=stored.created_at, updated_at=stored.updated_at,
    )  # fmt: skip
