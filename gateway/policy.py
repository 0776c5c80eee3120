"""Reconciles the `policy_versions` registry with what vLLM serves; the only writer of live-model state.

The learner only ever writes rows (candidates with artifact dirs). This manager decides what each vLLM
replica must have loaded, verifies artifacts before loading them, resolves the `policy` alias (champion,
or the canary for its share of traffic), and carries out promotions and rollbacks.

- LoRA versions are blue/green: every version is loaded under its own name from its own directory,
  smoke-tested, and only then does the alias move (a reference swap). The previous champion stays
  loaded for instant rollback; adapters outside {champion, canary, previous} are unloaded once idle.
- Full-weight (and base) versions share the replicas' base weights: new requests wait at a gate,
  requests in flight finish on the old weights, then reload_weights + reset_prefix_cache, and the
  gate opens on the new champion. No request fails and no response mixes two versions.
"""

import asyncio
import logging
import random
import time
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

    @property
    def is_adapter(self) -> bool:
        return self.kind == PolicyKind.LORA

    @classmethod
    def of(cls, version: PolicyVersion) -> "LivePolicy":
        return cls(version.id, version.name, version.kind, version.artifact_path)


@dataclass
class RolloutSettings:
    canary_share: float = 0.2
    auto_canary: bool = True
    drain_timeout_s: float = 120.0


class ArtifactInvalid(Exception):
    pass


class Slot:
    """One request's hold on a live policy; `release()` is idempotent (called from several exit paths)."""

    def __init__(self, manager: "PolicyManager", live: LivePolicy):
        self.live, self._manager, self._released = live, manager, False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._manager._release()


class PolicyManager:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: VLLMClient,
        *,
        model_path: str | None = None,
        poll_s: float = 2.0,
        rollout: RolloutSettings | None = None,
    ):
        self._sessionmaker, self._client = sessionmaker, client
        self._model_path, self._poll_s = model_path, poll_s
        self.rollout = rollout or RolloutSettings()
        self._lock = asyncio.Lock()  # one reconcile / promote / rollback at a time
        self._verified: dict[int, str] = {}  # version id → sha256 already checked
        self._rng = random.Random()
        # Gate for full-weight swaps: closed while base weights change; requests hold a slot while served.
        self._open = asyncio.Event()
        self._open.set()
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Which version's weights each replica holds as its base model (replica url → version name).
        self._weights: dict[str, str] = {}
        self._weights_generation: dict[str, int] = {}
        self._base: LivePolicy | None = None
        self.champion: LivePolicy | None = None
        self.canary: LivePolicy | None = None
        self.previous: LivePolicy | None = None

    # ---- hot path: no I/O ---------------------------------------------------------------------
    def resolve(self, model: str) -> LivePolicy:
        if model == POLICY_ALIAS:
            if self.champion is None:
                raise ApiError(503, "no champion policy is ready yet", code="policy_not_ready", headers={"Retry-After": "2"})
            if self.canary is not None and self._rng.random() < self.rollout.canary_share:
                return self.canary
            return self.champion
        for live in self.live():
            if live.name == model:
                return live
        raise ApiError(404, f"model {model!r} does not exist; use {POLICY_ALIAS!r}", code="model_not_found", param="model")

    async def acquire(self, model: str) -> "Slot":
        """Resolve a model for one request and hold a serving slot (a weight swap waits for it) until released."""
        while not self._open.is_set():
            await self._open.wait()
        live = self.resolve(model)
        self._inflight += 1
        self._idle.clear()
        return Slot(self, live)

    def _release(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    def live(self) -> list[LivePolicy]:
        return [p for p in (self.champion, self.canary) if p is not None]

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
        is_local = Path(base_path).is_dir()
        if is_local:
            base_path = str(Path(base_path).resolve())  # the learner and vLLM may run from other directories
        sha = await asyncio.to_thread(directory_sha256, base_path) if is_local else None
        async with self._sessionmaker() as session, session.begin():
            base = await _find_base(session, str(base_path), sha)
            if base is None:
                status = PolicyStatus.RETIRED if await policies.champion(session) else PolicyStatus.CHAMPION
                name = f"base-{sha[:12]}" if sha else f"base-{Path(base_path).name}"
                base = await policies.register(
                    session, name=name, kind=PolicyKind.BASE, artifact_path=str(base_path), sha256=sha,
                    base_model=str(base_path), status=status, status_reason="served base model",
                )  # fmt: skip
                log.info("registered base model %s as %s (%s)", base_path, name, status)
            self._base = LivePolicy.of(base)
        await self.reconcile()

    # ---- reconciliation ---------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                if self._base is not None:
                    await self.reconcile()
            except Exception:
                log.exception("policy reconciliation failed; will retry")
            await asyncio.sleep(self._poll_s)

    async def reconcile(self) -> None:
        """Make vLLM serve what the registry says: champion, canary (or the next candidate), nothing stale."""
        async with self._lock:
            async with self._sessionmaker() as session:
                champion = await policies.champion(session)
                canaries = await policies.by_status(session, PolicyStatus.CANARY)
                candidates = await policies.by_status(session, PolicyStatus.CANDIDATE)
            if champion is None:
                return
            live = LivePolicy.of(champion)
            # Also after a replica restart: it lost its adapters and serves its original weights again.
            if not await self._ensure_champion(live):
                return
            if live != self.champion:
                if self.champion is not None:
                    self.previous = self.champion
                log.info("policy alias -> %s (version %d)", live.name, live.version_id)
                self.champion = live
            await self._reconcile_canary(canaries, candidates)
            await self._unload_stale()

    async def _reconcile_canary(self, canaries: list[PolicyVersion], candidates: list[PolicyVersion]) -> None:
        if canaries:
            live = LivePolicy.of(canaries[-1])
            self.canary = live if await self._load_adapter(live) else None
            return
        self.canary = None
        for candidate in candidates:
            live = LivePolicy.of(candidate)
            try:
                await self._verify(live)
            except ArtifactInvalid as exc:
                await self._transition(live, "reject", PolicyStatus.REJECTED, str(exc))
                continue
            if not live.is_adapter:
                # Base weights are shared: a full-weight candidate cannot run beside the champion on one
                # replica, so it waits for a promotion (admin) instead of a canary.
                continue
            if self.rollout.auto_canary:
                await self.start_canary(live)
            return

    async def start_canary(self, live: LivePolicy) -> bool:
        if not await self._load_adapter(live):
            return False
        try:
            await self._smoke_test(live)
        except (UpstreamError, UpstreamUnavailable) as exc:
            await self._transition(live, "reject", PolicyStatus.REJECTED, f"smoke request failed: {exc}")
            return False
        await self._transition(
            live, "canary", PolicyStatus.CANARY, f"serving {self.rollout.canary_share:.0%} of chat traffic as canary"
        )
        self.canary = live
        return True

    async def _smoke_test(self, live: LivePolicy) -> None:
        body = await self._client.chat(
            {"model": live.served_name, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 4}
        )
        if not body.get("choices"):
            raise UpstreamError(200, {"error": {"message": "no choices in the smoke response"}})

    # ---- promotion and rollback (auto decisions and the admin API) ---------------------------
    async def promote(self, version_id: int, *, actor: str = "auto", reason: str = "", evidence: dict | None = None) -> None:
        async with self._lock:
            async with self._sessionmaker() as session:
                version = await session.get(PolicyVersion, version_id)
            if version is None:
                raise ApiError(404, f"policy version {version_id} does not exist", code="policy_not_found")
            if version.status in (PolicyStatus.CHAMPION, PolicyStatus.REJECTED):
                raise ApiError(409, f"version {version.name} is {version.status}; cannot promote", code="invalid_transition")
            live = LivePolicy.of(version)
            try:
                await self._verify(live)
            except ArtifactInvalid as exc:
                await self._transition(live, "reject", PolicyStatus.REJECTED, str(exc))
                raise ApiError(409, f"version {version.name} failed verification: {exc}", code="artifact_invalid") from exc
            if live.is_adapter and not await self._load_adapter(live):
                raise ApiError(409, f"version {version.name} could not be loaded; see its status", code="load_failed")
            await self._switch_champion(live, "promote", reason or "promoted", actor, evidence)
            if self.canary == live:
                self.canary = None

    async def rollback(self, version_id: int, *, actor: str = "auto", reason: str = "", evidence: dict | None = None) -> None:
        async with self._lock:
            async with self._sessionmaker() as session:
                version = await session.get(PolicyVersion, version_id)
                if version is None:
                    raise ApiError(404, f"policy version {version_id} does not exist", code="policy_not_found")
                target = await policies.previous_champion(session, version) if version.status == PolicyStatus.CHAMPION else None
            live = LivePolicy.of(version)
            if version.status in (PolicyStatus.CANARY, PolicyStatus.CANDIDATE):
                await self._transition(live, "rollback", PolicyStatus.RETIRED, reason or "rolled back", actor, evidence)
                if self.canary == live:
                    self.canary = None
                await self._unload_stale()
                return
            if version.status != PolicyStatus.CHAMPION:
                raise ApiError(409, f"version {version.name} is {version.status}; only a champion or canary rolls back", code="invalid_transition")
            if target is None:
                raise ApiError(409, "no previous champion to roll back to", code="no_rollback_target")
            restored = LivePolicy.of(target)
            if restored.is_adapter and not await self._load_adapter(restored):
                raise ApiError(409, f"previous champion {target.name} could not be loaded", code="load_failed")
            await self._switch_champion(restored, "restore", f"rollback of {version.name}: {reason or 'by request'}", actor, evidence)
            await self._unload_stale()

    async def _switch_champion(self, live: LivePolicy, action: str, reason: str, actor: str, evidence: dict | None) -> None:
        """Commit the registry change, then move the alias (full weights: behind the drained gate)."""
        old = self.champion
        evidence = dict(evidence or {})

        async def commit() -> None:
            async with self._sessionmaker() as session, session.begin():
                version = await session.get(PolicyVersion, live.version_id)
                current = await policies.champion(session)
                if current is not None and current.id != live.version_id:
                    status = PolicyStatus.RETIRED
                    await policies.record_event(session, current, "retire", status, reason=f"replaced by {live.name}", actor=actor)
                await policies.record_event(session, version, action, PolicyStatus.CHAMPION, reason=reason, actor=actor, evidence=evidence)

        weights = self._base if live.is_adapter else live
        if weights is None or all(self._weights_of(r) == weights.name for r in self._client.healthy()):
            await commit()
            self.champion = live  # atomic for every request resolved from now on
        else:
            # The swap's timings go into the promotion's evidence (committed before the gate opens).
            await self._swap_weights(weights, live, before_open=commit, timings=evidence.setdefault("swap_ms", {}))
        self.previous = old if old != live else self.previous
        log.info("%s: champion %s -> %s (%s)", action, old.name if old else None, live.name, reason)

    async def _transition(self, live: LivePolicy, action: str, status: PolicyStatus, reason: str,
                          actor: str = "auto", evidence: dict | None = None) -> None:  # fmt: skip
        log.info("%s %s -> %s: %s", action, live.name, status, reason)
        async with self._sessionmaker() as session, session.begin():
            version = await session.get(PolicyVersion, live.version_id)
            if version is not None:
                await policies.record_event(session, version, action, status, reason=reason, actor=actor, evidence=evidence)

    # ---- loading ------------------------------------------------------------------------------
    async def _ensure_champion(self, live: LivePolicy) -> bool:
        """The replicas hold the right base weights (the version's own, or the base under a LoRA) and adapter."""
        weights = self._base if live.is_adapter else live
        if live.is_adapter and not await self._load_adapter(live):
            return False
        if weights is not None and any(self._weights_of(r) != weights.name for r in self._client.healthy()):
            try:
                await self._verify(weights)
            except ArtifactInvalid as exc:
                await self._transition(live, "reject", PolicyStatus.REJECTED, str(exc))
                return False
            await self._swap_weights(weights, live)
        return True

    async def _load_adapter(self, live: LivePolicy) -> bool:
        """Verified and loaded on every healthy replica (a new name and directory per version)."""
        if not live.is_adapter:
            return False  # full weights never run beside the champion on a shared replica
        loaded_anywhere = False
        for replica in self._client.healthy():
            if live.name not in replica.served_models:
                try:
                    await self._verify(live)
                    await self._client.load_lora(replica, live.name, live.artifact_path)
                    log.info("loaded adapter %s on %s", live.name, replica)
                except ArtifactInvalid as exc:
                    await self._transition(live, "reject", PolicyStatus.REJECTED, str(exc))
                    return False
                except (UpstreamError, UpstreamUnavailable) as exc:
                    log.error("loading %s on %s failed: %s", live.name, replica, exc)
                    if isinstance(exc, UpstreamError) and 400 <= exc.status < 500 and "already" not in str(exc):
                        await self._transition(live, "reject", PolicyStatus.REJECTED, f"vLLM refused the adapter: {exc}")
                        return False
                    continue
            loaded_anywhere = True
        return loaded_anywhere

    def _weights_of(self, replica) -> str | None:
        # A replica that restarted serves its original base weights again.
        if self._weights_generation.get(replica.url) != replica.generation:
            return self._base.name if self._base else None
        return self._weights.get(replica.url)

    async def _swap_weights(self, weights: LivePolicy, champion: LivePolicy, before_open=None,
                            timings: dict | None = None) -> None:  # fmt: skip
        """Close the gate, let requests in flight finish, reload, then open on the new champion."""
        timings = {} if timings is None else timings
        started = time.perf_counter()
        self._open.clear()
        try:
            await asyncio.wait_for(self._idle.wait(), self.rollout.drain_timeout_s)
            timings["drain"] = (time.perf_counter() - started) * 1000
            reload_started = time.perf_counter()
            for replica in self._client.healthy():
                if self._weights_of(replica) != weights.name:
                    await self._client.pause(replica, "wait")
                    try:
                        await self._client.reload_weights(replica, weights.artifact_path)
                        # Without this, prompts sharing a cached prefix would be served from the old weights.
                        await self._client.reset_prefix_cache(replica)
                    finally:
                        await self._client.resume(replica)
                    log.info("replica %s now holds the weights of %s", replica, weights.name)
                self._weights[replica.url] = weights.name
                self._weights_generation[replica.url] = replica.generation
            timings["pause_reload_reset_resume"] = (time.perf_counter() - reload_started) * 1000
            if before_open is not None:
                await before_open()
            self.champion = champion
        finally:
            self._open.set()
            timings["gate_closed"] = (time.perf_counter() - started) * 1000

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

    async def _unload_stale(self) -> None:
        """Bound what is loaded: champion, canary and the previous champion; others go once idle."""
        keep = {p.name for p in (self.champion, self.canary, self.previous) if p is not None and p.is_adapter}
        async with self._sessionmaker() as session:
            adapters = {v.name for v in await policies.all_versions(session) if v.kind == PolicyKind.LORA}
        for replica in self._client.healthy():
            for name in sorted((replica.served_models & adapters) - keep):
                if self._client.inflight_by_model[name] > 0:
                    continue  # requests still stream from it; next reconcile unloads it
                try:
                    await self._client.unload_lora(replica, name)
                    log.info("unloaded adapter %s from %s", name, replica)
                except (UpstreamError, UpstreamUnavailable) as exc:
                    log.warning("unloading %s from %s failed: %s", name, replica, exc)


async def _find_base(session: AsyncSession, base_path: str, sha: str | None) -> PolicyVersion | None:
    for version in await policies.all_versions(session):
        if version.kind == PolicyKind.BASE and (
            (sha and version.sha256 == sha) or (not sha and version.artifact_path == base_path)
        ):
            return version
    return None
