"""How a stage gets a reward model to score with: a folder loaded onto a device in a dtype, or the URL of a
`python -m hpc_rm serve` server.

- `load_scoring_rm(path_or_url, device, dtype)`: a folder is loaded with `HPCRewardModel.from_pretrained` straight
  onto `device` (default: this process's accelerate device, i.e. the local rank's GPU under torchrun / accelerate)
  with its backbone in `dtype` ("auto": bf16 on CUDA, fp32 elsewhere; pooling and heads stay fp32); an `http://` or
  `https://` URL gives a `RemoteRewardModel`.
- `RemoteRewardModel(url)`: what the policy stage reads from a reward model, over HTTP: `score(contexts,
  responses)` (per-dimension arrays in input order), `dimensions`, `weights`, `rubric`, `reward(preds, weights)`
  and `spec` (`max_response_tokens`, `max_length`, `read_context`, `backbone`). Connection errors, time-outs and
  408/429/5xx answers are retried with exponential backoff and jitter; a 400 (a bad request) is not. A server
  that does not answer when the client starts is one error line naming the URL (`RewardServerUnavailable`).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import torch

from core.config import is_url  # noqa: F401 (callers ask reward_client whether a reward_model is served)
from core.errors import ModelNotFoundError
from core.models import pick_device, pick_dtype
from core.reward_config import check_weights, weighted_reward
from core.rubric import Rubric

RM_DTYPES = ("auto", "float32", "bfloat16")
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def rm_device(device: str | torch.device | None = None) -> torch.device:
    """Where to score: None is accelerate's device for this process (the local rank's GPU in a distributed run); a
    device option (auto | cpu | cuda | cuda:N | spread, see `core.models.pick_device`) is resolved, `spread` to the
    first GPU (a reward model fits one); a torch.device is kept."""
    if device is None:
        from accelerate import PartialState

        return PartialState().device
    if isinstance(device, torch.device):
        return device
    picked = pick_device(device)
    return torch.device("cuda" if picked == "spread" else picked)


def rm_placement(dtype: str, device: str | torch.device) -> tuple[torch.device, torch.dtype]:
    """(device, backbone dtype) for scoring on a resolved device: "auto" is bf16 on CUDA (half the memory and weight
    traffic; scores moved by <0.01 on a 0-2 scale in benchmarks/) and fp32 on CPU (as the CPU demo has always
    scored), as `core.models.pick_dtype` decides for every stage."""
    if dtype not in RM_DTYPES:
        raise ValueError(f"rm dtype must be one of {RM_DTYPES}, got {dtype!r}")
    device = torch.device(device)
    return device, getattr(torch, pick_dtype(dtype, "cpu" if device.type == "cpu" else "cuda"))


def load_scoring_rm(path: str, device: str | torch.device | None = None, dtype: str = "auto"):
    """A reward model ready to score: `RemoteRewardModel` for a URL, else the folder's `HPCRewardModel` on
    `rm_device(device)` with its backbone in `dtype` (see `rm_placement`)."""
    if is_url(path):
        return RemoteRewardModel(path)
    from core.reward_model import HPCRewardModel

    device, torch_dtype = rm_placement(dtype, rm_device(device))
    # Built and filled in the target dtype on the target device (heads stay fp32): an fp32 load then a cast would
    # put twice the bf16 size on the GPU first (131 GB for a 32B RM on an 80 GB GPU).
    return HPCRewardModel.from_pretrained(path, dtype=torch_dtype, device=device).eval()


class RewardServerUnavailable(ModelNotFoundError):
    """No `hpc_rm serve` answers at the URL when a run starts (bad input: one error line naming the URL)."""


class RewardServerError(RuntimeError):
    """Scoring failed for good: retries exhausted, or the server refused the request (HTTP 400)."""


@dataclass(frozen=True)
class RemoteSpec:
    """The parts of the served model's spec that callers read."""

    backbone: str
    max_length: int
    max_response_tokens: int
    read_context: bool


class RemoteRewardModel:
    """A reward model served by `python -m hpc_rm serve`, used like an in-process `HPCRewardModel` for scoring.
    `stats` counts HTTP attempts, retries and scored pairs."""

    def __init__(self, url: str, *, timeout_s: float = 600.0, max_retries: int = 6, backoff_base_s: float = 1.0,
                 backoff_max_s: float = 30.0, start_attempts: int = 3):
        import httpx

        self.url = url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.stats = {"calls": 0, "retries": 0, "pairs": 0}
        self._client = httpx.Client(timeout=timeout_s)
        info = self._info_at_start(start_attempts)
        try:
            self.rubric = Rubric.model_validate(info["rubric"])
            self._weights = {d: float(info["weights"][d]) for d in self.rubric.names}
            self.spec = RemoteSpec(backbone=str(info["backbone"]), max_length=int(info["max_length"]),
                                   max_response_tokens=int(info["max_response_tokens"]),
                                   read_context=bool(info["read_context"]))
            self.max_request_pairs = int(info["max_request_pairs"])
        except (KeyError, TypeError, ValueError) as err:
            raise RewardServerUnavailable(self.url, f"reward model {self.url!r}: GET /info did not describe a "
                                                    f"reward model ({type(err).__name__}: {err}): is this an "
                                                    f"`hpc_rm serve` server?") from None
        self.info = info

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0.5, 1.0) * min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt)

    def _info_at_start(self, attempts: int) -> dict:
        import httpx

        problem = ""
        for attempt in range(max(1, attempts)):
            self.stats["calls"] += 1
            try:
                response = self._client.get(self.url + "/info")
            except (httpx.TimeoutException, httpx.TransportError) as err:
                problem = f"{type(err).__name__}: {err}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        problem = "GET /info did not return JSON"
                        break
                problem = f"GET /info answered HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUS:
                    break
            if attempt + 1 < attempts:
                time.sleep(self._backoff(attempt))
        raise RewardServerUnavailable(self.url, f"reward model {self.url!r}: no reward server answers ({problem}); "
                                                "start one with `python -m hpc_rm serve --model RM_FOLDER --host HOST "
                                                "--port PORT` and give its address")

    def _post_score(self, contexts: list[str], responses: list[str]) -> dict[str, list[float]]:
        import httpx

        problem = ""
        for attempt in range(self.max_retries + 1):
            self.stats["calls"] += 1
            try:
                response = self._client.post(self.url + "/score", json={"contexts": contexts,
                                                                        "responses": responses})
            except (httpx.TimeoutException, httpx.TransportError) as err:
                problem = f"{type(err).__name__}: {err}"
            else:
                if response.status_code == 200:
                    return response.json()["scores"]
                try:
                    detail = response.json().get("error", "")
                except ValueError:
                    detail = response.text[:200]
                problem = f"HTTP {response.status_code}: {detail}"
                if response.status_code not in RETRY_STATUS:
                    raise RewardServerError(f"reward model {self.url}: POST /score refused: {problem}")
            if attempt < self.max_retries:
                self.stats["retries"] += 1
                time.sleep(self._backoff(attempt))
        raise RewardServerError(f"reward model {self.url}: POST /score failed after {self.max_retries + 1} "
                                f"attempts: {problem}")

    # -- what the policy stage reads ------------------------------------------------------------------------------
    @property
    def dimensions(self) -> list[str]:
        return self.rubric.names

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def score(self, contexts: list[str], responses: list[str], batch_size: int | None = None,
              progress: bool = False) -> dict[str, np.ndarray]:
        """Score per dimension (float32, input order). `batch_size` is the server's to choose (its --batch-size);
        the argument is accepted for the in-process signature."""
        contexts, responses = list(contexts), list(responses)
        if len(contexts) != len(responses):
            raise ValueError(f"{len(contexts)} contexts but {len(responses)} responses")
        out: dict[str, list[float]] = {d: [] for d in self.dimensions}
        for start in range(0, len(contexts), self.max_request_pairs):
            chunk = self._post_score(contexts[start:start + self.max_request_pairs],
                                     responses[start:start + self.max_request_pairs])
            for d in self.dimensions:
                out[d].extend(chunk[d])
        self.stats["pairs"] += len(contexts)
        return {d: np.asarray(v, dtype=np.float32) for d, v in out.items()}

    def reward(self, preds: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
        """Weighted sum of the per-dimension scores (weights default to the served model's)."""
        weights = check_weights(self.dimensions, weights) if weights is not None else self._weights
        return weighted_reward(preds, weights)

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RemoteRewardModel({self.url!r})"
