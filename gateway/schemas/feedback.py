from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import MAX_COMMENT_CHARS, MAX_COMPLETION_ID_CHARS, MAX_CORRECTION_CHARS, UtcDatetime


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    completion_id: str = Field(min_length=1, max_length=MAX_COMPLETION_ID_CHARS)
    choice_index: int = Field(0, ge=0)
    rating: Literal["up", "down"]
    # Checked against the configured vocabulary by the service (it is a setting, not a constant).
    reasons: list[str] = Field(default_factory=list, max_length=16)
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)
    correction: str | None = Field(None, max_length=MAX_CORRECTION_CHARS)


class FeedbackOut(BaseModel):
    id: int
    object: Literal["feedback"] = "feedback"
    completion_id: str
    choice_index: int
    rating: str
    reasons: list[str]
    comment: str | None
    correction: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
