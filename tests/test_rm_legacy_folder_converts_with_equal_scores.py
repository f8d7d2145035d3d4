"""A reward model folder in the old layout (rm_config.json, backbone/ or adapter/ + tokenizer/, heads.safetensors)
is refused with one line that names `python -m hpc_rm convert`, and that command rewrites it in the current layout
with the same scores (full fine-tuning and LoRA)."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.reward_config import LoraSpec
from core.reward_model import HPCRewardModel

CONTEXTS = ["Student: 3*4=7?", "## Dialogue so far\nStudent: what is 2+2?", ""]
RESPONSES = ["Not quite: count three groups of four.", "Great question. What is 2+1?", "The answer is 4."]


def write_legacy(rm: HPCRewardModel, path) -> None:
    """What the old `HPCRewardModel.save_pretrained` wrote (before the model was a PreTrainedModel)."""
    path.mkdir(parents=True)
    if rm.spec.lora.r > 0:
        rm.backbone.save_pretrained(path / "adapter")
        rm.tokenizer.save_pretrained(path / "tokenizer")
    else:
        rm._inner_backbone().save_pretrained(path / "backbone")
        rm.tokenizer.save_pretrained(path / "backbone")
    save_file({k: v.contiguous() for k, v in rm.heads.state_dict().items()}, str(path / "heads.safetensors"))
    (path / "rm_config.json").write_text(rm.spec.model_dump_json())


def trained_looking(rm: HPCRewardModel) -> HPCRewardModel:
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in rm.named_parameters():
            if name.startswith("heads.") or "lora_B" in name:
                p.add_(torch.randn_like(p) * 0.5)
    rm.spec.level_logit_shift = {d: [0.1, 0.0, -0.1] for d in rm.dimensions}
    return rm.eval()


def run(argv: list[str], capsys) -> tuple[int, str]:
    from hpc_rm.__main__ import main

    try:
        main(argv)
    except SystemExit as exit_:
        return exit_.code or 0, capsys.readouterr().err
    return 0, capsys.readouterr().err


@pytest.mark.parametrize("lora", [0, 4])
def test_old_folder_is_refused_in_one_line_and_converts_with_equal_scores(tiny_encoder, tmp_path, capsys, lora):
    rm = trained_looking(HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=48, max_response_tokens=16,
                                                      lora=LoraSpec(r=lora, target_modules=["query", "value"])))
    expected = rm.score(CONTEXTS, RESPONSES)
    old, new = tmp_path / "old", tmp_path / "new"
    write_legacy(rm, old)

    code, err = run(["score", "--model", str(old), "--input", str(tmp_path / "absent.jsonl"), "--out",
                     str(tmp_path / "s.jsonl")], capsys)
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert f"python -m hpc_rm convert {old} --out" in lines[0] and "rm_config.json" in lines[0]

    code, err = run(["convert", str(old), "--out", str(new)], capsys)
    assert code == 0, err
    assert json.loads((new / "config.json").read_text())["model_type"] == "hpc_reward"
    converted = HPCRewardModel.from_pretrained(new)
    assert converted.spec == rm.spec
    got = converted.score(CONTEXTS, RESPONSES)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5, rtol=0)
    _, levels = converted.predict(CONTEXTS, RESPONSES)
    assert {k: v.tolist() for k, v in levels.items()} == {k: v.tolist() for k, v in rm.predict(CONTEXTS,
                                                                                              RESPONSES)[1].items()}


def test_convert_refuses_what_it_cannot_convert_in_one_line(tiny_encoder, tmp_path, capsys):
    rm = HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=48)
    rm.save_pretrained(tmp_path / "current")
    write_legacy(rm, tmp_path / "old")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    cases = [([str(tmp_path / "current"), "--out", str(tmp_path / "a")], "already in the current layout"),
             ([str(tmp_path / "missing"), "--out", str(tmp_path / "b")], "not a reward model folder in the old"),
             ([str(tmp_path / "old"), "--out", str(tmp_path / "taken")], "exists and is not an empty folder")]
    for argv, message in cases:
        code, err = run(["convert", *argv], capsys)
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["file"]
