"""`python -m hpc_rm train`: fit the multi-head reward model with the transformers Trainer.

The loss is ours (transformers would pick multi-label BCE for several float labels): per dimension,
class-weighted cross-entropy over levels (ordinal head) or class-weighted squared error of the score
(regression head), averaged over the labeled entries only, so a missing label contributes nothing.
Runs the same on one CPU, under `torchrun --nproc_per_node 2` (DDP over gloo) or `accelerate launch`
with a DeepSpeed config (`--deepspeed configs/deepspeed/zero2.json`).

Order matters for DeepSpeed ZeRO-3: the TrainingArguments (which carry the DeepSpeed config) are built first, then
the model, so `transformers.integrations.is_deepspeed_zero3_enabled()` is true while the backbone loads and it
loads partitioned (`zero.Init`). The model is saved by every rank through `Trainer.save_model` (the path that
gathers ZeRO-3 shards) into `out/.saving/`, and moved into `out/` by the main process after a barrier.
`--validation` then reloads the saved folder in the main process alone and evaluates that (the files, not the
sharded in-memory model, which only all ranks together could run), and writes the folder's validation record
(validation.json, `core.validation_record`) that `policy eval --rms` needs to trust the RM. `--validation-share`
holds that set out of `--labels` instead, whole problems at a time.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeFloat, model_validator
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from core.cli import ArgumentParser
from core.config import Config, Seed, add_arguments, build_config, dump_config
from core.errors import exits_on_bad_input
from core.rubric import Rubric, load_rubric
from core.schema import DataError, LabeledItem, write_json, write_jsonl
from core.validation_record import VALIDATION_RECORD_FILE, build_validation_record, write_validation_record
from core.optimizer_steps import RequireOptimizerSteps
from core.trainer_args import checkpointing_args, deepspeed_settings
from hpc_rm.averaging import EpochWeightAverage
from hpc_rm.data import (MISSING, GroupedShuffleSampler, PairDataset, class_weights, group_ids, label_matrix,
                         level_logit_shift, make_collator, read_labels, split_holdout)
from core.reward_config import HeadKind, LoraSpec, Pooling
from core.reward_client import rm_device
from core.reward_model import HPCRewardModel


class TrainConfig(Config):
    labels: Path | None = Field(None, description="interchange JSONL with scores to train on")
    validation: Path | None = Field(None, description="optional interchange JSONL evaluated after training; held-out "
                                                      "human labels also give the folder its validation record "
                                                      "(validation.json), which policy eval --rms needs to trust it")
    validation_share: float = Field(0.0, ge=0, lt=1, description="hold out this share of the --labels' problems "
                                    "(meta.problem_id, else the dialogue; picked by seed) as the validation set "
                                    "instead of --validation; written to <out>/validation/heldout.jsonl")
    annotator: str | None = Field(None, description="use only lines whose annotator starts with this, e.g. 'human:'")
    rubric: str = Field("hpc", description="rubric name in configs/rubrics or a YAML path")
    backbone: str = Field("minilm-l6", description="registry name, hub id or local path of the backbone")
    out: Path | None = Field(None, description="output folder for the trained model (checkpoints under out/checkpoints)")
    head: HeadKind = Field("ordinal", description="'ordinal' (softmax over levels, expected value) or 'regression'")
    head_hidden: int = Field(0, ge=0, description="0: linear heads; >0: one hidden layer of this width per head")
    pooling: Pooling | None = Field(None, description="'mean_pair' | 'mean' (encoders) or 'last' (decoders); default by kind")
    freeze_backbone: bool = Field(False, description="train the heads only on pooled vectors computed once (fast)")
    weights: dict[str, NonNegativeFloat] | None = Field(
        None, description="aggregation weights per dimension (rubric default)")
    epochs: float = Field(4.0, gt=0, description="training epochs")
    average_epochs: int = Field(1, ge=1, description="average the weights at the ends of the last N epochs "
                                "(1: keep the final weights; see hpc_rm/averaging.py)")
    learning_rate: float = Field(5e-5, gt=0, description="peak learning rate of the backbone")
    head_learning_rate: float = Field(1e-3, gt=0, description="learning rate of the freshly initialised heads")
    batch_size: int = Field(16, ge=1, description="pairs per device per step")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of steps with linear warm-up")
    max_length: int = Field(256, ge=16,
                            description="max tokens per (context, response) pair; context is cut from the left")
    max_response_tokens: int = Field(128, ge=1, description="responses longer than this are cut")
    read_context: bool = Field(True, description="false: score the response alone, without the dialogue or profile "
                                                 "(so no Personalization); on MRBench it transferred far better to "
                                                 "dialogues from an unseen source (see README)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout before the heads")
    class_weighting: Literal["balanced", "sqrt", "none"] = Field(
        "balanced", description="per-level loss weights against class imbalance")
    rank_loss_weight: float = Field(
        0.0, ge=0, description="weight of a pairwise (RankNet) loss on the scores of responses to the same context "
        "whose labels differ: the within-group order GRPO's advantages use. >0 batches each context's responses "
        "together")
    rare_level_boost: float = Field(
        0.7, ge=0, le=1, description="how far the predicted level leans to rare levels: 0 = the most probable level, "
        "1 = the argmax of a head trained with balanced weights; 0.7 was picked on each fold of the MRBench "
        "cross-validation from the other folds (see hpc_rm.data.level_logit_shift)")
    lora: LoraSpec = Field(default_factory=LoraSpec, description="LoRA settings (r=0: full fine-tuning)")
    bf16: bool = Field(False, description="bf16 autocast in the forward and backward passes with fp32 master weights "
                       "(CPU bf16 units or a GPU); dtype bfloat16 implies it")
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="backbone weights dtype; bfloat16 also trains under bf16 autocast (the heads stay "
        "float32)")
    gradient_checkpointing: bool = Field(
        False, description="recompute the backbone's layer activations in the backward pass instead of keeping "
        "them (activation checkpointing, non-reentrant): less memory for long inputs and large backbones, ~30% more "
        "compute")
    seed: Seed = Field(0, description="random seed (init, shuffling, dropout)")
    checkpoints: bool = Field(True, description="save resumable checkpoints under out/checkpoints")
    save_steps: int = Field(0, ge=0, description="checkpoint every N steps (0: at each epoch end)")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept")
    resume: bool = Field(False, description="continue from the last checkpoint in out/checkpoints")
    deepspeed: str | None = Field(None, description="DeepSpeed JSON config (GPU runs under accelerate/deepspeed)")
    progress: bool = Field(True, description="show progress bars")
    logging_steps: int = Field(10, ge=1, description="log the loss every N steps")
    report_to: list[str] = Field(default_factory=list, description="trackers, as transformers' report_to: "
                                                                   "tensorboard, wandb, ... (empty: none)")

    @model_validator(mode="after")
    def _one_validation_set(self):
        if self.validation is not None and self.validation_share > 0:
            raise ValueError("give either validation (a file) or validation_share (held out from labels), not both")
        return self

    @model_validator(mode="after")
    def _averaging_needs_whole_weights(self):
        # ZeRO-3 shards every parameter across ranks, so no rank holds the weights to average.
        if self.average_epochs > 1 and self.deepspeed and Path(self.deepspeed).is_file():
            stage = (deepspeed_settings(self.deepspeed).get("zero_optimization") or {}).get("stage", 0)
            if stage == 3:
                raise ValueError(f"average_epochs > 1 does not work with DeepSpeed ZeRO-3 ({self.deepspeed}); "
                                 "use ZeRO-2 or average_epochs: 1")
        return self


def head_loss(model: HPCRewardModel, outputs: dict[str, torch.Tensor], labels: torch.Tensor,
              level_weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over dimensions of each head's class-weighted loss on its labeled entries."""
    losses = []
    for j, name in enumerate(model.dimensions):
        target = labels[:, j]
        mask = target != MISSING
        out = outputs[name]
        # Multiply by zero rather than skip, so every head takes part in the graph (DDP needs that).
        if not mask.any():
            losses.append(out.sum() * 0.0)
            continue
        weight = level_weights[name].to(out.device)
        if model.spec.head == "ordinal":
            per_item = torch.nn.functional.cross_entropy(out[mask].float(), target[mask], reduction="none")
        else:
            score = torch.sigmoid(out[mask].squeeze(-1).float()) * model.max_levels[name]
            per_item = (score - target[mask].float()) ** 2
        w = weight[target[mask]]
        losses.append((per_item * w).sum() / w.sum())
    return torch.stack(losses).mean()


# Scores lie in [0, 2]; dividing their difference by this makes one level of difference a confident order.
RANK_TEMPERATURE = 0.25


def rank_loss(model: HPCRewardModel, outputs: dict[str, torch.Tensor], labels: torch.Tensor,
              groups: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the RankNet loss -log sigmoid((s_i - s_j) / T) over pairs in the batch that answer
    the same context and whose labels say i is better than j (both labeled)."""
    scores = model.scores_from_outputs(outputs)
    same = groups[:, None] == groups[None, :]
    losses = []
    for j, name in enumerate(model.dimensions):
        y = labels[:, j]
        better = same & (y[:, None] > y[None, :]) & (y[None, :] != MISSING)
        diff = (scores[name][:, None] - scores[name][None, :]).float() / RANK_TEMPERATURE
        # Multiplied by zero when no pair qualifies, so the graph is the same on every rank (DDP).
        losses.append(-torch.nn.functional.logsigmoid(diff[better]).mean() if better.any() else diff.sum() * 0.0)
    return torch.stack(losses).mean()


class RewardTrainer(Trainer):
    """Trainer with the masked multi-head loss and a higher learning rate for the new heads."""

    def __init__(self, *args, level_weights: dict[str, torch.Tensor], head_learning_rate: float,
                 rank_loss_weight: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.level_weights = level_weights
        self.head_learning_rate = head_learning_rate
        self.rank_loss_weight = rank_loss_weight

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.rank_loss_weight > 0:
            return GroupedShuffleSampler(dataset.groups, self.args.data_seed)
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        groups = inputs.pop("groups", None)
        outputs = model(**inputs)
        loss = head_loss(self._rm, outputs, labels, self.level_weights)
        if self.rank_loss_weight > 0:
            loss = loss + self.rank_loss_weight * rank_loss(self._rm, outputs, labels, groups)
        return (loss, outputs) if return_outputs else loss

    @property
    def _rm(self) -> HPCRewardModel:
        return self.model  # the unwrapped module (self.model_wrapped is the DDP/DeepSpeed wrapper)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            decay = set(self.get_decay_parameter_names(self.model))
            groups = {}
            for name, param in self.model.named_parameters():
                if not param.requires_grad:
                    continue
                lr = self.head_learning_rate if name.startswith("heads.") else self.args.learning_rate
                wd = self.args.weight_decay if name in decay else 0.0
                groups.setdefault((lr, wd), []).append(param)
            param_groups = [{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()]
            self.optimizer = torch.optim.AdamW(param_groups, lr=self.args.learning_rate)
        return self.optimizer


def _training_args(cfg: TrainConfig, checkpoint_dir: Path, pooled: bool) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(checkpoint_dir), num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio, lr_scheduler_type="linear",
        seed=cfg.seed, data_seed=cfg.seed,
        save_strategy="no" if not cfg.checkpoints else "steps" if cfg.save_steps else "epoch",
        save_steps=cfg.save_steps or 500, save_total_limit=cfg.save_total_limit, logging_steps=cfg.logging_steps,
        report_to=cfg.report_to or [], disable_tqdm=not cfg.progress, use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy="random" if pooled else "group_by_length", remove_unused_columns=False, label_names=["labels"],
        ddp_find_unused_parameters=True, deepspeed=cfg.deepspeed, bf16=cfg.bf16 or cfg.dtype == "bfloat16",
        dataloader_num_workers=0,
        **checkpointing_args(cfg.gradient_checkpointing and not pooled, {"use_reentrant": False}),
    )


def build_model(cfg: TrainConfig, rubric: Rubric) -> HPCRewardModel:
    """A fresh RM (pretrained backbone, untrained heads) as the config describes."""
    from transformers import set_seed

    set_seed(cfg.seed)
    return HPCRewardModel.from_backbone(
        cfg.backbone, rubric, cfg.weights, head=cfg.head, head_hidden=cfg.head_hidden, pooling=cfg.pooling,
        freeze_backbone=cfg.freeze_backbone, max_length=cfg.max_length, max_response_tokens=cfg.max_response_tokens,
        read_context=cfg.read_context, dropout=cfg.dropout, lora=cfg.lora, dtype=cfg.dtype,
        training=json.loads(cfg.model_dump_json()),
    )


def train_reward_model(cfg: TrainConfig, items: list[LabeledItem], rubric: Rubric, checkpoint_dir: Path,
                       pooled: torch.Tensor | None = None) -> HPCRewardModel:
    """Train a fresh RM on `items`; checkpoints go to checkpoint_dir (resumed when cfg.resume).

    With `freeze_backbone`, the pooled vectors are computed once (or passed in as `pooled`, rows matching
    `items`, e.g. shared by the folds of a cross-validation) and only the heads are trained on them."""
    return _train(cfg, items, rubric, checkpoint_dir, pooled)[0]


def _train(cfg: TrainConfig, items: list[LabeledItem], rubric: Rubric, checkpoint_dir: Path,
           pooled: torch.Tensor | None = None) -> tuple[HPCRewardModel, RewardTrainer]:
    # The arguments first: under a ZeRO-3 DeepSpeed config they make the backbone load partitioned (zero.Init).
    args = _training_args(cfg, checkpoint_dir, cfg.freeze_backbone)
    rm = build_model(cfg, rubric)
    labels = label_matrix(items, rubric)
    level_weights = {
        d.name: torch.tensor(class_weights(labels[:, j], len(d.levels), cfg.class_weighting), dtype=torch.float32)
        for j, d in enumerate(rubric.dimensions)
    }
    if cfg.head == "ordinal":
        rm.spec.level_logit_shift = {
            d.name: level_logit_shift(labels[:, j], len(d.levels), cfg.class_weighting, cfg.rare_level_boost)
            for j, d in enumerate(rubric.dimensions)}
    contexts, responses = [i.context for i in items], [i.response for i in items]
    groups = group_ids(items) if cfg.rank_loss_weight > 0 else None
    if cfg.freeze_backbone:
        if pooled is None:
            pooled = rm.embed_pairs(contexts, responses, batch_size=cfg.batch_size, progress=cfg.progress)
        dataset = PairDataset.from_pooled(pooled, labels, groups)
    else:
        dataset = PairDataset(rm.encode(contexts, responses), labels, groups)
    trainer = RewardTrainer(
        model=rm, args=args, train_dataset=dataset,
        data_collator=make_collator(rm.tokenizer), level_weights=level_weights,
        head_learning_rate=cfg.head_learning_rate, rank_loss_weight=cfg.rank_loss_weight,
        callbacks=[RequireOptimizerSteps(f"epochs {cfg.epochs}, {len(items)} items, batch_size {cfg.batch_size}, "
                                         f"grad_accum {cfg.grad_accum}")],
    )
    last_checkpoint = get_last_checkpoint(str(checkpoint_dir)) if cfg.resume and checkpoint_dir.is_dir() else None
    averaging = None
    if cfg.average_epochs > 1:
        averaging = EpochWeightAverage(rm, cfg.average_epochs, cfg.epochs)
        if last_checkpoint:
            averaging.load(last_checkpoint)
        trainer.add_callback(averaging)
    output = trainer.train(resume_from_checkpoint=last_checkpoint)
    if averaging is not None:
        output.metrics["averaged_epochs"] = averaging.apply()
    rm.train_metrics = output.metrics  # runtime, samples/s, loss: kept in train_summary.json
    rm.eval()
    rm.is_main_process = trainer.is_world_process_zero()
    rm.world_size = trainer.args.world_size
    return rm, trainer


SAVING_DIR = ".saving"
HELDOUT_FILE = "heldout.jsonl"  # under out/validation: the labels --validation-share held out


def save_trained(trainer: Trainer, out: Path) -> None:
    """Save the trained model into `out` (config.json, weights, tokenizer). Call it on every rank:
    `Trainer.save_model` gathers ZeRO-3 shards collectively, and the main process writes `out/.saving/`; after a
    barrier the main process replaces the model files in `out` with those (config.json last, so a folder with a
    new config.json holds the new weights), and removes `.saving`."""
    from core.reward_config import CONFIG_FILE

    tmp = out / SAVING_DIR
    main = trainer.is_world_process_zero()
    if main and tmp.exists():
        shutil.rmtree(tmp)  # left by an interrupted save
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    trainer.accelerator.wait_for_everyone()
    if main:
        (tmp / "training_args.bin").unlink(missing_ok=True)  # Trainer's pickle of its arguments; the YAML is kept
        stale = [p for p in out.iterdir() if p.is_file() and (p.name == CONFIG_FILE or p.name.startswith("model")
                                                              and ".safetensors" in p.name)]
        for path in stale:
            path.unlink()
        names = sorted(p.name for p in tmp.iterdir())
        for name in sorted(names, key=lambda n: n == CONFIG_FILE):
            os.replace(tmp / name, out / name)
        tmp.rmdir()
    trainer.accelerator.wait_for_everyone()


def train_and_save(cfg: TrainConfig, items: list[LabeledItem], rubric: Rubric) -> HPCRewardModel:
    """Train on every rank, save into cfg.out through the trainer (every rank), write train_config.yaml (main
    process); returns the in-memory model (sharded under ZeRO-3)."""
    rm, trainer = _train(cfg, items, rubric, cfg.out / "checkpoints")
    save_trained(trainer, cfg.out)
    if rm.is_main_process:
        (cfg.out / "train_config.yaml").write_text(dump_config(cfg))
    return rm


def _leave_deepspeed() -> None:
    """After training: a later from_pretrained in this process must load plainly, not into zero.Init."""
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled, unset_hf_deepspeed_config

    if is_deepspeed_zero3_enabled():
        unset_hf_deepspeed_config()


def validation_set(cfg: TrainConfig, items: list[LabeledItem], rubric: Rubric
                   ) -> tuple[list[LabeledItem], list[LabeledItem] | None, Path | None]:
    """(training items, validation items, where the validation labels are): the --validation file, the
    --validation-share held out from the labels by problem, or none."""
    if cfg.validation is not None:
        return items, read_labels(cfg.validation, rubric, cfg.annotator), cfg.validation
    if cfg.validation_share > 0:
        try:
            train, held = split_holdout(items, cfg.validation_share, cfg.seed)
        except ValueError as err:
            raise DataError(f"{cfg.labels}: {err} (for validation_share)") from None
        return train, held, cfg.out / "validation" / HELDOUT_FILE
    return items, None, None


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m hpc_rm train", description=__doc__.split("\n")[0])
    add_arguments(parser, TrainConfig)
    cfg = build_config(TrainConfig, parser.parse_args(argv))
    if cfg.labels is None or cfg.out is None:
        parser.error("--labels and --out are required (in the YAML config or as flags)")
    rubric = load_rubric(cfg.rubric)
    items = read_labels(cfg.labels, rubric, cfg.annotator)
    items, validation, validation_path = validation_set(cfg, items, rubric)
    rm = train_and_save(cfg, items, rubric)
    main_process, world_size, metrics = rm.is_main_process, rm.world_size, rm.train_metrics
    del rm
    if not main_process:
        return
    (cfg.out / VALIDATION_RECORD_FILE).unlink(missing_ok=True)  # a record of earlier weights says nothing of these
    summary = {"model": str(cfg.out), "train_items": len(items), "labels": str(cfg.labels),
               "world_size": world_size, "train_metrics": metrics}
    if validation is not None:
        from hpc_rm.evaluate import evaluate_model

        if cfg.validation is None:
            write_jsonl(validation_path, validation)
        # The saved folder, reloaded by this process alone: what a user of the model gets, and no forward through
        # a model sharded over ranks that have finished.
        _leave_deepspeed()
        saved = HPCRewardModel.from_pretrained(cfg.out, device=rm_device("auto"))
        summary["validation"] = evaluate_model(saved, validation, cfg.out / "validation")
        write_validation_record(cfg.out, build_validation_record(
            summary["validation"], rubric.name, [item.annotator for item in validation], str(validation_path),
            "hpc_rm train --validation"))
    write_json(cfg.out / "train_summary.json", summary)
    print(f"saved reward model to {cfg.out}")
    if "validation" in summary:
        mean_f1 = np.mean([m["macro_f1"] for m in summary["validation"]["dimensions"].values()])
        print(f"validation mean macro-F1 {mean_f1:.3f}")
