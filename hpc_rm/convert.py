"""`python -m hpc_rm convert OLD --out NEW`: rewrite a reward model folder in the old layout (`rm_config.json`,
`backbone/` or `adapter/` + `tokenizer/`, `heads.safetensors`: written before the reward model was a transformers
model) in the current one (`config.json`, `model.safetensors`, the tokenizer; see core/reward_model.py).

The weights are the same tensors; with `--check true` (the default) the new folder is reloaded and must score
probe pairs (and the items of `--items`, e.g. MRBench's) like the old model within 1e-5, else nothing is kept.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, ValidationError

from core.cli import ArgumentParser
from core.config import Config, add_arguments, build_config
from core.errors import ModelNotFoundError, exits_on_bad_input
from core.models import resolve_model
from core.reward_config import CONFIG_FILE, LEGACY_CONFIG_FILE, HPCRewardConfig, RMSpec, check_rm_folder
from core.reward_model import HPCRewardModel
from core.schema import DataError, LabeledItem, read_jsonl

TOLERANCE = 1e-5
PROBES = [
    ("Student: I think 3 x 4 = 7 because 3 + 4 = 7.", "Let's check: what do you get if you add 3 four times?"),
    ("Student: The answer is 12.", "Great job! That's correct."),
    ("Profile: 5th grade.\nStudent: I don't understand fractions.", "A fraction is part of a whole, like a slice of "
                                                                    "pizza. What is half of 8?"),
    ("", "The answer is 42."),
]


class ConvertConfig(Config):
    out: Path | None = Field(None, description="the new folder (must not exist yet, or be empty)")
    check: bool = Field(True, description="reload the new folder and compare its scores with the old model's on "
                                          f"probe pairs and --items; a difference over {TOLERANCE} keeps nothing")
    items: Path | None = Field(None, description="interchange JSONL whose (context, response) pairs the check also "
                                                 "scores, e.g. MRBench items")
    batch_size: int = Field(32, ge=1, description="pairs per scoring batch in the check")


def check_legacy_folder(path: Path) -> Path:
    """The folder, or one bad-input line: it must hold a reward model in the old layout."""
    if (path / CONFIG_FILE).is_file():
        check_rm_folder(path)  # a new-layout reward model passes; anything else is refused there
        raise ModelNotFoundError(str(path), f"reward model {str(path)!r}: already in the current layout "
                                            f"({CONFIG_FILE}); nothing to convert")
    if not (path / LEGACY_CONFIG_FILE).is_file():
        raise ModelNotFoundError(str(path), f"reward model {str(path)!r}: not a reward model folder in the old "
                                            f"layout (no {LEGACY_CONFIG_FILE})")
    return path


def read_legacy_spec(path: Path) -> RMSpec:
    try:
        return RMSpec.model_validate_json((path / LEGACY_CONFIG_FILE).read_text())
    except ValidationError as err:
        raise DataError(f"{path / LEGACY_CONFIG_FILE}: not a reward model config: {err.errors()[0]['msg']} "
                        f"(field {'.'.join(map(str, err.errors()[0]['loc']))})") from None


def load_legacy(path: str | Path) -> HPCRewardModel:
    """A reward model from a folder in the old layout, as that layout's loader built it (fp32, eval mode)."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    from core.reward_model import _folder_tokenizer

    path = check_legacy_folder(Path(path))
    spec = read_legacy_spec(path)
    if spec.lora.r > 0:
        from peft import PeftModel

        base = AutoModel.from_pretrained(resolve_model(spec.backbone), dtype=torch.float32)
        backbone = PeftModel.from_pretrained(base, str(path / "adapter"))
        tokenizer = _folder_tokenizer(path / "tokenizer")
    else:
        backbone = AutoModel.from_pretrained(str(path / "backbone"), dtype=torch.float32)
        tokenizer = _folder_tokenizer(path / "backbone")
    config = HPCRewardConfig(**spec.model_dump(mode="json"))  # backbone_config and hidden_size: from the backbone
    model = HPCRewardModel(config, backbone=backbone, tokenizer=tokenizer)
    model.heads.load_state_dict(load_file(str(path / "heads.safetensors")))
    return model.eval()


def max_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]), initial=0.0)) for k in a)


def convert(old: Path, new: Path, check: bool = True, items: list[LabeledItem] | None = None,
            batch_size: int = 32) -> dict:
    """Write `old` (old layout) as `new` (current layout); returns what the check measured."""
    legacy = load_legacy(old)
    tmp = new.parent / f".{new.name}.converting"
    if tmp.exists():
        shutil.rmtree(tmp)
    legacy.save_pretrained(tmp)
    report = {"old": str(old), "new": str(new), "lora": legacy.spec.lora.r > 0}
    try:
        if check:
            contexts = [c for c, _ in PROBES] + [i.context for i in items or []]
            responses = [r for _, r in PROBES] + [i.response for i in items or []]
            before = legacy.score(contexts, responses, batch_size=batch_size)
            after = HPCRewardModel.from_pretrained(tmp).score(contexts, responses, batch_size=batch_size)
            report.update(pairs=len(contexts), max_score_difference=max_difference(before, after))
            if report["max_score_difference"] > TOLERANCE:
                raise RuntimeError(f"converted {old}: scores moved by {report['max_score_difference']:.2e} "
                                   f"(> {TOLERANCE}) on {len(contexts)} pairs; nothing written")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if new.exists():
        new.rmdir()  # checked empty before anything was loaded
    os.replace(tmp, new)
    return report


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m hpc_rm convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="reward model folder in the old layout (rm_config.json)")
    add_arguments(parser, ConvertConfig)
    args = parser.parse_args(argv)
    cfg = build_config(ConvertConfig, args)
    if cfg.out is None:
        parser.error("--out is required")
    old = check_legacy_folder(args.old)
    read_legacy_spec(old)
    if cfg.out.exists() and (not cfg.out.is_dir() or any(cfg.out.iterdir())):
        raise DataError(f"{cfg.out}: exists and is not an empty folder; give a new --out")
    items = read_jsonl(cfg.items, LabeledItem) if cfg.items is not None else None
    report = convert(old, cfg.out, cfg.check, items, cfg.batch_size)
    checked = (f"; scores of {report['pairs']} pairs match within {report['max_score_difference']:.1e}"
               if "pairs" in report else "")
    print(f"converted {old} -> {cfg.out}{checked}")
