"""20 annotators submit at once over real HTTP to a real uvicorn server: no label lost, none duplicated,
no item over-assigned, and retried submissions never add a second row."""
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from browser_support import bearer, scores_for, server_with_annotators

CLIENTS, ITEMS, K = 20, 40, 10  # 400 labels, each a separate transaction


def annotate_everything(url: str, name: str, token: str) -> dict:
    """Label every item the server hands out; every third label is sent twice, like a client retry."""
    acknowledged, sent = {}, 0
    with httpx.Client(base_url=url, headers=bearer(token), timeout=60) as client:
        while (item := client.get("/api/next").raise_for_status().json()["item"]) is not None:
            scores = scores_for(name, item["id"])
            for _ in range(2 if len(acknowledged) % 3 == 0 else 1):
                reply = client.put(f"/api/annotators/{name}/labels/{item['id']}", json={"scores": scores})
                assert reply.status_code == 200, reply.text
                sent += 1
            acknowledged[item["id"]] = scores
    return {"acknowledged": acknowledged, "sent": sent}


@pytest.fixture()
def server(tmp_path):
    server, store, tokens = server_with_annotators(tmp_path, ITEMS, CLIENTS, k=K, claim_batch=3)
    server.start()
    yield server, store, tokens
    server.stop()


def test_twenty_concurrent_clients(server):
    server, store, tokens = server
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = dict(zip(tokens, pool.map(lambda name: annotate_everything(server.url, name, tokens[name]), tokens)))

    acknowledged = {(item_id, name): s for name, r in results.items() for item_id, s in r["acknowledged"].items()}
    submissions = sum(r["sent"] for r in results.values())
    print(f"{CLIENTS} clients sent {submissions} submissions for {len(acknowledged)} labels")
    assert len(acknowledged) == ITEMS * K and submissions > len(acknowledged)

    stored = [(item.id, item.annotator.removeprefix("human:"), item.scores) for item in store.export()]
    assert len(stored) == len({(i, n) for i, n, _ in stored}) == ITEMS * K  # no duplicate, none lost
    assert {(i, n): s for i, n, s in stored} == acknowledged  # every acknowledged label exactly as sent
    assert Counter(i for i, _, _ in stored) == {item_id: K for item_id in {i for i, _ in acknowledged}}
    assert all(c["pending"] == 0 for c in store.progress().values())
    with store.connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
