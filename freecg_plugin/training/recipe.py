"""The training recipe every task shares (:class:`RecipeTask`): AdamW with a linear warm-up, then
reduce-on-plateau on ``val_loss``, and an optional EMA of the weights, used for validation, test
and export."""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch

from ..configs.train import TrainConfig

__all__ = ["RecipeTask"]


class RecipeTask(L.LightningModule):
    """The shared recipe. Subclasses build ``self.model`` from ``self.config`` and then call
    :meth:`_setup_ema`."""

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
        """The model as tested: the EMA weights when the recipe keeps them."""
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
