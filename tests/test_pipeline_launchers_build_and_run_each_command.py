"""Each pipeline stage starts through its launcher: python (one process), torchrun or accelerate launch (one process
per GPU, on one or several nodes), optionally pinned to some GPUs; bad combinations are one config error; a stage
run through torchrun really starts N processes and is still skipped when nothing changed."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError, load_config
from pipeline.runner import fingerprint
from pipeline.stages import Launcher, PipelineConfig, plan_stages

REPO = Path(__file__).resolve().parent.parent


def test_python_launcher_is_the_plain_module_command():
    assert Launcher().argv("policy", ["grpo", "--out", Path("x")]) == [sys.executable, "-m", "policy", "grpo",
                                                                       "--out", "x"]


def test_torchrun_one_node_and_several_nodes():
    one = Launcher(kind="torchrun", processes=4).argv("hpc_rm", ["train"])
    assert one == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "4", "--standalone",
                   "-m", "hpc_rm", "train"]
    two = Launcher(kind="torchrun", processes=8, nnodes=2, node_rank=1, master_addr="node0",
                   master_port=29600).argv("hpc_rm", ["train"])
    assert two[2:] == ["torch.distributed.run", "--nproc-per-node", "8", "--nnodes", "2", "--node-rank", "1",
                       "--master-addr", "node0", "--master-port", "29600", "-m", "hpc_rm", "train"]


def test_accelerate_counts_processes_over_all_machines_and_pins_devices():
    argv = Launcher(kind="accelerate", config_file=Path("configs/accelerate/zero3.yaml"), processes=8, nnodes=2,
                    master_addr="10.0.0.1", devices="0,1,2,3,4,5,6,7").argv("policy", ["grpo"])
    assert argv[:2] == ["env", "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7"]
    assert argv[2:] == [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                        "configs/accelerate/zero3.yaml", "--num_processes", "16", "--num_machines", "2",
                        "--machine_rank", "0", "--main_process_ip", "10.0.0.1", "--main_process_port", "29500",
                        "-m", "policy", "grpo"]


@pytest.mark.parametrize("launcher, problem", [
    ({"kind": "python", "processes": 2}, "one process"),
    ({"kind": "torchrun", "config_file": "a.yaml"}, "config_file"),
    ({"kind": "torchrun", "nnodes": 2}, "master_addr"),
    ({"kind": "torchrun", "nnodes": 2, "master_addr": "h", "node_rank": 2}, "node_rank"),
    ({"kind": "mpirun"}, "kind"),
    ({"kind": "torchrun", "processes": 4, "devices": "0,1"}, "fewer GPUs"),
])
def test_bad_launchers_are_one_config_error(tmp_path, launcher, problem):
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps({"stages": {"grpo": {"launcher": launcher}}}))
    with pytest.raises(ConfigError, match=problem):
        load_config(PipelineConfig, path)


def test_a_server_names_as_many_devices_as_it_uses(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps({"stages": {"grpo": {"servers": [
        {"kind": "vllm", "tensor_parallel_size": 4, "devices": "0,1"}]}}}))
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        load_config(PipelineConfig, path)


def test_a_launcher_name_alone_is_its_kind(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("stages:\n  rm: {launcher: torchrun}\n")
    cfg = load_config(PipelineConfig, path)
    assert "torch.distributed.run" in plan_stages(cfg)["rm"].argv


def test_each_machine_of_a_multi_node_stage_gives_its_rank_on_the_command_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("stages:\n  grpo: {launcher: {kind: torchrun, processes: 8, nnodes: 2, master_addr: node0}}\n")

    def dry_run(*extra):
        return subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(path), "--only", "grpo",
                               "--dry-run", *extra], cwd=REPO, capture_output=True, text=True, timeout=120)

    assert "--nnodes 2 --node-rank 0 --master-addr node0" in dry_run().stdout
    assert "--nnodes 2 --node-rank 1 --master-addr node0" in dry_run("--node-rank", "1").stdout
    bad = dry_run("--node-rank", "2")
    assert bad.returncode == 2 and "--node-rank 2: stage grpo runs on 2 nodes" in bad.stderr


def test_the_launcher_is_part_of_the_stage_fingerprint(tmp_path):
    def key(launcher):
        cfg = PipelineConfig(run_dir=tmp_path, stages={"data": {"launcher": launcher}})
        return fingerprint(plan_stages(cfg)["data"])

    assert key({"kind": "torchrun", "processes": 2}) != key({"kind": "torchrun", "processes": 4})
    assert key({"kind": "torchrun", "processes": 2}) == key({"kind": "torchrun", "processes": 2})
    assert key({"devices": "0"}) != key({"devices": "1"})


def test_torchrun_argv_really_starts_each_process(tmp_path):
    """The argv the launcher builds is one torchrun accepts: two processes, each with its own rank."""
    script = tmp_path / "rank_probe.py"
    script.write_text("import os, pathlib\n"
                      f"pathlib.Path({str(tmp_path)!r}, 'rank' + os.environ['RANK'] + '.txt').write_text("
                      "os.environ['WORLD_SIZE'])\n")
    argv = Launcher(kind="torchrun", processes=2).argv("rank_probe", [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.glob("rank*.txt")) == ["rank0.txt", "rank1.txt"]
    assert (tmp_path / "rank1.txt").read_text() == "2"


def test_accelerate_argv_is_one_accelerate_launch_accepts(tmp_path):
    """On CPU accelerate starts several processes only through mpirun, so this checks one process: the config file,
    --num_processes and -m MODULE flags the launcher builds are accelerate's own."""
    (tmp_path / "cpu.yaml").write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\n"
                                       "mixed_precision: 'no'\nnum_machines: 1\nnum_processes: 1\nuse_cpu: true\n")
    (tmp_path / "probe.py").write_text(f"import pathlib, sys\npathlib.Path({str(tmp_path)!r}, 'ran.txt')"
                                       ".write_text(' '.join(sys.argv[1:]))\n")
    argv = Launcher(kind="accelerate", config_file=tmp_path / "cpu.yaml").argv("probe", ["--flag", "x"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "ran.txt").read_text() == "--flag x"


def test_a_stage_run_through_torchrun_finishes_and_is_then_skipped(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"name: t\nstages:\n  data:\n    config: {REPO / 'configs' / 'data.yaml'}\n"
                      "    launcher: {kind: torchrun, processes: 1}\n")

    def run():
        out = subprocess.run([sys.executable, "-m", "pipeline", "run", "--config", str(config), "--run-dir",
                              str(tmp_path / "run"), "--only", "data"], cwd=REPO, capture_output=True, text=True,
                             timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        return out.stdout

    first = run()
    assert "torch.distributed.run --nproc-per-node 1 --standalone -m annotation data" in first
    assert "done in" in first and (tmp_path / "run" / "data" / "rl.jsonl").exists()
    assert "up to date, skipped" in run()

