from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from gateway.deps import ReviewerDep, SessionDep
from gateway.schemas.review import Leaderboard, ReviewFeedbackPage, ReviewStats
from gateway.services import review

router = APIRouter(tags=["review"])
REVIEW_PAGE = Path(__file__).resolve().parents[1] / "static" / "review.html"

Rating = Annotated[Literal["up", "down"] | None, Query(description="only this rating")]
PolicyName = Annotated[str | None, Query(max_length=200, description="a policy version's name")]
Since = Annotated[datetime | None, Query(description="ISO 8601; judgements created or updated since then")]
ExportFormat = Literal["csv", "jsonl"]
_MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def _download(request: Request, fmt: ExportFormat, rating, policy_version, since) -> StreamingResponse:
    f = review.make_filter(rating, policy_version, since)
    body = (review.export_csv if fmt == "csv" else review.export_jsonl)(request.app.state.sessionmaker, f)
    headers = {"Content-Disposition": f'attachment; filename="feedback.{fmt}"'}
    return StreamingResponse(body, media_type=_MEDIA[fmt], headers=headers)


@router.get("/v1/review/feedback", response_model=ReviewFeedbackPage)
async def list_feedback(
    _: ReviewerDep,
    session: SessionDep,
    request: Request,
    rating: Rating = None,
    policy_version: PolicyName = None,
    since: Since = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    format: Annotated[ExportFormat | None, Query(description="download everything that matches")] = None,
):
    if format is not None:
        return _download(request, format, rating, policy_version, since)
    return await review.feedback_page(session, review.make_filter(rating, policy_version, since), cursor, limit)


@router.get("/v1/review/feedback.csv")
async def feedback_csv(
    _: ReviewerDep, request: Request, rating: Rating = None, policy_version: PolicyName = None, since: Since = None
):
    return _download(request, "csv", rating, policy_version, since)


@router.get("/v1/review/feedback.jsonl")
async def feedback_jsonl(
    _: ReviewerDep, request: Request, rating: Rating = None, policy_version: PolicyName = None, since: Since = None
):
    return _download(request, "jsonl", rating, policy_version, since)


@router.get("/v1/review/stats", response_model=ReviewStats)
async def stats(_: ReviewerDep, session: SessionDep, since: Since = None) -> ReviewStats:
    return await review.stats(session, since)


@router.get("/v1/review/leaderboard", response_model=Leaderboard)
async def leaderboard(
    _: ReviewerDep,
    session: SessionDep,
    request: Request,
    since: Since = None,
    bootstrap: Annotated[int, Query(ge=10, le=2000, description="bootstrap resamples")] = 200,
) -> Leaderboard:
    policies = request.app.state.policies
    champion = policies.champion.name if policies.champion else None
    live = [p.name for p in policies.live()]
    return await review.leaderboard(session, since, live=live, champion=champion, n_boot=bootstrap)


@router.get("/review", include_in_schema=False)
async def review_page() -> FileResponse:
    # Public on purpose: the page holds no data; it asks for a reviewer key and calls the API with it.
    return FileResponse(REVIEW_PAGE, media_type="text/html; charset=utf-8")
