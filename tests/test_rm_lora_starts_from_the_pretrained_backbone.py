"""A LoRA reward model starts exactly where its pretrained backbone is: peft initialises lora_B to zero, and the
model's own initialisation (post_init) must not reach it, or every LoRA RM trains from a randomly shifted backbone."""
import torch

from core.reward_config import LoraSpec
from core.reward_model import HPCRewardModel


def test_lora_b_is_zero_and_first_scores_equal_the_plain_backbone(tiny_encoder):
    plain = HPCRewardModel.from_backbone(tiny_encoder, "hpc")
    lora = HPCRewardModel.from_backbone(tiny_encoder, "hpc", lora=LoraSpec(r=8, target_modules=["query", "value"]))
    lora.heads.load_state_dict(plain.heads.state_dict())  # the same heads: only the backbones may differ

    lora_b = {n: p for n, p in lora.named_parameters() if "lora_B" in n}
    assert lora_b and all(float(p.abs().max()) == 0.0 for p in lora_b.values()), \
        [n for n, p in lora_b.items() if float(p.abs().max()) > 0]

    contexts = ["Student: is 3 + 4 = 8?", "Student: I think 12 / 4 = 4"]
    responses = ["Count on from 3 by four steps.", "Check: what is 4 times 4?"]
    plain_pooled = plain.eval().embed_pairs(contexts, responses)
    lora_pooled = lora.eval().embed_pairs(contexts, responses)
    torch.testing.assert_close(lora_pooled, plain_pooled, rtol=0, atol=1e-6)
    for name, scores in plain.score(contexts, responses).items():
        assert abs(lora.score(contexts, responses)[name] - scores).max() < 1e-6
