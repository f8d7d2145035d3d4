"""The reward model's description apart from its weights: `RMSpec` (the validated view the code reads),
`HPCRewardConfig` (the transformers config a folder's `config.json` holds, registered as model_type "hpc_reward"),
and reading a folder's config or spec without loading any weights (`check_rm_folder`, `read_rm_config`,
`read_rm_spec`). The model itself is in core/reward_model.py."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoConfig, PretrainedConfig

from core.errors import ModelNotFoundError
from core.rubric import Rubric

HeadKind = Literal["ordinal", "regression"]
Pooling = Literal["mean_pair", "mean", "last"]
CONFIG_FILE = "config.json"
LEGACY_CONFIG_FILE = "rm_config.json"  # the layout before HPCRewardConfig (see hpc_rm/convert.py)


class LoraSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(0, ge=0, description="LoRA rank; 0 = full fine-tuning (right for small backbones)")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] | str = Field("all-linear", description="modules LoRA adapts (peft syntax)")


class RMSpec(BaseModel):
    """Everything that describes a reward model apart from its weights and its backbone's architecture: the
    validated view of HPCRewardConfig that the code reads (`HPCRewardModel.spec`)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    backbone: str = Field(description="registry name, hub id or path of the backbone it was built from")
    decoder: bool = Field(description="True for decoder backbones (they need 'last' pooling)")
    pooling: Pooling = Field("mean_pair", description="how token states become one vector")
    rubric: Rubric
    head: HeadKind = "ordinal"
    head_hidden: int = Field(0, description="0: linear heads; >0: one hidden layer of this width per head")
    freeze_backbone: bool = Field(False, description="train the heads only (backbone weights stay pretrained)")
    weights: dict[str, float] = Field(description="aggregation weights per dimension")
    max_length: int = 512
    max_response_tokens: int = 192
    read_context: bool = Field(True, description="False: the context is not read, the response is scored alone")
    dropout: float = 0.1
    lora: LoraSpec = Field(default_factory=LoraSpec)
    training: dict = Field(default_factory=dict, description="the training config used, for the record")
    level_logit_shift: dict[str, list[float]] = Field(
        default_factory=dict, description="per dimension, added to the ordinal head's logits before the argmax that "
        "picks a level (set by training from the label frequencies; see hpc_rm.data.level_logit_shift); scores "
        "are not affected")


class HPCRewardConfig(PretrainedConfig):
    """The reward model's transformers config: RMSpec's fields as plain JSON values, the backbone's own config
    (`backbone_config`, a dict with its `model_type`) and `hidden_size` (the backbone's; DeepSpeed sizes its
    "auto" buckets from it)."""

    model_type = "hpc_reward"

    backbone: str = ""
    decoder: bool = False
    pooling: str = "mean_pair"
    rubric: dict | None = None
    head: str = "ordinal"
    head_hidden: int = 0
    freeze_backbone: bool = False
    weights: dict | None = None
    max_length: int = 512
    max_response_tokens: int = 192
    read_context: bool = True
    dropout: float | int = 0.1
    lora: dict | None = None
    training: dict | None = None
    level_logit_shift: dict | None = None
    backbone_config: dict | None = None
    hidden_size: int | None = None


AutoConfig.register(HPCRewardConfig.model_type, HPCRewardConfig, exist_ok=True)


def spec_from_config(config: HPCRewardConfig) -> RMSpec:
    values = {name: getattr(config, name, None) for name in RMSpec.model_fields}
    return RMSpec.model_validate({k: v for k, v in values.items() if v is not None})


def _spec_values(spec: RMSpec) -> dict:
    return json.loads(spec.model_dump_json())


def _backbone_config_dict(backbone_config) -> dict:
    values = backbone_config.to_dict()
    values.pop("dtype", None)  # the weights' dtype is chosen when loading
    values.pop("transformers_version", None)
    return values


def _hidden_size(backbone_config) -> int:
    text = backbone_config.get_text_config() if hasattr(backbone_config, "get_text_config") else backbone_config
    return int(text.hidden_size)


def check_rm_folder(path: str | Path) -> Path:
    """The folder, or ModelNotFoundError (bad input: one error line) when it holds no reward model; a folder in
    the old layout gets a line that says how to convert it."""
    path = Path(path)
    config = path / CONFIG_FILE
    if config.is_file():
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except (ValueError, AttributeError):
            model_type = None
        if model_type == HPCRewardConfig.model_type:
            return path
        raise ModelNotFoundError(str(path), f"reward model {str(path)!r}: not a reward model folder ({CONFIG_FILE} "
                                            f"has model_type {model_type!r}, not {HPCRewardConfig.model_type!r})")
    if (path / LEGACY_CONFIG_FILE).is_file():
        raise ModelNotFoundError(str(path), f"reward model {str(path)!r}: a folder in the old layout "
                                            f"({LEGACY_CONFIG_FILE}, written before the reward model was a "
                                            f"transformers model); convert it once with `python -m hpc_rm convert "
                                            f"{path} --out NEW_FOLDER` and use NEW_FOLDER")
    raise ModelNotFoundError(str(path), f"reward model {str(path)!r}: not a reward model folder (no {CONFIG_FILE}; "
                                        f"`python -m hpc_rm train` writes one)")


def read_rm_config(path: str | Path) -> HPCRewardConfig:
    """A reward model folder's config without loading any weights."""
    return HPCRewardConfig.from_json_file(str(check_rm_folder(path) / CONFIG_FILE))


def read_rm_spec(path: str | Path) -> RMSpec:
    """A reward model folder's spec (rubric, backbone, heads) without loading any weights."""
    return spec_from_config(read_rm_config(path))


def check_weights(dimensions: list[str], weights: dict[str, float]) -> dict[str, float]:
    """Aggregation weights naming exactly `dimensions`, in their order, as floats (ValueError otherwise)."""
    if set(weights) != set(dimensions):
        raise ValueError(f"weights must name exactly the dimensions {dimensions}, got {sorted(weights)}")
    return {name: float(weights[name]) for name in dimensions}


def weighted_reward(preds: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The reward: the weighted sum of per-dimension scores (float64), for in-process and served models alike."""
    return sum(weight * np.asarray(preds[name], dtype=np.float64) for name, weight in weights.items())
