"""MNIST-format datasets (MNIST, Fashion-MNIST): the IDX reader and writer, the lookup order
(--data-dir, $RLSUITE_DATA_DIR/<dataset>, the user cache), downloads from the standard mirrors, and
checksum verification of every file read or fetched. numpy only: no torch here."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

from rlsuite.core.errors import UserError, close_matches

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
    # MD5s of the uncompressed files, like MNIST's: Zalando publishes those of its .gz files only, which
    # differ by compression alone; these were computed from Debian's dataset-fashion-mnist (the 60,000 /
    # 10,000 images with 6,000 / 1,000 per class and mean pixel 72.94 of the published set).
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", _MNIST_FILES,
        {"train_images": "f4a8712d7a061bf5bd6d2ca38dc4d50a", "train_labels": "9018921c3c673c538a1fc5bad174d6f9",
         "test_images": "8181f5470baa50b63fa0f6fddb340f0a", "test_labels": "15d484375f8d13e6eb1aabb0c3f46965"},
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
