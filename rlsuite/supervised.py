"""Supervised learning on the shared networks: MNIST and Fashion-MNIST classification.

The models are the agents' own classes (an MLP or CNN trunk + a classifier head): there is no
second model zoo. Data: an IDX reader that validates what it reads, a lookup order
(--data-dir, $RLSUITE_DATA_DIR/<dataset>, the user cache), and a download into the cache with
checksum verification when the files are missing. Training runs through the same engine as the
agents (run directory, metrics.csv, TensorBoard, checkpoint, summary.json).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import math
import os
import struct
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlsuite.cards import CommonConfig, agent_card_path, apply, load_agent_card, param
from rlsuite.engine import Run, new_run_dir, resolve_device
from rlsuite.errors import UserError, close_matches
from rlsuite.nets import CNN, CNN_PRESETS, MLP, ClassifierHead

# ---------------------------------------------------------------------------------------------
# IDX files (LeCun's format): magic 0x0000, a dtype code, the number of dimensions, big-endian
# uint32 sizes, then the data in C order.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IDX_CODES = {v: k for k, v in IDX_DTYPES.items()}


def idx_bytes(path: Path) -> bytes:
    """The file's IDX payload, gunzipped if it is gzipped (detected by content, not by name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise UserError(f"{path} is a truncated or corrupt gzip file ({e}); download it again") from None
    return raw


def parse_idx(data: bytes, name: str) -> np.ndarray:
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in IDX_DTYPES or data[3] == 0:
        raise UserError(f"{name} has a wrong magic number ({data[:4].hex() or 'empty file'}); it is not an IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{name} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[data[2]]
    expected = math.prod(dims) * dtype.itemsize
    if len(data) - header != expected:
        raise UserError(f"{name} holds {len(data) - header} bytes of data but its header {dims} needs {expected} "
                        "(truncated or corrupt); download it again")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(idx_bytes(path), str(path))


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write `array` as an IDX file (gzipped when the name ends in .gz, unless told otherwise)."""
    path = Path(path)
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    code = IDX_CODES[np.dtype(dtype)]
    data = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(dtype).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: dict  # role -> file name (gzipped); a raw file of the same name without .gz is accepted too
    md5: dict  # role -> MD5 of the uncompressed file ({} when no published checksums are known)
    mirrors: tuple
    classes: tuple


_MNIST_FILES = {"train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
                "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}
DATASETS = {
    "mnist": DatasetSpec(
        "mnist", _MNIST_FILES,
        {"train_images": "6bbc9ace898e44ae57da46a324031adb", "train_labels": "a25bea736e30d166cdddb491f175f624",
         "test_images": "2646ac647ad5339dbf082846283269ea", "test_labels": "27ae3e4e09519cfbb04c329615203637"},
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        tuple(str(i) for i in range(10))),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", _MNIST_FILES, {},
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")),
}
DATA_ENV_VAR = "RLSUITE_DATA_DIR"


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'{close_matches(name, DATASETS)}; available: {', '.join(DATASETS)}")
    return DATASETS[name]


def cache_dir(spec: DatasetSpec) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rlsuite" / spec.name


def candidate_dirs(spec: DatasetSpec, data_dir: str | Path | None) -> list[Path]:
    """Where the files are looked for, in order: --data-dir, $RLSUITE_DATA_DIR/<dataset>, the cache."""
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get(DATA_ENV_VAR):
        dirs.append(Path(os.environ[DATA_ENV_VAR]) / spec.name)
    dirs.append(cache_dir(spec))
    return dirs


def _find(directory: Path, filename: str) -> Path | None:
    for candidate in (directory / filename, directory / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def download(spec: DatasetSpec, dest: Path, mirrors=None, progress: bool = True) -> None:
    """Fetch the missing files into `dest`, verifying checksums; the first mirror that works wins."""
    dest.mkdir(parents=True, exist_ok=True)
    errors = []
    for role, filename in spec.files.items():
        if _find(dest, filename):
            continue
        for mirror in mirrors or spec.mirrors:
            tmp = dest / (filename + ".part")
            try:
                with urllib.request.urlopen(mirror + filename, timeout=20) as response, open(tmp, "wb") as f:
                    total = int(response.headers.get("Content-Length") or 0)
                    _copy_with_progress(response, f, total, f"{spec.name} {filename}", progress)
                payload = idx_bytes(tmp)
                if role in spec.md5 and hashlib.md5(payload).hexdigest() != spec.md5[role]:
                    raise UserError(f"checksum mismatch for {filename} from {mirror}")
                os.replace(tmp, dest / filename)
                break
            except (urllib.error.URLError, OSError, UserError, ValueError) as e:
                tmp.unlink(missing_ok=True)
                errors.append(f"{mirror}{filename}: {getattr(e, 'reason', e)}")
        else:
            raise UserError(f"download failed ({errors[-1]})")


def _copy_with_progress(src, dst, total: int, label: str, progress: bool) -> None:
    if not progress:
        dst.write(src.read())
        return
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), transient=True) as bar:
        task = bar.add_task(label, total=total or None)
        while chunk := src.read(1 << 16):
            dst.write(chunk)
            bar.advance(task, len(chunk))


def locate(spec: DatasetSpec, data_dir=None, allow_download: bool = True, progress: bool = True) -> dict[str, Path]:
    """role -> file path, downloading into the cache when no candidate directory has all four files."""
    dirs = candidate_dirs(spec, data_dir)
    for directory in dirs:
        found = {role: _find(directory, name) for role, name in spec.files.items()}
        if all(found.values()):
            return found
        if data_dir and directory == Path(data_dir) and any(found.values()):
            missing = [spec.files[r] for r, p in found.items() if p is None]
            raise UserError(f"{directory} lacks {', '.join(missing)}; put all four {spec.name} files there")
    if allow_download:
        try:
            download(spec, cache_dir(spec), progress=progress)
            return {role: _find(cache_dir(spec), name) for role, name in spec.files.items()}
        except UserError as e:
            reason = str(e)
    else:
        reason = "downloads disabled"
    raise UserError(
        f"{spec.name} files not found in {', '.join(map(str, dirs))} and {reason}; put "
        f"{', '.join(spec.files.values())} into one of them, or pass --data-dir DIR")


@dataclass
class Dataset:
    x_train: torch.Tensor  # (N, 1, 28, 28) float, normalised
    y_train: torch.Tensor  # (N,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple


def load_arrays(spec: DatasetSpec, files: dict[str, Path]) -> dict[str, np.ndarray]:
    arrays = {}
    for role, path in files.items():
        data = idx_bytes(path)
        if role in spec.md5 and hashlib.md5(data).hexdigest() != spec.md5[role]:
            raise UserError(f"{path} fails its {spec.name} checksum (corrupt or a different file); download it again")
        arrays[role] = parse_idx(data, str(path))
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise UserError(f"{files[f'{split}_images']} / {files[f'{split}_labels']}: expected images (N, H, W) and labels (N,), "
                            f"got {images.shape} and {labels.shape}")
        if len(images) != len(labels):
            raise UserError(f"{files[f'{split}_images']} has {len(images)} images but {files[f'{split}_labels']} "
                            f"has {len(labels)} labels; the files do not belong together")
        if labels.size and labels.max() >= len(spec.classes):
            raise UserError(f"{files[f'{split}_labels']} has label {labels.max()} but {spec.name} has {len(spec.classes)} classes")
    return arrays


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
class SupervisedConfig(CommonConfig):
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
        if self.epochs <= 0:
            raise UserError(f"--epochs must be positive, got {self.epochs}")
        if self.batch_size <= 0 or self.lr <= 0 or self.torch_threads <= 0:
            raise UserError("batch_size, lr and torch_threads must be positive")


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    import json

    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
    run.save_checkpoint(step, state)
    if run.should_stop(step):
        run.mark("interrupted", step)
        return {"status": "interrupted", "step": step, "run_dir": str(run.dir)}
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
    (run.dir / "summary.json").write_text(json.dumps(summary, indent=1))
    run.mark("complete", step)
    return summary


def _rows(run: Run) -> list[dict]:
    from rlsuite.engine import csv_rows

    run.flush()
    return csv_rows(run.dir / "metrics.csv")


def run_supervised(dataset: str, net: str = "mlp", epochs: int | None = None, seed: int = 0,
                   data_dir=None, overrides: dict | None = None, out="results", device: str = "auto",
                   progress: bool = True, allow_download: bool = True, name: str | None = None) -> dict:
    """`rlsuite supervised DATASET`: resolve the card, find (or fetch) the data, train, summarise."""
    spec = get_dataset(dataset)
    cfg = resolve_config(net, dataset, overrides)
    if epochs is not None:
        if epochs <= 0:
            raise UserError(f"--epochs must be positive, got {epochs}")
        cfg = apply(cfg, {"epochs": epochs}, "--epochs")
    dev = resolve_device(device)
    files = locate(spec, data_dir, allow_download, progress)
    arrays = load_arrays(spec, files)
    data = to_tensors(spec, arrays, cfg.val_size, seed, dev)
    run_dir = new_run_dir(Path(out), f"supervised-{net}", dataset, seed, name)
    extra = {"dataset": dataset, "data_files": {k: str(v) for k, v in files.items()}}
    with Run(run_dir, "supervised", cfg, None, seed, dev, progress=progress, columns=SUPERVISED_COLUMNS,
             total=cfg.epochs, extra=extra) as run:
        return train(cfg, data, run, dataset)


def evaluate_supervised_run(run_dir, data_dir=None, device: str = "auto") -> dict:
    """Re-evaluate a saved classifier on its dataset's test set."""
    from rlsuite.engine import load_checkpoint, read_run_config

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
