"""Publishing is atomic: a complete artifact with a manifest, or nothing visible at all."""

import json

import pytest

from learner import artifacts
from store.artifact_hash import MANIFEST, directory_sha256, file_sha256


@pytest.fixture
def trained(tmp_path):
    src = tmp_path / "work" / "policy"
    src.mkdir(parents=True)
    (src / "adapter_config.json").write_text('{"r": 8}')
    (src / "adapter_model.safetensors").write_bytes(b"\x00weights" * 100)
    return src


def visible(directory):
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def test_publish_writes_manifest_and_returns_the_registry_hash(trained, tmp_path):
    dest = tmp_path / "artifacts" / "dpo-run1"
    published = artifacts.publish(trained, dest, algorithm="dpo", base_model="/models/base", seed=3,
                                  watermark={"from": None, "to": "2026-01-01T00:00:00+00:00"}, metrics={"kl": 0.1})
    assert published.path == dest
    assert published.sha256 == directory_sha256(dest)  # exactly what the gateway re-checks
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["sha256"] == published.sha256
    assert manifest["files"] == {"adapter_config.json": file_sha256(dest / "adapter_config.json"),
                                 "adapter_model.safetensors": file_sha256(dest / "adapter_model.safetensors")}
    assert manifest["algorithm"] == "dpo" and manifest["seed"] == 3 and manifest["metrics"] == {"kl": 0.1}
    assert [p.name for p in dest.parent.iterdir()] == ["dpo-run1"]  # no temp dir left behind


def test_existing_destination_is_never_overwritten(trained, tmp_path):
    dest = tmp_path / "artifacts" / "x"
    artifacts.publish(trained, dest)
    with pytest.raises(FileExistsError):
        artifacts.publish(trained, dest)


def test_kill_between_temp_write_and_rename_leaves_nothing_visible(trained, tmp_path, monkeypatch):
    def killed(tmp, dest):
        assert (tmp / MANIFEST).is_file()  # everything was written to the temp dir ...
        raise KeyboardInterrupt  # ... and the process dies before the rename

    monkeypatch.setattr(artifacts, "_rename", killed)
    out = tmp_path / "artifacts"
    with pytest.raises(KeyboardInterrupt):
        artifacts.publish(trained, out / "dpo-run1")
    assert visible(out) == []


def test_clean_stale_removes_what_a_sigkill_leaves_and_nothing_else(tmp_path):
    out = tmp_path / "artifacts"
    for name in (".tmp-dpo-run1.abc", ".work-run1", "kto-run0"):
        (out / name).mkdir(parents=True)
        (out / name / "f").write_text("x")
    removed = artifacts.clean_stale(out)
    assert sorted(p.name for p in removed) == [".tmp-dpo-run1.abc", ".work-run1"]
    assert [p.name for p in out.iterdir()] == ["kto-run0"]
    assert artifacts.clean_stale(tmp_path / "missing") == []
