"""The dataset registry: names resolve to the shipped copy or the cache, downloads are checked,
and nothing partial or wrong is ever left in the cache. Downloads come from a real HTTP server on
127.0.0.1 serving the shipped files (never from the internet)."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from freecg_plugin.data import registry
from freecg_plugin.data.readers import load_rmd17_split

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("FREECG_DATA", str(folder))
    return folder


def test_every_shipped_file_matches_its_registry_checksum():
    shipped = [f for d in registry.datasets() for f in d.files if (DATA / f.path).is_file()]
    assert len(shipped) >= 17  # five molecules x train/test, water, LiPS, QM9, MD22, CCSD(T), fixtures
    for file in shipped:
        assert hashlib.sha256((DATA / file.path).read_bytes()).hexdigest() == file.sha256, file.path
        assert (DATA / file.path).stat().st_size == file.bytes


def test_names_resolve_to_the_shipped_copy_then_the_cache(cache):
    assert registry.locate("rmd17/aspirin", "01") == DATA
    with pytest.raises(FileNotFoundError) as missing:
        registry.locate("rmd17/uracil", "02")
    message = str(missing.value)
    assert str(DATA / "rmd17" / "rmd17_uracil_test_02.npz") in message and str(cache) in message
    assert "freecg data fetch rmd17/uracil --split 02" in message
    with pytest.raises(ValueError, match="unknown dataset 'rmd17/unobtainium'"):
        registry.locate("rmd17/unobtainium")


def test_fetch_good_download_then_mismatch_then_interrupted(cache, serve_folder, monkeypatch, tmp_path):
    monkeypatch.setenv("FREECG_DATA_MIRROR", serve_folder(DATA))
    paths = registry.fetch("rmd17/ethanol", "01")
    assert sorted(p.name for p in paths) == ["rmd17_ethanol_test_01.npz", "rmd17_ethanol_train_01.npz"]
    for path in paths:
        assert path.read_bytes() == (DATA / "rmd17" / path.name).read_bytes()
    assert registry.fetch("rmd17/ethanol", "01") == paths  # already there: kept

    # a server whose copy differs: the checksum fails and nothing is left in the cache
    wrong = tmp_path / "wrong"
    shutil.copytree(DATA / "rmd17", wrong / "rmd17")
    target = wrong / "rmd17" / "rmd17_toluene_train_01.npz"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setenv("FREECG_DATA_MIRROR", serve_folder(wrong))
    with pytest.raises(ValueError, match="rmd17/toluene.*SHA256"):
        registry.fetch("rmd17/toluene", "01")
    assert not (cache / "rmd17" / "rmd17_toluene_train_01.npz").exists()  # the good test file is kept

    # the connection drops half-way: an error, and no partial file
    monkeypatch.setenv("FREECG_DATA_MIRROR", serve_folder(DATA) + "/truncated")
    with pytest.raises(OSError, match="rmd17/benzene: download of .* failed"):
        registry.fetch("rmd17/benzene", "01")
    assert not [p for p in (cache / "rmd17").iterdir() if "benzene" in p.name]
    assert sorted(p.name for p in (cache / "rmd17").iterdir()) == [
        "rmd17_ethanol_test_01.npz",
        "rmd17_ethanol_train_01.npz",
        "rmd17_toluene_test_01.npz",
    ]  # no temporary or partial file


def test_a_file_without_published_hash_is_pinned_on_first_download(cache, serve_folder, monkeypatch, tmp_path):
    served = tmp_path / "served" / "md22"
    served.mkdir(parents=True)
    (served / "md22_DHA.npz").write_bytes(b"first version")
    monkeypatch.setenv("FREECG_DATA_MIRROR", serve_folder(served.parent))
    (path,) = registry.fetch("md22/DHA")
    pin = path.with_name(path.name + ".sha256")
    assert pin.read_text().strip() == hashlib.sha256(b"first version").hexdigest()
    path.unlink()
    (served / "md22_DHA.npz").write_bytes(b"changed upstream")
    with pytest.raises(ValueError, match="SHA256"):
        registry.fetch("md22/DHA")
    assert not path.exists()


def test_a_file_without_published_hash_warns_and_require_hash_refuses_it(cache, serve_folder, monkeypatch, tmp_path, capsys):
    served = tmp_path / "served" / "md22"
    served.mkdir(parents=True)
    (served / "md22_DHA.npz").write_bytes(b"from a mirror")
    monkeypatch.setenv("FREECG_DATA_MIRROR", serve_folder(served.parent))
    with pytest.raises(ValueError, match="no published SHA-256 \\(refused: --require-hash\\)"):
        registry.fetch("md22/DHA", require_hash=True)
    assert not list(cache.rglob("*DHA*"))  # nothing downloaded
    (path,) = registry.fetch("md22/DHA")
    assert "WARNING: md22/md22_DHA.npz has no published SHA-256" in capsys.readouterr().err
    assert registry.fetch("md22/DHA", require_hash=True) == [path]  # pinned since: checked against the pin


def test_shipped_only_files_say_so(cache):
    with pytest.raises(ValueError, match="not published for download"):
        registry.fetch("water/deepmd64")


def test_official_rmd17_archive_layout_reads_the_same_frames(tmp_path):
    """npz_data/rmd17_<mol>.npz + splits/index_{train,test}_01.csv give the per-split files' frames."""
    train = dict(np.load(DATA / "rmd17" / "rmd17_ethanol_train_01.npz"))
    test = dict(np.load(DATA / "rmd17" / "rmd17_ethanol_test_01.npz"))
    archive = tmp_path / "rmd17" / "rmd17"
    (archive / "npz_data").mkdir(parents=True)
    (archive / "splits").mkdir()
    # all frames in one file, test frames first, in another order than the splits list them
    order = np.random.default_rng(0).permutation(2000)
    merged = {k: np.concatenate([test[k], train[k]])[order] if test[k].ndim and len(test[k]) == 1000 else test[k] for k in test}
    np.savez(archive / "npz_data" / "rmd17_ethanol.npz", **merged)
    where = np.argsort(order)  # merged index of original frame f
    np.savetxt(archive / "splits" / "index_train_01.csv", where[1000:], fmt="%d")
    np.savetxt(archive / "splits" / "index_test_01.csv", where[:1000], fmt="%d")
    got_train, got_test = load_rmd17_split(tmp_path / "rmd17", "ethanol", 1)
    ref_train, ref_test = load_rmd17_split(DATA / "rmd17", "ethanol", "01")
    assert torch.equal(torch.stack([s.positions for s in got_train.structures]), torch.stack([s.positions for s in ref_train.structures]))
    assert torch.equal(got_test.energy, ref_test.energy)


@pytest.mark.slow
def test_data_cli_list_path_fetch(cache, serve_folder, tmp_path):
    freecg = Path(sys.executable).with_name("freecg")
    env = {"FREECG_DATA": str(cache), "FREECG_DATA_MIRROR": serve_folder(DATA), "PATH": ""}
    listing = subprocess.run([str(freecg), "data", "list"], capture_output=True, text=True, env=env)
    assert listing.returncode == 0
    assert "rmd17/aspirin" in listing.stdout and f"{DATA} (split 01)" in listing.stdout
    assert "freecg data fetch rmd17/uracil" in listing.stdout
    fetched = subprocess.run([str(freecg), "data", "fetch", "rmd17/naphthalene", "--split", "1"], capture_output=True, text=True, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert (cache / "rmd17" / "rmd17_naphthalene_train_01.npz").is_file()
    missing = subprocess.run([str(freecg), "data", "path", "rmd17/uracil", "--split", "3"], capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "freecg data fetch rmd17/uracil --split 03" in missing.stderr
