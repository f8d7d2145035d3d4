"""`python -m policy classroom` on tiny random models, with the student behind the fake OpenAI-compatible
server: the RM heads (per tutor turn) and the classroom rewards are logged by name with the rollout's time split,
the policy loads with plain transformers, and a stopped run resumes from its checkpoint."""
from __future__ import annotations

import json

import pytest

from core.schema import write_jsonl
from tests.fake_openai_server import FakeOpenAI
from tests.test_classroom_rollout_masks_and_ends import items
from tests import test_policy_grpo_end_to_end as grpo_tests


tiny_rm = grpo_tests.tiny_rm  # fixture: an HPC-RM on the tiny random encoder


@pytest.fixture(scope="module")
def student_server():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def classroom_run(tiny_causal_lm, tiny_rm, student_server, tmp_path_factory):
    from core.config import load_config
    from policy.classroom.config import ClassroomConfig
    from policy.classroom.run import run_classroom

    folder = tmp_path_factory.mktemp("classroom-run")
    write_jsonl(folder / "rl.jsonl", items(4))
    cfg = load_config(ClassroomConfig, overrides={
        "policy": tiny_causal_lm, "reward_model": tiny_rm, "prompts": str(folder / "rl.jsonl"),
        "out": str(folder / "out"), "beta": 0.04, "loss_type": "grpo", "max_steps": 2, "prompts_per_step": 2,
        "num_generations": 2, "max_completion_length": 6, "save_steps": 1, "keep_checkpoints": True,
        "dialogue": {"max_turns": 2}, "transcripts_every": 1, "transcripts_per_write": 2,
        "student": {"backend": "openai", "solve_attempts": 2,
                    "openai": {"base_url": student_server.base_url, "model": "fake", "max_retries": 0}},
        "judges": {"backend": "local", "model": tiny_causal_lm},
        "extra_rewards": {"solve_rate": {}, "judges": {"penalty": 0.5, "mode": "hard"}, "clean_end": {},
                          "turn_truncated": {}, "think_format": {}},
    })
    return cfg, run_classroom(cfg)


def test_classroom_run_logs_each_reward_and_the_time_split(classroom_run, student_server):
    from transformers import AutoModelForCausalLM

    cfg, summary = classroom_run
    assert summary["steps"] == 2
    assert summary["reward_functions"] == ["Helpfulness", "Personalization", "Creativity", "solve_rate", "judges",
                                           "clean_end", "turn_truncated", "think_format"]
    assert summary["reward_weights"] == [0.4, 0.3, 0.3, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert summary["rm_forwards"] == 2  # one RM forward over all tutor turns per batch, shared by the heads
    logs = [json.loads(line) for line in open(f"{cfg.out}/train_log.jsonl")]
    steps = [log for log in logs if "rewards/solve_rate/mean" in log]
    assert len(steps) == 2
    for key in ("time/tutor_s", "time/student_s", "time/solve_s", "time/judges_s", "rewards/Helpfulness/mean",
                "judges/does_not_leak_answer/reject_rate", "classroom/tutor_turns", "kl"):
        assert all(key in log for log in steps), key
    # 2 prompts x 2 generations per step; each dialogue: replies between turns, then 2 final solutions
    assert student_server.calls_containing("Write your next message to the tutor") >= 2 * 4
    assert AutoModelForCausalLM.from_pretrained(summary["policy"]).config.num_hidden_layers == 2


def test_training_writes_whole_dialogues_with_rewards_and_verdicts(classroom_run):
    cfg, _ = classroom_run
    rows = [json.loads(line) for line in open(f"{cfg.out}/transcripts.jsonl")]
    assert [r["step"] for r in rows][:4] == [1, 1, 2, 2]  # 2 dialogues every step
    for row in rows:
        assert [t["role"] for t in row["turns"]][-1] == "tutor" and "tutor" in [t["role"] for t in row["turns"]]
        assert set(row["rewards"]) >= {"solve_rate", "judges", "Helpfulness"}
        assert set(row["verdicts"]) == {"does_not_leak_answer", "follows_pedagogical_rules"}
        rejected = any(v["decision"] == "REJECT" for v in row["verdicts"].values())
        assert row["rewards"]["judges"] == (-0.5 if rejected else 0.0)
        assert (row["solutions"] == []) == rejected  # hard mode: a rejected dialogue gets no final solutions


def test_stopped_classroom_run_resumes(classroom_run):
    from policy.classroom.run import run_classroom

    cfg, _ = classroom_run
    summary = run_classroom(cfg.model_copy(update={"max_steps": 3}))
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert summary["steps"] == 3


def test_classroom_eval_reports_intervals_and_transcripts(classroom_run, tmp_path):
    from core.config import load_config
    from core.schema import LabeledItem, read_jsonl
    from policy.classroom.eval import ClassroomEvalConfig, evaluate_classroom

    cfg, _ = classroom_run
    write_jsonl(tmp_path / "eval.jsonl", items(7)[4:])
    report = evaluate_classroom(load_config(ClassroomEvalConfig, overrides={
        "run": cfg.out, "prompts": str(tmp_path / "eval.jsonl"), "out": str(tmp_path / "eval"),
        "bootstrap_resamples": 200}))
    assert report["problems"] == 3
    for name in ("delta_solve", "solve_rate", "leak_rate_judge", "leak_rate_rule_numeric", "judge_rejected_any",
                 "rm_Helpfulness_per_turn", "tutor_turns", "tutor_tokens"):
        row = report["metrics"][name]
        for part in ("base", "tuned", "difference"):
            assert row[part]["low"] <= row[part]["mean"] <= row[part]["high"], (name, part)
    assert report["metrics"]["tutor_turns"]["base"]["mean"] == 2  # max_turns; the tiny tutor never ends itself
    markdown = (tmp_path / "eval" / "report.md").read_text()
    assert "| delta_solve |" in markdown and "## Leak rates by student persona" in markdown
    assert list(report["personas"]) == ["cooperative", "adversarial"] and report["tutor_temperature"] == 0.6
    # no eval judges configured: the training panel grades, and the report says so
    assert report["eval_judges"]["training_panel"] and "training judges" in report["judge_warning"]
    assert "**Warning:** the eval judges are the run's training judges" in markdown
    transcripts = (tmp_path / "eval" / "transcripts.md").read_text()
    assert transcripts.count("(base tutor, cooperative") == 3 and transcripts.count("(tuned tutor, adversarial") == 3
    rater_items = read_jsonl(tmp_path / "eval" / "transcripts.jsonl", LabeledItem)
    assert len(rater_items) == 3 * 2 * 2 * 2 and all(i.scores is None for i in rater_items)


def test_classroom_eval_uses_its_own_judges_and_the_adversarial_student(classroom_run, student_server, tmp_path,
                                                                      tiny_causal_lm):
    from core.config import load_config
    from policy.classroom.eval import ClassroomEvalConfig, evaluate_classroom

    cfg, _ = classroom_run
    rule = tmp_path / "eval_rule.txt"
    rule.write_text("EVAL-ONLY RULE. Did the tutor give the answer away?\n{{ transcript }}\n")
    write_jsonl(tmp_path / "eval.jsonl", items(6)[4:])
    before = student_server.calls_containing("get the answer out of the tutor")
    report = evaluate_classroom(load_config(ClassroomEvalConfig, overrides={
        "run": cfg.out, "prompts": str(tmp_path / "eval.jsonl"), "out": str(tmp_path / "eval"),
        "bootstrap_resamples": 200, "personas": ["adversarial"],
        "judges": {"backend": "local", "model": tiny_causal_lm, "rules": {"eval_rule": str(rule)}}}))
    metrics = report["personas"]["adversarial"]
    assert "reject_rate/eval_rule" in metrics and "reject_rate/does_not_leak_answer" not in metrics
    assert report["judge_warning"] is None and not report["eval_judges"]["training_panel"]
    # the adversarial persona's prompt reached the student: its replies of both tutors' dialogues
    assert student_server.calls_containing("get the answer out of the tutor") - before >= 2 * 2
