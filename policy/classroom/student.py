"""The frozen simulated student: a persona from the student profile, and one batched call per dialogue turn.

The student sees the dialogue as text inside one user message (not as alternating chat roles), so any chat
template and any endpoint work, the opening line needs no fake tutor turn, and the tutor's hidden `<think>` never
reaches it. Two backends behind one method, `complete(chats, max_new_tokens) -> one text per chat`:
- `LocalStudent`: a transformers model (registry name, hub id or folder) on the options' `device`, batched
  sampling; its RNG is forked so the student's draws never shift the trainer's random stream;
- `OpenAIStudent`: any OpenAI-compatible endpoint (`vllm serve`, ...) through `core.llm_client`, all requests of
  a turn in flight together.
"""
from __future__ import annotations

import asyncio
import re

import torch

from core.llm_client import ChatClient
from core.sampling import inverse_cdf_sampling
from core.schema import StudentProfile

PERSONA = (
    "You are playing a student who is working on a math problem with a tutor.\n{about}\n"
    "Stay in character: write short, natural messages as this student would, mistakes included. Do not act as the "
    "tutor and do not solve more than you are asked.\n\nThe problem:\n{problem}"
)
OPENING_REQUEST = "Hi! Can you help me with this problem?"
ATTEMPT_ASK = ("Before the tutor says anything, try the problem yourself and write your attempt to the tutor in a "
               "few sentences.")
REPLY_ASK = "Your conversation with the tutor so far:\n\n{transcript}\n\nWrite your next message to the tutor only."
SOLVE_ASK = ("{conversation}Now solve the problem on your own. Show your steps briefly and end with the final answer "
             "written as \\boxed{{answer}}.")


def describe_student(profile: StudentProfile | None) -> str:
    return profile.describe() if profile is not None else "An ordinary student."


def clean_reply(text: str) -> str:
    """The student's own message: small models echo the transcript's 'You:' label or write the tutor's next line."""
    text = re.sub(r"^\s*(?:You|Student)\s*:\s*", "", text)
    text = re.split(r"\n\s*Tutor\b", text, maxsplit=1)[0]
    return re.sub(r"\n\s*T(?:u(?:t(?:or?)?)?)?\s*$", "", text).strip()  # a "Tutor" label cut by the token limit


def student_chat(profile: StudentProfile | None, problem: str, request: str, persona: str = PERSONA) -> list[dict]:
    """The student's chat: its persona (a system prompt with {about} and {problem}) and one request."""
    return [{"role": "system", "content": persona.format(about=describe_student(profile), problem=problem.strip())},
            {"role": "user", "content": request}]


def load_personas(paths: dict) -> dict[str, str]:
    """persona -> its system prompt text, read from the files `student.personas` names."""
    from core.config import ConfigError

    out = {}
    for name, path in paths.items():
        try:
            out[name] = open(path, encoding="utf-8").read().strip()
            out[name].format(about="", problem="")
        except OSError as err:
            raise ConfigError(f"field student.personas.{name}: cannot read {path}: {err.strerror}") from None
        except (KeyError, IndexError, ValueError) as err:
            raise ConfigError(f"{path}: field student.personas.{name}: only {{about}} and {{problem}} may appear in "
                              f"braces ({err!r})") from None
    return out


def transcript_text(turns: list[dict], student_name: str = "You") -> str:
    """'Tutor: ...' / 'You: ...' lines of the visible turns (dicts with role and text)."""
    return "\n".join(f"{'Tutor' if t['role'] == 'tutor' else student_name}: {t['text'].strip()}" for t in turns)


def reply_request(turns: list[dict]) -> str:
    return REPLY_ASK.format(transcript=transcript_text(turns))


def solve_request(turns: list[dict] | None) -> str:
    """The final-solution request after a dialogue, or alone (turns None: the student's solo solve rate)."""
    conversation = "" if turns is None else f"Your tutoring session is over. It went:\n\n{transcript_text(turns)}\n\n"
    return SOLVE_ASK.format(conversation=conversation)


@torch.no_grad()
def sample_ids(model, prompt_ids: list[list[int]], *, pad_id: int, eos_ids: list[int], max_new_tokens: int,
               temperature: float, top_p: float = 1.0, batch_size: int = 32) -> list[list[int]]:
    """One sampled continuation per prompt (token ids, cut after the first eos), in input order. Prompts are
    sorted by length and left-padded per batch, so padding stays small."""
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    out: list[list[int]] = [[] for _ in prompt_ids]
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(prompt_ids[i]) for i in idx)
        input_ids = torch.tensor([[pad_id] * (width - len(prompt_ids[i])) + prompt_ids[i] for i in idx])
        mask = torch.tensor([[0] * (width - len(prompt_ids[i])) + [1] * len(prompt_ids[i]) for i in idx])
        with inverse_cdf_sampling():  # same distribution as torch.multinomial, cheaper on CPU
            generated = model.generate(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                                       max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                                       top_p=top_p, top_k=0, pad_token_id=pad_id)
        for row, i in enumerate(idx):
            ids = generated[row, width:].tolist()
            ends = [k for k, t in enumerate(ids) if t in eos_ids]
            out[i] = ids[:ends[0] + 1] if ends else ids
    return out


class LocalStudent:
    def __init__(self, model_name: str, dtype: str = "bfloat16", temperature: float = 0.6, batch_size: int = 32,
                 seed: int = 0, device: str | None = None):
        from core.models import load_causal_lm, load_tokenizer

        self.tokenizer = load_tokenizer(model_name)
        # Weights keep requires_grad (sampling runs under no_grad): with it False, torch.matmul multiplies the
        # prefill's last position against a batch-expanded copy of the output matrix (policy/README.md).
        self.model = load_causal_lm(model_name, dtype=dtype, device=device).eval()  # device None: the CPU
        self.temperature, self.batch_size, self.seed, self.calls = temperature, batch_size, seed, 0

    def complete(self, chats: list[list[dict]], max_new_tokens: int) -> list[str]:
        if not chats:
            return []
        self.calls += 1
        tok = self.tokenizer
        ids = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=False) for c in chats]
        # the student's draws leave the trainer's RNG where it was (on its GPU too)
        gpus = [self.model.device] if self.model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=gpus):
            torch.manual_seed(self.seed * 1_000_003 + self.calls)
            out = sample_ids(self.model, ids, pad_id=tok.pad_token_id, eos_ids=[tok.eos_token_id],
                             max_new_tokens=max_new_tokens, temperature=self.temperature, batch_size=self.batch_size)
        return [clean_reply(tok.decode(o, skip_special_tokens=True)) for o in out]


class OpenAIStudent:
    def __init__(self, client_config, temperature: float = 0.6, seed: int = 0):
        self.client_config, self.temperature, self.seed, self.calls = client_config, temperature, seed, 0

    def complete(self, chats: list[list[dict]], max_new_tokens: int) -> list[str]:
        if not chats:
            return []
        self.calls += 1
        return asyncio.run(self._complete_all(chats, max_new_tokens))

    async def _complete_all(self, chats, max_new_tokens) -> list[str]:
        async with ChatClient(self.client_config) as client:
            # a different seed per request, so N solve attempts of one dialogue are N samples
            done = await asyncio.gather(*[
                client.complete(chat, temperature=self.temperature, max_tokens=max_new_tokens,
                                seed=self.seed + 7919 * self.calls + i)
                for i, chat in enumerate(chats)])
        return [clean_reply(c.text) for c in done]


def build_student(options):
    """`StudentOptions` -> a student with `complete(chats, max_new_tokens)`."""
    if options.backend == "openai":
        return OpenAIStudent(options.openai, options.temperature, options.seed)
    return LocalStudent(options.model, options.dtype, options.temperature, options.batch_size, options.seed,
                        options.device)
