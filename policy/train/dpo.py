"""`python -m policy dpo --config configs/policy/dpo_tiny.yaml`: DPO (TRL's DPOTrainer), after Scarlatos et al.
2025's DPO-trained tutors.

Pairs come from one of two sources:
- `pairs_from: rm` (default): n samples per `rl` prompt from the base policy, ranked by the training reward model;
  per prompt the best is chosen and the worst rejected, when their weighted rewards differ by at least
  `min_margin` and their texts differ (a response is never paired with itself, nor with a copy of itself).
- `pairs_from: labels`: labelled candidate responses of the annotation stage (`labels`, human or LLM labels,
  the interchange format); responses to one context are ranked by their weighted label (the mean over
  annotators), best vs worst with the same margin rule. The policy's chat for a context is rebuilt from the
  PromptItem named by the label's `meta.prompt_id` in `label_prompts` (so the policy sees its own system prompt,
  not the generator's style prompt), else the label's own `prompt`, else the context as one user turn.
`beta` and `loss_type` are TRL's (sigmoid is the DPO paper's loss; ipo, hinge, robust, ...).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from core.config import ConfigError, run_cli
from policy.train.methods import TrainOptions, start_run, train_and_save

DPOLoss = Literal["sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "aot", "apo_zero", "apo_down",
                  "sigmoid_norm", "exo_pair", "nca_pair", "discopop"]


class DPORunConfig(TrainOptions):
    out: str = Field("runs/demo/dpo", description="output folder: the DPO policy, its pairs and logs")
    pairs_from: Literal["rm", "labels"] = Field("rm", description="rm: the RM's ranking of n samples per prompt; "
                                                                  "labels: labelled candidate responses")
    n: int = Field(4, ge=2, le=4096, description="samples per prompt ranked by the RM (pairs_from: rm)")
    min_margin: float = Field(0.0, ge=0, description="least weighted-reward (or label) difference of a pair; "
                                                     "a prompt without such a pair gives none")
    labels: str = Field("runs/demo/labels/labels.jsonl", description="labels file (pairs_from: labels)")
    label_prompts: str | None = Field("runs/demo/data/rm.jsonl", description="PromptItem file the labels' "
                                      "meta.prompt_id names, for the policy's own chat (None: the labels' prompt)")
    rubric: str = Field("hpc", description="rubric of the labels, for its default weights when `weights` is None")
    beta: float = Field(0.1, gt=0, le=100, description="DPO's beta: the strength of the implicit KL to the base")
    loss_type: DPOLoss = Field("sigmoid", description="TRL's DPO loss: sigmoid (DPO), ipo, hinge, robust, ...")
    max_length: int = Field(512, ge=16, description="longest prompt + response in tokens (longer are cut)")


def best_worst_pairs(groups: list[tuple[object, list[str], np.ndarray]], min_margin: float) -> list[dict]:
    """Per group (prompt, responses, rewards): the best response against the worst one whose text differs from it,
    when the reward difference is at least `min_margin` (and above 0). Returns {prompt, chosen, rejected, margin}."""
    pairs = []
    for prompt, texts, rewards in groups:
        order = np.argsort(-np.asarray(rewards, dtype=np.float64), kind="stable")
        best = int(order[0])
        for worst in (int(j) for j in order[::-1]):
            if texts[worst].strip() == texts[best].strip():
                continue
            margin = float(rewards[best] - rewards[worst])
            if margin > 0 and margin >= min_margin:
                pairs.append({"prompt": prompt, "chosen": texts[best], "rejected": texts[worst], "margin": margin})
            break  # the worst distinct response decides; a smaller margin further up cannot pass either
    return pairs


def label_groups(cfg: DPORunConfig) -> list[tuple[list[dict], list[str], np.ndarray]]:
    """(chat, responses, mean weighted label) per context of the labels file."""
    from core.rubric import load_rubric
    from core.schema import PromptItem, read_jsonl, read_labels_jsonl

    items = read_labels_jsonl(cfg.labels)
    weights = cfg.weights or load_rubric(cfg.rubric).default_weights()
    prompts = {p.id: p for p in read_jsonl(cfg.label_prompts, PromptItem)} if cfg.label_prompts else {}
    by_context: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    chats: dict[str, list[dict]] = {}
    for item in items:
        if not item.scores or any(d not in item.scores for d in weights):
            continue
        by_context[item.context][item.response].append(sum(w * item.scores[d] for d, w in weights.items()))
        source = prompts.get(item.meta.get("prompt_id"))
        chats.setdefault(item.context, source.chat_messages(cfg.system_prompt) if source else
                         [m.model_dump() for m in item.prompt] if item.prompt else
                         [{"role": "user", "content": item.context}])
    return [(chats[c], list(r), np.array([np.mean(v) for v in r.values()])) for c, r in by_context.items()]


def rm_groups(cfg: DPORunConfig, rm=None) -> tuple[list[tuple[list[dict], list[str], np.ndarray]], int]:
    """(chat, samples, rewards) per rl prompt from the base policy ranked by the RM, and the samples drawn."""
    from core.models import load_tokenizer
    from policy.prompts import load_prompt_rows
    from policy.train.candidates import load_rm_and_weights, load_sampler, sample_and_score

    rm, weights = load_rm_and_weights(cfg) if rm is None else (rm, cfg.weights or rm.weights)
    rows = load_prompt_rows(cfg.prompts, cfg.system_prompt, cfg.max_prompts, load_tokenizer(cfg.policy),
                            cfg.max_prompt_tokens)
    model, tokenizer = load_sampler(cfg)
    candidates = sample_and_score(model, tokenizer, rows, cfg.n, rm, weights, max_new_tokens=cfg.max_completion_length,
                                  temperature=cfg.temperature, top_p=cfg.top_p, batch_size=cfg.sample_batch_size,
                                  seed=cfg.seed)
    candidates.write(Path(cfg.out) / "candidates.jsonl")
    return ([(row["prompt"], candidates.texts[i], candidates.rewards[i]) for i, row in enumerate(rows)],
            candidates.rewards.size)


def build_dpo_trainer(cfg: DPORunConfig, pairs: list[dict], out: Path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from core.models import load_tokenizer, resolve_model
    from core.optimizer_steps import RequireOptimizerSteps
    from policy.train.methods import lora_config, trainer_args

    records = [{"prompt": p["prompt"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
                "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs]
    args = trainer_args(cfg, DPOConfig, out, beta=cfg.beta, loss_type=[cfg.loss_type], max_length=cfg.max_length)
    return DPOTrainer(model=resolve_model(cfg.policy), args=args, train_dataset=Dataset.from_list(records),
                      processing_class=load_tokenizer(cfg.policy), peft_config=lora_config(cfg),
                      callbacks=[RequireOptimizerSteps(f"max_steps {cfg.max_steps}")])


def run_dpo(cfg: DPORunConfig, rm=None) -> dict:
    from core.models import check_model_exists
    from core.schema import read_labels_jsonl, write_jsonl
    from policy.train.config import check_run_inputs

    if cfg.pairs_from == "labels":
        read_labels_jsonl(cfg.labels)
        check_model_exists(cfg.policy)
    else:
        check_run_inputs(cfg, check_rm=rm is None)
    out = Path(cfg.out)
    if cfg.pairs_from == "labels":
        groups, drawn = label_groups(cfg), 0
    else:
        start_run(cfg, out)
        groups, drawn = rm_groups(cfg, rm)
    pairs = best_worst_pairs(groups, cfg.min_margin)
    if not pairs:
        raise ConfigError(f"field min_margin: no pair of {len(groups)} groups has distinct responses at least "
                          f"{cfg.min_margin} apart; lower min_margin or draw more samples (n)")
    trainer = build_dpo_trainer(cfg, pairs, out)
    start_run(cfg, out)
    write_jsonl(out / "pairs.jsonl", pairs)
    return train_and_save(trainer, cfg, out, {"method": "dpo", "pairs_from": cfg.pairs_from, "pairs": len(pairs),
                                              "groups": len(groups), "samples_drawn": drawn, "beta": cfg.beta,
                                              "loss_type": cfg.loss_type})


def main(argv: list[str] | None = None) -> None:
    cfg, summary = run_cli(DPORunConfig, argv, "python -m policy dpo", __doc__.split("\n")[0], run_dpo)
    if summary:
        print(f"saved policy to {summary['policy']} after {summary['steps']} steps on {summary['pairs']} pairs "
              f"({summary['train_seconds']} s)")
