"""Convert a revised-MD17 split (npz) into a SchNetPack ASE database plus a split file.

    python examples/schnetpack/convert_rmd17.py examples/data/rmd17 aspirin 01 data/aspirin.db \
        --train 950 --val 50 --test 1000

Reads ``rmd17_<molecule>_train_<split>.npz`` and ``rmd17_<molecule>_test_<split>.npz`` (keys
``nuclear_charges, coords, energies, forces``; Å, kcal/mol, kcal/mol/Å) and writes:

* ``<db>``: an ``ASEAtomsData`` database with ``energy`` [kcal/mol] and ``forces`` [kcal/mol/Ang],
  positions in Ang: the first ``--train + --val`` frames of the train file, then ``--test``
  frames of the test file;
* ``<db stem>_split.npz``: ``train_idx``, ``val_idx``, ``test_idx`` for SchNetPack's
  ``AtomsDataModule(split_file=...)``, so that the official rMD17 test frames are the test set.

Both are written to temporary files and renamed, so an existing database is never half-replaced.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

KEYS = ("nuclear_charges", "coords", "energies", "forces")


def load_split(path: Path) -> dict[str, np.ndarray]:
    """Read one rMD17 npz, checking its keys and shapes (errors name the file)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such rMD17 file")
    try:
        with np.load(path) as data:
            arrays = {key: np.asarray(data[key]) for key in KEYS if key in data}
    except Exception as err:  # a corrupt zip or npy
        raise ValueError(f"{path}: cannot read as npz ({err})") from None
    missing = [key for key in KEYS if key not in arrays]
    if missing:
        raise ValueError(f"{path}: missing keys {missing} (rMD17 npz needs {list(KEYS)})")
    z, r, e, f = (arrays[key] for key in KEYS)
    frames, atoms = len(e), len(z)
    if r.shape != (frames, atoms, 3) or f.shape != (frames, atoms, 3):
        raise ValueError(f"{path}: coords {r.shape} / forces {f.shape} do not match {frames} frames x {atoms} atoms")
    if not (np.isfinite(r).all() and np.isfinite(e).all() and np.isfinite(f).all()):
        raise ValueError(f"{path}: non-finite coordinates, energies or forces")
    return arrays


def convert(data_dir: Path, molecule: str, split: str, db_path: Path, n_train: int, n_val: int, n_test: int) -> Path:
    """Write the database and its split file; return the split file's path."""
    from ase import Atoms
    from schnetpack.data import ASEAtomsData

    train = load_split(data_dir / f"rmd17_{molecule}_train_{split}.npz")
    test = load_split(data_dir / f"rmd17_{molecule}_test_{split}.npz")
    if not np.array_equal(train["nuclear_charges"], test["nuclear_charges"]):
        raise ValueError(f"{molecule} split {split}: train and test files hold different molecules")
    if n_train + n_val > len(train["energies"]) or n_test > len(test["energies"]):
        raise ValueError(
            f"asked for {n_train}+{n_val} train/val and {n_test} test frames; the files hold "
            f"{len(train['energies'])} and {len(test['energies'])}"
        )
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    split_path = db_path.with_name(db_path.stem + "_split.npz")
    fd, tmp_db = tempfile.mkstemp(suffix=".db", dir=db_path.parent)
    os.close(fd)
    os.unlink(tmp_db)  # ASEAtomsData.create refuses an existing file
    try:
        dataset = ASEAtomsData.create(tmp_db, distance_unit="Ang", property_unit_dict={"energy": "kcal/mol", "forces": "kcal/mol/Ang"})
        atoms, properties = [], []
        for source, count in ((train, n_train + n_val), (test, n_test)):
            for i in range(count):
                atoms.append(Atoms(numbers=source["nuclear_charges"], positions=source["coords"][i]))
                properties.append(
                    {"energy": np.array([source["energies"][i]], dtype=np.float64), "forces": source["forces"][i].astype(np.float64)}
                )
        dataset.add_systems(properties, atoms)
        fd, tmp_split = tempfile.mkstemp(suffix=".npz", dir=db_path.parent)
        os.close(fd)
        with open(tmp_split, "wb") as handle:
            np.savez(
                handle,
                train_idx=np.arange(n_train),
                val_idx=np.arange(n_train, n_train + n_val),
                test_idx=np.arange(n_train + n_val, n_train + n_val + n_test),
            )
        os.replace(tmp_db, db_path)
        os.replace(tmp_split, split_path)
    finally:
        for leftover in (tmp_db,):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return split_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="folder holding the rmd17_*.npz files")
    parser.add_argument("molecule", help="e.g. aspirin")
    parser.add_argument("split", help="e.g. 01")
    parser.add_argument("db", type=Path, help="output ASE database")
    parser.add_argument("--train", type=int, default=950)
    parser.add_argument("--val", type=int, default=50)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    split_file = convert(args.data_dir, args.molecule, args.split, args.db, args.train, args.val, args.test)
    print(f"wrote {args.db} ({args.train} train, {args.val} val, {args.test} test frames) and {split_file}")


if __name__ == "__main__":
    main()
