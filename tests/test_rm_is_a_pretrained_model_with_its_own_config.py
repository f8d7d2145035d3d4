"""The reward model is a transformers PreTrainedModel with its own registered config: `config.hidden_size` is set
(DeepSpeed fills its "auto" buckets from it), the folder is config.json + model.safetensors + the tokenizer, and
AutoConfig / AutoModel load it like any transformers model."""
import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, PreTrainedModel

from core.errors import ModelNotFoundError
from core.reward_config import HPCRewardConfig, check_rm_folder, read_rm_spec
from core.reward_model import HPCRewardModel

CONTEXTS = ["Student: 3*4=7?", "## Dialogue so far\nStudent: what is 2+2?"]
RESPONSES = ["Not quite: count three groups of four.", "Great question. What is 2+1?"]


def test_config_carries_the_spec_and_the_backbone(tiny_encoder, tmp_path):
    rm = HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=48, max_response_tokens=16, head_hidden=8)
    assert isinstance(rm, PreTrainedModel) and isinstance(rm.config, HPCRewardConfig)
    assert rm.config.hidden_size == 32 and rm.config.backbone_config["model_type"] == "bert"
    assert rm.config.head_hidden == 8 and rm.config.max_response_tokens == 16
    assert rm.config.rubric["name"] == "hpc" and set(rm.config.weights) == set(rm.dimensions)
    with torch.no_grad():  # trained-looking heads, so a reload that re-initialised them would show
        for p in rm.heads.parameters():
            p.add_(torch.randn_like(p))
    rm.spec.level_logit_shift = {d: [0.0, 0.5, -0.5] for d in rm.dimensions}  # what training sets on the spec
    before = rm.score(CONTEXTS, RESPONSES)
    rm.save_pretrained(tmp_path / "rm")

    files = {p.name for p in (tmp_path / "rm").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= files
    assert not files & {"rm_config.json", "backbone", "adapter", "heads.safetensors"}
    saved = json.loads((tmp_path / "rm" / "config.json").read_text())
    assert saved["model_type"] == "hpc_reward" and saved["hidden_size"] == 32
    assert saved["level_logit_shift"] == rm.spec.level_logit_shift  # the spec's edits reach the saved config
    assert read_rm_spec(tmp_path / "rm").rubric.hash == rm.rubric.hash

    again = HPCRewardModel.from_pretrained(tmp_path / "rm")
    assert not again.training and again.spec == rm.spec
    after = again.score(CONTEXTS, RESPONSES)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], atol=1e-6, rtol=0)

    # The Auto classes know the model type: a generic loader gets the same model.
    assert isinstance(AutoConfig.from_pretrained(tmp_path / "rm"), HPCRewardConfig)
    auto = AutoModel.from_pretrained(tmp_path / "rm")
    assert isinstance(auto, HPCRewardModel)
    np.testing.assert_allclose(auto.score(CONTEXTS, RESPONSES)["Helpfulness"], before["Helpfulness"], atol=1e-6)


def test_a_folder_that_is_not_a_reward_model_is_one_error(tiny_encoder, tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        check_rm_folder(tmp_path)
    with pytest.raises(ModelNotFoundError, match="model_type 'bert'"):
        check_rm_folder(tiny_encoder)  # a plain transformers model is not a reward model
