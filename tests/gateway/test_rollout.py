"""Hot swap on a real vLLM: LoRA canary → champion → rollback and full-weight swaps, under load, with
zero failed requests and exact attribution; corrupted artifacts refused; canary survives a restart."""

import time
from collections import Counter

import httpx
import pytest

from store.migrate import upgrade
from tests.gateway_process import GatewayProcess, running_vllm
from tests.policy_factory import make_full, make_lora
from tests.rollout_tools import Load, check_attribution, policy_list, probe, register, wait_status

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def swap_vllm(tiny_model_dir, tmp_path_factory):
    """A vLLM of this module's own: weight swaps here must not leak into other tests' server."""
    with running_vllm(tiny_model_dir, tmp_path_factory.mktemp("swap") / "vllm.log") as url:
        yield url


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("rollout")


@pytest.fixture(scope="module")
def db_url(workdir):
    url = f"sqlite+aiosqlite:///{workdir / 'flywheel.db'}"
    upgrade(url)
    return url


GATEWAY_ENV = {"FLYWHEEL_CANARY_SHARE": "0.5", "FLYWHEEL_POLICY_POLL_S": "0.5", "FLYWHEEL_AUTO_DECIDE": "false"}


@pytest.fixture(scope="module")
def gateway(swap_vllm, db_url, workdir):
    proc = GatewayProcess.start(db_url, ["--vllm-url", swap_vllm], workdir, env=GATEWAY_ENV)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def admin(gateway):
    return {"Authorization": f"Bearer {gateway.create_key('admin')}"}


def test_lora_canary_promotion_and_rollback_under_load(gateway, admin, db_url, workdir, tiny_model_dir):
    key = gateway.create_key("user", rate_limit_per_s=1e6, rate_limit_burst=10**6)
    base_name, base_text = probe(gateway, key)
    path, sha = make_lora(tiny_model_dir, workdir / "lora-v1", seed=1)

    with Load(gateway, key) as load:
        time.sleep(1.0)
        version_id = register(db_url, name="lora-v1", kind="lora", artifact_path=str(path), sha256=sha, algorithm="dpo")
        canary = wait_status(gateway, admin, version_id, "canary")
        assert canary["serving_as"] == "canary"
        assert [e["action"] for e in canary["events"]] == ["canary"]
        time.sleep(2.0)  # canary takes its share of live traffic

        response = httpx.post(f"{gateway.url}/v1/admin/policies/{version_id}/promote", headers=admin, timeout=60)
        assert response.status_code == 200, response.text
        time.sleep(2.0)
        after_promotion = time.monotonic()
        time.sleep(4.0)

        rollback_at = time.monotonic()
        response = httpx.post(f"{gateway.url}/v1/admin/policies/{version_id}/rollback", headers=admin, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["champion"] == base_name
        time.sleep(2.0)

    assert load.failures() == [], load.report()
    versions = Counter(r["header_version"] for r in load.results)
    assert versions["lora-v1"] > 0 and versions[base_name] > 0
    # Responses started after the promotion settled all came from the new champion.
    settled = [r for r in load.results if after_promotion <= r["at"] < rollback_at - 1.0]
    assert settled and {r["header_version"] for r in settled} == {"lora-v1"}
    check_attribution(gateway, load.results)

    # Greedy output: the adapter changes it, the rollback restores it.
    httpx.post(f"{gateway.url}/v1/admin/policies/{version_id}/promote", headers=admin, timeout=60).raise_for_status()
    name, lora_text = probe(gateway, key)
    assert name == "lora-v1" and lora_text != base_text
    httpx.post(f"{gateway.url}/v1/admin/policies/{version_id}/rollback", headers=admin, timeout=60).raise_for_status()
    assert probe(gateway, key) == (base_name, base_text)
    events = [e["action"] for e in policy_list(gateway, admin)[version_id]["events"]]
    assert events == ["canary", "promote", "retire", "promote", "retire"]


def test_full_weight_swap_under_load(gateway, admin, db_url, workdir):
    key = gateway.create_key("user", rate_limit_per_s=1e6, rate_limit_burst=10**6)
    base_name, base_text = probe(gateway, key)
    path, sha = make_full(workdir / "full-v1", seed=5)
    version_id = register(db_url, name="full-v1", kind="full", artifact_path=str(path), sha256=sha, algorithm="kto")
    time.sleep(1.5)
    assert policy_list(gateway, admin)[version_id]["status"] == "candidate"  # full weights: no canary beside the champion

    with Load(gateway, key) as load:
        time.sleep(1.0)
        httpx.post(f"{gateway.url}/v1/admin/policies/{version_id}/promote", headers=admin, timeout=120).raise_for_status()
        time.sleep(2.0)
        httpx.post(f"{gateway.url}/v1/admin/policies/{version_id}/rollback", headers=admin, timeout=120).raise_for_status()
        time.sleep(1.0)
    assert load.failures() == [], load.report()
    assert {"full-v1", base_name} <= {r["header_version"] for r in load.results}
    check_attribution(gateway, load.results)

    httpx.post(f"{gateway.url}/v1/admin/policies/{version_id}/promote", headers=admin, timeout=120).raise_for_status()
    name, full_text = probe(gateway, key)
    assert name == "full-v1" and full_text != base_text
    httpx.post(f"{gateway.url}/v1/admin/policies/{version_id}/rollback", headers=admin, timeout=120).raise_for_status()
    assert probe(gateway, key) == (base_name, base_text)


def test_corrupted_artifact_is_refused(gateway, admin, db_url, workdir, tiny_model_dir):
    key = gateway.create_key("user")
    before = probe(gateway, key)
    path, sha = make_lora(tiny_model_dir, workdir / "lora-bad", seed=2)
    (path / "adapter_model.safetensors").write_bytes(b"corrupted" * 100)
    version_id = register(db_url, name="lora-bad", kind="lora", artifact_path=str(path), sha256=sha)
    rejected = wait_status(gateway, admin, version_id, "rejected")
    assert "sha256" in rejected["status_reason"]
    assert probe(gateway, key) == before
    response = httpx.post(f"{gateway.url}/v1/admin/policies/{version_id}/promote", headers=admin)
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_transition"


def test_restart_mid_canary_keeps_champion_and_challenger(gateway, admin, db_url, workdir, tiny_model_dir, swap_vllm):
    path, sha = make_lora(tiny_model_dir, workdir / "lora-v2", seed=3)
    version_id = register(db_url, name="lora-v2", kind="lora", artifact_path=str(path), sha256=sha)
    wait_status(gateway, admin, version_id, "canary")
    before = {v["name"]: v["serving_as"] for v in policy_list(gateway, admin).values() if v["serving_as"]}

    gateway.stop()
    restarted = GatewayProcess.start(db_url, ["--vllm-url", swap_vllm], workdir, env=GATEWAY_ENV)
    try:
        after = {v["name"]: v["serving_as"] for v in policy_list(restarted, admin).values() if v["serving_as"]}
        assert after == before and "lora-v2" in after
        key = restarted.create_key("user")
        assert probe(restarted, key, model="lora-v2")[0] == "lora-v2"
    finally:
        restarted.stop()


def test_votes_decide_automatically(swap_vllm, tmp_path, tiny_model_dir):
    """Users' A/B votes through the public API promote a canary that wins, with the evidence recorded."""
    db = f"sqlite+aiosqlite:///{tmp_path / 'auto.db'}"
    upgrade(db)
    env = {**GATEWAY_ENV, "FLYWHEEL_AUTO_DECIDE": "true", "FLYWHEEL_CANARY_MIN_VOTES": "8",
           "FLYWHEEL_ROLLOUT_INTERVAL_S": "0.5", "FLYWHEEL_CANARY_AB_SHARE": "1.0"}  # fmt: skip
    gateway = GatewayProcess.start(db, ["--vllm-url", swap_vllm], tmp_path, env=env)
    try:
        admin = {"Authorization": f"Bearer {gateway.create_key('admin')}"}
        voter = {"Authorization": f"Bearer {gateway.create_key('user')}"}
        path, sha = make_lora(tiny_model_dir, tmp_path / "lora-auto", seed=4)
        version_id = register(db, name="lora-auto", kind="lora", artifact_path=str(path), sha256=sha)
        wait_status(gateway, admin, version_id, "canary")
        for _ in range(10):
            comparison = httpx.post(
                f"{gateway.url}/v1/comparisons", headers=voter, timeout=60,
                json={"messages": [{"role": "user", "content": "Which is better?"}], "max_tokens": 6},
            ).json()  # fmt: skip
            vote_url = f"{gateway.url}/v1/comparisons/{comparison['id']}/vote"
            httpx.post(vote_url, headers=voter, json={"winner": "a"}).raise_for_status()
            revealed = httpx.get(f"{gateway.url}/v1/comparisons/{comparison['id']}", headers=voter).json()
            labels = {c["label"]: c["policy_version"] for c in revealed["candidates"]}
            canary_label = next(label for label, name in labels.items() if name == "lora-auto")
            # Votes are changeable: this voter prefers whatever the canary wrote.
            httpx.post(vote_url, headers=voter, json={"winner": canary_label}).raise_for_status()
        promoted = wait_status(gateway, admin, version_id, "champion", timeout_s=60)
        decision = promoted["events"][-1]
        assert decision["action"] == "promote" and decision["actor"] == "auto"
        assert decision["evidence"]["wins"] >= 8 and decision["evidence"]["low"] > 0.5
    finally:
        gateway.stop()
