"""A reward model loaded for scoring in bf16 is built and filled in bf16 on its device (never an fp32 copy of the
backbone first: for a 32B RM that copy alone is 131 GB on an 80 GB GPU), its heads stay fp32 with the trained values,
and it still trains when a wrapper (DeepSpeed's bf16 engine under ZeRO-2) casts every parameter to bf16."""
import pytest
import torch
from transformers import PreTrainedModel

from core.reward_client import load_scoring_rm
from core.reward_config import LoraSpec
from core.reward_model import HPCRewardModel
from core.rubric import load_rubric
from hpc_rm.data import make_collator, label_matrix, PairDataset
from hpc_rm.train import head_loss
from tests.test_rm_train_score_resume import synthetic_items


@pytest.fixture(params=[0, 4], ids=["full", "lora"])
def saved_rm(request, tiny_causal_lm, tmp_path):
    lora = LoraSpec(r=request.param, target_modules=["q_proj", "v_proj"]) if request.param else None
    rm = HPCRewardModel.from_backbone(tiny_causal_lm, "hpc", lora=lora, max_length=48)
    rm.save_pretrained(tmp_path / "rm")
    return rm, tmp_path / "rm"


def test_bf16_scoring_load_never_holds_an_fp32_backbone(saved_rm, monkeypatch):
    trained, path = saved_rm
    seen = []  # (model class, dtype) of the largest weight (the embedding) of every model transformers loads
    original = PreTrainedModel.from_pretrained.__func__

    def spy(cls, *args, **kwargs):  # what from_pretrained hands back, before any later cast
        model = original(cls, *args, **kwargs)
        seen.extend((cls.__name__, p.dtype) for p in model.parameters() if p.dim() == 2 and p.shape[0] > 1000)
        return model

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(spy))
    rm = load_scoring_rm(str(path), "cpu", "bfloat16")

    assert seen and {dtype for _, dtype in seen} == {torch.bfloat16}, seen
    base = [p.dtype for n, p in rm.backbone.named_parameters() if "lora_" not in n]
    assert set(base) == {torch.bfloat16}
    assert {p.dtype for p in rm.heads.parameters()} == {torch.float32}
    for key, value in trained.heads.state_dict().items():
        assert torch.equal(rm.heads.state_dict()[key], value), key  # exact trained values, not bf16-rounded
    contexts, responses = ["Student: is 2 + 2 = 5?"], ["What do you get if you count on from 2?"]
    fp32 = load_scoring_rm(str(path), "cpu", "float32").score(contexts, responses)
    for name, scores in rm.score(contexts, responses).items():
        assert abs(scores - fp32[name]).max() < 0.05


def test_rm_trains_when_every_parameter_is_cast_to_bf16(tiny_causal_lm):
    rubric = load_rubric("hpc")
    rm = HPCRewardModel.from_backbone(tiny_causal_lm, rubric, max_length=48).to(torch.bfloat16)  # as ZeRO-2's engine
    items = synthetic_items(4)
    dataset = PairDataset(rm.encode([i.context for i in items], [i.response for i in items]),
                          label_matrix(items, rubric))
    batch = make_collator(rm.tokenizer)([dataset[i] for i in range(4)])
    labels = batch.pop("labels")
    batch.pop("groups", None)
    outputs = rm.train()(**batch)
    weights = {d.name: torch.ones(len(d.levels)) for d in rubric.dimensions}
    loss = head_loss(rm, outputs, labels, weights)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.dtype == torch.bfloat16 for p in rm.heads.parameters())
