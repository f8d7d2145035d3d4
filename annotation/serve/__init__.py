"""`python -m annotation serve`: a web page where human annotators rate tutor responses on a rubric.

Tasks are unlabeled interchange JSONL; labels, annotators (token hashes) and assignments live in one SQLite
file, so stopping and restarting the server (even with a kill) loses no acknowledged label.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.cli import ArgumentParser
from core.config import Config, add_arguments, build_config
from core.errors import exits_on_bad_input
from core.schema import DataError, LabeledItem, iter_jsonl_lines


class ServeConfig(Config):
    tasks: Path | None = Field(None, description="unlabeled interchange JSONL (id, context, response) to add to the db")
    rubric: str = Field("hpc", description="rubric name in configs/rubrics/ or a YAML path")
    db: Path = Field(Path("runs/demo/annotation.sqlite"), description="SQLite file holding items, annotators and labels")
    k: int = Field(2, ge=1, description="how many different annotators label each item (overlap for agreement)")
    claim_batch: int = Field(10, ge=1, description="items handed to an annotator at a time when their queue is empty")
    host: str = Field(
        "127.0.0.1",
        description="address to listen on; to serve a team, keep this and put an HTTPS reverse proxy in front "
                    "(tokens travel in every request)",
    )
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")


def read_tasks(path: Path) -> list[LabeledItem]:
    """Unlabeled items with unique ids; a problem raises DataError naming the file and line."""
    items, seen = [], {}
    for line, item in iter_jsonl_lines(path, LabeledItem):
        if item.scores:
            raise DataError(f"{path}:{line}: field scores: tasks must be unlabeled (found {item.scores})")
        if item.id in seen:
            raise DataError(f"{path}:{line}: field id: {item.id!r} already used on line {seen[item.id]}")
        seen[item.id] = line
        items.append(item)
    return items


def prepare_store(config: ServeConfig):
    """Open the db, fix its rubric and add the tasks; returns (store, rubric)."""
    from core.rubric import load_rubric
    from annotation.serve.db import LabelStore

    rubric = load_rubric(config.rubric)
    tasks = read_tasks(config.tasks) if config.tasks is not None else None  # bad tasks: no database is made
    store = LabelStore(config.db)
    store.bind_rubric(rubric)
    if tasks is not None:
        added = store.load_tasks(tasks, str(config.tasks))
        print(f"{config.tasks}: {added} new items added to {config.db}")
    return store, rubric


@exits_on_bad_input()
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m annotation serve", description=__doc__)
    add_arguments(parser, ServeConfig)
    config = build_config(ServeConfig, parser.parse_args(argv))
    store, rubric = prepare_store(config)  # bad tasks or a database for another rubric: StoreError, one line
    if not store.list_annotators():
        print(f"no annotators yet: python -m annotation annotators create --db {config.db} --name NAME [--admin]")

    import uvicorn

    from annotation.serve.app import create_app

    app = create_app(store, rubric, k=config.k, claim_batch=config.claim_batch)
    print(f"serving {config.db} on http://{config.host}:{config.port}/ (k={config.k}, rubric {rubric.name})", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
