"""Lightning training of a graph energy model on energies and forces."""

from __future__ import annotations

from typing import Any, Dict, Optional

import lightning as L
import torch
from torch import Tensor

from ..atomistic import GraphBatch, ReferenceEnergies, concatenate, evaluate, frame_graph
from ..data import AtomsData
from .config import TrainConfig
from .hosts import build_host

__all__ = [
    "FrameCollate",
    "GraphCache",
    "PotentialTask",
    "RecipeTask",
    "build_potential",
    "check_elements",
    "frame_loader",
    "load_task",
    "torch_device",
]


def check_elements(numbers: Tensor, elements: Optional[list]) -> None:
    """Raise ``ValueError`` naming any element of ``numbers`` not in ``elements`` (``None``: any)."""
    if elements is None:
        return
    unknown = sorted(set(numbers.tolist()) - set(elements))
    if unknown:
        raise ValueError(f"unknown elements Z={unknown}: this model was trained on Z={elements}")


def build_potential(
    config: TrainConfig,
    energy_mean: float = 0.0,
    energy_std: float = 1.0,
    elements: Optional[list] = None,
    avg_num_neighbors: float = 10.0,
    atom_energies: Optional[Dict[int, float]] = None,
):
    """The configured host (+ FreeCG unless ``model.freecg`` is null) as an explicit-graph
    potential, plus per-element reference energies when given (``energy_mean``/``energy_std``
    then describe the energies left after subtracting them)."""
    m = config.model
    model = build_host(
        m.host, m.args, m.cutoff, m.freecg, m.freecg_layers, elements or [], energy_mean, energy_std, avg_num_neighbors, config.optim.seed
    )
    return model if not atom_energies else ReferenceEnergies(model, atom_energies)


def torch_device(accelerator: str) -> torch.device:
    """The device a Lightning ``accelerator`` setting trains on (evaluation runs there too)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    if accelerator == "mps":
        return torch.device("mps")
    return torch.device("cpu")


def load_task(checkpoint, device="cpu") -> PotentialTask:
    """A trained task from a ``freecg train`` checkpoint.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable freecg checkpoint (one line, naming it).
    """
    from pathlib import Path

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        return PotentialTask.load_from_checkpoint(path, map_location=device)
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: not a readable freecg checkpoint ({reason[:200]})") from None


class GraphCache:
    """Each structure's neighbour list, built the first time the structure is asked for and kept
    (the structures do not change during training): edges as int32, periodic shifts as int8,
    about 11 bytes per edge. Later batches only concatenate. With ``keep=False`` every request
    builds the list again (for data sets whose lists do not fit in memory)."""

    def __init__(self, structures, cutoff: float, source: str = "", keep: bool = True) -> None:
        self.structures, self.cutoff, self.source, self.keep = structures, cutoff, source, keep
        self._graphs: Dict[int, GraphBatch] = {}

    def graph(self, index: int) -> GraphBatch:
        """Structure ``index`` as a batch of one, with its neighbour list (built once)."""
        graph = self._graphs.get(index)
        if graph is None:
            try:
                graph = frame_graph(self.structures[index], self.cutoff)
            except ValueError as err:
                raise ValueError(f"{self.source}: frame {index}: {err}") from None
            graph.positions, graph.cell = graph.positions.float(), graph.cell.float()
            graph.edge_index, graph.shifts = graph.edge_index.int(), graph.shifts.to(torch.int8)
            if self.keep:
                self._graphs[index] = graph
        return graph

    def batch(self, indices) -> GraphBatch:
        """The structures ``indices`` as one batch (float32 positions)."""
        graph = concatenate([self.graph(i) for i in indices])
        graph.edge_index, graph.shifts = graph.edge_index.long(), graph.shifts.float()
        return graph


class FrameCollate:
    """Turns a list of frame indices into ``{"graph": GraphBatch, "energy": [B], "forces": [N, 3],
    "atoms": [B]}`` and ``"stress": [B, 3, 3]`` when the data has it (float32); graphs from a
    :class:`GraphCache` (``cache_graphs``: whether it keeps them)."""

    def __init__(self, data: AtomsData, cutoff: float, cache_graphs: bool = True) -> None:
        self.data = data
        self.graphs = GraphCache(data.structures, cutoff, data.source, keep=cache_graphs)

    def __call__(self, indices) -> Dict[str, Any]:
        graph = self.graphs.batch(indices)
        out = {
            "graph": graph,
            "energy": self.data.energy[list(indices)].float(),
            "forces": torch.cat([self.data.forces[i] for i in indices]).float(),
            "atoms": torch.bincount(graph.batch, minlength=graph.num_graphs).float(),
        }
        if self.data.stress is not None:
            out["stress"] = self.data.stress[list(indices)].float()
        return out


def frame_loader(
    data: AtomsData, cutoff: float, batch_size: int, shuffle: bool, seed: int = 0, cache_graphs: bool = True
) -> torch.utils.data.DataLoader:
    """A plain ``DataLoader`` over frame indices (Lightning can re-create it with a distributed
    sampler for DDP)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        range(len(data)), batch_size=batch_size, shuffle=shuffle, collate_fn=FrameCollate(data, cutoff, cache_graphs), generator=generator
    )


class RecipeTask(L.LightningModule):
    """The training recipe every task shares: AdamW with linear warm-up then reduce-on-plateau on
    ``val_loss``, and an optional EMA of the weights (used for validation, test and export).
    Subclasses build ``self.model`` and then call :meth:`_setup_ema`."""

    config: TrainConfig
    model: torch.nn.Module

    def _setup_ema(self) -> None:
        decay = self.config.optim.ema_decay
        self.ema: Optional[torch.optim.swa_utils.AveragedModel] = None
        if decay:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True
            )

    @property
    def inference_model(self):
        return self.ema.module if self.ema is not None else self.model

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        warmup = self.config.optim.warmup_steps
        if warmup and self.global_step < warmup:
            for group in optimizer.param_groups:
                group["lr"] = self.config.optim.lr * (self.global_step + 1) / warmup
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)

    def configure_optimizers(self):
        optim = self.config.optim
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=optim.plateau_factor, patience=optim.plateau_patience)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss", "interval": "epoch"}}


class PotentialTask(RecipeTask):
    """Energy + force MSE (weights from the config), with the shared recipe (:class:`RecipeTask`)."""

    def __init__(
        self,
        config: Dict[str, Any],
        energy_mean: float = 0.0,
        energy_std: float = 1.0,
        energy_unit: str = "eV",
        elements: Optional[list] = None,
        avg_num_neighbors: float = 10.0,
        atom_energies: Optional[Dict[int, float]] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.energy_unit = energy_unit
        self.elements = sorted(int(z) for z in elements) if elements is not None else None
        self.config = TrainConfig.from_dict(config)
        self.model = build_potential(self.config, energy_mean, energy_std, self.elements, avg_num_neighbors, atom_energies)
        self._setup_ema()

    def predict_batch(self, batch: Dict[str, Any], training: bool = False, stress: bool = False) -> Dict[str, Tensor]:
        model = self.model if training else self.inference_model
        with torch.enable_grad():
            return evaluate(model, batch["graph"], forces=True, stress=stress or self.trains_stress, training=training)

    @property
    def trains_stress(self) -> bool:
        return self.config.optim.stress_weight > 0

    def _losses(self, batch: Dict[str, Any], out: Dict[str, Tensor], stage: str) -> Tensor:
        optim = self.config.optim
        de, df = out["energy"] - batch["energy"], out["forces"] - batch["forces"]
        de_loss = de / batch["atoms"] if optim.energy_loss == "per_atom" else de
        loss = optim.energy_weight * de_loss.square().mean() + optim.forces_weight * df.square().mean()
        size = len(batch["energy"])
        if self.trains_stress:
            ds = out["stress"] - batch["stress"]
            loss = loss + optim.stress_weight * ds.square().mean()
            self.log(f"{stage}_stress_mae", ds.abs().mean(), batch_size=size, on_epoch=True, on_step=False, sync_dist=True)
        self.log(f"{stage}_loss", loss, batch_size=size, prog_bar=stage != "train", on_epoch=True, on_step=False, sync_dist=True)
        self.log(f"{stage}_energy_mae", de.abs().mean(), batch_size=size, on_epoch=True, on_step=False, sync_dist=True)
        self.log(
            f"{stage}_forces_mae", df.abs().mean(), batch_size=size, on_epoch=True, on_step=False, sync_dist=True, prog_bar=stage == "val"
        )
        return loss

    def training_step(self, batch, batch_idx):
        return self._losses(batch, self.predict_batch(batch, training=True), "train")

    def validation_step(self, batch, batch_idx):
        self._losses(batch, self.predict_batch(batch), "val")
