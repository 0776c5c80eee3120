"""Thin routers: parse, authorise, delegate to gateway.services. Each module exposes `router`."""

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    from gateway.api import admin, chat, comparisons, feedback, health, models, rankings, review

    return [health.router, models.router, chat.router, feedback.router, comparisons.router,
            rankings.router, review.router, admin.router]  # fmt: skip
