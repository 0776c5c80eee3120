"""App factory and lifespan: DB check, vLLM (local child or remote replicas), policy manager, routers."""

import asyncio
import logging
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI

from gateway.api import all_routers
from gateway.clients.vllm import VLLMClient
from gateway.errors import install_error_handlers
from gateway.metrics import Metrics
from gateway.middleware import BodyLimitAndMetrics
from gateway.policy import PolicyManager, RolloutSettings
from gateway.services.auth import KeyCache
from gateway.services.background import BackgroundWrites
from gateway.services.chat import ChatService
from gateway.services.ratelimit import RateLimiter
from gateway.services.rollout import RolloutPolicy, judge_canaries
from gateway.settings import Settings
from gateway.vllm_process import LocalVLLM, vllm_command
from store.engine import create_engine, create_sessionmaker
from store.migrate import ensure_migrated

log = logging.getLogger(__name__)


def _local_vllm(settings: Settings) -> LocalVLLM:
    command = vllm_command(
        str(Path(settings.model_path).resolve()),
        settings.vllm_port,
        dtype=settings.vllm_dtype,
        max_model_len=settings.vllm_max_model_len,
        max_lora_rank=settings.vllm_max_lora_rank,
        max_loras=settings.vllm_max_loras,
        gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
        extra_args=settings.vllm_extra_args,
    )
    return LocalVLLM(command, Path("data/logs") / f"vllm-{settings.vllm_port}.log")


async def _watch_replicas(client: VLLMClient, policies: PolicyManager, interval_s: float) -> None:
    """Probe every replica; register the base policy once one is up, reload live adapters when one comes back."""
    bootstrapped = False
    while True:
        try:
            came_up = False
            for replica in client.replicas:
                came_up |= await client.refresh(replica)
            if client.healthy():
                if not bootstrapped:
                    await policies.bootstrap()
                    bootstrapped = True
                elif came_up:
                    await policies.reconcile()
        except Exception:
            log.exception("replica watch failed; retrying")
        await asyncio.sleep(interval_s)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = create_engine(settings.database_url)
        await ensure_migrated(engine)  # refuse to serve on an unmigrated database
        sessionmaker = create_sessionmaker(engine)
        local = None
        urls = list(settings.vllm_urls)
        if not urls:
            if not settings.model_path:
                raise RuntimeError("nothing to serve: give --model DIR (local vLLM) or --vllm-url URL")
            local = _local_vllm(settings)
            local.start()
            urls = [local.url]
        client = VLLMClient(urls, settings.upstream_timeout_s)
        rollout = RolloutSettings(settings.canary_share, settings.auto_canary, settings.drain_timeout_s)
        policies = PolicyManager(
            sessionmaker, client, model_path=settings.model_path, poll_s=settings.policy_poll_s, rollout=rollout
        )
        rollout_policy = RolloutPolicy(min_votes=settings.canary_min_votes, min_thumbs=settings.canary_min_thumbs)
        background = BackgroundWrites()
        state = app.state
        state.settings, state.engine, state.sessionmaker, state.vllm, state.local_vllm = (
            settings, engine, sessionmaker, client, local
        )
        state.policies, state.background, state.metrics = policies, background, metrics
        state.rollout_policy = rollout_policy
        state.key_cache = KeyCache(sessionmaker, settings.key_cache_ttl_s)
        state.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        state.chat = ChatService(sessionmaker, client, policies, metrics, background, settings.retry_after_s)
        tasks = [
            asyncio.create_task(_watch_replicas(client, policies, settings.vllm_health_interval_s)),
            asyncio.create_task(policies.run()),
        ]
        if settings.auto_decide:
            tasks.append(asyncio.create_task(judge_canaries(policies, sessionmaker, rollout_policy, settings.rollout_interval_s)))
        if local is not None:
            tasks.append(asyncio.create_task(local.supervise()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task
            await background.drain()
            await client.aclose()
            if local is not None:
                await asyncio.to_thread(local.stop)
            await engine.dispose()

    app = FastAPI(title="Flywheel gateway", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    for router in all_routers():
        app.include_router(router)
    app.add_middleware(BodyLimitAndMetrics, max_body_bytes=settings.max_body_bytes, metrics=metrics)
    return app
