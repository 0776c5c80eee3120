"""Plain records of what users said, detached from the database, so the cleaning rules stay pure.

Every record carries the same identity fields (who, about what, when, under which policy) so one set
of rules (dedupe, caps, agreement) applies to all of them; each kind adds its own verdict and texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

Messages = tuple[dict[str, str], ...]

RATINGS = ("up", "down")
WINNERS = ("a", "b", "tie", "both_bad")


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC, so naive means UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _content_text(content: Any) -> str:
    # OpenAI allows content as a list of parts; TRL's chat templates want one string.
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def normalize_messages(messages: Any) -> Messages:
    """OpenAI messages → `({"role", "content"}, ...)`: the only keys TRL reads, and one JSON schema for every row."""
    return tuple(
        {"role": str(message.get("role", "user")), "content": _content_text(message.get("content"))}
        for message in (messages or [])
        if isinstance(message, dict)
    )


@dataclass(frozen=True)
class Judgement:
    """What every judgement has in common; `item_key` names the thing judged (the dedupe/agreement unit)."""

    user_id: int
    prompt: Messages
    created_at: datetime
    updated_at: datetime

    kind: ClassVar[str] = ""

    @property
    def item_key(self) -> tuple:
        raise NotImplementedError

    @property
    def verdict(self) -> Any:
        """What the user said about the item; two users agree when their verdicts are equal."""
        raise NotImplementedError

    def is_valid(self) -> bool:
        return True


@dataclass(frozen=True)
class Thumb(Judgement):
    """A thumbs up/down on one choice of a completion."""

    completion_id: str
    choice_index: int
    rating: str
    text: str
    policy_version_id: int | None = None
    reasons: tuple[str, ...] = ()

    kind: ClassVar[str] = "thumb"

    @property
    def item_key(self) -> tuple:
        return ("thumb", self.completion_id, self.choice_index)

    @property
    def verdict(self) -> str:
        return self.rating

    def is_valid(self) -> bool:
        return self.rating in RATINGS


@dataclass(frozen=True)
class Correction(Judgement):
    """A user's edited answer for one choice: the edit is better than what the policy wrote."""

    completion_id: str
    choice_index: int
    original: str
    corrected: str
    policy_version_id: int | None = None

    kind: ClassVar[str] = "correction"

    @property
    def item_key(self) -> tuple:
        return ("correction", self.completion_id, self.choice_index)

    @property
    def verdict(self) -> str:
        return self.corrected

    def is_valid(self) -> bool:
        return bool(self.corrected.strip()) and self.corrected.strip() != self.original.strip()


@dataclass(frozen=True)
class Vote(Judgement):
    """A vote on an anonymous A/B comparison."""

    comparison_id: str
    winner: str
    text_a: str
    text_b: str
    policy_a: int | None = None
    policy_b: int | None = None

    kind: ClassVar[str] = "vote"

    @property
    def item_key(self) -> tuple:
        return ("vote", self.comparison_id)

    @property
    def verdict(self) -> str:
        return self.winner

    def is_valid(self) -> bool:
        return self.winner in WINNERS


@dataclass(frozen=True)
class RankingRecord(Judgement):
    """An ordering of a completion's choices, best first; `texts[i]` is choice i's text."""

    completion_id: str
    order: tuple[int, ...]
    texts: tuple[tuple[int, str], ...]
    policy_version_id: int | None = None

    kind: ClassVar[str] = "ranking"

    @property
    def item_key(self) -> tuple:
        return ("ranking", self.completion_id)

    @property
    def verdict(self) -> tuple[int, ...]:
        return self.order

    def text_of(self, index: int) -> str:
        return dict(self.texts)[index]

    def is_valid(self) -> bool:
        # A ranking must order at least two distinct choices that exist.
        known = {index for index, _ in self.texts}
        return len(self.order) >= 2 and len(set(self.order)) == len(self.order) and set(self.order) <= known


@dataclass(frozen=True)
class LoggedPrompt:
    """A prompt as served (for PPO: the policy generates, the reward model scores)."""

    user_id: int
    prompt: Messages
    created_at: datetime
