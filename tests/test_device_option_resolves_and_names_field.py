"""The `device` / `dtype` options of local generation, the local judge, the student, policy eval, classroom eval
and RM scoring (`hpc_rm score --device`):
spellings are checked when the config is read (a bad one names its field), `auto` resolves to this process's
local-rank GPU when CUDA is available and to the CPU otherwise, `auto` dtype is bf16 on a GPU and float32 on CPU
(today's CPU defaults), and `load_causal_lm` puts the weights where the option says."""
from __future__ import annotations

import pytest
import torch

from core.config import ConfigError, load_config
from core.models import check_device, load_causal_lm, pick_device, pick_dtype


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("CPU", "cpu"), ("cuda", "cuda"),
                                             ("cuda:3", "cuda:3"), (" spread ", "spread")])
def test_device_spellings(value, expected):
    assert check_device(value) == expected


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "cuda0", "mps", ""])
def test_bad_device_spelling_is_refused(value):
    with pytest.raises(ValueError, match="expected auto, cpu, cuda, cuda:N or spread"):
        check_device(value)


def _configs():
    from annotation.generate import GenerateConfig
    from core.judges.local_judge import LocalJudgeConfig
    from policy.classroom.config import JudgeOptions, StudentOptions
    from policy.classroom.eval import ClassroomEvalConfig
    from hpc_rm.score import ScoreConfig
    from hpc_rm.evaluate import EvalConfig as RMEvalConfig
    from policy.evaluation.evaluate import EvalConfig

    return {"generate": GenerateConfig, "judge": LocalJudgeConfig, "student": StudentOptions, "eval": EvalConfig,
            "classroom-eval": ClassroomEvalConfig, "rm-score": ScoreConfig, "classroom-judge": JudgeOptions,
            "rm-eval": RMEvalConfig}


@pytest.mark.parametrize("name", ["generate", "judge", "student", "eval", "classroom-eval", "rm-score",
                                  "classroom-judge", "rm-eval"])
def test_every_local_model_config_has_a_device_field_defaulting_to_auto(name):
    cls = _configs()[name]
    field = cls.model_fields["device"]
    assert field.default == "auto" and "cuda:N" in field.description
    with pytest.raises(ConfigError, match=r"field device: Value error, device 'gpu'"):
        load_config(cls, overrides={"device": "gpu"})
    assert load_config(cls, overrides={"device": "cuda:1"}).device == "cuda:1"


def test_a_bad_device_flag_is_one_error_line_naming_the_flag(tmp_path, capsys):
    from annotation.generate import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--prompts", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "o.jsonl"), "--device", "gpu0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "flag --device" in err and "'gpu0'" in err


def test_a_judge_spec_with_a_bad_device_names_the_field():
    from core.judges import load_judge_config

    assert load_judge_config("local?device=cuda:0").device == "cuda:0"
    with pytest.raises(ConfigError, match="field device"):
        load_judge_config("local?device=tpu")


def test_cpu_defaults_are_unchanged():
    """What each stage loaded before the option existed: generation and eval float32, judge and student bf16."""
    if torch.cuda.is_available():
        pytest.skip("checks the CPU defaults")
    configs = {name: cls() if name != "judge" else cls(name="local") for name, cls in _configs().items()
               if name not in ("classroom-eval", "rm-score")}
    resolved = {name: pick_dtype(cfg.dtype, pick_device(cfg.device)) for name, cfg in configs.items()}
    assert resolved == {"generate": "float32", "judge": "bfloat16", "student": "bfloat16", "eval": "float32",
                        "classroom-judge": "bfloat16", "rm-eval": "float32"}
    assert {name: pick_device(cfg.device) for name, cfg in configs.items()} == dict.fromkeys(configs, "cpu")


def _fake_cuda(monkeypatch, count: int, current: int = 0):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)


def test_auto_is_the_local_rank_gpu_when_cuda_is_available(monkeypatch):
    _fake_cuda(monkeypatch, count=4, current=0)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert pick_device("auto") == "cuda:0"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert pick_device("auto") == "cuda:3"
    assert pick_device("cuda") == "cuda:0" and pick_device("cuda:2") == "cuda:2" and pick_device("cpu") == "cpu"
    assert pick_dtype("auto", "cuda:3") == "bfloat16" and pick_dtype("auto", "spread") == "bfloat16"
    assert pick_dtype("float32", "cuda:3") == "float32"
    with pytest.raises(ConfigError, match="field student.device: 'cuda:4', but this machine has 4 CUDA device"):
        pick_device("cuda:4", field="student.device")


def test_resolving_a_device_opens_no_cuda_context(monkeypatch):
    """The sweep's parent resolves the eval device before its runs train on the GPU: that must not open a CUDA
    context there (torch.cuda.current_device() does; is_available and device_count do not)."""
    def opens_a_context():
        raise AssertionError("torch.cuda.current_device() opened a CUDA context")

    _fake_cuda(monkeypatch, count=2)
    monkeypatch.setattr(torch.cuda, "current_device", opens_a_context)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert pick_device("auto") == "cuda:0" and pick_device("cuda") == "cuda:0" and pick_device("cuda:1") == "cuda:1"


def test_asking_for_cuda_without_it_is_a_config_error_naming_the_field(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == "cpu"
    for device in ("cuda", "cuda:0", "spread"):
        with pytest.raises(ConfigError, match=r"field device: .* needs CUDA.*use --device cpu or auto"):
            pick_device(device)


def test_load_causal_lm_loads_onto_the_chosen_device(tiny_causal_lm, monkeypatch):
    from transformers import AutoModelForCausalLM

    model = load_causal_lm(tiny_causal_lm, dtype="auto", device="cpu")
    assert model.device.type == "cpu" and model.dtype == torch.float32
    before = load_causal_lm(tiny_causal_lm)  # the call every stage made before the option existed
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), before.state_dict().values()))
    assert load_causal_lm(tiny_causal_lm, dtype="bfloat16", device="cpu").dtype == torch.bfloat16

    calls = []
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda path, **kw: calls.append(kw))
    _fake_cuda(monkeypatch, count=2, current=0)
    monkeypatch.setenv("LOCAL_RANK", "1")
    load_causal_lm(tiny_causal_lm, dtype="auto", device="auto")
    load_causal_lm(tiny_causal_lm, dtype="float32", device="cuda:0")
    load_causal_lm(tiny_causal_lm, dtype="auto", device="spread")
    load_causal_lm(tiny_causal_lm, dtype="auto", device="cpu")
    assert [(kw.get("device_map"), kw["dtype"]) for kw in calls] == [
        ("cuda:1", torch.bfloat16), ("cuda:0", torch.float32), ("auto", torch.bfloat16), (None, torch.float32)]


def test_each_stage_loads_its_model_with_its_own_device_option(tiny_causal_lm, tmp_path, monkeypatch):
    """Generation, the local judge, the student and eval hand their device and dtype options to load_causal_lm
    (recorded, then loaded on the CPU: this machine has no cuda:1)."""
    import core.judges.local_judge as local_judge
    import core.models
    import policy.evaluation.evaluate as evaluate
    from annotation.generate import GenerateConfig, run_generate
    from core.judges.local_judge import LocalJudge, LocalJudgeConfig
    from policy.classroom.config import JudgeOptions, StudentOptions
    from policy.classroom.student import build_student
    from tests.test_generate_local_styles_and_resume import write_prompts

    seen = []
    real = core.models.load_causal_lm

    def recording(name, dtype="float32", device=None, **kwargs):
        seen.append((dtype, device))
        return real(name, dtype=dtype, device="cpu", **kwargs)

    for module in (core.models, local_judge, evaluate):
        monkeypatch.setattr(module, "load_causal_lm", recording)
    write_prompts(tmp_path / "prompts.jsonl")
    run_generate(GenerateConfig(prompts=tmp_path / "prompts.jsonl", out=tmp_path / "out.jsonl",
                                generators=[f"local:{tiny_causal_lm}"], styles=["socratic_hint"], max_new_tokens=2,
                                device="cuda:1"))
    judge = LocalJudge(LocalJudgeConfig(model=tiny_causal_lm, device="cuda:1", dtype="float32"))
    assert judge.device.type == "cpu"
    build_student(StudentOptions(model=tiny_causal_lm, device="cuda:1"))
    evaluate.load_policy(tiny_causal_lm, evaluate.EvalConfig(device="cuda:1"))
    assert seen == [("auto", "cuda:1"), ("float32", "cuda:1"), ("bfloat16", "cuda:1"), ("auto", "cuda:1")]
