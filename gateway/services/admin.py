"""The policy registry as admins see it: status, sha256, lineage (data watermark → run → artifact), events."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.policy import PolicyManager
from store.models import PolicyEvent, PolicyVersion, TrainingRun
from store.queries import policies


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _run(run: TrainingRun | None) -> dict | None:
    if run is None:
        return None
    return {
        "id": run.id, "status": run.status, "algorithm": run.algorithm,
        "watermark_from": _iso(run.watermark_from), "watermark_to": _iso(run.watermark_to),
        "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
        "counts": run.counts, "error": run.error, "seed": run.seed,
    }  # fmt: skip


def _event(event: PolicyEvent) -> dict:
    return {
        "action": event.action, "from_status": event.from_status, "to_status": event.to_status,
        "reason": event.reason, "actor": event.actor, "evidence": event.evidence, "at": _iso(event.created_at),
    }  # fmt: skip


def describe(version: PolicyVersion, run: TrainingRun | None, events: list[PolicyEvent], manager: PolicyManager) -> dict:
    live = {p.version_id: role for role, p in (("champion", manager.champion), ("canary", manager.canary)) if p}
    return {
        "id": version.id, "name": version.name, "kind": version.kind, "status": version.status,
        "status_reason": version.status_reason, "sha256": version.sha256, "artifact_path": version.artifact_path,
        "base_model": version.base_model, "algorithm": version.algorithm,
        "lineage": {"parent_id": version.parent_id, "training_run": _run(run)},
        "metrics": version.metrics, "serving_as": live.get(version.id),
        "created_at": _iso(version.created_at), "promoted_at": _iso(version.promoted_at),
        "retired_at": _iso(version.retired_at), "events": [_event(e) for e in events],
    }  # fmt: skip


async def list_policies(session: AsyncSession, manager: PolicyManager) -> list[dict]:
    versions = await policies.all_versions(session)
    run_ids = [v.training_run_id for v in versions if v.training_run_id]
    runs = {r.id: r for r in await session.scalars(select(TrainingRun).where(TrainingRun.id.in_(run_ids)))} if run_ids else {}
    events: dict[int, list[PolicyEvent]] = {}
    for event in await policies.events_for(session, [v.id for v in versions]):
        events.setdefault(event.policy_version_id, []).append(event)
    return [describe(v, runs.get(v.training_run_id), events.get(v.id, []), manager) for v in reversed(versions)]
