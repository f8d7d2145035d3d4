"""`python -m hpc_rm serve` scores like the model in-process: the same scores (1e-5) over HTTP, concurrent requests
answered correctly (and, arriving together, scored in one batch), a bad request answered 400 with one message, the
GRPO reward functions on the URL equal to those on the folder; a client whose server is down fails with a line
naming the URL, and a server that answers 503 is retried."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

CONTEXTS = ["Student: I think 3 + 4 is 8.", "Student: How do I start?", "Tutor: What do you know?\nStudent: 12",
            "Student: Is 7 x 6 = 42?", "Student: I don't get fractions.", "Student: 10 - 3 = 6?"]
RESPONSES = ["Let's count together: 3, then 4 more.", "What is the question asking?", "Good, and what is next?",
             "Yes! How did you check it?", "Think of a pizza cut into slices.", "Count back 3 from 10."]


@pytest.fixture(scope="module")
def rm_folder(tiny_encoder, tmp_path_factory) -> str:
    from core.reward_model import HPCRewardModel

    path = tmp_path_factory.mktemp("served-rm") / "rm"
    HPCRewardModel.from_backbone(tiny_encoder, "hpc", max_length=64).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def server(rm_folder):
    """A real `python -m hpc_rm serve` process on a free port; waits up to 8 s for 12 pairs to fill a batch, so
    requests sent together are scored together."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "hpc_rm", "serve", "--model", rm_folder, "--host", "127.0.0.1", "--port", "0",
         "--batch-size", "12", "--max-wait-ms", "8000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if match := re.search(r"at (http://127\.0\.0\.1:\d+)", line):
                threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe drained
                yield match.group(1)
                break
        else:
            pytest.fail("the server did not start within 120 s")
        if not lines or "serving" not in lines[-1]:
            pytest.fail("the server exited:\n" + "".join(lines))
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def local_rm(rm_folder):
    from core.reward_client import load_scoring_rm

    return load_scoring_rm(rm_folder, "cpu", "float32")


def test_remote_scores_equal_in_process_scores(server, local_rm):
    from core.reward_client import RemoteRewardModel

    remote = RemoteRewardModel(server)
    assert remote.dimensions == local_rm.dimensions == ["Helpfulness", "Personalization", "Creativity"]
    assert remote.weights == local_rm.weights
    assert remote.spec.max_response_tokens == local_rm.spec.max_response_tokens
    assert remote.rubric.names == local_rm.rubric.names
    # 12 pairs fill one batch: scored at once, no waiting.
    contexts, responses = CONTEXTS * 2, RESPONSES[::-1] * 2
    got, want = remote.score(contexts, responses), local_rm.score(contexts, responses)
    for d in local_rm.dimensions:
        np.testing.assert_allclose(got[d], want[d], atol=1e-5)
    assert not np.allclose(got["Helpfulness"], got["Helpfulness"][0])  # the pairs really differ
    np.testing.assert_allclose(remote.reward(got), local_rm.reward(want), atol=1e-5)


def test_concurrent_requests_are_answered_correctly_in_one_batch(server, local_rm):
    import httpx

    want = local_rm.score(CONTEXTS * 2, RESPONSES * 2)
    before = httpx.get(server + "/info").json()["served"]
    # 6 requests of 2 pairs each, sent together: 12 pairs fill the server's batch.
    chunks = [(CONTEXTS[i:i + 2], RESPONSES[i:i + 2]) for i in range(0, 6, 2)] * 2
    barrier = threading.Barrier(len(chunks))

    def send(chunk):
        barrier.wait()
        return httpx.post(server + "/score", json={"contexts": chunk[0], "responses": chunk[1]}, timeout=60)

    with ThreadPoolExecutor(len(chunks)) as pool:
        answers = list(pool.map(send, chunks))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    for k, answer in enumerate(answers):
        for d in local_rm.dimensions:
            rows = [(2 * k + j) % 6 for j in range(2)]
            np.testing.assert_allclose(answer.json()["scores"][d], want[d][rows], atol=1e-5)
    after = httpx.get(server + "/info").json()["served"]
    assert after["requests"] - before["requests"] == 6 and after["pairs"] - before["pairs"] == 12
    assert after["batches"] - before["batches"] == 1  # the six requests were scored together


@pytest.mark.parametrize("body, message", [
    (b"{not json", "body is not valid JSON"),
    (b'["a"]', "must be a JSON object"),
    (b'{"contexts": ["a"]}', "field 'responses' is missing"),
    (b'{"contexts": ["a", "b"], "responses": ["x"]}', "2 contexts but 1 responses"),
    (b'{"contexts": ["a"], "responses": [3]}', "field responses[0] must be a string"),
    (b'{"contexts": ["a"], "responses": ["x"], "weights": {}}', "unknown field 'weights'"),
])
def test_a_bad_request_gets_400_with_one_message(server, body, message):
    import httpx

    answer = httpx.post(server + "/score", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert message in error and "\n" not in error
    assert httpx.get(server + "/nowhere").status_code == 404


def test_grpo_rewards_on_the_url_equal_rewards_on_the_folder(server, local_rm):
    from core.config import load_config
    from core.reward_client import RemoteRewardModel
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import load_reward_model, reward_weights_for
    from policy.train.rewards import RewardSetup, build_reward_functions, validate_extra_params

    cfg = load_config(GRPORunConfig, overrides={"beta": 0.04, "loss_type": "grpo", "reward_model": server,
                                                "weights": {"Helpfulness": 0.5, "Personalization": 0.25,
                                                            "Creativity": 0.25}})
    remote = load_reward_model(cfg.reward_model)
    assert isinstance(remote, RemoteRewardModel)
    n = 12  # fills the server's batch: scored without waiting
    completions = [[{"role": "assistant", "content": r}] for r in RESPONSES * 2]
    columns = {"context": CONTEXTS[::-1] * 2, "final_answer": ["7"] * n, "student_known": [""] * n}
    rewards = {}
    for name, rm in (("url", remote), ("folder", local_rm)):
        funcs, weights, cache = build_reward_functions(
            rm, reward_weights_for(cfg, rm), validate_extra_params({"answer_leak": {}}),
            RewardSetup(max_completion_length=32), rm_batch_size=4)
        rewards[name] = (weights, [f(prompts=[""] * n, completions=completions, completion_ids=[[1]] * n, **columns)
                                   for f in funcs])
        assert cache.forwards == 1  # one RM call served every head
    assert rewards["url"][0] == rewards["folder"][0] == [0.5, 0.25, 0.25, 1.0]
    np.testing.assert_allclose(np.array(rewards["url"][1]), np.array(rewards["folder"][1]), atol=1e-5)


def test_a_server_that_is_down_is_one_error_naming_the_url():
    import socket

    from core.errors import BadInput, error_line
    from core.reward_client import RemoteRewardModel

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(BadInput) as err:
        RemoteRewardModel(url, start_attempts=3, backoff_base_s=0.05)
    line = error_line(err.value)
    assert url in line and "hpc_rm serve" in line and "\n" not in line
    assert err.value.__class__.__name__ == "RewardServerUnavailable"
    assert time.monotonic() - started < 10


class _Flaky(BaseHTTPRequestHandler):
    """/info like hpc_rm serve; /score answers 503 the first time, then constant scores."""

    failures_left = 1

    def _send(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        from core.rubric import load_rubric

        rubric = load_rubric("hpc")
        self._send(200, {"rubric": json.loads(rubric.model_dump_json()), "weights": rubric.default_weights(),
                         "backbone": "fake", "max_length": 64, "max_response_tokens": 32, "read_context": True,
                         "max_request_pairs": 2})

    def do_POST(self):
        pairs = len(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["contexts"])
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self._send(503, {"error": "busy"})
        else:
            self._send(200, {"scores": {d: [1.5] * pairs for d in ("Helpfulness", "Personalization", "Creativity")}})

    def log_message(self, *args):
        pass


def test_the_client_retries_a_busy_server_and_splits_large_calls():
    from core.reward_client import RemoteRewardModel

    fake = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    try:
        client = RemoteRewardModel(f"http://127.0.0.1:{fake.server_address[1]}", backoff_base_s=0.01)
        scores = client.score(["c"] * 5, ["r"] * 5)
        assert scores["Creativity"].tolist() == [1.5] * 5
        assert client.stats["retries"] == 1
        assert client.stats["calls"] == 1 + 4  # /info, one refused POST, then 3 POSTs of at most 2 pairs
    finally:
        fake.shutdown()
        fake.server_close()


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    from core.schema import PromptItem, StudentProfile, write_jsonl

    path = tmp_path_factory.mktemp("served-prompts") / "rl.jsonl"
    write_jsonl(path, [PromptItem(id=f"p{i}", source="gsm8k", problem_id=f"q{i}", kind="single_turn",
                                  profile=StudentProfile(grade="5th grade"), problem=f"What is {i} + 5?",
                                  reference_solution=f"#### {i + 5}") for i in range(3)])
    return str(path)


def test_grpo_trains_on_a_served_reward_model(server, tiny_causal_lm, prompts, tmp_path):
    import httpx

    from core.config import load_config
    from policy.train.config import GRPORunConfig
    from policy.train.grpo import run_grpo

    before = httpx.get(server + "/info").json()["served"]["pairs"]
    cfg = load_config(GRPORunConfig, overrides={
        "policy": tiny_causal_lm, "reward_model": server, "prompts": prompts, "out": str(tmp_path), "beta": 0.04,
        "loss_type": "grpo", "max_steps": 1, "prompts_per_step": 3, "num_generations": 4,  # 12 pairs: one batch
        "max_completion_length": 4, "rollout_sampler": "torch"})
    summary = run_grpo(cfg)
    assert summary["steps"] == 1 and summary["reward_model"] == server and summary["rm_forwards"] == 1
    assert httpx.get(server + "/info").json()["served"]["pairs"] - before == 12
    assert (tmp_path / "policy" / "config.json").exists()


def test_grpo_with_a_dead_reward_url_is_one_error_line_and_writes_nothing(tiny_causal_lm, prompts, tmp_path,
                                                                          capsys):
    import socket

    from policy.train.grpo import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(SystemExit) as exit_:
        main(["--policy", tiny_causal_lm, "--reward-model", url, "--prompts", prompts, "--out", str(tmp_path / "out"),
              "--beta", "0.04", "--loss-type", "grpo"])
    assert exit_.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and url in lines[0] and "flag --reward-model" in lines[0] and "hpc_rm serve" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_port_in_use_is_one_error_line_before_the_model_loads(rm_folder, capsys, monkeypatch):
    import socket

    from core.reward_model import HPCRewardModel
    from hpc_rm.serve import main

    monkeypatch.setattr(HPCRewardModel, "from_pretrained",
                        classmethod(lambda *a, **k: pytest.fail("the model loaded despite a busy port")))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exit_:
            main(["--model", rm_folder, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"])
    assert exit_.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and f"flag --port: cannot listen on 127.0.0.1:{port}" in lines[0]
