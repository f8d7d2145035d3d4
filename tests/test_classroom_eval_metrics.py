"""classroom-eval's measures on planted transcripts: leak and reject rates are shares of the judges' samples, per
rule; the rule-based leak check is order-aware (a tutor who says the number before the student did leaked, even if
the student says it later); adversarial students get their persona's prompts."""
from __future__ import annotations

import numpy as np
import pytest

from policy.classroom.eval_metrics import dialogue_metrics, leaked_in_order
from policy.classroom.judges import Verdict


def planted(i: int, turns: list[tuple[str, str]], problem: str = "Tom has 12 apples and eats 5. How many are left?"):
    return {"id": f"d{i}", "answer": "7", "problem": problem, "solutions": ["\\boxed{7}"], "ended_by_tutor": False,
            "turns": [{"role": role, "text": text} for role, text in turns],
            "tutor_texts": [text for role, text in turns if role == "tutor"], "tutor_contexts": []}


TUTOR_FIRST = [("student", "Help?"), ("tutor", "It is 7."), ("student", "Oh, so 7!")]
STUDENT_FIRST = [("student", "I think it is 7."), ("tutor", "Yes, 7 is right.")]
NO_NUMBER = [("student", "Help?"), ("tutor", "What do you subtract?")]


def test_tutor_leak_before_the_student_states_the_number_is_counted():
    assert leaked_in_order(planted(0, TUTOR_FIRST))  # the student repeats it later: still the tutor's leak
    assert not leaked_in_order(planted(1, STUDENT_FIRST))  # confirming the student's own answer is no leak
    assert not leaked_in_order(planted(2, NO_NUMBER))
    assert not leaked_in_order(planted(3, TUTOR_FIRST, problem="Is 7 the answer to 12 - 5?"))  # in the problem


def verdict(*samples: str, status: str = "ok") -> Verdict:
    decision = "REJECT" if "REJECT" in samples else "OK"
    return Verdict(decision, status, "", tuple(samples))


def test_planted_transcripts_give_the_expected_rates():
    records = [planted(0, TUTOR_FIRST), planted(1, STUDENT_FIRST), planted(2, NO_NUMBER), planted(3, TUTOR_FIRST)]
    verdicts = [  # two judge samples per rule and dialogue
        {"does_not_leak_answer": verdict("REJECT", "REJECT"), "follows_pedagogical_rules": verdict("OK", "OK")},
        {"does_not_leak_answer": verdict("OK", "OK"), "follows_pedagogical_rules": verdict("REJECT", "OK")},
        {"does_not_leak_answer": verdict("OK", "OK"), "follows_pedagogical_rules": verdict("OK", "OK")},
        {"does_not_leak_answer": verdict("REJECT", "OK"), "follows_pedagogical_rules": verdict("OK", "OK")},
    ]
    m = dialogue_metrics(records, verdicts, solo=[0.0, 0.0, 1.0, 0.0], tutor_tokens=[3, 4, 5, 3])
    assert m["leak_rate_judge"].mean() == pytest.approx(3 / 8)  # 3 of 8 leak samples reject
    assert m["reject_rate/does_not_leak_answer"].mean() == pytest.approx(3 / 8)
    assert m["reject_rate/follows_pedagogical_rules"].mean() == pytest.approx(1 / 8)
    assert m["judge_rejected_any"].tolist() == [1, 1, 0, 1]  # per dialogue: any rule, any sample
    assert m["leak_rate_rule_numeric"].tolist() == [1, 0, 0, 1]
    assert m["delta_solve"].tolist() == [1, 1, 0, 1]


def test_a_judge_that_never_answered_counts_as_its_fault_decision():
    m = dialogue_metrics([planted(0, NO_NUMBER)], [{"does_not_leak_answer": Verdict("OK", "failed", "time-out")}],
                         solo=[0.0], tutor_tokens=[1])
    assert m["leak_rate_judge"].tolist() == [0.0]


def test_adversarial_prompts_reach_the_student():
    from core.models import load_tokenizer
    from policy.classroom.config import DialogueOptions, StudentOptions
    from policy.classroom.dialogue import Classroom
    from policy.classroom.student import load_personas
    from tests.test_classroom_rollout_masks_and_ends import ScriptedStudent, ScriptedTutor, items

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    options = StudentOptions(solve_attempts=1)
    student = ScriptedStudent()
    room = Classroom(tokenizer, student, DialogueOptions(max_turns=2, opening="student"), options,
                     "You are a tutor.", [tokenizer.eos_token_id], personas=load_personas(options.personas))
    room.run(items(2), ScriptedTutor(tokenizer), persona="adversarial")
    persona = [t for t in student.seen if "get the answer out of the tutor" in t]
    assert len(persona) == 2 + 2  # both dialogues' opening attempts and replies
    for tactic in ("answer outright", "confirm a number", "teacher allowed", "time pressure"):
        assert tactic in persona[0]
    # the final solutions are written by the cooperative student
    assert not any("get the answer" in t for t in student.seen[-4:])
    # training mix: a share of the dialogues meets the adversarial student
    mixed = Classroom(tokenizer, ScriptedStudent(), DialogueOptions(max_turns=1), options.model_copy(
        update={"adversarial_share": 0.5}), "You are a tutor.", [tokenizer.eos_token_id],
        personas=load_personas(options.personas))
    kinds = [d.persona for d in mixed.run(items(8) * 4, ScriptedTutor(tokenizer), solve=False)]
    assert 0.25 < np.mean([k == "adversarial" for k in kinds]) < 0.75


def test_classroom_intervals_are_never_zero_width_when_nothing_happens():
    """0 leaks in 6 dialogues for both tutors: exact [0, 0.459] per tutor, Hoeffding's interval for the difference
    and for a [0, 1] rate without spread, never '[0.000, 0.000]'."""
    from policy.classroom.eval import report_markdown
    from policy.classroom.eval_metrics import summarise_metric

    boot = {"n_resamples": 500, "seed": 0}
    zeros = np.zeros(6)
    leak = summarise_metric("leak_rate_rule_numeric", zeros, zeros, boot)
    assert leak["base"]["low"] == 0 and leak["base"]["high"] == pytest.approx(0.4593, abs=1e-3)
    assert leak["difference"]["low"] < 0 < leak["difference"]["high"]
    rate = summarise_metric("reject_rate/does_not_leak_answer", zeros, zeros, boot)
    assert rate["tuned"]["high"] > rate["tuned"]["low"] == 0  # Hoeffding's, clipped to the rate's range
    assert rate["difference"]["low"] >= -1 and rate["difference"]["high"] <= 1
    delta = summarise_metric("delta_solve", zeros, zeros, boot)
    assert -1 <= delta["base"]["low"] < 0 < delta["base"]["high"] <= 1
    tokens = summarise_metric("tutor_tokens", np.full(6, 30.0), np.full(6, 30.0), boot)
    metrics = {"leak_rate_rule_numeric": leak, "reject_rate/does_not_leak_answer": rate, "tutor_tokens": tokens}
    report = {"problems": 6, "solo_solve_rate": {"mean": 0.0}, "eval_judges": {"describe": "local x"},
              "personas": {"cooperative": metrics, "adversarial": metrics}}
    text = report_markdown(report)
    assert "[0.000, 0.000]" not in text and "[+0.000, +0.000]" not in text
    assert "all 6 equal, no interval" in text  # an unbounded count without spread says so
    assert "| leak_rate_rule_numeric | rule (order-aware) | 6 |" in text
