"""Thin routers: parse, authorise, delegate to gateway.services. Each module exposes `router`."""

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    from gateway.api import chat, health, models

    routers = [health.router, models.router, chat.router]
    # Feedback, comparisons, rankings, review and admin routers register here as they land.
    for name in ("feedback", "comparisons", "rankings", "review", "admin"):
        try:
            module = __import__(f"gateway.api.{name}", fromlist=["router"])
        except ModuleNotFoundError as exc:
            if exc.name != f"gateway.api.{name}":
                raise
            continue
        routers.append(module.router)
    return routers
