from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from gateway.deps import AdminDep, SessionDep
from gateway.errors import ApiError
from gateway.services import admin
from gateway.services.rollout import gather_and_decide

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class DecisionRequest(BaseModel):
    reason: str | None = Field(None, max_length=2000)


@router.get("/policies")
async def list_policies(_: AdminDep, session: SessionDep, request: Request):
    return {"object": "list", "data": await admin.list_policies(session, request.app.state.policies)}


@router.get("/policies/{version_id}")
async def get_policy(version_id: int, _: AdminDep, session: SessionDep, request: Request):
    for item in await admin.list_policies(session, request.app.state.policies):
        if item["id"] == version_id:
            return item
    raise ApiError(404, f"policy version {version_id} does not exist", code="policy_not_found")


@router.post("/policies/{version_id}/promote")
async def promote(version_id: int, caller: AdminDep, request: Request, body: DecisionRequest | None = None):
    reason = (body.reason if body else None) or "promoted by admin"
    await request.app.state.policies.promote(version_id, actor=f"admin:{caller.key_id}", reason=reason)
    return {"promoted": version_id, "champion": request.app.state.policies.champion.name}


@router.post("/policies/{version_id}/rollback")
async def rollback(version_id: int, caller: AdminDep, request: Request, body: DecisionRequest | None = None):
    reason = (body.reason if body else None) or "rolled back by admin"
    await request.app.state.policies.rollback(version_id, actor=f"admin:{caller.key_id}", reason=reason)
    manager = request.app.state.policies
    return {"rolled_back": version_id, "champion": manager.champion.name, "canary": manager.canary.name if manager.canary else None}


@router.get("/rollout")
async def rollout(_: AdminDep, request: Request):
    """The live canary, if any, and the evidence the next automatic decision will be taken on."""
    manager, state = request.app.state.policies, request.app.state
    if manager.canary is None or manager.champion is None:
        return {"champion": manager.champion.name if manager.champion else None, "canary": None}
    decision = await gather_and_decide(state.sessionmaker, manager.canary.version_id, manager.champion.version_id, state.rollout_policy)
    return {
        "champion": manager.champion.name, "canary": manager.canary.name,
        "canary_share": manager.rollout.canary_share, "next_action": decision.action, "reason": decision.reason,
        "evidence": decision.evidence.__dict__,
    }  # fmt: skip
