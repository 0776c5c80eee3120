"""OpenAI protocol models, tolerant of extra fields (they are passed through to vLLM)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = "policy"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    user: str | None = Field(None, max_length=256)
    stream_options: dict[str, Any] | None = None

    @field_validator("stop")
    @classmethod
    def _stop_limit(cls, value):
        if isinstance(value, list) and len(value) > 8:
            raise ValueError("at most 8 stop sequences")
        return value

    def sampling_params(self) -> dict[str, Any]:
        """What is recorded with the completion: everything but the conversation and routing fields."""
        return self.model_dump(exclude={"messages", "model", "stream", "stream_options", "user"}, exclude_none=True)

    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))
