"""Labeled items as training data: label matrices with missing labels masked, grouped splits, class weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.rubric import Rubric
from core.schema import DataError, LabeledItem, read_labels_jsonl

MISSING = -1  # label value of a dimension an annotator did not rate; the loss masks it out


def read_labels(path: Path | str, rubric: Rubric, annotator_prefix: str | None = None) -> list[LabeledItem]:
    """Labeled lines of an interchange file (optionally only one annotator family), checked against the rubric.
    A `.json` file is read as the MRBench release (`core.sources.load_mrbench`), so it needs no conversion."""
    if Path(path).suffix == ".json":
        from core.sources import load_mrbench

        source = load_mrbench(path, rubric)
    else:
        source = read_labels_jsonl(path, check=rubric.check_item)  # a bad score or a clashing id names its lines
    items = []
    for item in source:
        if annotator_prefix and not (item.annotator or "").startswith(annotator_prefix):
            continue
        if item.scores:
            items.append(item)
    if not items:
        who = f" from annotators starting with {annotator_prefix!r}" if annotator_prefix else ""
        raise DataError(f"{path}: no labels for any dimension of rubric {rubric.name} ({rubric.names}){who}")
    return items


def label_matrix(items: list[LabeledItem], rubric: Rubric) -> np.ndarray:
    """(items, dimensions) int array in rubric order; MISSING where an item has no label for a dimension."""
    labels = np.full((len(items), len(rubric.names)), MISSING, dtype=np.int64)
    for i, item in enumerate(items):
        for j, name in enumerate(rubric.names):
            value = (item.scores or {}).get(name)
            if value is not None:
                labels[i, j] = value
    return labels


def group_of(item: LabeledItem) -> str:
    """The unit that must not straddle a split: meta['group'] (e.g. the dialogue), else the id before its last ':'."""
    group = item.meta.get("group")
    if group is not None:
        return str(group)
    return item.id.rsplit(":", 1)[0] if ":" in item.id else item.id


def holdout_unit(item: LabeledItem) -> str:
    """What a held-out set keeps whole: the math problem (meta['problem_id']: MRBench dialogues quoting one GSM8K
    problem), else the dialogue (`group_of`)."""
    problem = item.meta.get("problem_id")
    return f"problem:{problem}" if problem is not None else group_of(item)


def split_holdout(items: list[LabeledItem], share: float, seed: int) -> tuple[list[LabeledItem], list[LabeledItem]]:
    """(train, held out): about `share` of the units (`holdout_unit`), picked by seed, held out whole."""
    units = sorted({holdout_unit(item) for item in items})
    if len(units) < 2:
        raise ValueError(f"a held-out split needs at least 2 problems or dialogues, got {len(units)}")
    n_held = min(len(units) - 1, max(1, round(share * len(units))))
    held = set(np.random.default_rng(seed).permutation(units)[:n_held].tolist())
    return ([item for item in items if holdout_unit(item) not in held],
            [item for item in items if holdout_unit(item) in held])


def grouped_folds(items: list[LabeledItem], k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, test) index pairs; no group appears on both sides, groups shuffled by seed."""
    from sklearn.model_selection import GroupKFold

    groups = [group_of(item) for item in items]
    if len(set(groups)) < k:
        raise ValueError(f"{k}-fold split needs at least {k} groups, got {len(set(groups))}")
    folds = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(items)), groups=groups))


def folds_by_meta(items: list[LabeledItem], key: str) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
    """(values, folds): one (train, test) index pair per value of meta[key], testing on that value and training on
    the others, e.g. 'origin' asks whether an RM carries over to dialogues from another source. Every item needs
    the key, and no group may hold two values (it would straddle train and test)."""
    values, value_of_group = [], {}
    for item in items:
        if key not in item.meta:
            raise ValueError(f"item {item.id}: field meta.{key}: missing (leaving out by {key!r} needs it on every "
                             "item)")
        value = str(item.meta[key])
        first = value_of_group.setdefault(group_of(item), value)
        if first != value:
            raise ValueError(f"item {item.id}: field meta.{key}: {value!r}, but its group {group_of(item)!r} also has "
                             f"{first!r}; a group must not straddle train and test")
        values.append(value)
    names = sorted(set(values))
    if len(names) < 2:
        raise ValueError(f"leaving out by meta.{key} needs at least 2 values, got {names}")
    column = np.array(values)
    return names, [(np.flatnonzero(column != name), np.flatnonzero(column == name)) for name in names]


def grouped_split(items: list[LabeledItem], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One (train, test) index split by group."""
    from sklearn.model_selection import GroupShuffleSplit

    groups = [group_of(item) for item in items]
    split = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    return next(split.split(np.zeros(len(items)), groups=groups))


# A level's loss weight is (inverse frequency) ** power: the one definition of each class_weighting scheme,
# read by the loss weights and by the readout shift that undoes them.
CLASS_WEIGHT_POWER = {"balanced": 1.0, "sqrt": 0.5, "none": 0.0}


def class_weights(labels: np.ndarray, n_levels: int, scheme: str) -> np.ndarray:
    """Per-level loss weights for one dimension: 'balanced' (inverse frequency), 'sqrt' (its square root), 'none'.

    Levels absent from the training labels get weight 1; weights are scaled to average 1 over labeled items.
    """
    present = labels[labels != MISSING]
    weights = np.ones(n_levels, dtype=np.float64)
    if CLASS_WEIGHT_POWER[scheme] == 0 or present.size == 0:
        return weights
    counts = np.bincount(present, minlength=n_levels).astype(np.float64)
    seen = counts > 0
    weights[seen] = (present.size / (seen.sum() * counts[seen])) ** CLASS_WEIGHT_POWER[scheme]
    weights /= weights[present].mean()
    return weights


def level_logit_shift(labels: np.ndarray, n_levels: int, scheme: str, rare_level_boost: float) -> list[float]:
    """What to add to an ordinal head's logits before the argmax that picks a level.

    A head trained with weights ~ frequency**-a has logits shifted by -a*log(frequency) from calibrated ones.
    Picking levels from calibrated logits shifted by -b*log(frequency) instead (b = rare_level_boost) means
    adding (a - b)*log(frequency): b = a leaves the argmax as trained, b = 0 is the calibrated (most probable)
    level, which rarely names a rare level; macro-F1 is best in between (the F1-optimal threshold of a class
    is below 0.5: Lipton et al. 2014). Frequencies are add-one smoothed so an unseen level stays possible.
    """
    present = labels[labels != MISSING]
    counts = np.bincount(present, minlength=n_levels).astype(np.float64) + 1.0
    shift = (CLASS_WEIGHT_POWER[scheme] - rare_level_boost) * np.log(counts / counts.sum())
    return [round(float(x), 6) for x in shift - shift.mean()]


class PairDataset:
    """Encoded pairs (or pooled vectors of a frozen backbone) + label rows, as the transformers Trainer wants them.
    With `groups` (an int per item: which context it answers), each row also carries its group for the ranking loss."""

    def __init__(self, features: list[dict], labels: np.ndarray, groups: np.ndarray | None = None):
        if len(features) != len(labels):
            raise ValueError(f"{len(features)} inputs but {len(labels)} label rows")
        self.features, self.labels, self.groups = features, labels, groups

    @classmethod
    def from_pooled(cls, pooled, labels: np.ndarray, groups: np.ndarray | None = None) -> "PairDataset":
        return cls([{"pooled": row} for row in pooled], labels, groups)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        row = {**self.features[i], "labels": self.labels[i].tolist()}
        if self.groups is not None:
            row["group"] = int(self.groups[i])
        return row


def group_ids(items: list[LabeledItem]) -> np.ndarray:
    """An int per item, equal for items that answer the same context (`group_of`)."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(group_of(item), len(index)) for item in items], dtype=np.int64)


class GroupedShuffleSampler:
    """Item order for training with the ranking loss: groups in a random order, each group's items together
    (shuffled), so a batch holds several responses to the same context. Reshuffled per epoch (`set_epoch`,
    which the Trainer calls), reproducibly from the seed, so a resumed run sees the same order."""

    def __init__(self, groups: np.ndarray, seed: int):
        self.seed, self.epoch, self.size = seed, 0, len(groups)
        self.members: dict[int, list[int]] = {}
        for i, g in enumerate(groups):
            self.members.setdefault(int(g), []).append(i)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        for g in rng.permutation(list(self.members)):
            yield from (int(i) for i in rng.permutation(self.members[g]))


def make_collator(tokenizer):
    import torch

    from core.reward_encoding import pad_batch

    def collate(rows: list[dict]) -> dict:
        extra = {"labels": torch.tensor([row["labels"] for row in rows], dtype=torch.long)}
        if "group" in rows[0]:
            extra["groups"] = torch.tensor([row["group"] for row in rows], dtype=torch.long)
        if "pooled" in rows[0]:
            return {"pooled": torch.stack([row["pooled"] for row in rows]), **extra}
        batch = pad_batch(tokenizer, [{k: v for k, v in row.items() if k not in ("labels", "group")} for row in rows])
        return {**batch, **extra}

    return collate
