"""SQLite store for the annotation server: tasks, annotators (token hashes only) and one row per
(item, annotator) assignment that holds that annotator's label.

WAL mode lets pages be read while a label is written; `synchronous=FULL` makes an acknowledged label survive
a kill of the server. Every write is one `BEGIN IMMEDIATE` transaction, and the primary key (item, annotator)
makes a retried submission overwrite the same row instead of adding a second one.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.errors import BadInput
from core.rubric import Rubric
from core.schema import LabeledItem

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    is_admin INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    context TEXT NOT NULL,
    response TEXT NOT NULL,
    record TEXT NOT NULL  -- the task line as given (prompt, meta, ...), so the export keeps every field
);
CREATE TABLE IF NOT EXISTS assignments (
    item_id TEXT NOT NULL REFERENCES items(id),
    annotator TEXT NOT NULL REFERENCES annotators(name),
    status TEXT NOT NULL CHECK (status IN ('pending', 'labeled', 'skipped')),
    scores TEXT,
    comment TEXT NOT NULL DEFAULT '',
    flagged INTEGER NOT NULL DEFAULT 0,
    assigned_at TEXT NOT NULL,
    updated_at TEXT,
    PRIMARY KEY (item_id, annotator)
);
CREATE INDEX IF NOT EXISTS assignments_by_annotator ON assignments (annotator, status);
"""

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class StoreError(BadInput, ValueError):
    """A request the store refuses; the message says why (on the command line: one error line, see core.errors)."""


class NotAssigned(StoreError):
    pass


class SlotTaken(StoreError):
    pass


@dataclass(frozen=True)
class Annotator:
    name: str
    is_admin: bool


@dataclass(frozen=True)
class Item:
    id: str
    position: int
    context: str
    response: str
    record: dict


@dataclass(frozen=True)
class Assignment:
    item_id: str
    annotator: str
    status: str
    scores: dict[str, int] | None
    comment: str
    flagged: bool
    updated_at: str | None

    def as_json(self) -> dict:
        return {
            "item_id": self.item_id, "annotator": self.annotator, "status": self.status, "scores": self.scores,
            "comment": self.comment, "flagged": self.flagged, "updated_at": self.updated_at,
        }


def hash_token(token: str) -> str:
    """Tokens are 192 random bits, so a plain SHA-256 is enough to make a stolen database useless."""
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _assignment(row: sqlite3.Row) -> Assignment:
    return Assignment(
        item_id=row["item_id"], annotator=row["annotator"], status=row["status"],
        scores=json.loads(row["scores"]) if row["scores"] else None, comment=row["comment"],
        flagged=bool(row["flagged"]), updated_at=row["updated_at"],
    )


def _item(row: sqlite3.Row) -> Item:
    return Item(row["id"], row["position"], row["context"], row["response"], json.loads(row["record"]))


class LabelStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as err:  # --db pointing at a file that is not SQLite: bad input
            if isinstance(err, sqlite3.OperationalError):  # locked, disk I/O: not the user's input
                raise
            raise StoreError(f"{self.path}: not an annotation database ({err})") from None

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per call: requests run on a thread pool and sqlite3 connections are not
        # meant to be shared between threads.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock up front, so check-then-write sequences cannot interleave."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- setup -------------------------------------------------------------------------------------------

    def bind_rubric(self, rubric: Rubric) -> None:
        """The first server run fixes the rubric; later runs with another rubric would mix incompatible labels."""
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = 'rubric'").fetchone()
            if row is None:
                conn.execute("INSERT INTO settings VALUES ('rubric', ?)", (json.dumps([rubric.name, rubric.hash]),))
                return
            name, digest = json.loads(row["value"])
            if digest != rubric.hash:
                raise StoreError(
                    f"{self.path}: this database holds labels for rubric {name!r} (hash {digest}); "
                    f"rubric {rubric.name!r} has hash {rubric.hash}. Use a new --db for a changed rubric."
                )

    def load_tasks(self, items: list[LabeledItem], source: str) -> int:
        """Add new items in file order; an id already stored must have the same text. Returns how many were new."""
        added = 0
        with self.transaction() as conn:
            start = conn.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM items").fetchone()[0]
            for line, item in enumerate(items, 1):
                old = conn.execute("SELECT context, response FROM items WHERE id = ?", (item.id,)).fetchone()
                if old is not None:
                    if (old["context"], old["response"]) != (item.context, item.response):
                        raise StoreError(f"{source}: item {item.id!r} (task {line}) differs from the stored one")
                    continue
                conn.execute(
                    "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
                    (item.id, start + added, item.context, item.response, item.model_dump_json(exclude_none=True)),
                )
                added += 1
        return added

    # --- annotators --------------------------------------------------------------------------------------

    def create_annotator(self, name: str, admin: bool = False) -> str:
        """Returns the new token; only its hash is stored, so this is the one time it can be shown."""
        if not NAME_PATTERN.match(name):
            raise StoreError(f"annotator name {name!r}: use 1-64 letters, digits, '_', '.', '-'")
        token = secrets.token_urlsafe(24)
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM annotators WHERE name = ?", (name,)).fetchone():
                raise StoreError(f"annotator {name!r} already exists in {self.path}")
            conn.execute(
                "INSERT INTO annotators (name, token_hash, is_admin, created_at) VALUES (?, ?, ?, ?)",
                (name, hash_token(token), int(admin), _now()),
            )
        return token

    def new_token(self, name: str) -> str:
        """Replace a lost token: the old one stops working, the annotator keeps their name and labels."""
        token = secrets.token_urlsafe(24)
        with self.transaction() as conn:
            updated = conn.execute(
                "UPDATE annotators SET token_hash = ?, revoked = 0 WHERE name = ?", (hash_token(token), name)
            ).rowcount
            if updated == 0:
                raise StoreError(f"no annotator {name!r} in {self.path}")
        return token

    def revoke_annotator(self, name: str) -> int:
        """Disable the token and hand the annotator's unfinished items back to the pool; labels stay.
        Returns how many pending items were released."""
        with self.transaction() as conn:
            if conn.execute("UPDATE annotators SET revoked = 1 WHERE name = ?", (name,)).rowcount == 0:
                raise StoreError(f"no annotator {name!r} in {self.path}")
            return conn.execute(
                "DELETE FROM assignments WHERE annotator = ? AND status = 'pending'", (name,)
            ).rowcount

    def list_annotators(self) -> list[dict]:
        with self.connect() as conn:
            rows = conn.execute("SELECT name, is_admin, revoked, created_at FROM annotators ORDER BY name")
            return [
                {"name": r["name"], "admin": bool(r["is_admin"]), "revoked": bool(r["revoked"]),
                 "created_at": r["created_at"]}
                for r in rows
            ]

    def annotator_for_token(self, token: str) -> Annotator | None:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT name, is_admin FROM annotators WHERE token_hash = ? AND revoked = 0", (hash_token(token),)
            ).fetchone()
        return Annotator(row["name"], bool(row["is_admin"])) if row else None

    # --- items and assignments ---------------------------------------------------------------------------

    def item(self, item_id: str) -> Item | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        return _item(row) if row else None

    def assignment(self, item_id: str, name: str) -> Assignment | None:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT * FROM assignments WHERE item_id = ? AND annotator = ?", (item_id, name)
            ).fetchone()
        return _assignment(row) if row else None

    def assignments_of(self, name: str) -> list[Assignment]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT a.* FROM assignments a JOIN items i ON i.id = a.item_id WHERE a.annotator = ? "
                "ORDER BY i.position", (name,),
            )
            return [_assignment(r) for r in rows]

    def next_item(self, name: str, k: int, batch: int) -> Item | None:
        """The annotator's first pending item; when none is pending, claim up to `batch` new ones first.

        An item is open while fewer than k annotators hold it (skips free their slot). Items others already
        started come first, so overlapping labels (and agreement) build up early.
        """
        with self.transaction() as conn:
            row = self._first_pending(conn, name)
            if row is None:
                open_items = conn.execute(
                    """
                    SELECT i.id, (SELECT COUNT(*) FROM assignments a
                                  WHERE a.item_id = i.id AND a.status != 'skipped') AS held
                    FROM items i
                    WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.annotator = ?)
                      AND held < ?
                    ORDER BY held DESC, i.position
                    LIMIT ?
                    """,
                    (name, k, batch),
                ).fetchall()
                now = _now()
                conn.executemany(
                    "INSERT INTO assignments (item_id, annotator, status, assigned_at) VALUES (?, ?, 'pending', ?)",
                    [(r["id"], name, now) for r in open_items],
                )
                row = self._first_pending(conn, name)
        return _item(row) if row else None

    @staticmethod
    def _first_pending(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
        return conn.execute(
            "SELECT i.* FROM assignments a JOIN items i ON i.id = a.item_id "
            "WHERE a.annotator = ? AND a.status = 'pending' ORDER BY i.position LIMIT 1", (name,),
        ).fetchone()

    def save_label(
        self, item_id: str, name: str, k: int, scores: dict[str, int] | None, comment: str = "",
        flagged: bool = False,
    ) -> Assignment:
        """Record (or replace) this annotator's label; `scores=None` records a skip. One transaction."""
        status = "skipped" if scores is None else "labeled"
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT status FROM assignments WHERE item_id = ? AND annotator = ?", (item_id, name)
            ).fetchone()
            if row is None:
                raise NotAssigned(f"item {item_id!r} is not assigned to {name}")
            if row["status"] == "skipped" and status == "labeled":
                held = conn.execute(
                    "SELECT COUNT(*) FROM assignments WHERE item_id = ? AND status != 'skipped'", (item_id,)
                ).fetchone()[0]
                if held >= k:  # the skip gave the slot away and someone took it
                    raise SlotTaken(f"item {item_id!r} was skipped and already has {held} other annotators")
            conn.execute(
                "UPDATE assignments SET status = ?, scores = ?, comment = ?, flagged = ?, updated_at = ? "
                "WHERE item_id = ? AND annotator = ?",
                (status, json.dumps(scores) if scores is not None else None, comment, int(flagged), _now(),
                 item_id, name),
            )
            row = conn.execute(
                "SELECT * FROM assignments WHERE item_id = ? AND annotator = ?", (item_id, name)
            ).fetchone()
        return _assignment(row)

    # --- reporting ---------------------------------------------------------------------------------------

    def progress(self) -> dict[str, dict[str, int]]:
        """annotator -> counts of labeled, skipped, pending, flagged and assigned (labeled + pending)."""
        with self.connect() as conn:
            names = [r["name"] for r in conn.execute("SELECT name FROM annotators WHERE is_admin = 0 ORDER BY name")]
            out = {n: {"labeled": 0, "skipped": 0, "pending": 0, "flagged": 0} for n in names}
            for r in conn.execute(
                "SELECT annotator, status, COUNT(*) AS n, SUM(flagged) AS f FROM assignments GROUP BY annotator, status"
            ):
                counts = out.setdefault(r["annotator"], {"labeled": 0, "skipped": 0, "pending": 0, "flagged": 0})
                counts[r["status"]] = r["n"]
                counts["flagged"] += r["f"] or 0
        for counts in out.values():
            counts["assigned"] = counts["labeled"] + counts["pending"]
        return out

    def coverage(self, k: int) -> dict[str, int]:
        with self.connect() as conn:
            total = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            done = conn.execute(
                "SELECT COUNT(*) FROM (SELECT item_id FROM assignments WHERE status = 'labeled' "
                "GROUP BY item_id HAVING COUNT(*) >= ?)", (k,),
            ).fetchone()[0]
            labels = conn.execute("SELECT COUNT(*) FROM assignments WHERE status = 'labeled'").fetchone()[0]
        return {"items": total, "items_with_k_labels": done, "labels": labels}

    def flagged(self) -> list[Assignment]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT a.* FROM assignments a JOIN items i ON i.id = a.item_id WHERE a.flagged = 1 "
                "ORDER BY i.position, a.annotator"
            )
            return [_assignment(r) for r in rows]

    def export(self) -> list[LabeledItem]:
        """Every label as interchange records: the task line with its scores, annotator `human:<name>`, and
        the comment, flag and time in meta."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT a.*, i.record FROM assignments a JOIN items i ON i.id = a.item_id "
                "WHERE a.status = 'labeled' ORDER BY i.position, a.annotator"
            ).fetchall()
        labels = []
        for r in rows:
            task = json.loads(r["record"])
            meta = {**task.get("meta", {}), "comment": r["comment"], "flagged": bool(r["flagged"]),
                    "labeled_at": r["updated_at"]}
            labels.append(LabeledItem.model_validate(
                {**task, "scores": json.loads(r["scores"]), "annotator": f"human:{r['annotator']}", "meta": meta}
            ))
        return labels
