"""Supervised module: IDX reading and its corruptions, data lookup and download, shared classes,
learning on synthetic data, and (when ../shared has it) one epoch of full MNIST."""

import dataclasses
import gzip
from pathlib import Path
import http.server
import threading
from functools import partial

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import SHARED, assert_one_line_error
from rlsuite.learn import nets
from rlsuite.agents.dqn import DQNConfig, build_q_network
from rlsuite.cli import main
from rlsuite.core.errors import UserError
from rlsuite.supervised.datasets import DATASETS, DatasetSpec, download, load_arrays, locate, read_idx, write_idx
from rlsuite.supervised.classifier import SupervisedConfig, build_classifier, random_shift, run_supervised

FILES = DATASETS["mnist"].files
REAL_FASHION = DATASETS["fashion-mnist"]


def synthetic(directory, n_train=1200, n_test=300, seed=0, gz=True):
    """A learnable 10-class dataset in IDX files: a fixed random template per class plus noise."""
    rng = np.random.default_rng(seed)
    templates = rng.random((10, 28, 28)) > 0.7
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = templates[labels] * 180 + rng.integers(0, 75, (n, 28, 28))
        suffix = ".gz" if gz else ""
        write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", images.astype(np.uint8))
        write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return directory




@pytest.mark.parametrize("name", ["a.idx.gz", "a.idx"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, name, dtype):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype) if dtype != np.uint8 else \
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / name, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, array)


def test_idx_corruptions(tmp_path):
    good = write_idx(tmp_path / "x.idx", np.zeros((5, 28, 28), np.uint8))
    raw = good.read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-10])
    with pytest.raises(UserError, match="truncated or corrupt"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "magic.idx").write_bytes(b"\x08\x03" + raw[2:])
    with pytest.raises(UserError, match="wrong magic number"):
        read_idx(tmp_path / "magic.idx")
    (tmp_path / "trunc.gz").write_bytes(gzip.compress(raw)[:40])
    with pytest.raises(UserError, match="truncated or corrupt gzip"):
        read_idx(tmp_path / "trunc.gz")
    (tmp_path / "empty.idx").write_bytes(b"")
    with pytest.raises(UserError, match="wrong magic number"):
        read_idx(tmp_path / "empty.idx")
    with pytest.raises(UserError, match="does not exist"):
        read_idx(tmp_path / "nope.idx")


def test_count_mismatch_and_checksums(tmp_path):
    d = synthetic(tmp_path / "d", n_train=50, n_test=20)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    spec = dataclasses.replace(DATASETS["fashion-mnist"], md5={})  # no checksums: the structural checks alone
    with pytest.raises(UserError, match="20 images but .* 19 labels"):
        load_arrays(spec, locate(spec, d, allow_download=False))
    for name, spec in (("mnist", DATASETS["mnist"]), ("fashion-mnist", REAL_FASHION)):  # both reject look-alikes
        with pytest.raises(UserError, match=f"fails its {name} checksum"):
            load_arrays(spec, locate(spec, d, allow_download=False))


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_passes_its_checksums():
    spec = REAL_FASHION
    arrays = load_arrays(spec, locate(spec, "/usr/share/datasets/fashion-mnist", allow_download=False))
    assert arrays["train_images"].shape == (60000, 28, 28) and len(arrays["test_labels"]) == 10000


@pytest.fixture(autouse=True)
def synthetic_fashion(monkeypatch):
    """The synthetic look-alike files below stand in for Fashion-MNIST: drop its checksums for them."""
    monkeypatch.setitem(DATASETS, "fashion-mnist", dataclasses.replace(DATASETS["fashion-mnist"], md5={}))


def test_lookup_order_and_offline_message(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RLSUITE_DATA_DIR", str(tmp_path / "root"))
    spec = DATASETS["fashion-mnist"]
    synthetic(tmp_path / "root" / "fashion-mnist", n_train=20, n_test=10, gz=False)  # raw files work too
    found = locate(spec, None, allow_download=False)
    assert found["train_images"] == tmp_path / "root" / "fashion-mnist" / "train-images-idx3-ubyte"
    with pytest.raises(UserError, match="lacks train-labels-idx1-ubyte.gz, .*put all four"):
        partial_dir = tmp_path / "partial"
        partial_dir.mkdir()
        write_idx(partial_dir / "train-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8))
        locate(spec, partial_dir, allow_download=False)
    monkeypatch.delenv("RLSUITE_DATA_DIR")
    with pytest.raises(UserError, match="put train-images-idx3-ubyte.gz, .* or pass --data-dir"):
        locate(spec, None, allow_download=False)


def test_download_from_a_loopback_mirror_with_checksums(tmp_path):
    served = synthetic(tmp_path / "served", n_train=30, n_test=10)
    import hashlib

    md5 = {role: hashlib.md5(gzip.decompress((served / name).read_bytes())).hexdigest() for role, name in FILES.items()}
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        spec = DatasetSpec("toy", FILES, md5, (url + "missing/", url), tuple("0123456789"))
        download(spec, tmp_path / "cache", progress=False)  # first mirror 404s, the second works
        assert np.array_equal(read_idx(tmp_path / "cache" / FILES["test_labels"]), read_idx(served / FILES["test_labels"]))
        bad = DatasetSpec("toy", FILES, {**md5, "train_labels": "0" * 32}, (url,), tuple("0123456789"))
        with pytest.raises(UserError, match="checksum mismatch"):
            download(bad, tmp_path / "cache2", progress=False)
        assert not (tmp_path / "cache2" / FILES["train_labels"]).exists()  # nothing unverified is kept
    finally:
        server.shutdown()


def test_classifiers_are_the_agents_classes():
    mlp = build_classifier(SupervisedConfig(net="mlp"))
    cnn = build_classifier(SupervisedConfig(net="cnn"))
    assert type(mlp[0]) is nets.MLP and type(cnn[0]) is nets.CNN
    assert type(mlp[1]) is nets.ClassifierHead and type(cnn[1]) is nets.ClassifierHead
    import gymnasium as gym

    q = build_q_network(DQNConfig(), gym.spaces.Box(-1, 1, (4,)), 2)
    assert type(q[0]) is type(mlp[0])  # the very class DQN uses
    assert mlp(torch.zeros(3, 1, 28, 28)).shape == (3, 10) and cnn(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert sum(p.numel() for p in mlp.parameters()) == 784 * 64 + 64 + 64 * 10 + 10  # 784-64-10


def test_random_shift_moves_pixels_within_bounds():
    x = torch.zeros(50, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    pos = out[:, 0].flatten(1).argmax(dim=1)
    rows, cols = pos // 28, pos % 28
    assert ((rows - 14).abs() <= 2).all() and ((cols - 14).abs() <= 2).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 5  # shifts differ per image


@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_learns_synthetic_data_far_above_chance(tmp_path, net):
    d = synthetic(tmp_path / "data")
    summary = run_supervised("fashion-mnist", net, epochs=3, data_dir=d, out=tmp_path, progress=False,
                             overrides={"val_size": "200", "width": "8", "torch_threads": "1"}, allow_download=False)
    assert summary["test_acc"] >= 0.8, summary["test_acc"]  # chance is 0.1
    run_dir = summary["run_dir"]
    result = CliRunner().invoke(main, ["eval", run_dir, "--json"])
    assert result.exit_code == 0, result.output
    import json

    assert json.loads(result.output)["test_acc"] == pytest.approx(summary["test_acc"])
    from pathlib import Path

    header = (Path(run_dir) / "metrics.csv").read_text().splitlines()[0]
    assert header == "step,wall_s,epoch,train_loss,train_acc,val_acc,test_acc"
    assert (Path(run_dir) / "confusion.png").stat().st_size > 1000


def test_cli_bad_inputs(tmp_path):
    d = synthetic(tmp_path / "data", n_train=40, n_test=10)
    runner = CliRunner()
    base = ["supervised", "fashion-mnist", "--data-dir", str(d), "--out", str(tmp_path), "--no-download"]
    assert_one_line_error(runner.invoke(main, base + ["--epochs", "0"]), "--epochs must be positive")
    assert_one_line_error(runner.invoke(main, base + ["--net", "resnet"]), "unknown net 'resnet'", "--net mlp")
    assert_one_line_error(runner.invoke(main, ["supervised", "cifar10"]), "unknown dataset 'cifar10'")
    assert_one_line_error(runner.invoke(main, base + ["--set", "lr=fast"]), "lr='fast'")
    (d / "train-labels-idx1-ubyte.gz").write_bytes(b"\x00\x00\x07\x01garbage")
    assert_one_line_error(runner.invoke(main, base), "train-labels-idx1-ubyte.gz has a wrong magic number")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(runner.invoke(main, ["supervised", "fashion-mnist", "--data-dir", str(empty), "--no-download"]),
                   "fashion-mnist files not found")
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not (SHARED / "data" / "mnist").is_dir(), reason="../shared/data/mnist is not present on this machine")
def test_mlp_one_epoch_on_full_mnist(tmp_path):
    summary = run_supervised("mnist", "mlp", epochs=1, data_dir=SHARED / "data" / "mnist", out=tmp_path,
                             progress=False, allow_download=False)
    assert summary["test_acc"] >= 0.93, summary["test_acc"]
    assert len(summary["per_class_acc"]) == 10


def test_settings_that_cannot_fit_the_data(tmp_path):
    d = synthetic(tmp_path / "data", n_train=40, n_test=10)
    runner = CliRunner()
    base = ["supervised", "fashion-mnist", "--data-dir", str(d), "--out", str(tmp_path), "--no-download",
            "--set", "val_size=10", "--set", "batch_size=8"]
    assert_one_line_error(runner.invoke(main, base + ["--set", "batch_size=1000"]), "is larger than the training set")
    assert_one_line_error(runner.invoke(main, base + ["--set", "augment_shift=100"]), "off the canvas")
    assert_one_line_error(runner.invoke(main, base + ["--set", "torch_threads=100000"]), "at most 256")
    assert not (tmp_path / "runs").exists()


def test_the_progress_line_counts_epochs(tmp_path, monkeypatch, capsys):
    """Before: 'step 1/2 (50%) 0 steps/s': a classifier's steps are epochs, and its rate is below one per second."""
    from rlsuite.run import engine

    monkeypatch.setattr(engine, "PROGRESS_LINE_SECONDS", 0.0)
    d = synthetic(tmp_path / "data", n_train=600, n_test=100)
    run_supervised("fashion-mnist", "mlp", epochs=3, data_dir=d, out=tmp_path, progress=True,
                   overrides={"val_size": "100", "width": "8", "torch_threads": "1"}, allow_download=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[supervised")]
    assert lines and all(" epoch " in line and "steps/s" not in line for line in lines), lines
    assert all(("epochs/s" in line or "s/epoch" in line) for line in lines), lines
