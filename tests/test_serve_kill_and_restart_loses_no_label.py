"""SIGKILL the server while clients are submitting, start it again on the same database: every label the
server acknowledged is still there, unchanged, and the clients resume and finish without duplicates."""
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from annotation.serve.db import LabelStore
from browser_support import bearer, scores_for, server_with_annotators

CLIENTS, ITEMS, K = 10, 30, 5  # 150 labels in all


def annotate_until_refused(url: str, name: str, token: str, acknowledged: dict, lock: threading.Lock) -> None:
    """Label until the work runs out or the server dies; record a label only once the server answered 200."""
    try:
        with httpx.Client(base_url=url, headers=bearer(token), timeout=30) as client:
            while (item := client.get("/api/next").raise_for_status().json()["item"]) is not None:
                scores = scores_for(name, item["id"])
                reply = client.put(f"/api/annotators/{name}/labels/{item['id']}", json={"scores": scores})
                assert reply.status_code == 200, reply.text
                with lock:
                    acknowledged[(item["id"], name)] = scores
    except httpx.TransportError:
        pass  # the server was killed under us


def stored_labels(store: LabelStore) -> list[tuple[str, str, dict]]:
    return [(item.id, item.annotator.removeprefix("human:"), item.scores) for item in store.export()]


@pytest.fixture()
def setup(tmp_path):
    server, store, tokens = server_with_annotators(tmp_path, ITEMS, CLIENTS, k=K, claim_batch=4)
    yield server, store, tokens
    server.stop()


def test_kill_mid_run_then_restart(setup):
    server, store, tokens = setup
    acknowledged, lock = {}, threading.Lock()
    server.start()
    pool = ThreadPoolExecutor(CLIENTS)
    futures = [pool.submit(annotate_until_refused, server.url, n, t, acknowledged, lock) for n, t in tokens.items()]
    deadline = time.monotonic() + 60
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # mid-run: clients are still submitting
    for future in futures:
        future.result()
    pool.shutdown()
    with lock:
        before_restart = dict(acknowledged)
    assert 40 <= len(before_restart) < ITEMS * K, "the kill must land in the middle of the run"

    server.start()  # same database, new process
    stored = {(i, n): s for i, n, s in stored_labels(store)}
    missing = set(before_restart) - set(stored)
    assert not missing, f"acknowledged labels lost by the kill: {sorted(missing)[:5]}"
    assert {key: stored[key] for key in before_restart} == before_restart
    print(f"killed after {len(before_restart)} acknowledged labels; {len(stored)} were on disk after restart")

    with ThreadPoolExecutor(CLIENTS) as pool:  # everyone resumes where they stopped
        list(pool.map(lambda n: annotate_until_refused(server.url, n, tokens[n], acknowledged, lock), tokens))
    rows = stored_labels(store)
    final = {(i, n): s for i, n, s in rows}
    assert len(rows) == len(final) == ITEMS * K  # complete, and no (item, annotator) twice
    assert all(final.get(key) == scores for key, scores in acknowledged.items())
    assert all(scores == scores_for(n, i) for (i, n), scores in final.items())  # nothing half-written or mixed
    assert Counter(i for i, _ in final) == {f"item-{i:03d}": K for i in range(ITEMS)}
