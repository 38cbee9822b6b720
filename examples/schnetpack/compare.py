"""Host vs host + FreeCG through the real ``spktrain``, same data, split, seed and epochs.

    python examples/schnetpack/compare.py --epochs 30 --out runs/spk_compare

Converts rMD17 aspirin (split 01: 200 train, 50 val, 200 test frames) once, then runs
``spktrain experiment=aspirin`` for PaiNN, PaiNN + FreeCG, SO3net and SO3net + FreeCG and prints a
table of test energy/force MAE (kcal/mol, kcal/mol/Å), parameters and wall time per epoch (the
whole run, set-up and test included, divided by the epochs). Writes ``results.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "examples" / "data" / "rmd17"
REPRESENTATIONS = ("painn", "painn_freecg", "so3net", "so3net_freecg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("runs/spk_compare"))
    parser.add_argument("--only", nargs="*", choices=REPRESENTATIONS, default=list(REPRESENTATIONS))
    args = parser.parse_args()

    work = args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(HERE / "configs", work / "configs", dirs_exist_ok=True)
    if not (work / "data" / "aspirin.db").exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "convert_rmd17.py"),
                str(args.data),
                "aspirin",
                "01",
                str(work / "data" / "aspirin.db"),
                "--train",
                "200",
                "--val",
                "50",
                "--test",
                "200",
            ],
            check=True,
        )
    spktrain = Path(sys.executable).with_name("spktrain")
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PWD": str(work)}
    rows = []
    for rep in args.only:
        run_id = f"{rep}_seed{args.seed}_ep{args.epochs}"
        shutil.rmtree(work / "runs" / run_id, ignore_errors=True)
        print(f"== {rep}: spktrain, {args.epochs} epochs", flush=True)
        start = time.perf_counter()
        subprocess.run(
            [
                str(spktrain),
                "experiment=aspirin",
                f"model/representation={rep}",
                f"trainer.max_epochs={args.epochs}",
                f"+seed={args.seed}",
                f"run.id={run_id}",
                "callbacks.early_stopping.patience=1000",
            ],
            cwd=work,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - start
        run = work / "runs" / run_id
        metrics = list(csv.DictReader(open(next(run.glob("csv/version_*/metrics.csv")))))
        test = [m for m in metrics if m["test_forces_mae"]][-1]
        rows.append((rep, float(test["test_energy_mae"]), float(test["test_forces_mae"]), seconds / args.epochs))
        print(
            f"   test energy MAE {rows[-1][1]:.3f} kcal/mol, force MAE {rows[-1][2]:.3f} kcal/mol/Å, {rows[-1][3]:.1f} s/epoch", flush=True
        )
    table = ["| representation | test energy MAE (kcal/mol) | test force MAE (kcal/mol/Å) | wall s / epoch |", "|---|---|---|---|"]
    table += [f"| {r} | {e:.3f} | {f:.3f} | {t:.1f} |" for r, e, f, t in rows]
    text = f"spktrain, rMD17 aspirin split 01 (200/50/200), {args.epochs} epochs, seed {args.seed}\n\n" + "\n".join(table) + "\n"
    (work / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
