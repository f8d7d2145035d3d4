from core.cli import dispatch

COMMANDS = {
    "train": ("hpc_rm.train", "train the multi-head reward model on interchange labels"),
    "eval": ("hpc_rm.evaluate", "evaluate a reward model on labeled items (F1, kappa, Spearman, calibration)"),
    "score": ("hpc_rm.score", "add per-dimension predictions and the weighted reward to an interchange file"),
    "consistency": ("hpc_rm.consistency", "human-label RM vs LLM-label RM on held-out human labels"),
    "convert": ("hpc_rm.convert", "rewrite a reward model folder of the old layout (rm_config.json) in the current one"),
    "serve": ("hpc_rm.serve", "score with a reward model over HTTP (batched; GRPO's reward_model: http://HOST:PORT)"),
}


def main(argv=None):
    dispatch("hpc_rm", COMMANDS, argv)


if __name__ == "__main__":
    main()
