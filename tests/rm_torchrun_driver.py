"""Launched by torchrun from tests (not collected by pytest): train the RM on every rank through
`hpc_rm.train.train_and_save` (saved with `Trainer.save_model`), then, in the main process, score probe pairs with
the model still in memory and write them to --scores, so a test can compare them with the reloaded folder.

    torchrun --nproc_per_node 2 tests/rm_torchrun_driver.py --scores FILE -- <hpc_rm train flags>
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROBES = [("Student: 2+2?", "What is 2+1?"), ("Student: 3*4=7?", "excellent clear hint: count the groups"),
          ("## Dialogue so far\nStudent: question 3", "wrong lazy answer number 3")]


def main() -> None:
    from core.config import add_arguments, build_config
    from core.models import set_offline
    from core.rubric import load_rubric
    from hpc_rm.data import read_labels
    from hpc_rm.train import TrainConfig, train_and_save

    set_offline()
    argv = sys.argv[1:]
    split = argv.index("--")
    own = argparse.ArgumentParser()
    own.add_argument("--scores", type=Path, required=True)
    scores_path = own.parse_args(argv[:split]).scores
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    cfg = build_config(TrainConfig, parser.parse_args(argv[split + 1:]))
    rubric = load_rubric(cfg.rubric)
    rm = train_and_save(cfg, read_labels(cfg.labels, rubric, cfg.annotator), rubric)
    if rm.is_main_process:
        scores = rm.score([c for c, _ in PROBES], [r for _, r in PROBES])
        scores_path.write_text(json.dumps({"world_size": rm.world_size,
                                           "scores": {k: v.tolist() for k, v in scores.items()}}))


if __name__ == "__main__":
    main()
