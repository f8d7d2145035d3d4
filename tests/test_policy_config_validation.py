"""GRPO configs must state beta and loss_type; extras, weights and the shipped YAML files are validated."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, load_config
from policy.train.config import GRPORunConfig

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "policy"


def test_beta_and_loss_type_are_required():
    with pytest.raises(ConfigError) as err:
        load_config(GRPORunConfig, overrides={"loss_type": "grpo"})
    assert "field beta" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(GRPORunConfig, overrides={"beta": 0.04})
    assert "field loss_type" in str(err.value)
    with pytest.raises(ConfigError, match="field beta"):
        load_config(GRPORunConfig, overrides={"beta": -0.1, "loss_type": "grpo"})


def test_yaml_missing_beta_names_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("loss_type: grpo\nlearning_rate: 1.0e-5\n")
    with pytest.raises(ConfigError) as err:
        load_config(GRPORunConfig, path)
    assert str(path) in str(err.value) and "field beta" in str(err.value)


def test_extra_rewards_are_checked():
    base = {"beta": 0.04, "loss_type": "grpo"}
    with pytest.raises(ConfigError, match="unknown extra reward 'leak'"):
        load_config(GRPORunConfig, overrides={**base, "extra_rewards": {"leak": {}}})
    with pytest.raises(ConfigError, match="mode"):
        load_config(GRPORunConfig, overrides={**base, "extra_rewards": {"answer_leak": {"mode": "medium"}}})
    with pytest.raises(ConfigError, match="weights"):
        load_config(GRPORunConfig, overrides={**base, "weights": {"Helpfulness": -1.0}})


def test_weights_must_match_reward_model_dimensions(tiny_encoder):
    from core.reward_model import HPCRewardModel
    from policy.train.grpo import reward_weights_for
    from policy.train.rewards import RewardSetup, build_reward_functions, validate_extra_params

    rm = HPCRewardModel.from_backbone(tiny_encoder, "hpc")
    cfg = load_config(GRPORunConfig, overrides={"beta": 0.04, "loss_type": "grpo",
                                                 "weights": {"Helpfulness": 1.0, "Creativity": 1.0}})
    with pytest.raises(ConfigError, match="Personalization"):
        reward_weights_for(cfg, rm)
    cfg = cfg.model_copy(update={"weights": {"Helpfulness": 0.5, "Personalization": 0.2, "Creativity": 0.3},
                                 "extra_rewards": {"answer_leak": {}, "length_penalty": {}}})
    funcs, weights, _ = build_reward_functions(rm, reward_weights_for(cfg, rm),
                                               validate_extra_params(cfg.extra_rewards), RewardSetup(64))
    assert len(weights) == len(funcs) == 5
    assert weights == [0.5, 0.2, 0.3, 1.0, 1.0]


@pytest.mark.parametrize("name", ["tiny", "7b", "paper"])
def test_shipped_configs_validate(name):
    cfg = load_config(GRPORunConfig, CONFIGS / f"{name}.yaml")
    assert cfg.beta > 0 and cfg.loss_type


def test_shipped_eval_config_validates():
    from policy.evaluation.evaluate import EvalConfig

    cfg = load_config(EvalConfig, CONFIGS / "eval_tiny.yaml")
    assert cfg.samples_per_prompt >= 1 and cfg.max_prompt_tokens


def test_report_to_reaches_the_trainer_arguments():
    from core.config import load_config
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import trl_args

    base = {"beta": 0.04, "loss_type": "grpo", "out": "/tmp/unused"}
    assert trl_args(load_config(GRPORunConfig, overrides=base), [1.0]).report_to in ("none", [], ["none"])
    args = trl_args(load_config(GRPORunConfig, overrides={**base, "report_to": ["tensorboard"]}), [1.0])
    assert args.report_to == ["tensorboard"]


def test_an_rm_that_reads_fewer_tokens_than_the_policy_writes_is_warned_about():
    from types import SimpleNamespace

    from policy.train.grpo import rm_reads_less_warning

    rm = SimpleNamespace(spec=SimpleNamespace(max_response_tokens=128))
    assert rm_reads_less_warning(rm, 128) is None
    message = rm_reads_less_warning(rm, 512)
    assert "first 128 response tokens" in message and "may write 512" in message
