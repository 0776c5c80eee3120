import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from gateway.deps import CallerDep
from gateway.protocol import ChatCompletionRequest

router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions")
async def chat_completions(req: ChatCompletionRequest, caller: CallerDep, request: Request):
    started = request.state.started if hasattr(request.state, "started") else time.perf_counter()
    service = request.app.state.chat
    if req.stream:
        stream = await service.open_stream(caller, req, started)
        headers = {
            "X-Policy-Version": stream.policy.name,
            "X-Gateway-Overhead-Ms": f"{stream.overhead_ms:.2f}",
            "X-Completion-Id": stream.completion_id,
            "Cache-Control": "no-cache",
        }
        # The slot is released when the stream ends; the background task covers a body that never started.
        return StreamingResponse(
            stream.chunks, media_type="text/event-stream", headers=headers, background=BackgroundTask(stream.slot.release)
        )
    result = await service.complete(caller, req, started)
    headers = {"X-Policy-Version": result.policy.name, "X-Gateway-Overhead-Ms": f"{result.overhead_ms:.2f}"}
    return JSONResponse(result.body, headers=headers)
