"""Models split over several wheels are joined in order, checked against their pinned size and sha256 (a mismatch is
refused and leaves nothing behind), and a missing part names the `make models` step."""
import hashlib
import io
import zipfile

import pytest

from core import models
from core.models import ModelAssetError, SplitModel


def _parts(tmp_path, payload: bytes, n: int):
    size = -(-len(payload) // n)
    files = {}
    for i in range(n):
        path = tmp_path / f"part{i}.bin"
        path.write_bytes(payload[i * size:(i + 1) * size])
        files[f"dist-{i}"] = path
    return files


def _entry(n, payload, **kw):
    return SplitModel(tuple(f"dist-{i}" for i in range(n)), "1.0", "*", "model.gguf", "causal-lm", **kw,
                      size=len(payload), sha256=hashlib.sha256(payload).hexdigest())


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    payload = bytes(range(256)) * 1000
    files = _parts(tmp_path, payload, 3)
    monkeypatch.setattr(models, "_part_file", lambda dist, pattern, install: files[dist])
    return payload


def test_parts_join_in_order_and_match_the_pinned_digest(tmp_path, fake_parts):
    out = models.join_parts(_entry(3, fake_parts), tmp_path / "cache" / "model.gguf")
    assert out.read_bytes() == fake_parts


@pytest.mark.parametrize("field, value, message", [
    ("sha256", "0" * 64, "does not match the pinned"),
    ("size", 12, "expected 12"),
])
def test_a_mismatch_is_refused_and_leaves_no_file(tmp_path, fake_parts, field, value, message):
    entry = _entry(3, fake_parts)
    entry = SplitModel(**{**entry.__dict__, field: value})
    cache = tmp_path / "cache"
    with pytest.raises(ModelAssetError, match=message):
        models.join_parts(entry, cache / "model.gguf")
    assert list(cache.iterdir()) == []


def test_a_missing_part_names_the_install_step():
    entry = SplitModel(("no-such-distribution-xyz",), "0.1", "*", "m.gguf", "causal-lm")
    with pytest.raises(ModelAssetError, match="make models.*no-such-distribution-xyz==0.1"):
        models.join_parts(entry, models.cache_dir() / "never" / "m.gguf")


def test_a_zip_model_is_unpacked_once_into_the_cache(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("enc/config.json", "{}")
    payload = buffer.getvalue()
    files = _parts(tmp_path, payload, 2)
    monkeypatch.setattr(models, "_part_file", lambda dist, pattern, install: files[dist])
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    entry = SplitModel(("dist-0", "dist-1"), "1.0", "*", "enc.zip", "encoder", inner="enc")
    monkeypatch.setitem(models.EMBEDDED, "tiny-enc", entry)
    folder = models.resolve_model("tiny-enc")
    assert folder == str(tmp_path / "cache" / "tiny-enc" / "enc")
    assert (tmp_path / "cache" / "tiny-enc" / "enc" / "config.json").exists()
    assert not (tmp_path / "cache" / "parts" / "enc.zip").exists()  # the joined file is dropped once unpacked
    files["dist-0"].unlink()  # a second call reads the cache, not the wheels
    assert models.resolve_model("tiny-enc") == folder


def test_registry_names_the_new_models():
    for name in ("mpnet-base", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"):
        assert name in models.EMBEDDED
    assert models.EMBEDDED["qwen2.5-coder-1.5b-instruct"].size == 1_117_320_768
