"""The LightningModule: one-hot on the device, the Keras-style loss, Adam, the plateau schedule.

Loss (what Keras minimised for the published models):

* data term: binary cross-entropy on the logits (binary heads) or softmax cross-entropy
  (multi-class), per sequence, times the class weight of its label, averaged over the batch
  (Keras' ``class_weight`` with its sum-over-batch-size reduction);
* plus ``l2 * sum(kernel ** 2)`` over the convolution kernels (:func:`~chromtransfer.models.l2_penalty`),
  Keras' ``kernel_regularizer``, added to the loss rather than applied as AdamW-style decay.

Logged per epoch (and written to the learning curve): ``train_loss`` (data term + L2, the mean over
the epoch's batches, as Keras reports ``loss``), ``train_bce`` (the class-weighted data term alone;
"bce" names the cross-entropy term of either head), ``val_loss`` (unweighted data term + L2, as
Keras' ``val_loss``: class weights never apply to validation), ``val_bce``, ``train_auroc`` (from the
training-mode predictions made during the epoch, as Keras' training metrics; no second pass) and
``val_auroc`` (macro one-vs-rest for the multi-class head). Early stopping and the learning-rate
plateau watch ``val_loss``.

Reverse-complement augmentation (``rc_augment``): each training row is replaced by its reverse
complement with probability 1/2, drawn anew for every batch of every epoch from the same reseeded
RNG (so a resumed run flips the same rows); validation rows are never flipped.

Reproducibility: before every training batch the global torch RNG (dropout) is reseeded from
``(seed, epoch, batch index, rank)``, so a run resumed from an epoch-end checkpoint draws the very
same dropout masks as an uninterrupted one, and the processes of a DDP run draw different masks
(rank 0's equal those of a single-process run). The plateau scheduler is stepped here, right after
validation and before the epoch-end checkpoint is written, and its state travels in the checkpoint,
so a resumed run continues the same learning-rate schedule.

Several processes (DDP, ``W`` of them): a batch is ``(codes, labels, total)`` where ``total`` is the
size ``B`` of the global batch this process holds a share of. Each process's loss is
``(W / B) * sum(weighted cross-entropy of its rows) + L2``; DDP averages the gradients over the
processes, which gives exactly the gradient of ``mean over the B rows + L2``, the single-process
loss, even when the shares differ in size. The epoch metrics are sums reduced over the processes
and AUROC over the gathered predictions of all of them, so every process (and the learning curve,
the early stopping and the plateau schedule) sees the numbers of the whole data set.
"""
from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..encoding import one_hot, reverse_complement_codes
from ..models import ChromTransferNet, l2_penalty
from .distributed import all_gather_rows, all_reduce_sum

PLATEAU_KEY = "chromtransfer_plateau"
#: Keras' Adam epsilon (K.epsilon()); PyTorch's default is 1e-8.
ADAM_EPSILON = 1e-7
#: Keras' ReduceLROnPlateau min_delta (absolute).
PLATEAU_MIN_DELTA = 1e-4


def batch_seed(seed: int, epoch: int, batch: int, rank: int = 0) -> int:
    """A 63-bit torch seed derived from ``(seed, epoch, batch, rank)`` (NumPy's SeedSequence hashing).

    Rank 0 hashes ``(seed, epoch, batch)`` alone, so one process draws what rank 0 draws.
    """
    key = [int(seed), int(epoch), int(batch)] + ([int(rank)] if rank else [])
    state = np.random.SeedSequence(key).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def flip_strands(codes: torch.Tensor) -> torch.Tensor:
    """``codes`` ``(N, L)`` with each row replaced by its reverse complement with probability 1/2.

    Draws from the global torch RNG (reseeded per batch by the training module)."""
    flip = torch.rand(codes.shape[0], device=codes.device) < 0.5
    return torch.where(flip[:, None], reverse_complement_codes(codes), codes)


def per_sequence_loss(logits: torch.Tensor, labels: torch.Tensor, multiclass: bool) -> torch.Tensor:
    """Cross-entropy per sequence, ``(N,)`` (float32, or float64 for float64 logits).

    Args:
        logits: ``(N, 1)`` (binary) or ``(N, C)`` (multi-class) network outputs.
        labels: ``(N,)`` integer labels (0/1, or class indices).
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if multiclass:
        return F.cross_entropy(logits, labels, reduction="none")
    return F.binary_cross_entropy_with_logits(logits[:, 0], labels.float(), reduction="none")


def validation_auroc(scores: np.ndarray, labels: np.ndarray, multiclass: bool) -> float:
    """ROC AUC (macro one-vs-rest for ``(N, C)`` multi-class scores); NaN when undefined."""
    from sklearn.metrics import roc_auc_score

    if len(labels) == 0:
        return math.nan
    try:
        if multiclass:
            present = np.unique(labels)
            if len(present) < 2:
                return math.nan
            return float(np.mean([roc_auc_score(labels == c, scores[:, c]) for c in present]))
        if len(np.unique(labels)) < 2:
            return math.nan
        return float(roc_auc_score(labels, scores[:, 0]))
    except ValueError:
        return math.nan


class _Accumulator:
    """One epoch's running sums (this process's rows) plus its scores and labels, on the device.

    ``data`` sums the (class-weighted, for training) per-sequence cross-entropy, ``penalty`` sums
    the L2 term once per row, ``rows`` counts rows; :meth:`reduce` totals them over all processes.
    """

    def __init__(self) -> None:
        self.data: torch.Tensor | float = 0.0
        self.penalty: torch.Tensor | float = 0.0
        self.rows = 0
        self.scores: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def add(self, per_sequence: torch.Tensor, penalty: torch.Tensor | None, scores: torch.Tensor,
            labels: torch.Tensor) -> None:
        n = int(labels.shape[0])
        self.data = self.data + per_sequence.detach().double().sum()
        if penalty is not None:
            self.penalty = self.penalty + penalty.detach().double() * n
        self.rows += n
        self.scores.append(scores.detach().float())
        self.labels.append(labels.detach())

    def reduce(self, device: torch.device, n_outputs: int) -> tuple[float, float, np.ndarray, np.ndarray]:
        """``(mean data term, mean penalty, scores (N, C), labels (N,))`` over every process's rows."""
        sums = torch.stack([torch.as_tensor(self.data, dtype=torch.float64, device=device),
                            torch.as_tensor(self.penalty, dtype=torch.float64, device=device),
                            torch.tensor(float(self.rows), dtype=torch.float64, device=device)])
        data, penalty, rows = (float(v) for v in all_reduce_sum(sums).cpu())
        if self.scores:
            scores, labels = torch.cat(self.scores), torch.cat(self.labels)
        else:
            scores = torch.zeros((0, n_outputs), dtype=torch.float32, device=device)
            labels = torch.zeros(0, dtype=torch.int64, device=device)
        scores, labels = all_gather_rows(scores), all_gather_rows(labels)
        if rows == 0:
            return math.nan, math.nan, scores.cpu().numpy(), labels.cpu().numpy()
        return data / rows, penalty / rows, scores.cpu().numpy(), labels.cpu().numpy()


class ChromTransferModule(pl.LightningModule):
    """Train a :class:`~chromtransfer.models.ChromTransferNet` on batches of uint8 codes.

    Args:
        model: the network (its head decides binary or multi-class).
        lr: Adam learning rate.
        l2: L2 penalty weight on the convolution kernels.
        class_weights: ``(C,)`` per-class loss weights (``None``: all 1).
        lr_patience: epochs without ``val_loss`` improvement before the learning rate is
            multiplied by ``lr_factor`` (0: constant learning rate).
        lr_factor: the plateau multiplier.
        frozen_body: train only the head; the body's parameters get no gradient and its
            BatchNorm layers stay in inference mode (running statistics fixed).
        seed: dropout reseeding seed.
        rc_augment: train on each row or its reverse complement, at random (see the module
            docstring).

    A batch is ``(codes (N, L) uint8, labels (N,) int64[, total])`` where ``total`` is the size of
    the global batch under DDP (default N); :meth:`forward` takes codes and returns logits.
    """

    def __init__(self, model: ChromTransferNet, *, lr: float, l2: float = 1e-4,
                 class_weights: np.ndarray | None = None, lr_patience: int = 0,
                 lr_factor: float = 0.1, frozen_body: bool = False, seed: int = 0,
                 rc_augment: bool = False):
        super().__init__()
        self.model = model
        self.lr = float(lr)
        self.l2 = float(l2)
        self.lr_patience = int(lr_patience)
        self.lr_factor = float(lr_factor)
        self.frozen_body = bool(frozen_body)
        self.seed = int(seed)
        self.rc_augment = bool(rc_augment)
        self.multiclass = model.multiclass
        weights = torch.as_tensor(class_weights if class_weights is not None else [],
                                  dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)
        if self.frozen_body:
            for parameter in self.model.body.parameters():
                parameter.requires_grad_(False)
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._pending_plateau_state: dict[str, Any] | None = None
        self._train = _Accumulator()
        self._valid = _Accumulator()
        self._epoch_started = time.perf_counter()
        #: The last finished epoch's metrics (read by the learning-curve callback).
        self.epoch_record: dict[str, float] | None = None

    # -- modes ---------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "ChromTransferModule":
        super().train(mode)
        if mode:
            self._freeze_body_batchnorm()
        return self

    def _freeze_body_batchnorm(self) -> None:
        """With a frozen body, keep its BatchNorm layers in inference mode (statistics fixed).

        Applied on every ``train()`` call and before every batch: Lightning also restores module
        modes itself after validation, without going through ``train()``.
        """
        if self.frozen_body:
            for module in self.model.body.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model(one_hot(codes, dtype=self.model.head.output.weight.dtype))

    # -- loss ----------------------------------------------------------------------------------
    def penalty(self) -> torch.Tensor:
        if self.l2 == 0:
            return torch.zeros((), device=self.device)
        return l2_penalty(self.model, self.l2)

    def _scores(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return torch.softmax(logits, dim=-1) if self.multiclass else torch.sigmoid(logits)

    # -- training ------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._train = _Accumulator()
        self._epoch_started = time.perf_counter()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._freeze_body_batchnorm()
        torch.manual_seed(batch_seed(self.seed, self.current_epoch, batch_idx, self._rank()))

    def _rank(self) -> int:
        return int(self.trainer.global_rank) if self._trainer is not None else 0

    def _world(self) -> int:
        return int(self.trainer.world_size) if self._trainer is not None else 1

    def weighted_losses(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sequence cross-entropy times the class weight of its label, ``(N,)``."""
        per = per_sequence_loss(logits, labels, self.multiclass)
        if self.class_weights.numel():
            per = per * self.class_weights[labels]
        return per

    def training_loss(self, logits: torch.Tensor, labels: torch.Tensor, total: int | None = None,
                      world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, data term)`` of this process's share of a training batch.

        The data term is the class-weighted cross-entropy summed over the share, times
        ``world_size / total`` (``total``: rows of the global batch, default the share's own
        size), so that averaging the processes' gradients gives the gradient of the global
        batch's mean; with one process it is the batch mean. ``loss`` adds the L2 penalty.
        """
        loss, data, _ = self._loss(self.weighted_losses(logits, labels), total, world_size)
        return loss, data

    def _loss(self, per: torch.Tensor, total: int | None,
              world_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, data term, L2 penalty)`` from the weighted per-sequence losses of a share."""
        total = int(per.shape[0]) if total is None else int(total)
        data = per.sum() * (float(world_size) / total)
        penalty = self.penalty()
        return data + penalty, data, penalty

    @staticmethod
    def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        if len(batch) == 3:
            codes, labels, total = batch
            return codes, labels, int(total)
        codes, labels = batch
        return codes, labels, int(labels.shape[0])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        codes, labels, total = self._unpack(batch)
        if self.rc_augment:
            codes = flip_strands(codes)
        logits = self(codes)
        per = self.weighted_losses(logits, labels)
        loss, _, penalty = self._loss(per, total, self._world())
        self._train.add(per, penalty, self._scores(logits), labels)
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=int(labels.shape[0]))
        return loss

    # -- validation ----------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._valid = _Accumulator()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        codes, labels, _ = self._unpack(batch)
        logits = self(codes)
        self._valid.add(per_sequence_loss(logits, labels, self.multiclass), None,
                        self._scores(logits), labels)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        penalty = float(self.penalty().detach())
        n_outputs = int(self.model.config.n_outputs)
        train_bce, train_penalty, train_scores, train_labels = self._train.reduce(self.device, n_outputs)
        val_bce, _, val_scores, val_labels = self._valid.reduce(self.device, n_outputs)
        train_loss = train_bce + train_penalty
        val_loss = val_bce + penalty
        lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        record = {
            "epoch": int(self.current_epoch) + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "train_bce": train_bce,
            "val_bce": val_bce,
            "l2_term": penalty,
            "train_auroc": validation_auroc(train_scores, train_labels, self.multiclass),
            "val_auroc": validation_auroc(val_scores, val_labels, self.multiclass),
            "lr": lr,
            "seconds": time.perf_counter() - self._epoch_started,
        }
        self.epoch_record = record
        self._train = _Accumulator()
        self._valid = _Accumulator()
        # Every process holds the same (reduced) values, so no further sync_dist averaging.
        self.log_dict({k: float(v) for k, v in record.items() if k not in ("epoch", "seconds", "val_loss")},
                      prog_bar=False, logger=False)
        self.log("val_loss", val_loss, prog_bar=True, logger=False)
        if self.plateau is not None:
            self.plateau.step(val_loss)

    # -- optimiser -----------------------------------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(parameters, lr=self.lr, eps=ADAM_EPSILON)
        if self.lr_patience > 0:
            # Keras cuts the rate once `patience` epochs in a row fail to improve; PyTorch's
            # scheduler waits for more than `patience` such epochs, hence the minus one.
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=self.lr_factor, patience=self.lr_patience - 1,
                threshold=PLATEAU_MIN_DELTA, threshold_mode="abs",
            )
            if self._pending_plateau_state is not None:
                self.plateau.load_state_dict(self._pending_plateau_state)
                self._pending_plateau_state = None
        return optimizer

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.plateau is not None:
            checkpoint[PLATEAU_KEY] = self.plateau.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_plateau_state = checkpoint.get(PLATEAU_KEY)
