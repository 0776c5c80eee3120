from fastapi import APIRouter

from gateway.deps import CallerDep, SessionDep
from gateway.schemas.rankings import RankingOut, RankingRequest
from gateway.services.rankings import submit_ranking

router = APIRouter(tags=["feedback"])


@router.post("/v1/rankings", response_model=RankingOut)
async def post_ranking(req: RankingRequest, caller: CallerDep, session: SessionDep) -> RankingOut:
    return await submit_ranking(session, caller, req)
