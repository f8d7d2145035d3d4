"""The memory plan as text: one block per stage, its processes and each GPU role's items against its capacity
(`python -m pipeline plan` prints it; `--json` prints pipeline/plan.py's `memory_plan` instead)."""
from __future__ import annotations


def render(plan: dict) -> str:
    hw = plan["hardware"]
    lines = [f"Memory plan for {plan['name']}: {hw['nodes']} node(s) x {hw['gpus_per_node']} GPUs of "
             f"{hw['gpu_memory_gb']:g} GB" + (f", {hw['cpu_memory_gb']:g} GB host memory per node"
                                              if hw.get("cpu_memory_gb") else ""), "GB = 1e9 bytes; sources in "
             "brackets (pipeline/plan.py's docstring explains each formula)", ""]
    for stage in plan["stages"]:
        verdict = "fits" if stage["fits"] else "DOES NOT FIT"
        if not stage["estimated"]:
            verdict = "not estimated"
        lines.append(f"== {stage['stage']}: {stage['launcher']}, {stage['processes']} process(es), "
                     f"{stage['gpus_needed']} of {stage['gpus_available']} GPUs -- {verdict}")
        for role in stage["roles"]:
            lines.append(f"   {role['role']} (x{role['gpus']}): {role['total_gb']:.1f} of {role['capacity_gb']:g} GB "
                         f"-- {'fits' if role['fits'] else 'DOES NOT FIT'}")
            for item in role["items"]:
                if item["gb"] or "offload" in item["source"]:
                    phase = "" if item["phase"] == "both" else f" [{item['phase']} only]"
                    lines.append(f"     {item['name']:<46} {item['gb']:>8.2f} GB  {item['source']}{phase}")
            for check in role["checks"]:
                lines.append(f"     {'ok ' if check['ok'] else 'NO '} {check['check']}")
            lines += [f"     . {note}" for note in role["notes"]]
        if stage["cpu_gb_per_node"]:
            cap = stage["cpu_capacity_gb"]
            lines.append(f"   host memory per node: {stage['cpu_gb_per_node']:.0f} GB"
                         + (f" of {cap:g} GB" if cap else " (hardware.cpu_memory_gb not set: unchecked)"))
        lines += [f"   . {note}" for note in stage["notes"]]
        lines += [f"   NO  {problem}" for problem in stage["problems"]]
        if stage["gpus_needed"] > stage["gpus_available"]:
            lines.append(f"   NO  needs {stage['gpus_needed']} GPUs, the hardware section has "
                         f"{stage['gpus_available']}")
        lines.append("")
    lines.append("Every stage fits." if plan["fits"] else
                 "Some stage does not fit: change its config (batch, LoRA, ZeRO, GPUs) or the hardware section.")
    return "\n".join(lines)
