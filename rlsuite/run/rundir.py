"""Reading and writing run directories without torch, so that plots, reports and sweeps stay light.

A run directory is the unit every command exchanges:
  config.yaml     resolved hyperparameters, env card, seed, implementation, versions, command
  metrics.csv     step, wall_s, episode_return, episode_length, eval_mean, eval_std (append-only)
  events.*        TensorBoard scalars (charts/, losses/, eval/) and the hyperparameters
  checkpoints/    last.pt (the codec is in rlsuite.run.checkpoint)
  status.json     running | interrupted | failed | complete (+ step, and the error of a failed run)
  summary.json    written only when the run completes
  lock            who is writing the run now (pid, host); held with flock while a process trains it

A finished run's record (RECORD: what reports, plots and reuse read; no checkpoints) can be copied where git
keeps it and restored on another checkout (save_record, restore_records): the long benchmark grids span
sessions that may start on a fresh clone, and results/runs/ is not committed. A restored run is reused
and plotted as any finished run; it cannot be re-evaluated or resumed (no checkpoint).
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import fcntl
import json
import math
import os
import platform
import secrets
import socket
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from rlsuite.core.errors import UserError, close_matches

METRIC_COLUMNS = ["step", "wall_s", "episode_return", "episode_length", "eval_mean", "eval_std"]
STATUSES = ("running", "interrupted", "failed", "complete")


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: readers see the old or the new file, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def disk_error(e: OSError, what: str, fix: str = "") -> UserError:
    """One line for an OSError while writing: which file, why, what to do."""
    reason = e.strerror or type(e).__name__
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = fix or "free some space"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = fix or "make it writable"
    return UserError(f"cannot write {what} ({reason}){'; ' + fix if fix else ''}")


# ---------------------------------------------------------------------------------------------
# Versions and hardware, for config.yaml, summary.json and every results file
def versions() -> dict:
    out = {"python": platform.python_version()}
    for name, dist in (("rlsuite", "rlsuite"), ("torch", "torch"), ("gymnasium", "gymnasium"), ("numpy", "numpy"),
                       ("stable_baselines3", "stable-baselines3")):
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            out[name] = "not installed"
    if "torch" in sys.modules:  # the exact build (e.g. 2.13.0+cpu) when torch is loaded anyway
        out["torch"] = str(sys.modules["torch"].__version__)
    return out


# The switches that select another float path on the same machine (docs/protocol.md: a learning claim should
# hold on another CPU's kernels too). ATEN_CPU_CAPABILITY picks torch's own vector kernels; MKL_CBWR and
# MKL_ENABLE_INSTRUCTIONS pick MKL's GEMM code path (on AMD CPUs MKL runs its AVX2 path whatever
# MKL_ENABLE_INSTRUCTIONS says; benchmarks/floatpaths.py measures which switches change results here).
FLOAT_PATH_VARS = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def float_path() -> str:
    """'native', or the float-path switches set in this process, e.g. 'ATEN_CPU_CAPABILITY=default'."""
    chosen = [f"{k}={os.environ[k]}" for k in FLOAT_PATH_VARS if os.environ.get(k)]
    return " ".join(chosen) or "native"


def hardware() -> str:
    """'CPU model, N cores, GPU name' (the GPU only where torch is already loaded and sees one)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    torch = sys.modules.get("torch")
    gpu = torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}"


# ---------------------------------------------------------------------------------------------
# config.yaml
DEFAULT_RUNS = Path("runs")  # where `rlsuite train` puts runs by default (--out .), and where `latest` looks


def find_runs(root: Path = DEFAULT_RUNS, depth: int = 4) -> list[Path]:
    """Every run directory (a folder with a config.yaml) under ROOT, compare's, sweep's and tune's nested ones too."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for level in range(1, depth + 1):
        found += [p.parent for p in root.glob("/".join(["*"] * level) + "/config.yaml")
                  if "wandb" not in p.relative_to(root).parts]  # W&B keeps config.yaml files of its own
    return sorted(set(found))


def started_at(run_dir: Path) -> str:
    """When a run was created (config.yaml's `created`; a resume does not change it); '' when unreadable."""
    try:
        data = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return ""
    return str(data.get("created", "")) if isinstance(data, dict) and isinstance(data.get("agent"), str) else ""


def resolve_run(text: str | Path, root: Path = DEFAULT_RUNS) -> Path:
    """A run directory from what a user types: a path; `latest` (the run under ROOT created last, by config.yaml's
    `created`); or a unique
    prefix of a run's name under ROOT. Anything else comes back unchanged, for the caller's own error."""
    path = Path(text)
    if path.exists() or str(text) in ("", "."):
        return path
    runs = find_runs(root)
    if str(text) == "latest":
        if not runs:
            raise UserError(f"'latest': there are no runs under {root}/; give a run directory")
        dated = [(started_at(d), d.name, d) for d in runs]
        dated = [t for t in dated if t[0]]
        if not dated:
            raise UserError(f"'latest': no run under {root}/ has a readable config.yaml; give a run directory")
        return max(dated)[2]
    if len(path.parts) == 1:
        hits = [d for d in runs if d.name.startswith(str(text))]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            names = ", ".join(d.name for d in hits[:3])
            raise UserError(f"'{text}' is the start of {len(hits)} runs' names under {root}/ ({names}"
                            f"{', ...' if len(hits) > 3 else ''}); give more of the name")
    return path


def suggest_runs(run_dir: Path) -> str:
    """' (did you mean: ...?)' from the run names beside the path given, or under ./runs."""
    run_dir = Path(run_dir)
    names = {d.name: d for d in find_runs(run_dir.parent, depth=1) + find_runs(DEFAULT_RUNS)}
    hint = close_matches(run_dir.name, names)
    if not hint:
        return ""
    picks = [n.strip() for n in hint.removeprefix(" (did you mean: ").removesuffix("?)").split(",")]
    return f" (did you mean: {', '.join(str(names[n]) for n in picks if n in names)}?)"


def read_run_config(run_dir: Path) -> dict:
    """config.yaml of a run directory, checked enough that every command can rely on its keys."""
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a run directory (no such directory){suggest_runs(run_dir)}")
    if not path.exists():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path} is not valid YAML ({first}); fix it or retrain") from None
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror})") from None
    if not isinstance(data, dict) or not isinstance(data.get("agent"), str) or not isinstance(data.get("config"), dict):
        raise UserError(f"{path} is not an rlsuite run config (it needs 'agent' and a 'config' mapping)")
    seed = data.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise UserError(f"{path}: 'seed' must be an integer in [0, 2^32), got {seed!r}")
    if data.get("env_card") is not None and not isinstance(data["env_card"], dict):
        raise UserError(f"{path}: 'env_card' must be a mapping")
    return data


def write_run_config(run_dir: Path, data: dict) -> None:
    atomic_write_text(Path(run_dir) / "config.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


# ---------------------------------------------------------------------------------------------
# status.json
def write_status(run_dir: Path, status: str, step: int, **extra) -> None:
    path = Path(run_dir) / "status.json"
    text = json.dumps({"status": status, "step": step, **extra}, indent=1)
    try:
        atomic_write_text(path, text)
    except OSError:
        # A full disk has no room for the temporary copy; the old file's own block usually still takes
        # a few hundred bytes, and a status is worth more than the atomicity of this one write.
        with open(path, "r+", encoding="utf-8") as f:
            f.write(text)
            f.truncate()


def read_status(run_dir: Path) -> dict:
    """{'status': ..., 'step': ...}; 'unknown' when the file is missing or unreadable."""
    try:
        data = json.loads((Path(run_dir) / "status.json").read_text())
        return data if isinstance(data, dict) and data.get("status") in STATUSES else {"status": "unknown"}
    except (OSError, ValueError, RecursionError):
        return {"status": "unknown"}


# ---------------------------------------------------------------------------------------------
# metrics.csv
def csv_rows(path: Path, required: tuple[str, ...] = ()) -> list[dict]:
    """The rows of a metrics.csv; a file that is not one (or lacks a `required` column) is a UserError."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames or []
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read {path} as CSV ({e}); it is not an rlsuite metrics file") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise UserError(f"{path} has no {', '.join(repr(c) for c in missing)} column; it is not an rlsuite metrics.csv")
    return rows


def truncate_metrics(path: Path, keep: int, columns: list[str], max_step: int | None = None) -> int:
    """Keep the first `keep` data rows of metrics.csv (the rows a checkpoint vouches for); rows written
    after the checkpoint belong to a future the resume replays. The file is rewritten to a temporary
    copy and renamed over the old one, so a kill at any moment leaves either file, never half of one.
    Returns the number of rows the file had."""
    path = Path(path)
    rows = csv_rows(path, required=("step", "wall_s")) if path.exists() else []
    for i, row in enumerate(rows[:keep], start=2):  # line numbers as an editor shows them (header = 1)
        try:
            ok = 0 <= int(row["step"]) <= (max_step if max_step is not None else int(row["step"]))
            ok = ok and math.isfinite(float(row["wall_s"]))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"{path} line {i} is corrupt or does not belong before the checkpoint (step "
                            f"{row.get('step')!r}, wall_s {row.get('wall_s')!r}; checkpoint at step {max_step}); "
                            "restore the file or start a new run")
    if len(rows) == keep:
        return len(rows)
    if len(rows) < keep:
        raise UserError(f"{path} has {len(rows)} rows but the checkpoint was written after {keep}: rows were lost "
                        "outside rlsuite; restore the file or start a new run")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows[:keep])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Creating run directories and keeping one writer per directory
def check_folder_name(name: str, what: str) -> str:
    """A name that becomes one folder under --out: no separators, no '.' or '..', at most 255 bytes."""
    if not isinstance(name, str) or not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise UserError(f"{what} {name!r} must be one folder name (no '/', '\\', '..'); it is created under --out")
    if len(name.encode("utf-8", "replace")) > 255:
        raise UserError(f"{what} is {len(name.encode('utf-8', 'replace'))} bytes long; a folder name can have 255 at most")
    return name


def safe_name(text: str) -> str:
    return str(text).replace("/", "-").replace(":", "-").replace("..", "_")


def new_run_dir(out_root: Path, agent: str, env_id: str, seed: int, name: str | None = None,
                exist_ok: bool = False) -> Path:
    """OUT/runs/<agent>-<env>-s<seed>-<time>-<random> (unique), or OUT/runs/NAME."""
    if (Path(out_root) / "runs").exists() and not (Path(out_root) / "runs").is_dir():
        raise UserError(f"{Path(out_root) / 'runs'} is a file, not a folder; choose another --out")
    try:
        str(out_root).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"--out {str(out_root).encode('utf-8', 'replace').decode()!r} is not valid UTF-8; "
                        "choose a UTF-8 path (config.yaml and reports record it)") from None
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = name or f"{agent}-{safe_name(env_id)}-s{seed}-{stamp}-{secrets.token_hex(2)}"
    path = Path(out_root) / "runs" / base
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(exist_ok=exist_ok)
    except FileExistsError:
        raise UserError(f"run directory {path} already exists; pick another name or use --resume") from None
    except (OSError, UnicodeEncodeError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise UserError(f"cannot create a run directory under {out_root!s:.200} ({reason}); choose a writable --out") from None
    return path


class RunBusy(UserError):
    """Another live process is writing this run directory."""


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files (.NAME.PID.tmp) a writer killed mid-write left behind: a checkpoint's is as big
    as its replay memory. Called by the run's new writer once it holds the lock, so no live writer owns them."""
    stale = [p for folder in (run_dir, run_dir / "checkpoints") if folder.is_dir() for p in folder.glob(".*.tmp")]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


# What a run's writer writes inside its directory: none of these may be a symbolic link, or a run directory
# someone hands you could make a resume write (or truncate) a file anywhere the user can write.
WRITTEN = ("lock", "checkpoints", "checkpoints/last.pt", "config.yaml", "status.json",
           "metrics.csv", "summary.json", "fingerprint.json", "tensorboard", "videos", "confusion.png")


def check_no_links(run_dir: Path) -> None:
    for name in WRITTEN:
        path = Path(run_dir) / name
        if path.is_symlink():
            raise UserError(f"{path} is a symbolic link (to {os.readlink(path)}); a run writes only inside its own "
                            "directory: replace the link with the file or folder itself, or train into a new --out")


class RunLock:
    """One writer per run directory: an exclusive flock on RUN/lock, with the holder's pid and host in
    the file for the message a second writer gets. The kernel drops a flock when its process dies,
    however it dies, so a lock left by kill -9 is stale by construction and the next writer takes it."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        check_no_links(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder()
            who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}" if holder else "another process"
            since = f" since {holder['since']}" if holder.get("since") else ""
            raise RunBusy(f"{self.path.parent} is in use by {who}{since}; wait for it to finish, or stop it "
                          f"(kill {holder.get('pid', 'PID')}; it checkpoints) and resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": dt.datetime.now().isoformat(timespec="seconds")}).encode())
        self._fd = fd
        remove_stale_temporaries(self.path.parent)
        return self

    def holder(self) -> dict:
        try:
            data = json.loads(self.path.read_text() or "{}")
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire() if not self.held else self

    def __exit__(self, *exc):
        self.release()
        return False


# ---------------------------------------------------------------------------------------------
# Records of finished runs
RECORD = ("fingerprint.json", "config.yaml", "status.json", "metrics.csv", "summary.json")  # summary.json last


def save_record(run_dir, runs_top, records_top) -> Path | None:
    """Copy the finished run RUNS_TOP/<path> to RECORDS_TOP/<path>; an unfinished run has no record (None).
    Its summary.json goes first and comes back last: a record cut short, or committed mid-copy, is never a
    finished run with another run's files beside it."""
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").exists():
        return None
    dest = Path(records_top) / run_dir.resolve().relative_to(Path(runs_top).resolve())
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "summary.json").unlink(missing_ok=True)
    for name in RECORD:
        if (run_dir / name).exists():
            atomic_write_text(dest / name, (run_dir / name).read_text(encoding="utf-8"))
        else:
            (dest / name).unlink(missing_ok=True)
    return dest


def restore_records(records_top, runs_top) -> list[Path]:
    """Make the run directories RUNS_TOP lacks from their records (save_record); return them. A run that has
    finished here, holds a checkpoint here (open: it resumes) or is locked by a live process is left alone."""
    restored = []
    for summary in sorted(Path(records_top).rglob("summary.json")):
        run_dir = Path(runs_top) / summary.parent.relative_to(records_top)

        def here() -> bool:
            return (run_dir / "summary.json").exists() or (run_dir / "checkpoints").exists()

        if here():
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            with RunLock(run_dir):  # a process starting this run must not see half a record
                if here():  # finished or started by another process since the look above
                    continue
                for name in RECORD:
                    if not (summary.parent / name).exists():
                        continue
                    text = (summary.parent / name).read_text(encoding="utf-8")
                    if name == "summary.json":  # plots find the curve through it: where the run is now
                        text = json.dumps({**json.loads(text), "run_dir": str(run_dir)}, indent=1)
                    atomic_write_text(run_dir / name, text)
        except RunBusy:
            continue
        restored.append(run_dir)
    return restored
