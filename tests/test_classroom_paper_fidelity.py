"""PedagogicalRL's settings as options: the judge reads the whole dialogue (capped in tokens, with a warning), boxed
grading as the paper's rule, hard mode samples no final solutions for rejected dialogues, the tutor can open from
the system prompt alone."""
from __future__ import annotations

import pytest

from core.llm_client import ClientConfig
from policy.classroom.config import DialogueOptions, JudgeOptions, StudentOptions
from policy.classroom.dialogue import Classroom
from policy.classroom.judges import JudgePanel, Verdict
from policy.classroom.rewards import boxed_is_right, last_boxed, solve_rate
from tests.fake_openai_server import FakeOpenAI
from tests.test_classroom_rollout_masks_and_ends import ScriptedStudent, ScriptedTutor, items


def long_record(filler_turns: int) -> dict:
    turns = [{"role": "student", "text": "Can you help me?"},
             {"role": "tutor", "text": "Sure. The answer is 4217.", "raw": "", "truncated": False}]
    for k in range(filler_turns):
        turns += [{"role": "student", "text": f"Why is step {k} like that? I still do not quite follow it."},
                  {"role": "tutor", "text": "Let us look at the quantities again, one at a time, slowly. " * 3,
                   "raw": "", "truncated": False}]
    return {"id": "long", "turns": turns, "problem": "A shop sells 4217 pens...", "answer": "4217", "profile": ""}


def test_judge_sees_an_early_leak_in_a_long_dialogue(capsys):
    record = long_record(60)
    from policy.classroom.student import transcript_text
    assert len(transcript_text(record["turns"])) > 6000  # the old character cap kept only the end
    with FakeOpenAI(reject_containing="The answer is 4217") as server:
        client = ClientConfig(base_url=server.base_url, model="fake", timeout_s=5, max_retries=0, backoff_base_s=0)
        panel = JudgePanel(JudgeOptions(backend="openai", openai=client, tokenizer="smollm2-135m-instruct"))
        [verdicts] = panel.judge([record])
    assert verdicts["does_not_leak_answer"].rejects
    assert panel.stats["cut"] == 0 and "warning" not in capsys.readouterr().err
    # a cap shorter than the dialogue keeps its first and last halves, says so, and still shows the early leak
    small = JudgePanel(JudgeOptions(max_transcript_tokens=200, tokenizer="smollm2-135m-instruct"))
    prompt = small.prompt("does_not_leak_answer", record)
    assert "The answer is 4217" in prompt and "tokens of the dialogue cut" in prompt
    assert small.stats["cut"] == 1 and "more than judges.max_transcript_tokens 200" in capsys.readouterr().err


def test_paper_judge_defaults_sample_at_0_6_and_hide_the_answer():
    options = JudgeOptions()
    assert options.temperature == 0.6
    panel = JudgePanel(options)
    record = long_record(0) | {"answer": "9999"}
    assert all("9999" not in panel.prompt(rule, record) for rule in panel.templates)


@pytest.mark.parametrize("solution, reference, right", [
    ("7 - 3 = 4, so \\boxed{4}", "4", True),  # right
    ("so \\boxed{5}", "4", False),  # wrong
    ("The answer is 4.", "4", False),  # no box: wrong under the paper's rule
    ("first \\boxed{3}, no wait: \\boxed{4}", "4", True),  # the last box counts
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", True),  # nested braces
    ("\\boxed{\\frac{1}{2}", "\\frac{1}{2}", False),  # never closes
    ("\\boxed{ 1200 }", "1200", True),
    ("\\boxed{1,200}", "1200", False),  # exact text, unlike math-verify
])
def test_boxed_grading_follows_the_papers_rule(solution, reference, right):
    assert boxed_is_right(solution, reference) is right


def test_last_boxed_and_the_records_grader():
    assert last_boxed("a \\boxed{x^{2}} b") == "x^{2}"
    assert last_boxed("nothing") is None
    record = {"solutions": ["The answer is 4.", "\\boxed{4}"], "answer": "4"}
    assert solve_rate(record | {"grader": "math_verify"}) == 1.0
    assert solve_rate(record | {"grader": "boxed"}) == 0.5


class RejectingPanel:
    """Rejects the dialogues about the listed problems; records what it judged."""

    def __init__(self, problems):
        self.problems, self.templates, self.judged = set(problems), {"does_not_leak_answer": None}, []

    def judge(self, records):
        self.judged += [r["id"] for r in records]
        return [{"does_not_leak_answer": Verdict("REJECT" if r["id"] in self.problems else "OK", "ok", "", ("x",))}
                for r in records]


def test_hard_mode_samples_no_solutions_for_rejected_dialogues(tokenizer):
    student, panel = ScriptedStudent(), RejectingPanel({"p1"})
    room = Classroom(tokenizer, student, DialogueOptions(max_turns=2, opening="tutor"), StudentOptions(solve_attempts=3),
                     "You are a tutor.", [tokenizer.eos_token_id], judge_first=panel)
    dialogues = room.run(items(3), ScriptedTutor(tokenizer))
    assert sorted(panel.judged) == ["p0", "p1", "p2"]
    solved = {d.item.id: d.solutions for d in dialogues}
    assert solved["p1"] == [] and len(solved["p0"]) == len(solved["p2"]) == 3
    assert student.calls[-1] == 2 * 3  # one batched solve call, for the two accepted dialogues only
    assert dialogues[1].record()["verdicts"]["does_not_leak_answer"]["decision"] == "REJECT"


def test_hard_mode_reward_reads_the_rollouts_verdicts(tokenizer):
    from policy.classroom.rewards import PedagogicalJudges
    from policy.train.rewards import RewardSetup, validate_extra_params

    panel = RejectingPanel({"p1"})
    room = Classroom(tokenizer, ScriptedStudent(), DialogueOptions(max_turns=1, opening="tutor"),
                     StudentOptions(solve_attempts=1), "You are a tutor.", [tokenizer.eos_token_id], judge_first=panel)
    records = [d.record() for d in room.run(items(2), ScriptedTutor(tokenizer))]
    params = validate_extra_params({"judges": {"penalty": 1.0, "mode": "hard"}})["judges"]
    reward = PedagogicalJudges(params, RewardSetup(8, services={"judges": panel}))
    assert reward(None, None, None, dialogue=records) == [0.0, -1.0]
    assert len(panel.judged) == 2  # judged once, in the rollout


def test_tutor_opens_from_the_system_prompt(tokenizer):
    student = ScriptedStudent()
    room = Classroom(tokenizer, student, DialogueOptions(max_turns=2, opening="tutor", tutor_opening="system_prompt"),
                     StudentOptions(solve_attempts=1), "You are a tutor.", [tokenizer.eos_token_id])
    [d] = room.run(items(1), ScriptedTutor(tokenizer))
    assert [t["role"] for t in d.turns] == ["tutor", "student", "tutor"]
    opening = tokenizer.decode(d.prompt_ids)
    assert "<|im_start|>user" not in opening and opening.rstrip().endswith("<|im_start|>assistant")
    messages = room.tutor_chat(d.item, None) + [
        {"role": "assistant" if t["role"] == "tutor" else "user", "content": t["text"] if t["role"] == "student"
         else t["raw"]} for t in d.turns]
    assert tokenizer.decode(d.prompt_ids + d.completion_ids) + "\n" == tokenizer.apply_chat_template(
        messages, tokenize=False)


@pytest.fixture(scope="module")
def tokenizer():
    from core.models import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")
