"""`annotators create` prints a fresh token once; the database holds only its SHA-256; list and revoke work."""
import hashlib

import pytest

from annotation.serve import admin
from annotation.serve.db import LabelStore


def created_token(capsys, db, *extra) -> str:
    admin.main(["create", "--db", str(db), *extra])
    out = capsys.readouterr().out
    return out.strip().splitlines()[-1]


def test_create_list_revoke(tmp_path, capsys):
    db = tmp_path / "labels.sqlite"
    alice = created_token(capsys, db, "--name", "alice")
    boss = created_token(capsys, db, "--name", "boss", "--admin")
    assert alice != boss and len(alice) >= 32

    store = LabelStore(db)
    assert store.annotator_for_token(alice).name == "alice" and not store.annotator_for_token(alice).is_admin
    assert store.annotator_for_token(boss).is_admin

    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("labels.sqlite"))
    for token in (alice, boss):
        assert token.encode() not in raw
        assert hashlib.sha256(token.encode()).hexdigest().encode() in raw

    admin.main(["list", "--db", str(db)])
    listing = capsys.readouterr().out
    assert "alice" in listing and "boss" in listing and alice not in listing and "admin" in listing

    admin.main(["revoke", "--db", str(db), "--name", "alice"])
    capsys.readouterr()
    assert store.annotator_for_token(alice) is None
    admin.main(["list", "--db", str(db)])
    assert "REVOKED" in capsys.readouterr().out

    admin.main(["new-token", "--db", str(db), "--name", "alice"])  # a lost or revoked token is replaced
    fresh = capsys.readouterr().out.strip().splitlines()[-1]
    assert fresh != alice and store.annotator_for_token(fresh).name == "alice"
    assert store.annotator_for_token(alice) is None


def test_duplicate_or_bad_names_are_refused(tmp_path, capsys):
    db = tmp_path / "labels.sqlite"
    created_token(capsys, db, "--name", "alice")
    with pytest.raises(SystemExit, match="already exists"):
        admin.main(["create", "--db", str(db), "--name", "alice"])
    with pytest.raises(SystemExit, match="use 1-64 letters"):
        admin.main(["create", "--db", str(db), "--name", "<b>x</b>"])
    with pytest.raises(SystemExit, match="no annotator 'nobody'"):
        admin.main(["revoke", "--db", str(db), "--name", "nobody"])
