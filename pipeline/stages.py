"""The pipeline's stages and the files that connect them: each stage reads the previous stages' outputs in one
run directory. The stage list is the one place that says which command writes which file."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, model_validator

from core.config import Config, Seed, is_url, load_yaml
from pipeline.runner import StagePlan

STAGE_ORDER = [
    "data", "generate", "annotate", "mrbench_human", "mrbench_label", "agreement", "consistency", "rm",
    "mrbench_rm", "sft", "grpo", "eval", "sweep", "classroom", "classroom_eval", "compare",
]
# What a run without --only runs (`make demo`). The classroom and the baselines' comparison stay out: the demo's
# stages already fill its 30-minute budget on 2 CPU cores; `make classroom` and `make compare` run them.
DEMO_STAGES = [name for name in STAGE_ORDER if not name.startswith("classroom") and name != "compare"]
# Run only where the config lists them. `sft`: the SFT warm start on MathDial teacher turns that GRPO and the sweep
# then start from (the tiny demo's: untrained, SmolLM2-135M does not end its turns; issue #33).
OPT_IN_STAGES = {"sft"}


def default_stages(cfg: "PipelineConfig") -> list[str]:
    """What a run without --only runs: the demo's stages, the opt-in ones only where the config lists them."""
    return [name for name in DEMO_STAGES if name not in OPT_IN_STAGES or name in cfg.stages]


class Launcher(Config):
    """How a stage's command starts: one Python process, or one process per GPU through torchrun or accelerate."""

    kind: Literal["python", "torchrun", "accelerate"] = Field(
        "python", description="python: `python -m STAGE ...` (one process); torchrun: `python -m torch.distributed.run "
                              "--nproc-per-node N -m STAGE ...` (torchrun); accelerate: `python -m "
                              "accelerate.commands.launch --config_file FILE --num_processes N -m STAGE ...` "
                              "(accelerate launch)")
    processes: int = Field(1, ge=1, description="processes per node, one per GPU (torchrun --nproc-per-node; "
                                                "accelerate --num_processes is this times nnodes)")
    nnodes: int = Field(1, ge=1, description="machines the stage runs on; run the same pipeline command on each, "
                                             "with its own node_rank (`python -m pipeline run --node-rank N`)")
    node_rank: int = Field(0, ge=0, description="this machine's rank among nnodes (0: the main one)")
    master_addr: str | None = Field(None, description="address of node 0 (required when nnodes > 1)")
    master_port: int = Field(29500, ge=1, le=65535, description="rendezvous port on node 0 (nnodes > 1)")
    config_file: Path | None = Field(None, description="accelerate's config file (--config_file), e.g. "
                                                       "configs/accelerate/zero3.yaml; accelerate only")
    devices: str | None = Field(None, description="CUDA_VISIBLE_DEVICES for this stage, e.g. '0,1,2,3' (None: all)")

    @model_validator(mode="before")
    @classmethod
    def _kind_alone(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value  # `launcher: torchrun` is short for {kind: ...}

    @model_validator(mode="after")
    def _consistent(self) -> "Launcher":
        if self.kind == "python" and (self.processes > 1 or self.nnodes > 1):
            raise ValueError("a python launcher runs one process: use kind torchrun or accelerate for processes > 1")
        if self.config_file is not None and self.kind != "accelerate":
            raise ValueError("config_file is accelerate's: set kind: accelerate or drop it")
        if self.nnodes > 1 and not self.master_addr:
            raise ValueError("nnodes > 1 needs master_addr (the address of node 0)")
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nnodes {self.nnodes}")
        if self.devices is not None and self.kind != "python" and len(self.devices.split(",")) < self.processes:
            raise ValueError(f"devices {self.devices!r} name fewer GPUs than processes ({self.processes})")
        return self

    @property
    def world_size(self) -> int:
        return self.processes * self.nnodes

    def argv(self, module: str, args: list) -> list[str]:
        """The command line that starts `python -m module args` under this launcher."""
        env = ["env", f"CUDA_VISIBLE_DEVICES={self.devices}"] if self.devices is not None else []
        tail = ["-m", module, *[str(a) for a in args]]
        if self.kind == "python":
            return [*env, sys.executable, *tail]
        if self.kind == "torchrun":
            nodes = (["--standalone"] if self.nnodes == 1 else
                     ["--nnodes", str(self.nnodes), "--node-rank", str(self.node_rank),
                      "--master-addr", str(self.master_addr), "--master-port", str(self.master_port)])
            return [*env, sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(self.processes),
                    *nodes, *tail]
        config = ["--config_file", str(self.config_file)] if self.config_file else []
        nodes = ([] if self.nnodes == 1 else
                 ["--num_machines", str(self.nnodes), "--machine_rank", str(self.node_rank),
                  "--main_process_ip", str(self.master_addr), "--main_process_port", str(self.master_port)])
        return [*env, sys.executable, "-m", "accelerate.commands.launch", *config,
                "--num_processes", str(self.world_size), *nodes, *tail]


class Server(Config):
    """A server the stage's processes talk to, started by hand (on this or another machine) before the stage:
    `dry-run` prints its command line and `plan` counts its GPUs."""

    kind: Literal["vllm", "rm"] = Field(description="vllm: `trl vllm-serve` with the GRPO policy (vllm.mode: server); "
                                                   "rm: `python -m hpc_rm serve` with the run's reward model (the "
                                                   "GRPO config's reward_model is its http:// address)")
    devices: str | None = Field(None, description="CUDA_VISIBLE_DEVICES on the server's machine, e.g. '0,1,2,3'")
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs one model copy is split over")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="vllm: share of each GPU's memory vLLM "
                                                                       "takes (weights + KV cache + activations)")
    max_model_len: int | None = Field(None, ge=1, description="vllm: context window; None: the longest prompt plus "
                                                               "max_completion_length of the GRPO config")
    batch_size: int | None = Field(None, ge=1, description="rm: pairs per forward pass (None: the GRPO config's "
                                                           "rm_batch_size)")

    @property
    def gpus(self) -> int:
        return self.tensor_parallel_size if self.kind == "vllm" else 1

    @model_validator(mode="after")
    def _devices_match(self) -> "Server":
        if self.devices is not None and len(self.devices.split(",")) != self.gpus:
            raise ValueError(f"a {self.kind} server with {self.gpus} GPU(s) (tensor_parallel_size for vllm, one for "
                             f"rm) names devices {self.devices!r}")
        return self


class StageSettings(Config):
    config: Path | None = Field(None, description="the stage's own YAML config (its CLI's --config)")
    args: dict[str, Any] = Field(default_factory=dict, description="extra flags for the stage's CLI: flag -> value")
    launcher: Launcher = Field(default_factory=Launcher, description="how the stage starts: python (one process), "
                                                                     "torchrun or accelerate (one process per GPU)")
    servers: list[Server] = Field(default_factory=list, description="servers this stage needs running (vLLM, RM): "
                                                                    "printed by --dry-run, counted by `plan`")


class Hardware(Config):
    """The GPU machines `python -m pipeline plan` checks every stage against."""

    gpu_memory_gb: float = Field(80.0, gt=0, description="memory of one GPU in GB (1e9 bytes), e.g. 80 for "
                                                         "A100/H100 80GB, 141 for H200")
    gpus_per_node: int = Field(8, ge=1, description="GPUs per machine")
    nodes: int = Field(1, ge=1, description="machines available to the run")
    cpu_memory_gb: float | None = Field(None, gt=0, description="host memory per machine in GB, checked against "
                                                               "DeepSpeed's CPU offload needs (None: not checked)")
    overhead_gb: float = Field(3.0, ge=0, description="per-GPU memory no formula counts: CUDA context, NCCL buffers, "
                                                      "allocator fragmentation")
    vllm_overhead_gb: float = Field(2.0, ge=0, description="per-GPU memory inside vLLM's share that is neither "
                                                           "weights nor KV cache (activations, CUDA graphs)")
    prompt_tokens: int = Field(512, ge=1, description="prompt length assumed when a GRPO config sets no "
                                                      "max_prompt_tokens")


class PipelineConfig(Config):
    """A whole run: which config each stage uses, plus per-stage flag overrides."""

    name: str = Field("tiny", description="name shown in reports")
    run_dir: Path = Field(Path("runs/demo"), description="folder every stage reads from and writes to")
    seed: Seed = Field(0, description="recorded in the manifest; stage configs carry their own seeds")
    rubric: str = Field("hpc", description="rubric for generated responses, labels, RM and policy")
    mrbench_path: Path = Field(
        Path("data/mrbench_v3_dev/mrbench_v3_devset.json"),
        description="real human labels (rubric mrbench) for judge agreement and the RM consistency experiment",
    )
    mrbench_heldout_share: float = Field(
        0.2, gt=0, lt=1, description="share of MRBench's problems the mrbench_rm stage holds out of training (by "
                                     "problem, seeded by its config's seed) to write the RM's validation record, "
                                     "without which the eval does not trust it")
    stages: dict[str, StageSettings] = Field(
        default_factory=dict, description=f"settings per stage, keyed by stage name: {STAGE_ORDER}"
    )
    hardware: Hardware = Field(default_factory=Hardware, description="the GPU machines `python -m pipeline plan` "
                                                                     "checks each stage's memory against")


def _flags(settings: StageSettings) -> list[str]:
    out = ["--config", str(settings.config)] if settings.config else []
    for flag, value in settings.args.items():
        out.append("--" + flag.replace("_", "-"))
        if isinstance(value, (list, dict)):
            out.append(json.dumps(value))
        else:
            out.append(str(value).lower() if isinstance(value, bool) else str(value))
    return out


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            return
    tree[parts[-1]] = value


def stage_values(cfg: PipelineConfig, name: str) -> dict:
    """The stage's own YAML with the pipeline's `args` over it (dotted keys nested), unvalidated: what `plan` and the
    server commands read without importing the stage. Defaults of fields left out are the stage's own."""
    settings = cfg.stages.get(name, StageSettings())
    values: dict = {}
    if settings.config is not None and Path(settings.config).exists():
        values = load_yaml(settings.config)  # a broken file is one error line naming it
    for key, value in settings.args.items():
        _set_dotted(values, key, value)
    return values


def grpo_values(cfg: PipelineConfig, name: str) -> dict:
    """The GRPO config a stage trains with: its own for `grpo`, the sweep's `grpo_config` for `sweep`, the GRPO
    entry of compare's `configs` for `compare`."""
    values = stage_values(cfg, name)
    if name == "compare":
        base = (values.get("configs") or {}).get("grpo", "configs/policy/tiny.yaml")
        return load_yaml(Path(base)) if Path(base).exists() else {}
    if name == "sweep":
        base = values.get("grpo_config", "configs/policy/tiny.yaml")
        grpo = load_yaml(Path(base)) if Path(base).exists() else {}
        for key in ("reward_model", "prompts", "max_steps"):
            if values.get(key) is not None:
                grpo[key] = values[key]
        return grpo
    return values


def server_command(cfg: PipelineConfig, grpo: dict, server: Server) -> str:
    """The command that starts one of a stage's servers (on its own GPUs, before the stage); `grpo`: the stage's
    GRPO values (`grpo_values`)."""
    env = f"CUDA_VISIBLE_DEVICES={server.devices} " if server.devices is not None else ""
    if server.kind == "vllm":
        vllm = grpo.get("vllm") or {}
        port = urlparse(vllm["server_base_url"]).port if vllm.get("server_base_url") else vllm.get("server_port", 8000)
        max_len = server.max_model_len or (grpo.get("max_prompt_tokens") or cfg.hardware.prompt_tokens) + \
            grpo.get("max_completion_length", 64)
        return env + shlex.join([
            "trl", "vllm-serve", "--model", str(grpo.get("policy", "smollm2-135m-instruct")),
            "--tensor-parallel-size", str(server.tensor_parallel_size),
            "--gpu-memory-utilization", str(server.gpu_memory_utilization), "--max-model-len", str(max_len),
            "--host", "0.0.0.0", "--port", str(port or 8000),
        ])
    url = grpo.get("reward_model")
    port = urlparse(url).port if is_url(url) else None
    return env + shlex.join([
        "python", "-m", "hpc_rm", "serve", "--model", str(cfg.run_dir / "rm"), "--host", "0.0.0.0",
        "--port", str(port or 8700), "--batch-size", str(server.batch_size or grpo.get("rm_batch_size", 32)),
    ])


def plan_stages(cfg: PipelineConfig) -> dict[str, StagePlan]:
    run = cfg.run_dir
    unknown = set(cfg.stages) - set(STAGE_ORDER)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)} in config; stages are {STAGE_ORDER}")

    def flags(name: str) -> list[str]:
        return _flags(cfg.stages.get(name, StageSettings()))

    def launch(name: str, module: str, *args) -> list[str]:
        return cfg.stages.get(name, StageSettings()).launcher.argv(module, list(args))

    grpo = {name: grpo_values(cfg, name) for name in ("grpo", "sweep", "compare")}  # each stage's GRPO YAML, once

    def reward_model(name: str) -> list:
        """The run's RM folder, unless the stage's GRPO config names a served RM by its http(s):// address."""
        return [] if is_url(grpo[name].get("reward_model")) else ["--reward-model", run / "rm"]

    def servers(name: str) -> list[str]:
        return [server_command(cfg, grpo[name], server) for server in cfg.stages.get(name, StageSettings()).servers]

    data, labels, mr = run / "data", run / "labels", run / "mrbench"
    # With an `sft` stage, GRPO and the sweep start from its policy (and the eval compares GRPO with it).
    warm_start = "sft" in cfg.stages
    start = ["--policy", run / "sft" / "policy"] if warm_start else []
    after_sft = ["sft"] if warm_start else []
    reports = run / "reports"
    plans = [
        StagePlan("data", "prompt sets with student profiles (rm/rl/eval)",
                  launch("data", "annotation", "data", *flags("data"), "--out", data),
                  [data / "rm.jsonl", data / "rl.jsonl", data / "eval.jsonl"]),
        StagePlan("generate", "candidate tutor responses for the rm split",
                  launch("generate", "annotation", "generate", *flags("generate"), "--prompts", data / "rm.jsonl",
                         "--out", run / "responses.jsonl"),
                  [run / "responses.jsonl"], ["data"]),
        StagePlan("annotate", f"LLM-judge labels on the {cfg.rubric} rubric",
                  launch("annotate", "annotation", "label", *flags("annotate"), "--items", run / "responses.jsonl",
                         "--rubric", cfg.rubric, "--out", labels),
                  [labels / "labels.jsonl"], ["generate"]),
        StagePlan("mrbench_human", "MRBench V3 dev human labels as interchange",
                  launch("mrbench_human", "annotation", "import", "--format", "mrbench", "--input", cfg.mrbench_path,
                         "--rubric", "mrbench", "--out", mr / "human.jsonl"),
                  [mr / "human.jsonl"]),
        StagePlan("mrbench_label", "the local judge's labels of MRBench responses",
                  launch("mrbench_label", "annotation", "label", *flags("mrbench_label"), "--items", mr / "human.jsonl",
                         "--rubric", "mrbench", "--out", mr / "llm"),
                  [mr / "llm" / "labels.jsonl"], ["mrbench_human"]),
        StagePlan("agreement", "human vs LLM-judge agreement on MRBench",
                  launch("agreement", "annotation", "agreement", "--labels", mr / "human.jsonl",
                         mr / "llm" / "labels.jsonl", "--rubric", "mrbench", "--out", reports / "agreement"),
                  [reports / "agreement" / "agreement.json"], ["mrbench_label"]),
        StagePlan("consistency", "RM on human labels vs RM on LLM labels, on held-out human labels",
                  launch("consistency", "hpc_rm", "consistency", *flags("consistency"), "--human", mr / "human.jsonl",
                         "--llm", mr / "llm" / "labels.jsonl", "--out", reports / "consistency"),
                  [reports / "consistency" / "consistency.json"], ["mrbench_label"]),
        StagePlan("rm", "HPC reward model trained on the LLM labels",
                  launch("rm", "hpc_rm", "train", *flags("rm"), "--labels", labels / "labels.jsonl",
                         "--rubric", cfg.rubric, "--out", run / "rm"),
                  [run / "rm" / "config.json"], ["annotate"]),
        # Trained on most of MRBench's problems, validated on the rest: the record the eval needs to trust it.
        StagePlan("mrbench_rm", "an RM on MRBench's human labels: the eval's human-grounded independent judge",
                  launch("mrbench_rm", "hpc_rm", "train", "--validation-share", cfg.mrbench_heldout_share,
                         *flags("mrbench_rm"), "--labels", mr / "human.jsonl", "--rubric", "mrbench",
                         "--out", run / "mrbench_rm"),
                  [run / "mrbench_rm" / "config.json", run / "mrbench_rm" / "validation.json"], ["mrbench_human"]),
        StagePlan("sft", "SFT warm start on MathDial teacher turns (the policy GRPO and the sweep start from)",
                  launch("sft", "policy", "sft", *flags("sft"), "--prompts", data / "rl.jsonl",
                         "--also-from", json.dumps([str(data / "rm.jsonl")]), "--out", run / "sft"),
                  [run / "sft" / "run.json"], ["data"]),
        StagePlan("grpo", "GRPO on the weighted RM reward with a KL penalty",
                  launch("grpo", "policy", "grpo", *flags("grpo"), *start, *reward_model("grpo"),
                         "--prompts", data / "rl.jsonl", "--out", run / "policy"),
                  [run / "policy" / "run.json"], ["rm", "data", *after_sft], state_dir=run / "policy",
                  servers=servers("grpo")),
        # The eval also asks scorers the policy never trained on: the MRBench RM (kept off MRBench's problems) and
        # the judges of the eval config, whose agreement with MRBench's humans the agreement stage measured.
        StagePlan("eval", "base vs tuned policy on held-out eval prompts, by the training RM and independent scorers",
                  launch("eval", "policy", "eval", *flags("eval"), "--run", run / "policy",
                         "--prompts", data / "eval.jsonl", "--rms", json.dumps([str(run / "mrbench_rm")]),
                         "--exclude-problems-from", cfg.mrbench_path,
                         "--judge-agreement", reports / "agreement" / "agreement.json",
                         "--tutorbench.avoid-problems-from",
                         json.dumps([str(data / "rm.jsonl"), str(data / "rl.jsonl")]),
                         "--out", reports / "policy_eval"),
                  [reports / "policy_eval" / "report.json"], ["grpo", "mrbench_rm", "agreement"]),
        StagePlan("sweep", "reward-weight sweep and single-dimension ablations",
                  launch("sweep", "policy", "sweep", *flags("sweep"), *start, *reward_model("sweep"),
                         "--prompts", data / "rl.jsonl", "--eval.prompts", data / "eval.jsonl",
                         "--eval.rms", json.dumps([str(run / "mrbench_rm")]),
                         "--eval.exclude-problems-from", cfg.mrbench_path, "--out", run / "sweep"),
                  [run / "sweep" / "sweep.json"], ["rm", "data", "mrbench_rm", *after_sft], state_dir=run / "sweep",
                  servers=servers("sweep")),
        StagePlan("classroom", "GRPO over whole dialogues with a simulated student (solve rate, judges)",
                  launch("classroom", "policy", "classroom", *flags("classroom"), "--prompts", data / "rl.jsonl",
                         "--out", run / "classroom"),
                  [run / "classroom" / "run.json"], ["data"], state_dir=run / "classroom"),
        StagePlan("classroom_eval", "base vs tuned tutor in the classroom on held-out problems",
                  launch("classroom_eval", "policy", "classroom-eval", *flags("classroom_eval"),
                         "--run", run / "classroom", "--prompts", data / "eval.jsonl",
                         "--out", reports / "classroom_eval"),
                  [reports / "classroom_eval" / "report.json"], ["classroom"]),
        # Not in the demo: base -> best-of-n, RFT, DPO, SFT, GRPO at an equal sample budget, each method in its own
        # process, scored like the eval (the MRBench RM as the independent scorer, kept off MRBench's problems).
        StagePlan("compare", "which training helps: best-of-n, RFT, DPO, SFT and GRPO on one reward, equal budget",
                  launch("compare", "policy", "compare", *flags("compare"), "--run", run,
                         "--eval.rms", json.dumps([str(run / "mrbench_rm")]),
                         "--eval.exclude-problems-from", cfg.mrbench_path, "--out", run / "compare"),
                  [run / "compare" / "compare.json"], ["rm", "data", "mrbench_rm"], state_dir=run / "compare"),
    ]
    return {plan.name: plan for plan in plans}


def with_needs(plans: dict[str, StagePlan], targets: list[str]) -> list[StagePlan]:
    """The targets and everything they read from, in pipeline order."""
    wanted: set[str] = set()

    def visit(name: str) -> None:
        if name not in plans:
            raise ValueError(f"unknown stage {name!r}; stages are {STAGE_ORDER}")
        if name not in wanted:
            wanted.add(name)
            for need in plans[name].needs:
                visit(need)

    for target in targets:
        visit(target)
    return [plans[name] for name in STAGE_ORDER if name in wanted]
