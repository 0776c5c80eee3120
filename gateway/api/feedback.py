from fastapi import APIRouter, Request

from gateway.deps import CallerDep, SessionDep
from gateway.schemas.feedback import FeedbackOut, FeedbackRequest
from gateway.services.feedback import submit_feedback

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback", response_model=FeedbackOut)
async def post_feedback(req: FeedbackRequest, caller: CallerDep, session: SessionDep, request: Request) -> FeedbackOut:
    return await submit_feedback(session, caller, req, request.app.state.settings.feedback_reasons)
