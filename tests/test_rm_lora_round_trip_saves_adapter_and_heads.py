"""A LoRA reward model trained through the Trainer saves only the adapter and the heads (not the backbone), and
`from_pretrained` rebuilds base + adapter + heads with the same scores."""
import numpy as np
from safetensors import safe_open

from core.reward_config import LoraSpec
from core.reward_model import HPCRewardModel
from core.rubric import load_rubric
from hpc_rm.train import TrainConfig, train_and_save
from tests.test_rm_train_score_resume import synthetic_items

CONTEXTS = ["Student: 3*4=7?", "## Dialogue so far\nStudent: what is 2+2?"]
RESPONSES = ["Not quite: count three groups of four.", "excellent clear hint: what is 2+1?"]


def test_lora_model_round_trips_through_trainer_save(tiny_encoder, tmp_path):
    cfg = TrainConfig(backbone=tiny_encoder, rubric="hpc", out=tmp_path / "rm", epochs=1, batch_size=8,
                      max_length=48, progress=False, checkpoints=False, learning_rate=5e-3,
                      lora=LoraSpec(r=4, alpha=8, target_modules=["query", "value"]))
    rm = train_and_save(cfg, synthetic_items(16), load_rubric("hpc"))
    lora_b = [p for n, p in rm.named_parameters() if "lora_B" in n]
    assert lora_b and max(float(p.detach().abs().max()) for p in lora_b) > 0  # trained: LoRA's B starts at zero
    before = rm.score(CONTEXTS, RESPONSES)

    with safe_open(str(tmp_path / "rm" / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("lora_A" in k for k in keys) and any(k.startswith("heads.") for k in keys)
    assert all(k.startswith("heads.") or "lora_" in k for k in keys), keys  # no base backbone weights
    n_backbone = sum(1 for n, _ in rm.named_parameters() if n.startswith("backbone.") and "lora_" not in n)
    assert n_backbone > 0

    again = HPCRewardModel.from_pretrained(tmp_path / "rm")
    assert again.spec.lora.r == 4
    after = again.score(CONTEXTS, RESPONSES)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], atol=1e-5, rtol=0)
    # Without the adapter the scores differ: the adapter really is applied on reload.
    with again.backbone.disable_adapter():
        plain = again.score(CONTEXTS, RESPONSES)
    assert max(np.abs(plain[n] - after[n]).max() for n in after) > 1e-6
