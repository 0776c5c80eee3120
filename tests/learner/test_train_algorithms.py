"""Real, short TRL runs on the tiny model: reward model, then DPO / KTO / PPO behind one interface."""

import json
import math

import pytest

from learner.settings import LearnerSettings
from learner.train import ALGORITHMS, PolicySource, RewardModelTrainer, TrainData, TrainJob

pytestmark = pytest.mark.slow


def user(text):
    return [{"role": "user", "content": text}]


def assistant(text):
    return [{"role": "assistant", "content": text}]


def synthetic_data(n=8) -> TrainData:
    return TrainData(
        preference=[{"prompt": user(f"question {i}"), "chosen": assistant("A short answer."),
                     "rejected": assistant("The weather is rainy and windy and cold today.")} for i in range(n)],
        unpaired=[{"prompt": user(f"question {i}"), "completion": assistant("Thanks for asking." if i % 2 else "one two"),
                   "label": bool(i % 2)} for i in range(n)],
        prompts=[{"prompt": user(f"hello {i}")} for i in range(n)],
    )


def tiny_settings(tmp_path, **overrides) -> LearnerSettings:
    values = dict(batch_size=2, max_steps=2, rm_max_steps=2, max_length=64, max_new_tokens=8, ppo_episodes=4,
                  artifacts_dir=tmp_path / "artifacts", use_cpu=True, bf16=False)
    return LearnerSettings(_env_file=None, **{**values, **overrides})


@pytest.fixture(scope="module")
def reward_model(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm")
    job = TrainJob(PolicySource("base", tiny_model_dir), synthetic_data(), out, tiny_settings(out))
    return RewardModelTrainer().train(job)


def test_reward_model_reports_heldout_accuracy_and_saves_a_scalar_classifier(reward_model):
    from transformers import AutoConfig

    assert 0.0 <= reward_model.metrics["rm_heldout_accuracy"] <= 1.0
    assert reward_model.metrics["rm_heldout_pairs"] >= 1
    assert reward_model.losses and all(math.isfinite(x) for x in reward_model.losses)
    assert AutoConfig.from_pretrained(reward_model.output_dir).num_labels == 1


def assert_servable_adapter(result):
    files = {p.name for p in result.output_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert not any(p.is_dir() for p in result.output_dir.iterdir()), "only the trained adapter, no 'ref' copy"
    config = json.loads((result.output_dir / "adapter_config.json").read_text())
    assert config["r"] <= 8  # vLLM --max-lora-rank 8
    assert set(config["target_modules"]) <= {"q_proj", "k_proj", "v_proj", "o_proj"}


@pytest.mark.parametrize("algorithm", ["dpo", "kto", "ppo"])
def test_algorithm_trains_a_lora_adapter_on_the_champion(algorithm, tiny_model_dir, reward_model, tmp_path):
    from learner.train.loading import load_policy

    job = TrainJob(PolicySource("base", tiny_model_dir), synthetic_data(), tmp_path / algorithm,
                   tiny_settings(tmp_path), reward_model_dir=reward_model.output_dir)
    result = ALGORITHMS[algorithm]().train(job)
    assert result.kind == "lora"
    assert result.losses and result.losses_finite
    assert_servable_adapter(result)
    load_policy(PolicySource("lora", result.output_dir, tiny_model_dir))  # loads back on its base


def test_training_continues_a_lora_champion_and_full_weights_are_optional(tiny_model_dir, tmp_path):
    data = synthetic_data(4)
    first = ALGORITHMS["kto"]().train(TrainJob(PolicySource("base", tiny_model_dir), data, tmp_path / "a",
                                               tiny_settings(tmp_path)))
    champion = PolicySource("lora", first.output_dir, tiny_model_dir)
    second = ALGORITHMS["dpo"]().train(TrainJob(champion, data, tmp_path / "b", tiny_settings(tmp_path)))
    assert second.kind == "lora"
    assert_servable_adapter(second)  # still one adapter on the original base: vLLM can serve it

    full = ALGORITHMS["kto"]().train(TrainJob(champion, data, tmp_path / "c",
                                              tiny_settings(tmp_path, full_weights=True)))
    assert full.kind == "full"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in full.output_dir.iterdir()}


def test_registry_is_one_line_per_algorithm():
    assert set(ALGORITHMS) == {"kto", "dpo", "ppo"}
    assert all(cls.name == key for key, cls in ALGORITHMS.items())
