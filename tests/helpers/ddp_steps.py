"""A few optimiser steps of the trainer's ``PotentialTask`` under Lightning, one process or DDP.

    python tests/ddp_steps.py OUT.pt --devices 2 --batch 4 --steps 4

Run by ``tests/test_ddp.py``: with ``--devices 2`` Lightning's DDP launches a second process (gloo
on the CPU), gives each process its own shuffled half of the frames (its ``DistributedSampler``) and
averages the gradients. With ``--devices 1`` the script feeds one process the union of the two
processes' batches, step by step (:func:`ddp_batches`), so both runs see the same frames per step.
Rank 0 saves the loss of every step over the whole batch (averaged over the processes), and the
initial and final parameters.
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler

from freecg_plugin.configs import TrainConfig
from freecg_plugin.data.loaders import FrameCollate, frame_loader
from freecg_plugin.data.splits import load_data
from freecg_plugin.training import PotentialTask

CONFIG = {
    "data": {"dataset": "rmd17/ethanol", "split": 1, "n_train": 16, "n_val": 4, "n_test": 2},
    "model": {"host": "painn", "args": {"n_atom_basis": 16, "n_interactions": 2, "n_rbf": 8}, "cutoff": 4.0, "freecg": {"groups": 2}},
    "optim": {"lr": 1e-3, "warmup_steps": 0, "ema_decay": None, "seed": 1},
    "accelerator": "cpu",
}


class DDPBatches:
    """Batches of one process that equal, step by step, the union of ``world`` DDP processes'
    batches of ``batch`` frames each, Lightning's shuffled ``DistributedSampler`` in every epoch."""

    def __init__(self, frames: int, world: int, batch: int, seed: int) -> None:
        self.frames, self.world, self.batch, self.seed, self.epoch = frames, world, batch, seed, 0

    def __iter__(self):
        shares = []
        for rank in range(self.world):
            sampler = DistributedSampler(range(self.frames), num_replicas=self.world, rank=rank, shuffle=True, seed=self.seed)
            sampler.set_epoch(self.epoch)
            shares.append(list(sampler))
        self.epoch += 1
        for start in range(0, len(shares[0]), self.batch):
            yield [i for share in shares for i in share[start : start + self.batch]]

    def __len__(self) -> int:
        return -(-self.frames // (self.world * self.batch))


class StepLosses(L.Callback):
    """The training loss of every step, averaged over the processes (equal batches: the whole batch's loss)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, task, outputs, batch, batch_idx) -> None:
        self.losses.append(float(trainer.strategy.reduce(outputs["loss"].detach(), reduce_op="mean")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4, help="frames per process and step")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = TrainConfig.from_dict(CONFIG)
    train, val, _ = load_data(config.data)
    L.seed_everything(config.optim.seed, verbose=False)
    task = PotentialTask(config.to_dict(), float(train.energy.mean()), float(train.energy.std()), train.energy_unit, train.elements)
    initial = {k: v.detach().clone() for k, v in task.model.state_dict().items()}
    losses = StepLosses()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        max_steps=args.steps,
        callbacks=[losses],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,
        num_sanity_val_steps=0,
    )
    cutoff = config.model.cutoff
    if args.devices > 1:  # Lightning replaces the sampler by its DistributedSampler
        train_loader = frame_loader(train, cutoff, args.batch, shuffle=True)
    else:
        batches = DDPBatches(len(train), 2, args.batch, config.optim.seed)
        train_loader = DataLoader(range(len(train)), batch_sampler=batches, collate_fn=FrameCollate(train, cutoff))
    trainer.fit(task, train_loader, frame_loader(val, cutoff, 2 * args.batch, shuffle=False))
    if trainer.is_global_zero:
        state = {k: v.detach().clone() for k, v in task.model.state_dict().items()}
        torch.save({"losses": losses.losses, "initial": initial, "state": state, "world_size": trainer.world_size}, args.out)


if __name__ == "__main__":
    main()
