"""The classroom's rewards: solve rate (math-verify, number-parser fallback), soft and hard lambda give the
documented totals, RM heads averaged over tutor turns, the small terms; judge faults (malformed JSON, time-outs
from the fake server) end in the configured decision, never a crash."""
from __future__ import annotations

import numpy as np
import pytest

from core.config import ConfigError
from core.llm_client import ClientConfig
from policy.classroom.config import JudgeOptions
from policy.classroom.judges import JudgePanel, Verdict
from policy.classroom.rewards import ThinkParams, answer_is_right, think_score
from policy.train.rewards import RewardSetup, build_reward_functions, validate_extra_params
from tests.fake_openai_server import FakeOpenAI


def record(i: int, *, solutions=("\\boxed{4}", "5"), ended=False, truncated=False, tutor=("Hint?", "Next?")) -> dict:
    turns = [{"role": "student", "text": "Help me"}]
    for text in tutor:
        turns += [{"role": "tutor", "text": text, "raw": text, "truncated": truncated},
                  {"role": "student", "text": "ok"}]
    return {"id": f"d{i}", "opening": "tutor", "turns": turns[:-1], "solutions": list(solutions),
            "ended_by_tutor": ended, "answer": "4", "problem": "Sam has 7 apples and gives away 3. How many?",
            "profile": "Grade level: 5th grade", "tutor_contexts": [f"ctx {k}" for k in range(len(tutor))],
            "tutor_texts": list(tutor)}


@pytest.mark.parametrize("solution, reference, right", [
    ("so the answer is \\boxed{1,200}", "1200", True),
    ("She has 17 apples left.", "17", True),
    ("7 - 3 = 4, so \\boxed{4}", "4", True),
    ("I think it is 5", "4", False),
    ("no idea", "4", False),
    ("The answer is \\boxed{0.5}", "1/2", True),
])
def test_solve_rate_checks_answers(solution, reference, right):
    assert answer_is_right(solution, reference) is right


class StubPanel:
    """Rejects the dialogues whose id is listed."""

    def __init__(self, rejected_ids):
        self.rejected_ids, self.templates, self.calls = set(rejected_ids), {"does_not_leak_answer": None}, 0

    def judge(self, records):
        self.calls += 1
        return [{"does_not_leak_answer": Verdict("REJECT" if r["id"] in self.rejected_ids else "OK", "ok")}
                for r in records]


class StubRM:
    dimensions = ["Helpfulness"]
    weights = {"Helpfulness": 1.0}

    def score(self, contexts, responses, batch_size=32):
        return {"Helpfulness": np.array([len(r) % 3 for r in responses], dtype=float)}


def total_rewards(mode: str, panel, records):
    from policy.classroom.rewards import TurnHeadReward

    extras = validate_extra_params({"solve_rate": {"weight": 2.0}, "judges": {"penalty": 0.5, "mode": mode},
                                    "clean_end": {"bonus": 0.1}, "turn_truncated": {"penalty": 0.25}})
    funcs, weights, cache = build_reward_functions(StubRM(), {"Helpfulness": 0.5}, extras,
                                                   RewardSetup(8, services={"judges": panel}),
                                                   head_reward=TurnHeadReward)
    columns = {"dialogue": records, "log_metric": lambda name, value: None}
    per_func = np.array([f(prompts=[None] * len(records), completions=[None] * len(records),
                           completion_ids=[[]] * len(records), **columns) for f in funcs])
    return [f.__name__ for f in funcs], weights, per_func, weights @ per_func


def test_soft_and_hard_lambda_give_the_documented_rewards():
    records = [record(0, ended=True), record(1, truncated=True, tutor=("ab", "abcd"))]
    names, weights, per_func, soft = total_rewards("soft", StubPanel({"d0"}), records)
    assert names == ["Helpfulness", "solve_rate", "judges", "clean_end", "turn_truncated"]
    assert weights == [0.5, 2.0, 1.0, 1.0, 1.0]
    # RM head: mean over the tutor turns ('Hint?' 5 % 3 = 2, 'Next?' 2; 'ab' 2, 'abcd' 1)
    assert per_func[0].tolist() == [2.0, 1.5]
    assert per_func[1].tolist() == [0.5, 0.5]  # one of two solutions right
    # soft: the rejected dialogue loses lambda, everything else stays
    assert soft.tolist() == pytest.approx([0.5 * 2 + 2 * 0.5 - 0.5 + 0.1, 0.5 * 1.5 + 2 * 0.5 - 0.25])
    assert records[0]["verdicts"]["does_not_leak_answer"]["decision"] == "REJECT"  # kept for the transcripts
    panel = StubPanel({"d0"})
    records = [record(0, ended=True), record(1, truncated=True, tutor=("ab", "abcd"))]  # not judged yet
    _, _, _, hard = total_rewards("hard", panel, records)
    # hard: the rejected dialogue's whole reward is -lambda; the other one is unchanged
    assert hard.tolist() == pytest.approx([-0.5, soft[1]])
    assert panel.calls == 1  # the verdicts are cached: vetoing did not ask the judges again


def test_think_format_and_small_terms():
    params = ThinkParams(unbalanced=0.5, use_bonus=0.5)
    assert think_score(["<think>plan</think>Hi", "Hi"], params) == pytest.approx(0.25)
    assert think_score(["<think>plan without end", "</think>Hi<think>"], params) == pytest.approx(-1.0)
    assert think_score([], params) == 0.0


def panel_for(server: FakeOpenAI, **options) -> JudgePanel:
    client = ClientConfig(base_url=server.base_url, model="fake", timeout_s=0.5, max_retries=0, backoff_base_s=0)
    return JudgePanel(JudgeOptions(backend="openai", openai=client, tokenizer="smollm2-135m-instruct", **options))


def test_valid_judge_answers_decide_per_dialogue():
    with FakeOpenAI(reject_containing="The answer is 4") as server:
        panel = panel_for(server)
        leaky = record(1, tutor=("The answer is 4.",))
        verdicts = panel.judge([record(0), leaky])
    assert [v.decision for v in verdicts[0].values()] == ["OK", "OK"]
    assert [v.decision for v in verdicts[1].values()] == ["REJECT", "REJECT"]
    assert all(v.status == "ok" for per in verdicts for v in per.values())
    assert len(server.requests) == 4  # 2 dialogues x 2 rules, in flight together


@pytest.mark.parametrize("on_failure", ["ok", "reject"])
def test_malformed_answers_end_in_the_configured_decision(on_failure):
    with FakeOpenAI(always_malformed="Conversation") as server:
        panel = panel_for(server, on_failure=on_failure, max_reasks=1, rules={
            "does_not_leak_answer": JudgeOptions().rules["does_not_leak_answer"]})
        [verdicts] = panel.judge([record(0)])
    verdict = verdicts["does_not_leak_answer"]
    assert verdict.status == "failed" and verdict.decision == on_failure.upper()
    assert "malformed answer" in verdict.detail
    assert len(server.requests) == 2 and panel.stats["reasks"] == 1  # asked, then asked again once


def test_time_outs_end_in_the_configured_decision_and_the_reward_survives():
    with FakeOpenAI(faults={0: "slow", 1: "slow"}, slow_s=2.0) as server:
        panel = panel_for(server, on_failure="reject", rules={
            "does_not_leak_answer": JudgeOptions().rules["does_not_leak_answer"]})
        _, _, per_func, hard = total_rewards("hard", panel, [record(0), record(1)])
    assert panel.stats["failed"] == 2
    assert per_func[2].tolist() == [-0.5, -0.5] and hard.tolist() == [-0.5, -0.5]


def test_local_judge_always_decides(tiny_causal_lm):
    panel = JudgePanel(JudgeOptions(backend="local", model=tiny_causal_lm, batch_size=2))
    verdicts = panel.judge([record(0), record(1), record(2)])
    assert all(v.status == "ok" and v.detail.startswith("P(REJECT)=") for per in verdicts for v in per.values())


def test_template_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "rule.txt"
    bad.write_text("first line\n{{ problem \n")
    with pytest.raises(ConfigError, match=r"rule.txt:2: field judges.rules.mine"):
        JudgePanel(JudgeOptions(rules={"mine": bad}))
    with pytest.raises(ConfigError, match="field judges.rules.gone: cannot read"):
        JudgePanel(JudgeOptions(rules={"gone": tmp_path / "missing.txt"}))
