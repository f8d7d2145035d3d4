"""`python -m pipeline plan`: every shipped GPU pipeline config (7b, paper) fits its hardware by the plan; the old
paper recipe (vLLM on 2 GPUs, a 32B RM copy on every training GPU, 10 GPUs on an 8-GPU node) and a 72B full
fine-tune on one GPU are reported as not fitting; the formulas agree with hand computations and with parameter
counts of real (tiny, local) models."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.config import load_config
from pipeline.model_sizes import KNOWN_MODELS, model_shape
from pipeline.memory_formulas import Zero, activations, model_states
from pipeline.plan import memory_plan
from pipeline.stages import PipelineConfig, default_stages

REPO = Path(__file__).resolve().parent.parent
GB = 1e9


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # stage configs are named relative to the repository


def plan_of(config: Path | str, stages=None) -> dict:
    cfg = load_config(PipelineConfig, config)
    return memory_plan(cfg, list(stages or default_stages(cfg)))


def stage(plan: dict, name: str) -> dict:
    return next(s for s in plan["stages"] if s["stage"] == name)


def role(stage_plan: dict, prefix: str) -> dict:
    return next(r for r in stage_plan["roles"] if r["role"].startswith(prefix))


def items(role_plan: dict) -> dict:
    return {i["name"]: i["gb"] for i in role_plan["items"]}


@pytest.mark.parametrize("name", ["7b", "paper"])
def test_every_shipped_gpu_config_fits(name):
    plan = plan_of(REPO / "configs" / f"{name}.yaml")
    bad = [(s["stage"], [(r["role"], r["total_gb"], [c for c in r["checks"] if not c["ok"]]) for r in s["roles"]])
           for s in plan["stages"] if not s["fits"]]
    assert plan["fits"] and not bad, bad
    for gpu_stage in ("rm", "grpo", "eval", "sweep"):
        assert stage(plan, gpu_stage)["roles"], f"{name}: {gpu_stage} has no GPU estimate"


def test_7b_grpo_counts_colocated_vllm_and_the_rm_copy_on_its_one_gpu():
    grpo = stage(plan_of(REPO / "configs" / "7b.yaml", ["grpo"]), "grpo")
    train = role(grpo, "training process")
    assert grpo["processes"] == 1 and train["gpus"] == 1
    held = items(train)
    assert held["vLLM share (colocate)"] == pytest.approx(0.35 * 80)
    assert held["RM copy"] == pytest.approx(2 * (KNOWN_MODELS["Qwen/Qwen2.5-7B"].params
                                                 + KNOWN_MODELS["Qwen/Qwen2.5-7B"].lora_params(16)) / GB, rel=1e-3)
    assert "reference model (beta > 0)" not in held  # LoRA: the reference is the base with adapters off
    assert 60 < train["total_gb"] <= 80


def test_paper_grpo_trains_on_8_gpus_and_serves_vllm_and_the_rm_on_5_more():
    grpo = stage(plan_of(REPO / "configs" / "paper.yaml", ["grpo"]), "grpo")
    train, vllm, rm = role(grpo, "training process"), role(grpo, "vLLM server"), role(grpo, "RM server")
    assert (train["gpus"], vllm["gpus"], rm["gpus"]) == (8, 4, 1)
    assert grpo["gpus_needed"] == 13 and grpo["gpus_available"] == 16
    held = items(train)
    assert "RM copy" not in held  # the RM is served by URL
    p72 = KNOWN_MODELS["Qwen/Qwen2.5-72B-Instruct"].params
    assert held["weights"] == pytest.approx(2 * p72 / 8 / GB, rel=1e-3)  # ZeRO-3 share
    assert held["reference model (beta > 0)"] == pytest.approx(2 * p72 / 8 / GB, rel=1e-3)
    assert held["gradients"] == 0 and held["optimizer states"] == 0  # offloaded to CPU
    assert grpo["cpu_gb_per_node"] == pytest.approx(16 * p72 * 1.5 / GB, rel=1e-3)
    assert grpo["cpu_gb_per_node"] <= grpo["cpu_capacity_gb"] == 2000
    assert all(c["ok"] for c in vllm["checks"])


def test_the_old_paper_recipe_does_not_fit(tmp_path):
    policy = yaml.safe_load((REPO / "configs" / "policy" / "paper.yaml").read_text())
    policy["reward_model"] = "runs/paper/rm"  # a 32B copy on every training GPU
    policy["rm_batch_size"] = 64
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    pipeline = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    pipeline["hardware"] = {"gpu_memory_gb": 80, "gpus_per_node": 8, "nodes": 1}
    pipeline["stages"]["grpo"] = {
        "config": str(tmp_path / "policy.yaml"),
        "launcher": {"kind": "accelerate", "config_file": "configs/policy/accelerate_8gpu.yaml", "processes": 8},
        "servers": [{"kind": "vllm", "devices": "0,1", "tensor_parallel_size": 2}],
    }
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(pipeline))
    grpo = stage(plan_of(tmp_path / "old.yaml", ["grpo"]), "grpo")
    assert not grpo["fits"]
    assert grpo["gpus_needed"] == 10 > grpo["gpus_available"] == 8
    train, vllm = role(grpo, "training process"), role(grpo, "vLLM server")
    assert not train["fits"] and train["total_gb"] > 80 and "RM copy" in items(train)
    assert not vllm["fits"]  # 72.7 GB of weights per GPU leave no KV cache in vLLM's 72 GB share
    assert not any(c["ok"] for c in vllm["checks"])


def test_a_72b_full_fine_tune_on_one_gpu_is_reported_by_the_cli(tmp_path):
    (tmp_path / "grpo.yaml").write_text(yaml.safe_dump({
        "policy": "Qwen/Qwen2.5-72B-Instruct", "beta": 0.04, "loss_type": "grpo", "bf16": True,
        "policy_dtype": "bfloat16", "reward_model": "http://127.0.0.1:8700"}))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({
        "name": "one-gpu", "hardware": {"gpu_memory_gb": 80, "gpus_per_node": 1},
        "stages": {"grpo": {"config": str(tmp_path / "grpo.yaml")}}}))
    out = subprocess.run([sys.executable, "-m", "pipeline", "plan", "--config", str(tmp_path / "p.yaml"), "--only",
                          "grpo"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "== grpo: python, 1 process(es)" in out.stdout and "DOES NOT FIT" in out.stdout
    js = subprocess.run([sys.executable, "-m", "pipeline", "plan", "--config", str(tmp_path / "p.yaml"), "--only",
                         "grpo", "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    held = items(role(stage(json.loads(js.stdout), "grpo"), "training process"))
    p72 = KNOWN_MODELS["Qwen/Qwen2.5-72B-Instruct"].params
    assert held["weights"] == pytest.approx(2 * p72 / GB, rel=1e-3)
    assert held["optimizer states"] == pytest.approx(12 * p72 / GB, rel=1e-3)  # ZeRO paper: 2 + 2 + 12 bytes


def test_grpo_in_one_python_process_over_two_gpus_is_refused_by_the_plan(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({
        "hardware": {"gpus_per_node": 2},
        "stages": {"grpo": {"config": "configs/policy/7b.yaml", "launcher": {"devices": "0,1"}}}}))
    grpo = stage(plan_of(tmp_path / "p.yaml", ["grpo"]), "grpo")
    assert not grpo["fits"] and "DataParallel" in grpo["problems"][0]


def test_published_shapes_give_the_published_parameter_counts():
    # Hand computation from each config.json (embeddings + untied head + per layer q/k/v with biases, o, 3 MLP
    # matrices, 2 norms, final norm): the model cards say 7.61B, 32.5B (32.8B with embeddings), 72.7B.
    assert KNOWN_MODELS["Qwen/Qwen2.5-7B-Instruct"].params == 7_615_616_512
    assert KNOWN_MODELS["Qwen/Qwen2.5-32B"].params == 32_763_876_352
    assert KNOWN_MODELS["Qwen/Qwen2.5-72B-Instruct"].params == 72_706_203_648
    # vLLM KV cache per token: 2 x 80 layers x 8 kv heads x 128 x 2 bytes; with tensor parallel 4, 2 heads per GPU
    assert KNOWN_MODELS["Qwen/Qwen2.5-72B-Instruct"].kv_bytes_per_token() == 327_680
    assert KNOWN_MODELS["Qwen/Qwen2.5-72B-Instruct"].kv_bytes_per_token(2, 4) == 81_920


def test_model_states_match_deepspeeds_estimators():
    shape = KNOWN_MODELS["Qwen/Qwen2.5-7B"]
    P, LL = shape.params, 152064 * 3584  # the largest layer: the embedding (= the LM head)

    def per_gpu(zero, world):
        states, cpu = model_states(shape, weight_bytes=2, lora_r=0, zero=zero, world=world, nodes=1)
        return sum(i.bytes for i in states), cpu

    # estimate_zero3_model_states_mem_needs: 4 x largest layer + 18P/N; with optimizer offload + 2P/N, CPU 16P x 1.5
    assert per_gpu(Zero(3), 8)[0] == pytest.approx(4 * LL + 18 * P / 8)
    assert per_gpu(Zero(3, offload_optimizer=True), 8) == pytest.approx((4 * LL + 2 * P / 8, 16 * P * 1.5))
    # estimate_zero2_model_states_mem_needs: 4P + 16P/N; with offload 2P on the GPU
    assert per_gpu(Zero(2), 4)[0] == pytest.approx(4 * P + 16 * P / 4)
    assert per_gpu(Zero(2, offload_optimizer=True), 4)[0] == pytest.approx(2 * P)
    # no ZeRO: the ZeRO paper's 2 + 2 + 12 bytes per parameter
    assert per_gpu(Zero(), 1)[0] == pytest.approx(16 * P)


def test_activations_match_a_hand_computation():
    from pipeline.model_sizes import ModelShape

    shape = ModelShape(layers=2, hidden=64, intermediate=128, heads=4, kv_heads=4, vocab=100)
    # per token and layer 16h + 8i = 2048 bytes; 2 sequences x 16 tokens; checkpointing keeps 2h per token and layer
    # plus one layer recomputed
    assert activations(shape, 2, 16) == (2 * 32 * 2048, 2 * 32 * 2 * 64 + 32 * 2048)


def test_shapes_read_from_local_models_count_their_real_parameters(tmp_path, tiny_causal_lm, tiny_encoder):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                        num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False))
    qwen.save_pretrained(tmp_path / "qwen")
    llama, bert = AutoModelForCausalLM.from_pretrained(tiny_causal_lm), AutoModel.from_pretrained(tiny_encoder)
    for path, model in ((tmp_path / "qwen", qwen), (tiny_causal_lm, llama), (tiny_encoder, bert)):
        shape = model_shape(str(path))
        assert shape.source.startswith("config.json")
        assert shape.params == sum(p.numel() for p in model.parameters()), path
    lora = get_peft_model(qwen, LoraConfig(r=4, target_modules="all-linear"))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert model_shape(str(tmp_path / "qwen")).lora_params(4) == trainable


def test_the_tables_registry_entries_agree_with_the_local_models():
    from pipeline.model_sizes import _from_config, _local_folder

    checked = 0
    for name in ("smollm2-135m-instruct", "minilm-l6", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"):
        folder = _local_folder(name)
        if folder is None:
            continue  # not installed here (`make models`)
        from transformers import AutoConfig

        local = _from_config(AutoConfig.from_pretrained(folder), "")
        table = KNOWN_MODELS[name]
        assert (table.params, table.layers, table.kv_heads, table.max_positions) == \
            (local.params, local.layers, local.kv_heads, local.max_positions), name
        checked += 1
    assert checked >= 2  # `make setup` installs SmolLM2 and MiniLM


def test_an_unknown_hub_model_is_one_config_error(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"stages": {"rm": {"args": {"backbone": "org/not-a-model"}}}}))
    out = subprocess.run([sys.executable, "-m", "pipeline", "plan", "--config", str(tmp_path / "p.yaml"), "--only",
                          "rm"], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2 and out.stderr.strip().startswith("error:") and "org/not-a-model" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_plan_runs_the_plan_for_the_config():
    out = subprocess.run(["make", "-s", "--no-print-directory", "-n", "plan", "CONFIG=configs/paper.yaml"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "-m pipeline plan --config configs/paper.yaml" in out.stdout


def test_lora_dropout_inputs_and_masks_count_in_the_activations():
    """peft keeps each adapted linear's dropped-out input (bf16) and its mask (1 B) for the backward pass: 18h + 3i
    per layer and token for all-linear targets on a decoder, nothing with dropout 0; the 7B RM at 8 x 1,024 tokens
    without checkpointing then needs ~95 GB (it was planned at 66.8), so the 7b config checkpoints."""
    from pipeline.memory_formulas import lora_dropout_bytes_per_token

    shape = model_shape("Qwen/Qwen2.5-7B")
    h, i = shape.hidden, shape.intermediate
    assert lora_dropout_bytes_per_token(shape, 16, 0.05, "all-linear") == 18 * h + 3 * i
    assert lora_dropout_bytes_per_token(shape, 16, 0.05, ["q_proj", "v_proj"]) == 6 * h
    assert lora_dropout_bytes_per_token(shape, 16, 0.0, "all-linear") == 0
    assert lora_dropout_bytes_per_token(shape, 0, 0.05, "all-linear") == 0
    plain, _ = activations(shape, 8, 1024)
    with_lora, _ = activations(shape, 8, 1024, 18 * h + 3 * i)
    assert with_lora - plain == pytest.approx(shape.layers * 8 * 1024 * (18 * h + 3 * i))
    assert (with_lora - plain) / GB == pytest.approx(27.8, abs=0.1)

    cfg = load_config(PipelineConfig, "configs/7b.yaml")
    cfg.stages["rm"].args.pop("gradient_checkpointing")
    unchecked = role(stage(memory_plan(cfg, ["rm"]), "rm"), "training")
    assert unchecked["total_gb"] > 80 and not unchecked["fits"]
    checked = role(stage(plan_of("configs/7b.yaml", ["rm"]), "rm"), "training")
    assert checked["fits"] and checked["total_gb"] < 30
