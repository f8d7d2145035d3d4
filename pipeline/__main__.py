"""`python -m pipeline run --config configs/tiny.yaml [--only STAGE ...] [--redo STAGE ...] [--dry-run]`
`python -m pipeline plan --config configs/paper.yaml [--only STAGE ...] [--json]`

run: runs the requested stages (default: all) and every stage they read from, in one run directory, each through
its launcher (python, torchrun or accelerate; `launcher:` in the stage's settings). A stage whose command line and
input files are unchanged since it last finished is skipped; `--redo` forces it. Ends with a summary of each
stage's time and the reports written, and `RUN/report.md`, an overview with the plots inline.
plan: per stage, its processes and the memory one GPU needs (weights, gradients, optimizer states by ZeRO stage
and offload, activations with and without gradient checkpointing, the vLLM share, the RM copy) against the
config's `hardware` section; says whether each stage fits, exits 1 when one does not. Loads no weights.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

from core.cli import ArgumentParser
from core.config import ConfigError, add_arguments, build_config
from core.errors import exits_on_bad_input
from core.models import set_offline
from pipeline.overview import write_overview
from pipeline.runner import Manifest, is_done, run_stage
from pipeline.stages import STAGE_ORDER, PipelineConfig, default_stages, plan_stages, with_needs


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m pipeline", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "plan"])
    parser.add_argument("--only", nargs="+", default=None, metavar="STAGE",
                        help="run these stages and what they need; plan: just these "
                             f"(stages: {', '.join(STAGE_ORDER)})")
    parser.add_argument("--redo", nargs="+", default=[], metavar="STAGE", help="run these even if up to date")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved plan; load no model, run nothing")
    parser.add_argument("--json", action="store_true", help="plan: print the memory plan as JSON")
    parser.add_argument("--node-rank", type=int, default=None, metavar="N",
                        help="this machine's rank for every multi-node launcher (nnodes > 1): run the same command "
                             "on each machine with its own N (default: each launcher's node_rank)")
    add_arguments(parser, PipelineConfig)
    args = parser.parse_args(argv)
    cfg = build_config(PipelineConfig, args)
    if args.node_rank is not None:
        for name, settings in cfg.stages.items():
            if settings.launcher.nnodes > 1:
                if not 0 <= args.node_rank < settings.launcher.nnodes:
                    raise ConfigError(f"--node-rank {args.node_rank}: stage {name} runs on "
                                      f"{settings.launcher.nnodes} nodes (ranks 0-{settings.launcher.nnodes - 1})")
                settings.launcher.node_rank = args.node_rank
    try:
        plans = with_needs(plan_stages(cfg), args.only or default_stages(cfg))
    except ValueError as err:  # an unknown stage name in the config or in --only
        raise ConfigError(str(err)) from None
    bad_redo = set(args.redo) - set(STAGE_ORDER)
    if bad_redo:
        raise ConfigError(f"unknown stage(s) in --redo: {sorted(bad_redo)}")

    if args.command == "plan":
        from pipeline.plan import memory_plan, render

        memory = memory_plan(cfg, args.only or default_stages(cfg))  # just these stages: their inputs need no GPU plan
        print(json.dumps(memory, indent=2) if args.json else render(memory))
        raise SystemExit(0 if memory["fits"] else 1)

    if args.dry_run:
        print(json.dumps(json.loads(cfg.model_dump_json()), indent=2))
        for i, plan in enumerate(plans, 1):
            print(f"\n[{i}/{len(plans)}] {plan.name}: {plan.description}\n  {shlex.join(plan.argv)}")
            for server in plan.servers:
                print(f"  needs running first: {server}")
            print("  writes: " + ", ".join(str(p) for p in plan.outputs))
        return

    set_offline()
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(cfg.run_dir, json.loads(cfg.model_dump_json()))
    started = time.perf_counter()
    for i, plan in enumerate(plans, 1):
        header = f"[{i}/{len(plans)}] {plan.name}: {plan.description}"
        if plan.name not in args.redo and is_done(plan, manifest):
            print(f"{header} -- up to date, skipped", flush=True)
            continue
        print(f"\n{header}\n  $ {shlex.join(plan.argv)}", flush=True)
        for server in plan.servers:
            print(f"  expects this server to be running (start it first): {server}", flush=True)
        info = run_stage(plan, manifest, redo=plan.name in args.redo)
        if info["status"] != "done":
            raise SystemExit(f"stage {plan.name} failed: {info.get('error')} (command above; manifest: "
                             f"{manifest.path})")
        print(f"  done in {info['seconds']:.0f} s (peak {info['peak_rss_mb']:.0f} MB)", flush=True)
    overview = write_overview(cfg.run_dir, manifest.data)
    print(f"\nFinished in {time.perf_counter() - started:.0f} s. Stage times:")
    for name, info in manifest.data["stages"].items():
        print(f"  {name:<14} {info.get('status', '?'):<7} {info.get('seconds', 0):>7.0f} s  "
              f"{', '.join(info.get('outputs', []))}")
    print(f"Overview report: {overview}\nManifest: {manifest.path}")


if __name__ == "__main__":
    main(sys.argv[1:])
