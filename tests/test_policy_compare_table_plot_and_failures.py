"""`policy compare` on tiny random models: every method runs in its own process at the stated budget, the table
has a row for every method and a column for every scorer, the over-optimisation plot is written, and a method that
fails stops the run with its rerun command."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from baselines_support import save_tiny_rm, write_prompts

REPO = Path(__file__).resolve().parent.parent


def method_templates(folder: Path, policy: str) -> dict[str, str]:
    common = {"policy": policy, "max_completion_length": 6, "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3}
    templates = {
        "bon": {"policy": policy, "max_completion_length": 6, "n": 4, "ns": [1, 2, 4]},
        "rft": {**common, "n": 2, "top_k": 1},
        "dpo": {**common, "n": 2},
        "sft": common,
        "grpo": {"policy": policy, "beta": 0.04, "loss_type": "grpo", "max_completion_length": 6,
                 "prompts_per_step": 2, "num_generations": 2, "learning_rate": 1e-3, "max_prompt_tokens": 200},
    }
    paths = {}
    for method, values in templates.items():
        paths[method] = str(folder / f"{method}.yaml")
        Path(paths[method]).write_text(yaml.safe_dump(values))
    return paths


def make_run(tmp: Path, encoder: str, teacher_turns: bool = True) -> Path:
    run = tmp / "run"
    data = write_prompts(run / "data" if (run / "data").mkdir(parents=True) is None else run / "data", count=10)
    from core.schema import PromptItem, read_jsonl, write_jsonl

    rl = read_jsonl(data / "rl.jsonl", PromptItem)
    if not teacher_turns:
        rl = [item.model_copy(update={"reference_responses": []}) for item in rl]
    write_jsonl(data / "rl.jsonl", rl)
    write_jsonl(data / "rm.jsonl", rl[:2])
    eval_items = read_jsonl(data / "eval.jsonl", PromptItem)
    write_jsonl(data / "eval.jsonl", eval_items + [i.model_copy(update={"id": i.id + "b"}) for i in rl[:2]])
    save_tiny_rm(encoder, run / "rm")
    return run


@pytest.fixture(scope="module")
def compared(tiny_causal_lm, tiny_encoder, tmp_path_factory):
    from core.config import load_config
    from policy.experiments.compare import CompareConfig, run_compare

    tmp = tmp_path_factory.mktemp("compare")
    run = make_run(tmp, tiny_encoder)
    other_rm = save_tiny_rm(tiny_encoder, tmp / "independent_rm")
    cfg = load_config(CompareConfig, overrides={
        "run": str(run), "configs": method_templates(tmp, tiny_causal_lm), "budget": 8, "grpo_checkpoints": 2,
        "eval": {"max_prompts": None, "rms": [other_rm], "gsm8k": str(REPO / "data/gsm8k/test.jsonl"),
                 "gsm8k_items": 2, "batch_size": 8, "bootstrap_resamples": 200, "tutorbench": {"settings": []}}})
    return cfg, run_compare(cfg)


def test_every_method_has_a_row_every_scorer_a_column_and_the_plot_exists(compared):
    cfg, report = compared
    out = Path(cfg.run) / "compare"
    finals = [e for e in report["entries"] if e["final"]]
    assert [e["method"] for e in finals] == ["bon", "rft", "dpo", "sft", "grpo"]
    assert [s["name"] for s in report["scorers"]] == ["rm:training", "rm:independent_rm"]
    for entry in report["entries"]:
        assert set(entry["scores"]) == {"rm:training", "rm:independent_rm"}
        assert entry["scores"]["rm:training"]["weighted"]["n"] == report["prompts"] == 4
    table = (out / "compare.md").read_text()
    for label in ("| base |", "| bon n=4 |", "| rft |", "| dpo |", "| sft |", "| grpo |", "| grpo step 1 |"):
        assert label in table
    assert (out / "overoptimisation.png").stat().st_size > 1000
    assert json.loads((out / "compare.json").read_text())["methods"] == report["methods"]


def test_the_budget_is_equal_and_stated(compared):
    cfg, report = compared
    assert report["samples"] == {"bon": 4 * 4, "rft": 8, "dpo": 8, "sft": 0, "grpo": 8}
    grpo_run = json.loads((Path(cfg.run) / "compare" / "grpo" / "run.json").read_text())
    assert grpo_run["steps"] == 2  # 8 completions / (2 prompts x 2 generations)
    assert "may draw 8 completions" in (Path(cfg.run) / "compare" / "compare.md").read_text()


def test_bon_kl_is_analytic_and_grpo_curve_has_its_checkpoints(compared):
    import math

    _, report = compared
    bon = {e["n"]: e for e in report["entries"] if e["method"] == "bon"}
    assert bon[4]["kl"] == pytest.approx(math.log(4) - 3 / 4) and bon[1]["kl"] == 0
    grpo = [e for e in report["entries"] if e["method"] == "grpo"]
    assert [e["step"] for e in grpo] == [1, 2] and all(e["kl_kind"] == "estimated" for e in grpo)


def test_a_failing_method_stops_the_run_with_its_rerun_command(tiny_causal_lm, tiny_encoder, tmp_path, capsys):
    from policy.experiments.compare import main

    run = make_run(tmp_path, tiny_encoder, teacher_turns=False)  # SFT finds no teacher turn: its process fails
    config = tmp_path / "compare.yaml"
    config.write_text(yaml.safe_dump({"run": str(run), "methods": ["sft", "grpo"], "budget": 8,
                                      "configs": method_templates(tmp_path, tiny_causal_lm)}))
    with pytest.raises(SystemExit) as stopped:
        main(["--config", str(config)])
    assert stopped.value.code == 1
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")][-1]
    assert "method sft failed" in error and "rerun it alone with:" in error
    assert f"-m policy sft --config {run / 'compare' / 'run_configs' / 'sft.yaml'}" in error
    assert not (run / "compare" / "grpo").exists()  # the run stopped at the failing method


def test_compare_stars_are_holm_corrected_over_the_table():
    from policy.experiments.compare_report import holm_stars

    def entry(label, p):
        return {"label": label, "scores": {"rm:training": {"weighted": {"difference": {"p_value": p}}}}}

    # 0.02 alone is significant; with three cells Holm multiplies the smallest p by 3 (0.06): no star anywhere.
    stars = holm_stars([entry("a", 0.02), entry("b", 0.5), entry("c", 0.9)], ["rm:training"])
    assert stars == {("a", "rm:training"): False, ("b", "rm:training"): False, ("c", "rm:training"): False}
    stars = holm_stars([entry("a", 0.001), entry("b", 0.5)], ["rm:training"])
    assert stars[("a", "rm:training")] and not stars[("b", "rm:training")]
