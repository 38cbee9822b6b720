"""Property readouts and QM9 data: symmetry of every readout (float64, the shared helpers), the
dipole of two point charges, exact atom-reference subtraction, the qm9pack conversion, and
one-line errors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from freecg_plugin.properties import (
    ATOM_REFERENCES,
    QM9_TARGETS,
    AtomwiseReadout,
    DipoleReadout,
    SpatialExtentReadout,
    load_qm9,
    prepare_qm9,
)
from freecg_plugin.properties.qm9 import HARTREE_IN_MEV
from freecg_plugin.testing import Equivariant, assert_equivariant, assert_permutation_equivariant

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT / "examples" / "data" / "qm9" / "qm9_subset10k_seed0.npz"
F = 8


def _molecule(generator, atoms=7):
    numbers = torch.tensor([6, 1, 1, 8, 7, 1, 9][:atoms])
    positions = torch.randn(atoms, 3, generator=generator, dtype=torch.float64) * 1.5
    return numbers, positions


def _features(positions: torch.Tensor, numbers: torch.Tensor):
    """Equivariant stand-ins for a host's features, built from the geometry: scalars from
    distances (invariant), vectors from sums of relative positions (l = 1, odd)."""
    rel = positions.unsqueeze(0) - positions.unsqueeze(1)  # [N, N, 3]
    dist = rel.norm(dim=-1)
    widths = torch.linspace(0.5, 3.0, F, dtype=positions.dtype)
    radial = torch.exp(-dist.unsqueeze(-1) / widths)  # [N, N, F]
    scalar = radial.sum(1) + numbers.to(positions.dtype).unsqueeze(-1) / 10
    vector = torch.einsum("ijc,ijf->icf", rel, radial)  # [N, 3, F]
    return scalar, vector


@pytest.mark.parametrize("readout", ["sum", "mean", "dipole", "dipole-charges-only", "spatial_extent"])
def test_readouts_are_invariant_and_the_dipole_vector_rotates(float64, generator, readout):
    torch.manual_seed(0)
    module = {
        "sum": AtomwiseReadout(F, "sum"),
        "mean": AtomwiseReadout(F, "mean"),
        "dipole": DipoleReadout(F),
        "dipole-charges-only": DipoleReadout(F, vectors=False),
        "spatial_extent": SpatialExtentReadout(F),
    }[readout].double()
    numbers, positions = _molecule(generator)
    batch = torch.zeros(len(numbers), dtype=torch.long)

    def value(positions, numbers):
        scalar, vector = _features(positions, numbers)
        return module(scalar, vector, numbers, positions, batch, 1)

    def outputs(positions, numbers):
        if isinstance(module, DipoleReadout):
            scalar, vector = _features(positions, numbers)
            return value(positions, numbers), module.dipole_vector(scalar, vector, numbers, positions, batch, 1)[0]
        return (value(positions, numbers),)

    specs_out = [Equivariant()] + ([Equivariant("1o")] if isinstance(module, DipoleReadout) else [])
    assert_equivariant(lambda p: outputs(p, numbers), [positions], [Equivariant("1o")], specs_out, generator=generator)
    assert_permutation_equivariant(lambda p, z: outputs(p, z), [positions, numbers], [0, 0], [None] * len(specs_out), generator=generator)
    shift = torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(value(positions + shift, numbers), value(positions, numbers), rtol=1e-10, atol=1e-10)
    assert value(positions, numbers).abs().item() > 0  # not trivially zero


def test_dipole_of_two_point_charges_is_charge_times_distance(float64):
    readout = DipoleReadout(1, vectors=False).double()
    with torch.no_grad():  # q_i = scalar_i: charges +0.5 and -0.5 e
        first, last = readout.charge[0], readout.charge[2]
        first.weight.copy_(torch.eye(1)), first.bias.zero_(), last.weight.copy_(torch.eye(1)), last.bias.zero_()
        readout.charge[1] = torch.nn.Identity()
    numbers = torch.tensor([1, 1])
    d = 1.7
    positions = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, d]], dtype=torch.float64)
    scalar = torch.tensor([[0.5], [-0.5]], dtype=torch.float64)
    mu = readout(scalar, None, numbers, positions, torch.zeros(2, dtype=torch.long), 1)
    assert mu.item() == pytest.approx(0.5 * d * DipoleReadout.E_ANGSTROM_IN_DEBYE, rel=1e-12)  # q d, in debye
    shifted = readout(scalar + 0.3, None, numbers, positions, torch.zeros(2, dtype=torch.long), 1)
    assert shifted.item() == pytest.approx(mu.item(), rel=1e-12)  # the charges are made to sum to zero


def test_atom_reference_subtraction_is_exact_for_isolated_atoms(tmp_path):
    # one "molecule" of five far-apart isolated atoms, with energies exactly the reference sums
    numbers = np.array([1, 6, 7, 8, 9], dtype=np.int8)
    positions = np.arange(15, dtype=np.float64).reshape(5, 3) * 10
    with np.load(SUBSET) as data:
        names = [str(n) for n in data["prop_names"]]
    props = np.zeros((1, len(names)))
    for target in ("U0", "U", "H", "G"):
        props[0, names.index(QM9_TARGETS[target].column)] = sum(ATOM_REFERENCES[target][int(z)] for z in numbers)
    np.savez(tmp_path / "atoms.npz", Z=numbers, R=positions, ptr=np.array([0, 5]), props=props, prop_names=np.array(names))
    data = load_qm9(tmp_path / "atoms.npz", ["U0", "U", "H", "G"])
    for target in ("U0", "U", "H", "G"):
        assert data.targets[target].item() == pytest.approx(0.0, abs=1e-8)  # meV


def test_qm9_subset_units_and_bad_input(tmp_path):
    data = load_qm9(SUBSET, ["mu", "gap", "U0", "r2", "Cv"], limit=50)
    assert len(data) == 50 and data.structures[0].numbers.tolist() == [8, 1, 1]  # molecule 3: water
    with np.load(SUBSET) as raw:
        names = [str(n) for n in raw["prop_names"]]
        gap = raw["props"][:50, names.index("HOMO_LUMO_gap_au")]
    np.testing.assert_allclose(data.targets["gap"].numpy(), gap * HARTREE_IN_MEV)  # Hartree -> meV
    assert 5000 < float(data.targets["gap"].mean()) < 12000  # QM9's gaps are 5-12 eV
    with pytest.raises(ValueError, match=r"unknown target\(s\) \['dipole'\]"):
        load_qm9(SUBSET, ["dipole"])
    with np.load(SUBSET) as raw:
        values = {k: raw[k] for k in raw.files}
    chlorine = values["Z"].copy()
    chlorine[values["ptr"][4]] = 17  # a chlorine in molecule 4
    np.savez(tmp_path / "cl.npz", **{**values, "Z": chlorine})
    with pytest.raises(ValueError, match="molecule 4 holds Z=\\[17\\], outside QM9's H, C, N, O, F"):
        load_qm9(tmp_path / "cl.npz", ["mu"])
    keep = [i for i, n in enumerate(names) if n != "Dipole_debye"]
    np.savez(tmp_path / "nomu.npz", **{**values, "props": values["props"][:, keep], "prop_names": values["prop_names"][keep]})
    with pytest.raises(ValueError, match=r"has no column for target\(s\) \['mu'\]"):
        load_qm9(tmp_path / "nomu.npz", ["mu", "gap"])


QM9PACK_HEADER = (
    "XYZ_file,Index,SMILES,InChi,N_atoms,Stoichiometry,Elements,XYZ_Ang,Mulliken_pop,Harmonic_Freq_cmi,RotA_GHz,RotB_GHz,RotC_GHz,"
    "Dipole_debye,Polarizability_bohr3,HOMO_au,LUMO_au,HOMO_LUMO_gap_au,R2_bohr2,ZPVE_au,InternalEnergy_0K_au,InternalEnergy_298K_au,"
    "Enthalphy_298K_au,GibbsFreeEnergy_298K_au,Heatcapacity_Cv_cal_mol_K"
)


def test_qm9pack_conversion_matches_the_shipped_subset(tmp_path):
    # the first two molecules of the shipped subset (QM9 numbers 3 and 19), written as rows of qm9pack's CSV
    with np.load(SUBSET) as raw:
        names = [str(n) for n in raw["prop_names"]]
        rows = []
        for m in range(2):
            a, b = raw["ptr"][m], raw["ptr"][m + 1]
            symbols = ["'" + {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}[int(z)] + "'" for z in raw["Z"][a:b]]
            xyz = "[" + ",".join("[" + ",".join(f"{v:.10f}" for v in r) + "]" for r in raw["R"][a:b]) + "]"
            props = ",".join(repr(float(v)) for v in raw["props"][m])
            rows.append(f'"x.xyz",{raw["index"][m]},"S","I",{b - a},"[]","[{",".join(symbols)}]","{xyz}","[]","[]",{props}')
    assert QM9PACK_HEADER.split(",")[10:] == names
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "qm9_part1.csv").write_text(QM9PACK_HEADER + "\n" + "\n".join(rows) + "\n")
    out = prepare_qm9(tmp_path / "qm9.npz", tmp_path / "src", progress=False)
    converted, shipped = load_qm9(out, list(QM9_TARGETS)), load_qm9(SUBSET, list(QM9_TARGETS), limit=2)
    assert converted.index.tolist() == shipped.index.tolist() == [3, 19]
    for name in QM9_TARGETS:
        torch.testing.assert_close(converted.targets[name], shipped.targets[name], rtol=1e-12, atol=1e-9)
    for a, b in zip(converted.structures, shipped.structures):
        assert a.numbers.tolist() == b.numbers.tolist()
        torch.testing.assert_close(a.positions, b.positions, rtol=0, atol=1e-9)


HOST_ARGS = {
    "visnet": {"lmax": 2, "num_heads": 2, "num_layers": 2, "hidden_channels": 16, "num_rbf": 8},
    "painn": {"n_atom_basis": 16, "n_interactions": 2, "n_rbf": 8},
    "so3net": {"n_atom_basis": 8, "n_interactions": 2, "lmax": 2, "n_rbf": 8},
}
FREECG = {"visnet": {"groups": 2}, "painn": {"groups": 2}, "so3net": {"groups": 2}}


def _property_model(host: str, targets, freecg=True):
    from freecg_plugin.hosts import HostStatistics, ModelConfig, build_host
    from freecg_plugin.properties.model import build_property_model

    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # SchNetPack builds its modules in float32 only; converted below
    try:
        model_config = ModelConfig(host, HOST_ARGS[host], 4.0, FREECG[host] if freecg else None)
        potential = build_host(model_config, HostStatistics([1, 6, 7, 8, 9], 0.0, 1.0, 8.0, seed=0))
        model = build_property_model(potential, targets, {t: (0.1, 2.0) for t in targets}, host)
    finally:
        torch.set_default_dtype(default)
    for parameter in model.parameters():  # FreeCG starts as its host (zero weights): wake it so it is tested
        if parameter.abs().sum() == 0:
            torch.nn.init.normal_(parameter, std=0.1)
    return model.double()


@pytest.mark.parametrize("host", ["visnet", "painn", "so3net"])
def test_property_models_are_invariant_for_every_host(float64, generator, host):
    pytest.importorskip("schnetpack" if host != "visnet" else "torch_geometric")
    from freecg_plugin.atomistic import Structure, collate

    targets = ["mu", "U0", "gap", "r2"]
    model = _property_model(host, targets)
    data = load_qm9(SUBSET, targets, limit=12)
    molecule = data.structures[11]  # 9+ atoms
    numbers, positions = molecule.numbers, molecule.positions.double()

    def outputs(positions, numbers):
        graph = collate([Structure(numbers, positions)], 4.0)
        graph.positions = positions  # keep the caller's tensor (and dtype)
        out = model.predict(graph)
        return tuple(out[t] for t in targets)

    invariant = [Equivariant()] * len(targets)
    rtol = 1e-5 if host == "so3net" else 1e-9  # SchNetPack's SO3net constants are float32-exact
    assert_equivariant(lambda p: outputs(p, numbers), [positions], [Equivariant("1o")], invariant, rtol=rtol, generator=generator)
    assert_permutation_equivariant(
        lambda p, z: outputs(p, z), [positions, numbers], [0, 0], [None] * len(targets), rtol=rtol, generator=generator
    )
    shifted = outputs(positions + torch.tensor([2.0, -3.0, 1.0], dtype=torch.float64), numbers)
    for a, b in zip(shifted, outputs(positions, numbers)):
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol)


def test_a_few_steps_lower_the_loss_of_every_target_kind(tmp_path):
    pytest.importorskip("lightning")
    from freecg_plugin.properties.data import load_property_data
    from freecg_plugin.training import TrainConfig
    from freecg_plugin.training.properties import PropertyTask, property_loader, target_statistics

    targets = ["alpha", "gap", "mu", "r2"]  # an atom-wise sum, a mean, the dipole, the spatial extent
    config = TrainConfig.from_dict({
        "task": "properties", "targets": targets,
        "data": {"dataset": "qm9/subset10k", "n_train": 64, "n_val": 8, "n_test": 8},
        "model": {"host": "painn", "args": HOST_ARGS["painn"], "cutoff": 4.0, "freecg": {"groups": 2}},
        "optim": {"lr": 3e-3, "batch_size": 16, "max_epochs": 1, "warmup_steps": 0}, "output": str(tmp_path), "accelerator": "cpu",
    })  # fmt: skip
    train_set, _, _ = load_property_data(config.data, targets)
    torch.manual_seed(0)
    task = PropertyTask(config.to_dict(), target_statistics(train_set), [1, 6, 7, 8, 9])
    optimizer = torch.optim.Adam(task.model.parameters(), lr=3e-3)
    loader = property_loader(train_set, 4.0, 16, shuffle=False)

    def losses():
        with torch.no_grad():
            per = {t: 0.0 for t in targets}
            for batch in loader:
                out = task.model.predict(batch["graph"])
                for t in targets:
                    per[t] += float(((out[t] - batch["targets"][t]) / task.scales[t]).square().mean())
            return per

    before = losses()
    for _ in range(10):
        for batch in loader:
            optimizer.zero_grad()
            out = task.model.predict(batch["graph"])
            torch.stack([((out[t] - batch["targets"][t]) / task.scales[t]).square().mean() for t in targets]).mean().backward()
            optimizer.step()
    after = losses()
    for t in targets:
        assert after[t] < 0.8 * before[t], (t, before[t], after[t])


@pytest.mark.slow
def test_freecg_train_properties_runs_and_reports_every_target(tmp_path):
    import json
    import subprocess
    import sys

    pytest.importorskip("lightning")
    freecg = Path(sys.executable).with_name("freecg")
    args = [
        str(freecg), "train", "--config", "qm9", "--output", str(tmp_path / "run"), "data.n_train=48", "data.n_val=8", "data.n_test=16",
        "optim.max_epochs=2", "optim.batch_size=16", "optim.warmup_steps=2", "model.args.hidden_channels=16", "model.args.num_layers=1",
        "targets=[mu,alpha,gap,U0,r2,Cv]", "accelerator=cpu",
    ]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert metrics["molecules"] == 16
    for target in ("mu", "alpha", "gap", "U0", "r2", "Cv"):
        assert metrics[f"{target}_mae"] > 0 and metrics[f"{target}_rmse"] >= metrics[f"{target}_mae"]
        assert (tmp_path / "run" / f"parity_{target}.png").stat().st_size > 0
        assert f"| {target} |" in result.stdout
    tested = subprocess.run(
        [str(freecg), "test", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "best.ckpt")], capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stderr[-2000:]
    assert "test on 16 molecules" in tested.stdout and f"| mu | D | {metrics['mu_mae']:.4g} |" in tested.stdout  # the same test molecules
    for override, message in (
        ("targets=[mu,dipole]", "unknown target(s) ['dipole']"),
        ("model.host=nequip", "model.host must be one of ['visnet', 'painn', 'so3net']"),
        ("data.n_test=20000", "molecules asked, 10000 available"),
    ):
        bad = subprocess.run(args[:6] + [override], capture_output=True, text=True)
        assert bad.returncode == 2 and message in bad.stderr and bad.stderr.count("\n") == 1, (override, bad.stderr)
        assert not (tmp_path / "run" / "logs" / "version_1").exists()  # refused before any training
