from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz():
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request):
    state = request.app.state
    checks = {"database": False, "vllm": bool(state.vllm.healthy()), "champion": state.policies.ready()}
    try:
        async with state.sessionmaker() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:  # any DB failure means not ready; the body says which check failed
        pass
    ready = all(checks.values())
    champion = state.policies.champion
    body = {"status": "ready" if ready else "not_ready", "checks": checks, "champion": champion.name if champion else None}
    return JSONResponse(body, status_code=200 if ready else 503, headers=None if ready else {"Retry-After": "2"})


@router.get("/metrics")
async def metrics(request: Request):
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
