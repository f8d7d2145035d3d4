"""The classroom rollout: token ids built turn by turn match the chat template, student turns and their role
headers carry env_mask 0 and get no gradient through TRL's loss, one completion per prompt, dialogues end at
max_turns or at the tutor's end marker, and each turn makes one batched tutor call and one batched student call."""
from __future__ import annotations

import pytest
import torch

from core.schema import PromptItem, StudentProfile, write_jsonl
from policy.classroom.dialogue import Classroom, opening_of
from policy.classroom.config import END_MARKER, DialogueOptions, StudentOptions

PROFILE = StudentProfile(grade="5th grade", interests=["football"], misconception="adds instead of subtracting")


def items(n: int) -> list[PromptItem]:
    return [PromptItem(id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="single_turn", profile=PROFILE,
                       problem=f"Problem {i}: Sam has {i + 7} apples and gives away 3. How many are left?",
                       reference_solution=f"{i + 7} - 3 = {i + 4}\n#### {i + 4}") for i in range(n)]


class ScriptedStudent:
    """Answers every chat with a fixed text; records the size of each batched call."""

    def __init__(self):
        self.calls: list[int] = []
        self.seen: list[str] = []

    def complete(self, chats, max_new_tokens):
        self.calls.append(len(chats))
        self.seen += [m["content"] for chat in chats for m in chat]
        return [f"student says {k} \\boxed{{4}}" for k in range(len(chats))]


class ScriptedTutor:
    """Tutor turns of fixed text; the dialogue about problem 0 says the end marker in its 2nd turn; with
    `truncate`, turns end without eos (cut at the token limit)."""

    def __init__(self, tokenizer, truncate: bool = False, plan: str = ""):
        self.tokenizer, self.truncate, self.plan, self.calls = tokenizer, truncate, plan, []

    def __call__(self, prompt_ids):
        self.calls.append(len(prompt_ids))
        out = []
        for ids in prompt_ids:
            text = self.tokenizer.decode(ids)
            turn = text.count("<|im_start|>assistant")
            say = self.plan + f"Hint {turn}: what is left?" + (f" {END_MARKER}" if "Problem 0" in text and turn == 2
                                                                else "")
            new = self.tokenizer(say, add_special_tokens=False)["input_ids"]
            out.append(new if self.truncate else new + [self.tokenizer.eos_token_id])
        return out, None


@pytest.fixture(scope="module")
def tokenizer():
    from core.models import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")


def classroom(tokenizer, opening="both", max_turns=3, student=None):
    return Classroom(tokenizer, student or ScriptedStudent(), DialogueOptions(max_turns=max_turns, opening=opening),
                     StudentOptions(solve_attempts=3), "You are a tutor.", [tokenizer.eos_token_id])


def spans(mask: list[int]) -> list[tuple[int, int, int]]:
    """(value, start, end) runs of equal mask values."""
    out, start = [], 0
    for k in range(1, len(mask) + 1):
        if k == len(mask) or mask[k] != mask[start]:
            out.append((mask[start], start, k))
            start = k
    return out


def test_ids_match_the_chat_template_and_only_tutor_tokens_are_trained(tokenizer):
    room = classroom(tokenizer, opening="student")
    [d] = room.run(items(2)[1:], ScriptedTutor(tokenizer))
    assert [t["role"] for t in d.turns] == ["student", "tutor", "student", "tutor", "student", "tutor"]
    assert d.turns[0]["text"].startswith("student says")  # the student opened with its own attempt
    # Built turn by turn, the ids are what the template renders for the whole conversation (its final "\n" after
    # the last <|im_end|> aside: the completion ends at the tutor's eos).
    messages = room.tutor_chat(d.item, d.turns[0]["text"]) + [
        {"role": "assistant" if t["role"] == "tutor" else "user", "content": t["text"] if t["role"] == "student"
         else t["raw"]} for t in d.turns[1:]]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer.decode(d.prompt_ids + d.completion_ids) + "\n" == rendered
    assert len(d.env_mask) == len(d.completion_ids)
    runs = spans(d.env_mask)
    assert [v for v, _, _ in runs] == [1, 0, 1, 0, 1]
    tutor_texts = [t["raw"] for t in d.turns if t["role"] == "tutor"]
    for (_, a, b), text in zip([r for r in runs if r[0] == 1], tutor_texts, strict=True):
        assert tokenizer.decode(d.completion_ids[a:b]) == text + "<|im_end|>"
    student_texts = [t["text"] for t in d.turns[2::2]]
    for (_, a, b), text in zip([r for r in runs if r[0] == 0], student_texts, strict=True):
        assert tokenizer.decode(d.completion_ids[a:b]) == f"\n<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def test_cut_tutor_turns_are_closed_by_the_environment(tokenizer):
    room = classroom(tokenizer, opening="tutor", max_turns=2)
    [d] = room.run(items(2)[1:], ScriptedTutor(tokenizer, truncate=True))
    assert [t["truncated"] for t in d.turns if t["role"] == "tutor"] == [True, True]
    _, a, b = spans(d.env_mask)[1]
    assert tokenizer.decode(d.completion_ids[a:b]).startswith("<|im_end|>\n<|im_start|>user\n")
    assert d.turns[0]["text"] == "Hi! Can you help me with this problem?"


def test_dialogues_end_at_max_turns_or_end_marker_with_batched_calls(tokenizer):
    student, tutor = ScriptedStudent(), ScriptedTutor(tokenizer)
    room = classroom(tokenizer, opening="both", max_turns=3, student=student)
    batch = items(4) * 2  # a GRPO group of 2 per problem
    dialogues = room.run(batch, tutor)
    assert len(dialogues) == len(batch)
    for d in dialogues:
        tutor_turns = [t for t in d.turns if t["role"] == "tutor"]
        if d.item.id == "p0":
            assert d.ended_by_tutor and len(tutor_turns) == 2 and END_MARKER not in tutor_turns[-1]["text"]
        else:
            assert not d.ended_by_tutor and len(tutor_turns) == 3
        assert d.turns[-1]["role"] == "tutor" and len(d.solutions) == 3
    # one tutor call per turn over the live dialogues; student calls: openings, replies per turn, solutions
    assert tutor.calls == [8, 8, 6]
    attempts = sum(opening_of(i, "both") == "student" for i in batch)
    assert student.calls == [attempts] * (attempts > 0) + [8, 6, 8 * 3]


@pytest.fixture(scope="module")
def trainer(tiny_causal_lm, tmp_path_factory):
    from core.config import load_config
    from policy.classroom.config import ClassroomConfig
    from policy.classroom.run import build_classroom_trainer

    folder = tmp_path_factory.mktemp("classroom-mask")
    write_jsonl(folder / "rl.jsonl", items(4))
    cfg = load_config(ClassroomConfig, overrides={
        "policy": tiny_causal_lm, "prompts": str(folder / "rl.jsonl"), "out": str(folder / "out"), "beta": 0.0,
        "loss_type": "grpo", "max_steps": 1, "prompts_per_step": 2, "num_generations": 2,
        "max_completion_length": 6, "dialogue": {"max_turns": 3}, "extra_rewards": {"solve_rate": {}},
    })
    trainer, _ = build_classroom_trainer(cfg, student=ScriptedStudent())
    return trainer


def position_grads(trainer, inputs, drop_env_mask: bool = False):
    """Gradient of TRL's loss w.r.t. the last hidden state that predicts each completion token, every advantage
    set to 1. (TRL computes log-probs with a fused LM head, so the hidden state before it is hooked; the last
    layer's output at position t only feeds the prediction of token t + 1.)"""
    output = trainer._generate_and_score_completions(inputs)
    if drop_env_mask:
        output.pop("tool_mask")
    output["advantages"] = torch.ones_like(output["advantages"])
    captured = {}

    def keep(module, args, hidden):
        hidden.retain_grad()
        captured["hidden"] = hidden

    model = trainer.model
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's training loop, which this test skips
    handle = model.model.norm.register_forward_hook(keep)
    try:
        model.train()
        trainer.compute_loss(model, output).backward()
    finally:
        handle.remove()
        model.zero_grad()
    start, n = output["prompt_ids"].shape[1] - 1, output["completion_ids"].shape[1]
    return output, captured["hidden"].grad[:, start:start + n].abs().sum(-1)


def test_student_tokens_get_no_gradient_through_trl_loss(trainer):
    inputs = [row for row in trainer.train_dataset.select(range(2)) for _ in range(2)]  # 2 prompts x 2 generations
    output, grads = position_grads(trainer, inputs)
    assert output["completion_ids"].shape[0] == len(inputs)  # one completion per prompt handed in
    mask = output["tool_mask"] * output["completion_mask"]
    student = (output["tool_mask"] == 0) & (output["completion_mask"] == 1)
    assert student.any() and (mask == 1).any()
    assert torch.all(grads[student] == 0)
    assert torch.all(grads[mask == 1] > 0)
    # the check has teeth: without env_mask TRL would train on the student's tokens and role headers
    _, unmasked = position_grads(trainer, inputs, drop_env_mask=True)
    assert torch.all(unmasked[student] > 0)


@pytest.mark.parametrize("raw, reply", [
    ("You: I think it is 12.", "I think it is 12."),
    ("Is it 4?\nTutor: Yes, well done.", "Is it 4?"),
    ("The answer is 6.\nT", "The answer is 6."),  # a 'Tutor' label cut by the token limit
    ("Ten apples.\nThen 5 more?", "Ten apples.\nThen 5 more?"),
])
def test_student_replies_keep_only_the_students_words(raw, reply):
    from policy.classroom.student import clean_reply

    assert clean_reply(raw) == reply


def test_think_blocks_are_hidden_from_the_student_and_long_dialogues_stop(tokenizer):
    student = ScriptedStudent()
    room = classroom(tokenizer, opening="tutor", max_turns=3, student=student)
    [d] = room.run(items(2)[1:], ScriptedTutor(tokenizer, plan="<think>secret plan</think>"))
    tutor = [t for t in d.turns if t["role"] == "tutor"]
    assert all(t["raw"].startswith("<think>secret plan</think>") and "secret" not in t["text"] for t in tutor)
    assert student.seen and not any("secret" in text for text in student.seen)
    assert "secret" in tokenizer.decode(d.completion_ids)  # the tutor is trained on its own plan
    short = Classroom(tokenizer, ScriptedStudent(), DialogueOptions(max_turns=3, max_dialogue_tokens=64),
                      StudentOptions(solve_attempts=1), "You are a tutor.", [tokenizer.eos_token_id])
    [d] = short.run(items(2)[1:], ScriptedTutor(tokenizer))
    assert [t["role"] for t in d.turns].count("tutor") == 1  # the prompt alone is longer than 64 tokens
