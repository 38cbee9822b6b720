"""The repository stands alone: no tracked file names the development machines' data folder or
their internal documents, and every shipped data folder carries its licence notice."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# built from parts so that this file does not name what it forbids
FORBIDDEN = re.compile(re.escape("../" + "shared") + "|" + "shared/" + "(data|HOSTS|SPEC|ARCHITECTURE)")


def tracked_files():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    return [ROOT / name for name in listed if name]


def test_no_tracked_file_names_the_development_data_folder():
    offenders = []
    for path in tracked_files():
        if path.suffix in (".npz", ".png") or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in FORBIDDEN.finditer(text)]
    assert not offenders, offenders


def test_the_forbidden_pattern_catches_what_it_should():
    assert FORBIDDEN.search("path: ../" + "shared/" + "data/rmd17") and FORBIDDEN.search("see shared/" + "HOSTS.md")
    assert not FORBIDDEN.search("weights shared by all atoms")


def test_every_shipped_data_folder_has_a_licence_notice():
    data = ROOT / "examples" / "data"
    folders = [p for p in data.iterdir() if p.is_dir()]
    assert len(folders) == 7
    for folder in folders:
        notices = list(folder.glob("LICENSE*"))
        assert notices and all(n.stat().st_size > 0 for n in notices), folder
    assert "CC0" in (data / "README.md").read_text()
