from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.schemas.common import MAX_COMPLETION_ID_CHARS, UtcDatetime


class RankingRequest(BaseModel):
    """The permutation check needs the completion's choice count, so it lives in the service."""

    model_config = ConfigDict(extra="ignore")

    completion_id: str = Field(min_length=1, max_length=MAX_COMPLETION_ID_CHARS)
    order: list[int] = Field(min_length=1, max_length=64, description="choice indices, best first")


class RankingOut(BaseModel):
    id: int
    object: Literal["ranking"] = "ranking"
    completion_id: str
    order: list[int]
    created_at: UtcDatetime
    updated_at: UtcDatetime
