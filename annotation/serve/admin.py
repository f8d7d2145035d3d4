"""`python -m annotation annotators create|new-token|list|revoke|export`: manage who may annotate.

`create` prints a fresh access token exactly once; the database keeps only its SHA-256 hash, so a lost token
cannot be shown again: `new-token` replaces it (the old one stops working, name and labels stay). `revoke`
disables a token and hands the annotator's unfinished items to others. `export` writes every label as
interchange JSONL (the same file as the admin page's export link).
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.cli import ArgumentParser
from core.config import Config, add_arguments, build_config
from core.errors import exits_on_bad_input
from core.schema import write_jsonl
from annotation.serve.db import LabelStore, StoreError

ACTIONS = ("create", "new-token", "list", "revoke", "export")


class AnnotatorsConfig(Config):
    db: Path = Field(Path("runs/demo/annotation.sqlite"), description="SQLite file of the annotation server")
    name: str | None = Field(None, description="annotator name (create, new-token, revoke); exported as human:<name>")
    admin: bool = Field(False, description="create: the annotator may see the admin page and export labels")
    out: Path | None = Field(None, description="export: JSONL file to write the labels to")


def run(action: str, config: AnnotatorsConfig) -> None:
    if action in {"create", "new-token", "revoke"} and not config.name:
        raise StoreError(f"{action} needs --name")
    if action == "export" and config.out is None:
        raise StoreError("export needs --out FILE")
    if action != "create" and not config.db.exists():
        raise StoreError(f"{config.db}: no such database")
    store = LabelStore(config.db)
    if action == "create":
        token = store.create_annotator(config.name, admin=config.admin)
        role = "admin" if config.admin else "annotator"
        print(f"created {role} {config.name}. Access token (shown once, only its hash is stored):\n{token}")
    elif action == "new-token":
        token = store.new_token(config.name)
        print(f"new token for {config.name}; the old one no longer works (shown once):\n{token}")
    elif action == "revoke":
        released = store.revoke_annotator(config.name)
        print(f"revoked {config.name}: their token no longer works; their labels stay; "
              f"{released} unfinished items go back to the pool")
    elif action == "list":
        progress = store.progress()
        for a in store.list_annotators():
            counts = progress.get(a["name"], {})
            flags = " ".join(f for f, on in (("admin", a["admin"]), ("REVOKED", a["revoked"])) if on)
            print(f"{a['name']:<24} labeled {counts.get('labeled', 0):>5}  pending {counts.get('pending', 0):>4}  "
                  f"created {a['created_at']}  {flags}".rstrip())
    else:
        n = write_jsonl(config.out, store.export())
        print(f"{config.out}: {n} labels")


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m annotation annotators", description=__doc__)
    parser.add_argument("action", choices=ACTIONS)
    add_arguments(parser, AnnotatorsConfig, config_file=False)
    args = parser.parse_args(argv)
    run(args.action, build_config(AnnotatorsConfig, args))
