"""Optional experiment tracking with Weights & Biases (the `wandb` extra), beside TensorBoard, never required.

Switched on per process by `--track wandb` (or RLSUITE_TRACK=wandb, which child processes inherit), with W&B's own
settings: WANDB_PROJECT (--wandb-project, default "rlsuite"), WANDB_ENTITY (--wandb-entity) and WANDB_MODE
(offline keeps everything on disk, under the run directory's wandb/; `wandb sync` uploads it later). Each run
directory is one W&B run, whose id config.yaml keeps (tracking_id), so a resumed run continues the same W&B run, and a
run trained again in the same directory (--force, a stale run redone) gets a W&B run of its own."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from rlsuite.core.errors import UserError

TRACK_VARIABLE = "RLSUITE_TRACK"
TRACKERS = ("wandb",)


class WandbTracker:
    def __init__(self, run_dir: Path, name: str, run_id: str, config: dict):
        try:
            import wandb  # optional heavy dependency (the wandb extra), imported only when tracking is asked for
        except ImportError:
            raise UserError("--track wandb needs the wandb package; pip install 'rlsuite[wandb]'") from None
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "rlsuite",
                                  entity=os.environ.get("WANDB_ENTITY") or None, name=name, id=run_id,
                                  resume="allow", dir=str(run_dir), config=config, reinit="create_new")
        except Exception as e:  # noqa: BLE001 - wandb fails in its own ways (no login, no network)
            first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            raise UserError(f"W&B could not start a run ({first}); run `wandb login`, or WANDB_MODE=offline to "
                            "log to disk only") from None

    def log(self, step: int, values: dict) -> None:
        self.run.log({k: float(v) for k, v in values.items()}, step=int(step))

    def finish(self) -> None:
        self.run.finish()


def check_tracker() -> None:
    """Before a run directory is made: the tracker asked for is known and installed."""
    kind = os.environ.get(TRACK_VARIABLE, "").strip()
    if kind and kind not in TRACKERS:
        raise UserError(f"{TRACK_VARIABLE}={kind!r}: the tracker must be one of {', '.join(TRACKERS)}")
    try:
        missing = kind == "wandb" and importlib.util.find_spec("wandb") is None
    except ValueError:  # in sys.modules as None: an import of it fails
        missing = True
    if missing:
        raise UserError("--track wandb needs the wandb package; pip install 'rlsuite[wandb]'")


def open_tracker(run_dir: Path, name: str, run_id: str, config: dict) -> WandbTracker | None:
    """The tracker RLSUITE_TRACK asks for, or None."""
    kind = os.environ.get(TRACK_VARIABLE, "").strip()
    if not kind:
        return None
    if kind not in TRACKERS:
        raise UserError(f"{TRACK_VARIABLE}={kind!r}: the tracker must be one of {', '.join(TRACKERS)}")
    return WandbTracker(run_dir, name, run_id, config)
