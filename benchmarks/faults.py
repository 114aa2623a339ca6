"""Regenerate results/faults/ (results/faults-AGENT-ENV/ for another agent): fault trials against the run directory's promises.

    python benchmarks/faults.py                     # 10 kill -9 trials, 5 SIGTERM trials, 3 disk-full trials
    python benchmarks/faults.py --kills 20 --disk /mnt/tiny
    python benchmarks/faults.py --agent td3 --env Hopper-v5 --steps 6000 --set hidden=32,32 ...  # faults-td3-Hopper-v5.md

kill -9   `rlsuite train dqn CartPole-v1` (or --agent/--env) with a checkpoint every few seconds is killed with SIGKILL at a
          random moment, then resumed with `--resume`; repeated until the run completes. The promise: the
          run completes, its metrics.csv has no lost, duplicated or out-of-order rows, and (classic control
          and MuJoCo resume exactly; off-policy agents with their replay memory) its metrics equal an
          uninterrupted run's, wall-clock aside.
SIGTERM   the same with SIGTERM: exit code 143, status `interrupted`, a checkpoint at the stop step.
disk full `--out` on a small filesystem (a tmpfs given with --disk; skipped without one) that fills up
          mid-run: one line, no traceback, the last good checkpoint loads, and after space is freed
          `--resume` completes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rlsuite.experiments.report import report_folder

SETS = ["--set", "checkpoint_minutes=0.03", "--set", "eval_every=2500"]  # a checkpoint every ~2 s
STEPS = 30_000
TRAIN: list = ["dqn", "CartPole-v1"]  # the agent and env under trial (--agent, --env)


def relative(arg: str) -> str:
    """A path under the current folder as a relative one: the report's command must not name this machine's paths."""
    return os.path.relpath(arg) if os.path.isabs(arg) and arg.startswith(os.getcwd() + os.sep) else arg


def rlsuite(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rlsuite.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)]


def train_dir(out: Path) -> Path | None:
    runs = out / "runs"
    return next(iter(runs.iterdir()), None) if runs.exists() else None


STARTUP_NOTICE = "MuJoCo warning (shown once):"  # envs.make_env's one line per distinct MuJoCo warning
GAP = (0.5, 6.0)  # seconds between a start and its stop (--gap): past the process's start-up, or it never runs


def interrupted_run(out: Path, sig: int, rng: random.Random, max_rounds: int = 30) -> dict:
    """Start, stop with `sig` at random moments, resume until complete; what each promise looked like."""
    proc = rlsuite("train", *TRAIN, "--seed", 0, "--steps", STEPS, "--out", out, "--quiet", *SETS)
    stops, codes, errors = 0, [], []
    for _ in range(max_rounds):
        time.sleep(rng.uniform(*GAP))
        if proc.poll() is None:
            proc.send_signal(sig)
            stops += 1
        _, err = proc.communicate()
        codes.append(proc.returncode)
        if "Traceback" in err:
            errors.append(err.strip().splitlines()[-1])
        run_dir = train_dir(out)
        if run_dir is None:  # killed before the run directory existed: start again
            proc = rlsuite("train", *TRAIN, "--seed", 0, "--steps", STEPS, "--out", out, "--quiet", *SETS)
            continue
        if (run_dir / "summary.json").exists():
            break
        if not (run_dir / "checkpoints" / "last.pt").exists():  # killed before the first checkpoint
            shutil.rmtree(run_dir)
            proc = rlsuite("train", *TRAIN, "--seed", 0, "--steps", STEPS, "--out", out, "--quiet", *SETS)
            continue
        proc = rlsuite("train", "--resume", run_dir, "--quiet")
    else:  # out of rounds: the last start or resume runs to its end
        _, err = proc.communicate()
        codes.append(proc.returncode)
        if "Traceback" in err:
            errors.append(err.strip().splitlines()[-1])
    run_dir = train_dir(out)
    return {"stops": stops, "codes": codes, "tracebacks": errors, "run_dir": run_dir,
            "complete": run_dir is not None and (run_dir / "summary.json").exists()}


def main() -> None:
    global STEPS, GAP
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--terms", type=int, default=5)
    parser.add_argument("--disk", default=None, help="a small, empty, writable filesystem for the disk-full trials")
    parser.add_argument("--out", default="results")
    parser.add_argument("--work", default=None, help="scratch folder (default /tmp/rlsuite-faults[-AGENT-ENV])")
    parser.add_argument("--agent", default="dqn")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=STEPS, help="each trial's run length")
    parser.add_argument("--gap", default="0.5-6", help="seconds from a start to its stop, drawn uniformly (A-B)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="settings of the runs under trial (after the checkpoint and evaluation ones)")
    args = parser.parse_args()
    STEPS = args.steps
    try:
        GAP = tuple(float(x) for x in args.gap.split("-"))
        assert len(GAP) == 2 and 0 < GAP[0] <= GAP[1]
    except (ValueError, AssertionError):
        sys.exit(f"--gap {args.gap!r} is not A-B seconds with 0 < A <= B; give e.g. --gap 10-25")
    TRAIN[:] = [args.agent, args.env]
    SETS.extend(x for kv in args.set for x in ("--set", kv))
    suffix = "" if TRAIN == ["dqn", "CartPole-v1"] else f"-{args.agent}-{args.env.replace('/', '-')}"
    report = f"faults{suffix}"
    work = Path(args.work or f"/tmp/rlsuite-faults{suffix}")
    shutil.rmtree(work, ignore_errors=True)
    rng = random.Random(0)
    from rlsuite.experiments.report import header

    lines = header("Fault trials: kill -9, SIGTERM, a full disk" + (f" ({' '.join(TRAIN)})" if suffix else ""), f"python {' '.join(['benchmarks/faults.py'] + [relative(x) for x in sys.argv[1:]])}",
                   [0])
    reference = rlsuite("train", *TRAIN, "--seed", 0, "--steps", STEPS, "--out", work / "reference",
                        "--quiet", *SETS)
    _, err = reference.communicate()
    if reference.returncode != 0:  # a bad --set or env: nothing to compare the trials with
        sys.exit(f"the reference run failed: {err.strip().splitlines()[-1] if err.strip() else reference.returncode}")
    ref_rows = metrics(train_dir(work / "reference"))

    for name, sig, n, code in (("kill -9", signal.SIGKILL, args.kills, -9), ("SIGTERM", signal.SIGTERM, args.terms, 143)):
        rows = []
        for i in range(n):
            r = interrupted_run(work / f"{name.replace(' ', '')}-{i}", sig, rng)
            got = metrics(r["run_dir"]) if r["complete"] else []
            steps = [int(x["step"]) for x in got]
            rows.append({"trial": i, "stops": r["stops"], "complete": r["complete"],
                         "ordered": steps == sorted(steps), "identical": got == ref_rows,
                         "codes_ok": all(c in (0, code) for c in r["codes"]), "tracebacks": len(r["tracebacks"]),
                         "codes": sorted(set(r["codes"]))})
            print(name, rows[-1], flush=True)
        ok = sum(all((x["complete"], x["ordered"], x["identical"], x["codes_ok"], not x["tracebacks"])) for x in rows)
        lines += [f"## {name}: {ok}/{n} trials kept every promise", "",
                  f"Each trial stopped the run {sum(x['stops'] for x in rows) / max(n, 1):.1f} times on average "
                  f"(random moments, {GAP[0]:g}–{GAP[1]:g} s after each start) and resumed it until it completed.", "",
                  "| trial | stops | completed | rows in order | metrics identical to an uninterrupted run | "
                  f"exit codes {code if code > 0 else 'SIGKILL'}/0 only (seen) | tracebacks |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {x['trial']} | {x['stops']} | {x['complete']} | {x['ordered']} | {x['identical']} | "
                  f"{x['codes_ok']} ({', '.join(map(str, x['codes']))}) | {x['tracebacks']} |" for x in rows] + [""]

    if args.disk:
        disk = Path(args.disk)
        rows = []
        for i in range(3):
            for child in disk.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            filler = disk / "filler"
            proc = rlsuite("train", *TRAIN, "--steps", 200_000, "--out", disk, "--quiet", *SETS)
            # mid-run: once the run has a checkpoint to keep (a slow start-up, e.g. MuJoCo under load, could
            # otherwise meet a full disk before its first one), then 0, 2 or 4 s later
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None and not (
                    train_dir(disk) and (train_dir(disk) / "checkpoints" / "last.pt").exists()):
                time.sleep(0.2)
            time.sleep(2 * i)
            free = shutil.disk_usage(disk).free
            with open(filler, "wb") as f:  # fill the disk while the run writes
                try:
                    f.write(b"\0" * max(free - 4096, 0))
                except OSError:
                    pass
            _, err = proc.communicate(timeout=600)
            run_dir = train_dir(disk)
            status = json.loads((run_dir / "status.json").read_text())["status"] if (run_dir / "status.json").exists() else "?"
            from rlsuite.run.checkpoint import load_checkpoint

            try:
                step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
            except Exception as e:  # noqa: BLE001 - recorded as a broken promise
                step = f"unloadable ({type(e).__name__})"
            filler.unlink()
            resumed = rlsuite("train", "--resume", run_dir, "--steps", int(step) + 2000 if isinstance(step, int) else 1,
                              "--quiet")
            out2, err2 = resumed.communicate(timeout=600)
            # the failure's report: stderr without the start-up notices printed before training began (rlsuite
            # shows each distinct MuJoCo warning once, e.g. gymnasium's HalfCheetah model's deprecated attribute)
            lines_err = err.strip().splitlines()
            report_err = [line for line in lines_err if not line.startswith(STARTUP_NOTICE)]
            rows.append({"exit": proc.returncode, "one_line": len(report_err) == 1 and "Traceback" not in err,
                         "message": report_err[-1][:400] if report_err else "", "status": status,
                         "checkpoint_step": step, "resumed": resumed.returncode == 0,
                         "notices": len(lines_err) - len(report_err)})
            print("disk full", rows[-1], flush=True)
        ok = sum(r["exit"] == 1 and r["one_line"] and isinstance(r["checkpoint_step"], int) and r["resumed"] for r in rows)
        lines += [f"## disk full: {ok}/{len(rows)} trials kept every promise", "",
                  f"`--out` on {disk} ({shutil.disk_usage(disk).total / 2**20:.0f} MiB), filled by another file mid-run.", "",
                  "| exit | one line, no traceback | status | last good checkpoint loads (step) | resumed after freeing space | message |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['exit']} | {r['one_line']} | {r['status']} | {r['checkpoint_step']} | {r['resumed']} | "
                  f"{r['message'].replace('|', '/')} |" for r in rows] + [""]
        if any(r["notices"] for r in rows):
            lines += [f"stderr also held {max(r['notices'] for r in rows)} start-up line(s) beginning "
                      f"\"{STARTUP_NOTICE}\", printed when the env was made, before training; the one-line check "
                      "reads the lines after them.", ""]
    else:
        lines += ["## disk full: not run (give --disk with a small filesystem, e.g. a 3 MiB tmpfs)", ""]
    folder = report_folder(args.out, report)
    (folder / "README.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {folder / 'README.md'}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
