from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.protocol import ChatCompletionRequest
from gateway.schemas.common import MAX_COMMENT_CHARS, UtcDatetime


class ComparisonRequest(ChatCompletionRequest):
    """Chat generation parameters for both candidates; each candidate is one non-streamed sample."""

    # Sampling by default, so two samples of the same policy differ.
    temperature: float | None = Field(1.0, ge=0, le=2)

    @field_validator("n")
    @classmethod
    def _one_each(cls, n: int) -> int:
        if n != 1:
            raise ValueError("a comparison generates exactly one answer per candidate; leave n at 1")
        return n

    @field_validator("stream")
    @classmethod
    def _not_streamed(cls, stream: bool) -> bool:
        if stream:
            raise ValueError("comparisons are not streamed")
        return stream


class Candidate(BaseModel):
    label: Literal["a", "b"]
    content: str
    policy_version: str | None = None  # revealed only after the caller voted


class VoteRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    winner: Literal["a", "b", "tie", "both_bad"]
    reason: str | None = Field(None, max_length=MAX_COMMENT_CHARS)


class VoteOut(BaseModel):
    id: int
    object: Literal["comparison.vote"] = "comparison.vote"
    comparison_id: str
    winner: str
    reason: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ComparisonOut(BaseModel):
    id: str
    object: Literal["comparison"] = "comparison"
    created_at: UtcDatetime
    candidates: list[Candidate]
    revealed: bool = False  # true once the caller voted: candidates then name their policy_version
    vote: VoteOut | None = None
