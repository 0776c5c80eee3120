from fastapi import APIRouter, Request

from gateway.deps import CallerDep, SessionDep
from gateway.schemas.comparisons import ComparisonOut, ComparisonRequest, VoteOut, VoteRequest
from gateway.services import comparisons

router = APIRouter(tags=["feedback"])


@router.post("/v1/comparisons", response_model=ComparisonOut, response_model_exclude_none=True)
async def create_comparison(req: ComparisonRequest, caller: CallerDep, session: SessionDep, request: Request):
    state = request.app.state
    return await comparisons.create_comparison(
        session, state.chat, state.policies, caller, req,
        started=getattr(request.state, "started", None), challenger_share=state.settings.canary_ab_share,
    )  # fmt: skip


@router.post("/v1/comparisons/{comparison_id}/vote", response_model=VoteOut)
async def vote(comparison_id: str, req: VoteRequest, caller: CallerDep, session: SessionDep) -> VoteOut:
    return await comparisons.vote(session, caller, comparison_id, req)


@router.get("/v1/comparisons/{comparison_id}", response_model=ComparisonOut, response_model_exclude_none=True)
async def get_comparison(comparison_id: str, caller: CallerDep, session: SessionDep) -> ComparisonOut:
    return await comparisons.get_comparison(session, caller, comparison_id)
