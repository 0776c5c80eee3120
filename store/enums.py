from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class PolicyKind(StrEnum):
    BASE = "base"
    LORA = "lora"
    FULL = "full"


class PolicyStatus(StrEnum):
    CANDIDATE = "candidate"
    CANARY = "canary"
    CHAMPION = "champion"
    RETIRED = "retired"
    REJECTED = "rejected"


class CompletionStatus(StrEnum):
    COMPLETE = "complete"
    CLIENT_DISCONNECTED = "client_disconnected"
    UPSTREAM_ERROR = "upstream_error"


def sql_in(enum: type[StrEnum]) -> str:
    """A CHECK constraint body listing an enum's values."""
    return ", ".join(f"'{member.value}'" for member in enum)
