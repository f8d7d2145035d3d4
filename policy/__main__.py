from core.cli import dispatch

COMMANDS = {
    "grpo": ("policy.train.grpo", "GRPO on the weighted HPC reward with a KL penalty"),
    "bon": ("policy.train.bon", "best-of-n at inference: n samples per prompt, the best by the reward model"),
    "rft": ("policy.train.rft", "RM-filtered SFT: sample n, keep the best, SFT on them (expert iteration)"),
    "dpo": ("policy.train.dpo", "DPO on pairs from the RM's ranking of samples or from labelled responses"),
    "sft": ("policy.train.sft", "SFT on real teacher turns (MathDial)"),
    "compare": ("policy.experiments.compare", "base -> best-of-n, RFT, DPO, SFT, GRPO at an equal sample budget"),
    "eval": ("policy.evaluation.evaluate", "base vs tuned policy on held-out prompts"),
    "sweep": ("policy.experiments.sweep", "reward-weight sweep and single-dimension ablations"),
    "classroom": ("policy.classroom.run", "GRPO over whole dialogues with a simulated student (solve rate, judges)"),
    "classroom-eval": ("policy.classroom.eval", "base vs tuned tutor in the classroom on held-out problems"),
}


def main(argv=None):
    dispatch("policy", COMMANDS, argv)


if __name__ == "__main__":
    main()
