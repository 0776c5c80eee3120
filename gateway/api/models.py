import time

from fastapi import APIRouter, Request

from gateway.deps import CallerDep
from gateway.policy import POLICY_ALIAS

router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(_: CallerDep, request: Request):
    manager = request.app.state.policies
    now = int(time.time())
    data = []
    if manager.champion is not None:
        data.append(
            {"id": POLICY_ALIAS, "object": "model", "created": now, "owned_by": "flywheel",
             "policy_version": manager.champion.name}
        )  # fmt: skip
    data += [
        {"id": live.name, "object": "model", "created": now, "owned_by": "flywheel", "policy_version": live.name}
        for live in manager.live()
    ]
    return {"object": "list", "data": data}
