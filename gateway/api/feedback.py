from fastapi import APIRouter, Request

from gateway.deps import CallerDep
from gateway.schemas.feedback import FeedbackOut, FeedbackRequest
from gateway.services.feedback import submit_feedback, writer_for

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback", response_model=FeedbackOut)
async def post_feedback(req: FeedbackRequest, caller: CallerDep, request: Request) -> FeedbackOut:
    app = request.app
    return await submit_feedback(writer_for(app), caller, req, app.state.settings.feedback_reasons)
