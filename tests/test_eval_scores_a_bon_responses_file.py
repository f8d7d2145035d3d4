"""`policy eval --tuned-responses FILE` (issue #30): a responses file, such as `policy bon`'s best-of-n picks, is
scored as the tuned side exactly like sampled responses: the base's own samples read back give a gain of exactly
zero; a bad file is one error line naming file, line and field before any model loads; the report says what needs
the tuned model was not measured."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import load_config
from core.schema import DataError, PromptItem, StudentProfile, write_jsonl

K = 2  # samples per prompt: the lining-up of several responses per prompt is exercised too


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_encoder):
    from core.reward_model import HPCRewardModel

    folder = tmp_path_factory.mktemp("eval-responses-file")
    profile = StudentProfile(grade="5th grade", interests=["football"])
    items = [PromptItem(id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="single_turn", profile=profile,
                        problem=f"Sam has {i + 7} apples and gives away 3. How many are left?",
                        reference_solution=f"{i + 7} - 3 = {i + 4}\n#### {i + 4}") for i in range(4)]
    write_jsonl(folder / "eval.jsonl", items)
    HPCRewardModel.from_backbone(tiny_encoder, "hpc").save_pretrained(folder / "rm")
    HPCRewardModel.from_backbone(tiny_encoder, "hpc").save_pretrained(folder / "other_rm")  # an independent scorer
    return folder


def eval_config(files, tiny_causal_lm, out: Path, **overrides):
    from policy.evaluation.evaluate import EvalConfig

    return load_config(EvalConfig, overrides={
        "run": str(out / "no-run"), "base": tiny_causal_lm, "reward_model": str(files / "rm"),
        "prompts": str(files / "eval.jsonl"), "out": str(out / "eval"), "max_new_tokens": 6, "samples_per_prompt": K,
        "gsm8k": None, "bootstrap_resamples": 200, **overrides})


@pytest.fixture(scope="module")
def base_samples_read_back(files, tiny_causal_lm, tmp_path_factory):
    """The report of an eval whose tuned side is the base's own samples (from an earlier eval), written back with
    the prompts in reverse order so only lining them up by prompt id gives the right pairs."""
    from policy.evaluation.evaluate import evaluate_policies

    out = tmp_path_factory.mktemp("runs")
    evaluate_policies(eval_config(files, tiny_causal_lm, out / "sampled", tuned=tiny_causal_lm))
    lines = [json.loads(line) for line in (out / "sampled" / "eval" / "responses.jsonl").read_text().splitlines()]
    base = [line for line in lines if line["policy"] == "base"]
    reordered = [line for start in reversed(range(0, len(base), K)) for line in base[start:start + K]]
    write_jsonl(out / "base_responses.jsonl", reordered)
    cfg = eval_config(files, tiny_causal_lm, out / "read", tuned_responses=str(out / "base_responses.jsonl"),
                      rms=[str(files / "other_rm")])
    return evaluate_policies(cfg), out / "read" / "eval"


def test_base_samples_read_back_give_exactly_zero_gain_under_every_scorer(base_samples_read_back):
    report, _ = base_samples_read_back
    assert report["base"]["mean"] == report["tuned"]["mean"]
    for dim, diff in report["difference"].items():
        assert diff["mean"] == 0.0, dim
        assert diff["low"] <= 0.0 <= diff["high"], dim
    assert report["win_rate"]["mean"] == 0.5  # every prompt a tie
    independent = report["independent"]["rm:other_rm"]["comparison"]
    differences = [c["difference"] for c in independent.values() if "difference" in c]
    assert differences and all(d["mean"] == 0.0 for d in differences)  # every scorer sees the same pairs


def test_report_says_kl_was_not_measured_for_a_responses_file(base_samples_read_back):
    report, out = base_samples_read_back
    assert report["kl_tuned_base"] == {"measured": False}
    saved = json.loads((out / "report.json").read_text())
    assert "KL: not measured for a responses file" in saved["not_measured"]["kl_tuned_base"]
    markdown = (out / "report.md").read_text()
    assert "KL: not measured for a responses file" in markdown and "KL(tuned || base)" not in markdown
    assert "Tuned side: the responses in" in markdown


def test_unknown_prompt_id_is_one_error_line_naming_file_line_and_field(files, tiny_causal_lm, tmp_path, capsys):
    from policy.evaluation.evaluate import main

    bad = tmp_path / "responses_n16.jsonl"
    write_jsonl(bad, [{"prompt_id": "p0", "policy": "bon", "response": "Try counting.", "tokens": 4, "sample": 3},
                      {"prompt_id": "nope", "policy": "bon", "response": "Hi.", "tokens": 3, "sample": 0}])
    with pytest.raises(SystemExit) as exit_info:
        main(["--run", str(tmp_path / "no-run"), "--base", tiny_causal_lm, "--prompts", str(files / "eval.jsonl"),
              "--reward-model", str(tmp_path / "not-loaded-before-the-check"), "--tuned-responses", str(bad)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{bad}:2: field prompt_id: 'nope' is not among the 4 eval prompts" in err


ROWS = [{"id": "p0"}, {"id": "p1"}]


def line(prompt_id: str, policy: str = "bon") -> dict:
    return {"prompt_id": prompt_id, "policy": policy, "response": f"answer to {prompt_id}", "tokens": 5}


@pytest.mark.parametrize("lines, k, message", [
    ([line("p0"), line("p0"), line("p1")], 1, ":2: field prompt_id: more than samples_per_prompt = 1 responses for "
                                              "prompt 'p0'"),
    ([line("p0")], 1, ": field prompt_id: prompt 'p1' has 0 responses; every eval prompt needs samples_per_prompt "
                      "= 1"),
    ([line("p0"), line("p1"), line("p1")], 2, ": field prompt_id: prompt 'p0' has 1 responses"),
    ([line("p0", "base"), line("p1", "tuned")], 1, ":2: field policy: 'tuned', but line 1 has 'base'"),
    ([{"prompt_id": "p0", "text": "no response field"}], 1, ":1: field response: Field required"),
], ids=["too-many", "prompt-without-response", "too-few", "two-policies", "no-response-field"])
def test_bad_responses_file_names_file_line_and_field(tmp_path, lines, k, message):
    from policy.evaluation.responses_file import read_responses

    path = tmp_path / "responses.jsonl"
    write_jsonl(path, lines)
    with pytest.raises(DataError) as err:
        read_responses(path, ROWS, k)
    assert f"{path}{message}" in str(err.value)


def test_responses_are_lined_up_prompt_major_whatever_the_file_order(tmp_path):
    from policy.evaluation.responses_file import read_responses

    path = tmp_path / "responses.jsonl"
    write_jsonl(path, [dict(line("p1"), response="p1 first"), line("p0"), dict(line("p1"), response="p1 second"),
                       dict(line("p0"), response="p0 second")])
    assert [r.response for r in read_responses(path, ROWS, 2)] == ["answer to p0", "p0 second", "p1 first",
                                                                  "p1 second"]


def test_tuned_and_tuned_responses_together_are_refused(files, tiny_causal_lm, tmp_path):
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="give --tuned or --tuned-responses, not both"):
        eval_config(files, tiny_causal_lm, tmp_path, tuned=tiny_causal_lm, tuned_responses=str(tmp_path / "r.jsonl"))


def test_a_bon_responses_file_is_read_as_written(tmp_path, tiny_causal_lm):
    """`policy bon`'s own writer: every line is accepted, the picks come back per prompt, and a response shorter than
    the cap ends on the EOS (it ended on its own) while one at the cap does not (cut)."""
    from types import SimpleNamespace

    from core.models import load_tokenizer
    from policy.evaluation.responses_file import responses_file_rollouts
    from policy.train.bon import selected_responses

    tokenizer = load_tokenizer(tiny_causal_lm)
    candidates = SimpleNamespace(prompt_ids=["p0", "p1"], texts=[["a", "Try 3."], ["Count the apples again.", "b"]],
                                 completion_ids=[[[1], [5, 6, tokenizer.eos_token_id]], [[7] * 6, [2]]])
    path = tmp_path / "responses_n2.jsonl"
    write_jsonl(path, selected_responses(candidates, [1, 0], "bon-n2"))
    rows = [{"id": "p0", "prompt": [{"role": "user", "content": "hi"}]},
            {"id": "p1", "prompt": [{"role": "user", "content": "hello"}]}]
    short, at_cap = responses_file_rollouts(path, rows, 1, tokenizer, max_new_tokens=6)
    assert (short.text, at_cap.text) == ("Try 3.", "Count the apples again.")
    assert short.completion_ids[-1] == tokenizer.eos_token_id and at_cap.completion_ids[-1] != tokenizer.eos_token_id
    assert at_cap.completion_ids == tokenizer("Count the apples again.", add_special_tokens=False)["input_ids"]
