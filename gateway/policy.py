"""Reconciles the `policy_versions` registry with what vLLM serves; the only writer of live-model state.

The learner only ever writes rows (candidates with artifact dirs). This manager decides what each vLLM
replica must have loaded, verifies artifacts before loading them, and resolves the `policy` alias.
"""

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.clients.vllm import BASE_MODEL, UpstreamError, UpstreamUnavailable, VLLMClient
from gateway.errors import ApiError
from store.artifact_hash import directory_sha256
from store.enums import PolicyKind, PolicyStatus
from store.models import PolicyVersion
from store.queries import policies

log = logging.getLogger(__name__)
POLICY_ALIAS = "policy"


@dataclass(frozen=True)
class LivePolicy:
    version_id: int
    name: str
    kind: str
    artifact_path: str

    @property
    def served_name(self) -> str:
        # Base and full-weight versions are the replica's base model; a LoRA is served under its own name.
        return self.name if self.kind == PolicyKind.LORA else BASE_MODEL

    @classmethod
    def of(cls, version: PolicyVersion) -> "LivePolicy":
        return cls(version.id, version.name, version.kind, version.artifact_path)


class PolicyManager:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: VLLMClient,
        *,
        model_path: str | None = None,
        poll_s: float = 2.0,
    ):
        self._sessionmaker, self._client = sessionmaker, client
        self._model_path, self._poll_s = model_path, poll_s
        self._lock = asyncio.Lock()
        self._verified: dict[int, str] = {}  # version id → sha256 already checked
        self.champion: LivePolicy | None = None

    # ---- alias resolution (hot path: no I/O) -------------------------------------------------
    def resolve(self, model: str) -> LivePolicy:
        if model == POLICY_ALIAS:
            if self.champion is None:
                raise ApiError(503, "no champion policy is ready yet", code="policy_not_ready", headers={"Retry-After": "2"})
            return self.champion
        for live in self.live():
            if live.name == model:
                return live
        raise ApiError(404, f"model {model!r} does not exist; use {POLICY_ALIAS!r}", code="model_not_found", param="model")

    def live(self) -> list[LivePolicy]:
        return [self.champion] if self.champion else []

    def ready(self) -> bool:
        if self.champion is None:
            return False
        served = self.champion.served_name
        return any(served == BASE_MODEL or served in r.served_models for r in self._client.healthy())

    # ---- start-up ---------------------------------------------------------------------------
    async def bootstrap(self) -> None:
        """Register the served base model (with its sha256) as champion when the registry has none."""
        base_path = self._model_path or next((r.base_model_id for r in self._client.healthy()), None)
        if base_path is None:
            raise RuntimeError("cannot register the base policy: no model path and no healthy vLLM replica")
        sha = await asyncio.to_thread(directory_sha256, base_path) if Path(base_path).is_dir() else None
        async with self._sessionmaker() as session, session.begin():
            existing = await _find_base(session, base_path, sha)
            current = await policies.champion(session)
            if existing is None:
                status = PolicyStatus.RETIRED if current else PolicyStatus.CHAMPION
                name = f"base-{sha[:12]}" if sha else f"base-{Path(base_path).name}"
                existing = await policies.register(
                    session, name=name, kind=PolicyKind.BASE, artifact_path=str(base_path), sha256=sha,
                    base_model=str(base_path), status=status, status_reason="served base model",
                )  # fmt: skip
                log.info("registered base model %s as %s (%s)", base_path, name, status)
        await self.reconcile()

    # ---- reconciliation ---------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:
                log.exception("policy reconciliation failed; will retry")
            await asyncio.sleep(self._poll_s)

    async def reconcile(self) -> None:
        async with self._lock:
            async with self._sessionmaker() as session:
                champion = await policies.champion(session)
            if champion is None:
                return
            live = LivePolicy.of(champion)
            if await self._ensure_loaded(live):
                if self.champion != live:
                    log.info("policy alias -> %s (version %d)", live.name, live.version_id)
                self.champion = live

    async def _ensure_loaded(self, live: LivePolicy) -> bool:
        if live.kind != PolicyKind.LORA:
            return True
        loaded_anywhere = False
        for replica in self._client.healthy():
            if live.name not in replica.served_models:
                try:
                    await self._verify(live)
                    await self._client.load_lora(replica, live.name, live.artifact_path)
                    log.info("loaded adapter %s on %s", live.name, replica)
                except ArtifactInvalid as exc:
                    await self._reject(live, str(exc))
                    return False
                except (UpstreamError, UpstreamUnavailable) as exc:
                    log.error("loading %s on %s failed: %s", live.name, replica, exc)
                    continue
            loaded_anywhere = True
        return loaded_anywhere

    async def _verify(self, live: LivePolicy) -> None:
        if live.version_id in self._verified:
            return
        async with self._sessionmaker() as session:
            version = await session.get(PolicyVersion, live.version_id)
        expected = version.sha256 if version else None
        try:
            actual = await asyncio.to_thread(directory_sha256, live.artifact_path)
        except FileNotFoundError as exc:
            raise ArtifactInvalid(str(exc)) from exc
        if expected and actual != expected:
            raise ArtifactInvalid(f"artifact sha256 {actual[:12]}… does not match the registry's {expected[:12]}…")
        self._verified[live.version_id] = actual

    async def _reject(self, live: LivePolicy, reason: str) -> None:
        log.error("rejecting policy %s: %s", live.name, reason)
        async with self._sessionmaker() as session, session.begin():
            version = await session.get(PolicyVersion, live.version_id)
            if version is not None:
                await policies.set_status(session, version, PolicyStatus.REJECTED, reason)


class ArtifactInvalid(Exception):
    pass


async def _find_base(session: AsyncSession, base_path: str, sha: str | None) -> PolicyVersion | None:
    for version in await policies.all_versions(session):
        if version.kind == PolicyKind.BASE and (
            (sha and version.sha256 == sha) or (not sha and version.artifact_path == str(base_path))
        ):
            return version
    return None

