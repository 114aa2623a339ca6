"""Supervised learning on the shared networks: MNIST and Fashion-MNIST classification.

The models are the agents' own classes (an MLP or CNN trunk + a classifier head): there is no
second model zoo. The data comes from rlsuite.supervised.datasets (IDX files, lookup, download, checksums).
Training runs through the same engine as the agents (run directory, metrics.csv, TensorBoard,
checkpoint, summary.json), and the agent registry knows it as `supervised`.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlsuite.config.cards import agent_card_path, load_agent_card
from rlsuite.config.schema import apply, check_seed, param
from rlsuite.core.errors import UserError, close_matches
from rlsuite.learn.nets import CNN, CNN_PRESETS, MLP, ClassifierHead
from rlsuite.run.tracking import check_tracker
from rlsuite.run.checkpoint import load_checkpoint
from rlsuite.run.engine import Run, resolve_device
from rlsuite.run.rundir import atomic_write_text, csv_rows, new_run_dir, read_run_config
from rlsuite.supervised.datasets import DatasetSpec, get_dataset, load_arrays, locate


@dataclass
class Dataset:
    x_train: torch.Tensor  # (N, 1, 28, 28) float, normalised
    y_train: torch.Tensor  # (N,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple


def to_tensors(spec: DatasetSpec, arrays: dict, val_size: int, seed: int, device) -> Dataset:
    """Everything on the device once, normalised with the training set's mean/std; a seeded
    validation split carved from the training set."""
    train = torch.as_tensor(arrays["train_images"], dtype=torch.float32).div_(255).unsqueeze(1)
    mean, std = train.mean(), train.std()

    def norm(x):  # (N, H, W) uint8 -> (N, 1, H, W) float
        return ((torch.as_tensor(x, dtype=torch.float32) / 255).unsqueeze(1) - mean) / std

    labels = torch.as_tensor(arrays["train_labels"].astype(np.int64))
    if not 0 <= val_size < len(labels):
        raise UserError(f"val_size must be in [0, {len(labels)}), got {val_size}")
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    train = (train - mean) / std
    return Dataset(train[train_idx].to(device), labels[train_idx].to(device),
                   train[val_idx].to(device), labels[val_idx].to(device),
                   norm(arrays["test_images"]).to(device),
                   torch.as_tensor(arrays["test_labels"].astype(np.int64)).to(device), spec.classes)


# ---------------------------------------------------------------------------------------------
@dataclass
class SupervisedConfig:
    """A classifier's training recipe (no RL fields: no env, budget in steps, or replay)."""

    agent_name = "supervised"
    net: str = param("mlp", "mlp (MLP trunk) or cnn (CNN trunk), each + the classifier head", choices=("mlp", "cnn"))
    epochs: int = param(10, "maximum passes over the training set")
    batch_size: int = param(128, "images per gradient step")
    optimizer: str = param("adamw", "adamw or sgd (with Nesterov momentum)", choices=("adam", "adamw", "sgd"))
    lr: float = param(1e-3, "learning rate (the peak rate with one-cycle)")
    weight_decay: float = param(0.0, "decoupled weight decay (adamw) or L2 (sgd)")
    momentum: float = param(0.9, "SGD momentum")
    one_cycle: bool = param(False, "one-cycle learning-rate schedule over all epochs")
    label_smoothing: float = param(0.0, "cross-entropy label smoothing")
    hidden: tuple[int, ...] = param((64,), "MLP hidden sizes (784-64-10 is the classic network)")
    activation: str = param("relu", "MLP activation", choices=("relu", "tanh", "elu", "gelu"))
    cnn_preset: str = param("small", "CNN conv stack (nets.CNN_PRESETS)", choices=tuple(CNN_PRESETS))
    width: int = param(32, "channels of the first conv layer (the others scale with it)")
    batch_norm: bool = param(True, "batch norm after each conv")
    cnn_hidden: int = param(0, "width of the CNN's fully connected layer (0: none, logits from the flatten)")
    dropout: float = param(0.0, "dropout before the classifier")
    augment_shift: int = param(0, "random shifts of up to this many pixels (0: no augmentation)")
    patience: int = param(0, "early stopping: epochs without a better validation accuracy (0: off)")
    val_size: int = param(5000, "training images held out for validation (seeded)")
    eval_every: int = param(0, "also measure test accuracy every this many gradient steps (0: per epoch)")
    torch_threads: int = param(2, "torch intra-op threads (batched convolutions use both cores)")

    def validate(self):
        for name in ("epochs", "batch_size", "width", "torch_threads"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        if self.torch_threads > 256:
            raise UserError(f"torch_threads must be at most 256, got {self.torch_threads}")
        if any(h <= 0 for h in self.hidden) or not self.hidden:
            raise UserError(f"hidden sizes must be positive integers, got {list(self.hidden)}")
        if self.lr <= 0:
            raise UserError(f"lr must be positive, got {self.lr}")
        for name in ("weight_decay", "momentum", "label_smoothing", "dropout"):
            if not 0 <= getattr(self, name) < 1 + (name == "weight_decay") * 1e9:
                raise UserError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("cnn_hidden", "augment_shift", "patience", "val_size", "eval_every"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")


SUPERVISED_COLUMNS = ["step", "wall_s", "epoch", "train_loss", "train_acc", "val_acc", "test_acc"]


def resolve_config(net: str, dataset: str, overrides: dict | None = None) -> SupervisedConfig:
    """dataclass defaults -> card `default` -> card `nets: {net}` -> card `datasets: {dataset: {net}}` -> overrides."""
    card = load_agent_card("supervised")
    path = agent_card_path("supervised")
    nets = card.get("nets") or {}
    if net not in ("mlp", "cnn"):
        raise UserError(f"unknown net '{net}'{close_matches(net, ['mlp', 'cnn'])}; use --net mlp or --net cnn")
    config = apply(SupervisedConfig(), card.get("default") or {}, f"{path} [default]")
    config = apply(config, {"net": net, **(nets.get(net) or {})}, f"{path} [nets.{net}]")
    config = apply(config, ((card.get("datasets") or {}).get(dataset) or {}).get(net) or {}, f"{path} [datasets.{dataset}.{net}]")
    return apply(config, overrides or {}, "--set")


def build_classifier(cfg: SupervisedConfig, image_shape=(1, 28, 28), n_classes: int = 10) -> nn.Module:
    if cfg.net == "mlp":
        trunk = MLP(math.prod(image_shape), cfg.hidden, cfg.activation)
    else:
        trunk = CNN(image_shape, convs=cfg.cnn_preset, hidden=cfg.cnn_hidden or None, batch_norm=cfg.batch_norm,
                    width=cfg.width, channels_last=False)
    return nn.Sequential(trunk, ClassifierHead(trunk.out_dim, n_classes, cfg.dropout))


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-s, s], filling with the background value."""
    n, c, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s), value=float(x.min()))
    dy = torch.randint(0, 2 * s + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=generator).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, :, None]  # (n, h, 1)
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, :]  # (n, 1, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[:, 0][batch, rows, cols].unsqueeze(1) if c == 1 else \
        torch.stack([padded[:, k][batch, rows, cols] for k in range(c)], dim=1)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    model.eval()
    out = torch.cat([model(x[i:i + batch]).argmax(dim=1) for i in range(0, len(x), batch)])
    model.train()
    return out


def accuracy(model, x, y) -> float:
    return float((predict(model, x) == y).float().mean()) if len(y) else float("nan")


def confusion(pred: torch.Tensor, y: torch.Tensor, n: int) -> np.ndarray:
    return torch.bincount(y * n + pred, minlength=n * n).reshape(n, n).cpu().numpy()


def save_confusion_png(matrix: np.ndarray, classes, path: Path, title: str) -> None:
    import matplotlib  # heavy (about a second): every run imports this module, only this figure needs it
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")

    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_optimizer(cfg: SupervisedConfig, params):
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(cfg: SupervisedConfig, data: Dataset, run: Run, dataset: str) -> dict:
    device = run.device
    torch.manual_seed(run.seed)
    model = build_classifier(cfg, tuple(data.x_train.shape[1:]), len(data.classes)).to(device)
    optimizer = make_optimizer(cfg, model.parameters())
    steps_per_epoch = math.ceil(len(data.y_train) / cfg.batch_size)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
                 if cfg.one_cycle else None)
    shuffle = torch.Generator().manual_seed(run.seed)
    best_val, best_state, best_epoch, stale, step, epoch = -1.0, None, 0, 0, 0, 0

    def measure(epoch_, loss_, acc_) -> float:
        wall = run.wall()
        with run.untimed():  # test accuracy is logged for the time-to-accuracy curve, never for selection
            val = accuracy(model, data.x_val, data.y_val)
            test = accuracy(model, data.x_test, data.y_test)
        run.log_row(step, wall, epoch=epoch_, train_loss=loss_, train_acc=acc_, val_acc=val, test_acc=test)
        run.log_scalars(step, {"eval/val_acc": val, "eval/test_acc": test})
        return val

    run.start_clock()
    for epoch in range(1, cfg.epochs + 1):
        # 1. one pass over the shuffled training set: batches are index slices of on-device tensors
        perm = torch.randperm(len(data.y_train), generator=shuffle).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            x, y = data.x_train[idx], data.y_train[idx]
            if cfg.augment_shift:
                x = random_shift(x, cfg.augment_shift, shuffle)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(dim=1) == y).sum()
            if cfg.eval_every and step % cfg.eval_every == 0:
                measure(epoch - 1 + (i + len(idx)) / len(perm), "", "")
            if run.should_stop(step):
                break
        if run.should_stop(step):
            break
        # 2. end of epoch: train / validation / test accuracy, early stopping on validation
        n = len(data.y_train)
        train_loss, train_acc = float(loss_sum) / n, float(correct) / n
        val = measure(epoch, train_loss, train_acc)
        run.log_scalars(step, {"losses/train_loss": train_loss, "charts/train_acc": train_acc,
                               "charts/learning_rate": optimizer.param_groups[0]["lr"]})
        run.progress(epoch)
        if val > best_val:
            best_val, best_epoch, stale = val, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if cfg.patience and stale >= cfg.patience:
                break
    wall = run.wall()
    if best_state is not None and cfg.val_size > 0:
        model.load_state_dict(best_state)  # early stopping's promise: the best validated weights
    return finish(cfg, data, run, dataset, model, optimizer, step, epoch, wall, best_epoch, best_val)


def finish(cfg, data, run: Run, dataset, model, optimizer, step, epoch, wall, best_epoch, best_val) -> dict:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
    run.save_checkpoint(step, state)
    if run.should_stop(step):
        run.mark("interrupted", step, signal=run.stop_signal)
        return {"status": "interrupted", "step": step, "run_dir": str(run.dir), "signal": run.stop_signal,
                "exit_code": {"SIGINT": 130, "SIGTERM": 143}.get(run.stop_signal, 0)}
    pred = predict(model, data.x_test)
    matrix = confusion(pred, data.y_test, len(data.classes))
    per_class = (matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)).tolist()
    test_acc = float(matrix.diagonal().sum() / matrix.sum())
    save_confusion_png(matrix, data.classes, run.dir / "confusion.png",
                       f"{dataset} {cfg.net}: test accuracy {test_acc:.2%}")
    rows = [r for r in _rows(run) if r["test_acc"]]
    first_99 = next((float(r["wall_s"]) for r in rows if float(r["test_acc"]) >= 0.99), None)
    summary = {"status": "complete", "agent": "supervised", "implementation": "rlsuite", "dataset": dataset,
               "net": cfg.net, "seed": run.seed, "epochs": epoch, "steps": step, "wall_s": wall,
               "best_epoch": best_epoch, "best_val_acc": best_val, "test_acc": test_acc,
               "per_class_acc": dict(zip(data.classes, per_class)), "confusion": matrix.tolist(),
               "wall_to_99": first_99, "parameters": sum(p.numel() for p in model.parameters()),
               "device": str(run.device), "run_dir": str(run.dir)}
    run.write_final_metric(step, test_acc)
    atomic_write_text(run.dir / "summary.json", json.dumps(summary, indent=1))
    run.mark("complete", step)
    return summary


def _rows(run: Run) -> list[dict]:
    run.flush()
    return csv_rows(run.dir / "metrics.csv")


def run_supervised(dataset: str, net: str = "mlp", epochs: int | None = None, seed: int = 0,
                   data_dir=None, overrides: dict | None = None, out=".", device: str = "auto",
                   progress: bool = True, allow_download: bool = True, name: str | None = None) -> dict:
    """`rlsuite supervised DATASET`: resolve the card, find (or fetch) the data, train, summarise."""

    check_seed(seed)
    check_tracker()
    spec = get_dataset(dataset)
    if overrides and "net" in overrides:
        raise UserError("choose the network with --net, not --set net=... (the card's entry for it goes with --net)")
    cfg = resolve_config(net, dataset, overrides)
    if epochs is not None:
        if epochs <= 0:
            raise UserError(f"--epochs must be positive, got {epochs}")
        cfg = apply(cfg, {"epochs": epochs}, "--epochs")
    dev = resolve_device(device)
    files = locate(spec, data_dir, allow_download, progress)
    arrays = load_arrays(spec, files)
    n_train, height, width = arrays["train_images"].shape
    if cfg.batch_size > n_train - cfg.val_size:
        raise UserError(f"batch_size {cfg.batch_size} is larger than the training set ({n_train - cfg.val_size:,} "
                        "images after the validation split)")
    if cfg.augment_shift >= min(height, width) // 2:
        raise UserError(f"augment_shift {cfg.augment_shift} would move {height}x{width} images off the canvas; "
                        f"use at most {min(height, width) // 2 - 1} (2 is usual)")
    data = to_tensors(spec, arrays, cfg.val_size, seed, dev)
    run_dir = new_run_dir(Path(out), f"supervised-{net}", dataset, seed, name)
    extra = {"dataset": dataset, "data_files": {k: str(v) for k, v in files.items()}}
    with Run(run_dir, "supervised", cfg, None, seed, dev, progress=progress, columns=SUPERVISED_COLUMNS,
             total=cfg.epochs, extra=extra) as run:
        return train(cfg, data, run, dataset)


def evaluate_supervised_run(run_dir, data_dir=None, device: str = "auto") -> dict:
    """Re-evaluate a saved classifier on its dataset's test set."""
    run_dir = Path(run_dir)
    data = read_run_config(run_dir)
    cfg = apply(SupervisedConfig(), data["config"], f"{run_dir}/config.yaml")
    spec = get_dataset(data["dataset"])
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    saved = {k: Path(v) for k, v in (data.get("data_files") or {}).items()}
    files = saved if saved and all(p.is_file() for p in saved.values()) and not data_dir else \
        locate(spec, data_dir, allow_download=False)
    dev = resolve_device(device)
    ds = to_tensors(spec, load_arrays(spec, files), cfg.val_size, data["seed"], dev)
    model = build_classifier(cfg, tuple(ds.x_test.shape[1:]), len(ds.classes)).to(dev)
    try:
        model.load_state_dict(ckpt["state"]["model"])
    except (KeyError, RuntimeError) as e:
        raise UserError(f"{run_dir}/checkpoints/last.pt does not match this run's network ({str(e).splitlines()[0][:100]})") from None
    return {"run_dir": str(run_dir), "dataset": spec.name, "net": cfg.net, "test_acc": accuracy(model, ds.x_test, ds.y_test),
            "test_images": len(ds.y_test)}
