"""Scoring for `policy compare`: every method's responses to the same held-out prompts, by the eval's scorers.

Each entry (a method, best-of-n at one n, or a GRPO checkpoint) is compared with the same base responses, prompt
by prompt (paired bootstrap, `policy.evaluation.independent.compare_scores`), by the training RM and every
independent scorer; with the eval's rule checks, its KL to the base (estimated on its own samples with
`kl_on_tuned_samples`; best-of-n: analytic) and, for the final policies, GSM8K reference perplexity.
"""
from __future__ import annotations

import gc
import json
from pathlib import Path

from core.schema import PromptItem, read_jsonl, write_jsonl
from policy.experiments.compare_budget import planned_samples


def eval_rows(cfg, shared: dict) -> tuple[list[dict], list[PromptItem]]:
    """The held-out prompt rows every method answers (the eval's exclusions, limit and length cut), and their items."""
    from core.models import load_tokenizer
    from policy.evaluation.evaluate import excluded_problems
    from policy.prompts import load_prompt_rows

    path = Path(cfg.run) / "data" / "eval.jsonl"
    rows = load_prompt_rows(path, shared["system_prompt"], cfg.eval.max_prompts, load_tokenizer(shared["policy"]),
                            cfg.eval.max_prompt_tokens or shared["max_prompt_tokens"],
                            exclude_problem_ids=excluded_problems(cfg.eval))
    items = {item.id: item for item in read_jsonl(path, PromptItem)}
    return rows, [items[row["id"]] for row in rows]


def write_eval_prompts(items: list[PromptItem], path: Path) -> Path:
    """The chosen eval prompts as a PromptItem file (best-of-n answers exactly these)."""
    write_jsonl(path, items)
    return path


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, folder) of GRPO's saved checkpoints, by step."""
    found = [(int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*") if (p / "config.json").exists()]
    return sorted(found)


def bon_outputs(folder: Path, rows: list[dict]):
    """[(n, rollouts of the selected responses, analytic KL)] from a `policy bon` folder, in the rows' order."""
    from policy.rollout import Rollout
    from policy.train.candidates import read_candidates

    candidates = read_candidates(folder / "candidates.jsonl")
    if candidates.prompt_ids != [row["id"] for row in rows]:
        raise RuntimeError(f"{folder}: best-of-n answered other prompts than compare's eval prompts; delete the "
                           "folder and rerun compare")
    report = json.loads((folder / "bon.json").read_text())
    out = []
    for row in report["rows"]:
        outs = [Rollout(candidates.prompt_token_ids[i], candidates.completion_ids[i][j], candidates.texts[i][j])
                for i, j in enumerate(row["selected"])]
        out.append((row["n"], outs, row["kl_analytic"]))
    return out


class Scoring:
    """The base responses and every scorer, loaded once; `entry` scores one set of responses against the base."""

    def __init__(self, cfg, rows: list[dict], shared: dict):
        from core.models import load_tokenizer
        from policy.evaluation.evaluate import independent_scorers, score_policy
        from policy.evaluation.independent import prompt_scores, rm_scorer, scorer_standing
        from policy.train.grpo import load_reward_model

        self.cfg, self.rows = cfg, rows
        self.ev = cfg.eval.model_copy(update={"samples_per_prompt": 1})
        self.tokenizer = load_tokenizer(shared["policy"])
        self.rm = load_reward_model(str(Path(cfg.run) / "rm"), self.ev.device)
        self.weights = self.rm.weights
        self.settings = {"max_new_tokens": shared["max_completion_length"], "temperature": shared["temperature"],
                         "top_p": shared["top_p"]}
        self.scorers = [rm_scorer("rm:training", self.rm, "training-rm", self.ev.batch_size, self.weights)]
        self.scorers += independent_scorers(self.ev, self.rm)
        self.standing = {s.name: ("the reward the policies were trained on" if s.kind == "training-rm" else
                                  scorer_standing(s, self.ev.min_judge_qwk))
                         for s in self.scorers}
        self.contexts = [row["context"] for row in rows]
        self.boot = dict(confidence=self.ev.confidence, n_resamples=self.ev.bootstrap_resamples, seed=self.ev.seed)
        self.base_model, self.base_out, _, _ = score_policy(shared["policy"], self.tokenizer, rows, self.rm,
                                                           self.weights, self.settings, self.ev, "base")
        self.base_scores = {s.name: prompt_scores(s, self.contexts, [o.text for o in self.base_out], 1)
                            for s in self.scorers}
        self.gsm8k = self._gsm8k()
        self.base_entry = {"label": "base", "rules": self._rules(self.base_out),
                           "gsm8k_perplexity": self._perplexity(self.base_model)}

    def _gsm8k(self):
        if not self.ev.gsm8k:
            return None
        from core.sources import load_gsm8k

        problems = load_gsm8k(self.ev.gsm8k)[:self.ev.gsm8k_items]
        return [p.question for p in problems], [p.plain_solution for p in problems]

    def _perplexity(self, model):
        from policy.rollout import reference_perplexity

        if self.gsm8k is None or model is None:
            return None
        return reference_perplexity(model, self.tokenizer, *self.gsm8k, batch_size=self.ev.batch_size)

    def _rules(self, outs) -> dict:
        from policy.evaluation.response_checks import rule_checks

        return rule_checks(outs, self.rows, 1, self.settings["max_new_tokens"], self.tokenizer.eos_token_id)

    def entry(self, label: str, outs, kl: float, kl_kind: str, model=None, **extra) -> dict:
        from policy.evaluation.independent import compare_scores, prompt_scores

        texts = [o.text for o in outs]
        comparisons = {s.name: compare_scores(self.base_scores[s.name], prompt_scores(s, self.contexts, texts, 1),
                                              s.top, self.boot) for s in self.scorers}
        return {"label": label, "kl": float(kl), "kl_kind": kl_kind, "scores": comparisons,
                "rules": self._rules(outs), "gsm8k_perplexity": self._perplexity(model), **extra}

    def policy_entry(self, label: str, path: Path, perplexity: bool = True, **extra) -> dict:
        from policy.evaluation.evaluate import score_policy
        from policy.evaluation.response_checks import kl_on_tuned_samples

        model, outs, _, _ = score_policy(str(path), self.tokenizer, self.rows, self.rm, self.weights, self.settings,
                                         self.ev, label)
        kl = kl_on_tuned_samples(model, self.base_model, outs, self.settings, self.ev, self.tokenizer.pad_token_id)
        entry = self.entry(label, outs, kl["per_sequence"]["mean"], "estimated", model if perplexity else None,
                           kl_interval=kl["per_sequence"], **extra)
        del model
        gc.collect()
        return entry


def score_all(cfg, plans: dict[str, dict], rows: list[dict], shared: dict, out: Path) -> dict:
    """Every method's entries (best-of-n at each n, GRPO at each checkpoint) against the same base responses."""
    scoring = Scoring(cfg, rows, shared)
    rl_prompts = len(read_jsonl(Path(cfg.run) / "data" / "rl.jsonl", PromptItem))
    entries, samples = [], {}
    for method, values in plans.items():
        folder = out / method
        samples[method] = planned_samples(method, values, rl_prompts, len(rows))
        if method == "bon":
            for n, outs, kl in bon_outputs(folder, rows):
                entries.append(scoring.entry(f"bon n={n}", outs, kl, "analytic", method="bon", n=n,
                                             final=n == max(values["ns"])))
        elif method == "grpo":
            per_step = samples[method] // max(1, values["max_steps"])
            for step, path in checkpoints(folder):
                if step < values["max_steps"]:
                    entries.append(scoring.policy_entry(f"grpo step {step}", path, perplexity=False, method="grpo",
                                                        step=step, samples_so_far=step * per_step, final=False))
            entries.append(scoring.policy_entry("grpo", folder / "policy", method="grpo", step=values["max_steps"],
                                                final=True))
        else:
            entries.append(scoring.policy_entry(method, folder / "policy", method=method, final=True))
    return {"methods": list(plans), "prompts": len(rows), "budget": cfg.budget, "samples": samples,
            "scorers": [{"name": s.name, "kind": s.kind, "dimensions": s.dimensions, "standing": scoring.standing[s.name]}
                        for s in scoring.scorers],
            "base": scoring.base_entry, "entries": entries, "out": str(out),
            "settings": {**shared, "eval_prompts": str(Path(cfg.run) / "data" / "eval.jsonl")}}
