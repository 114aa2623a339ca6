"""Regenerate results/floatpaths/: which float-path switches give this machine another CPU's arithmetic.

    python benchmarks/floatpaths.py            # which switches change the arithmetic here (a minute)
    python benchmarks/floatpaths.py --cards    # then the validated cards under ATEN_CPU_CAPABILITY=default,
                                               # seeds 100-104 (an hour; runs reused) -> results/floatpaths/float-default/

A validated card should hold under a second float path (`ATEN_CPU_CAPABILITY=default`, and
`MKL_ENABLE_INSTRUCTIONS=AVX2`/`AVX512` where the CPU has them). A switch only tests anything if it changes
the numbers, so each is run in a fresh process on the operations our agents use (the MLP forward and
backward, a CNN forward, the elementwise kernels, an Adam step) and on a short training loop, and
compared bit for bit with the native path. The report says which switches are real on this CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rlsuite.experiments.report import header, report_folder

SETTINGS = [
    {},
    {"ATEN_CPU_CAPABILITY": "default"},
    {"ATEN_CPU_CAPABILITY": "avx2"},
    {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    {"MKL_ENABLE_INSTRUCTIONS": "AVX512"},
    {"MKL_CBWR": "COMPATIBLE"},
]

# Run in a child process: the switches are read once, when torch and MKL load.
PROBE = r"""
import json, torch
torch.set_num_threads(1)
torch.manual_seed(0)
out = {}
x = torch.randn(256, 64)
mlp = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.Tanh(),
                          torch.nn.Linear(256, 4))
y = mlp(x)
out["MLP forward (batch 256, 64-256-256-4)"] = y.double().sum().item()
y.square().mean().backward()
out["MLP backward"] = sum(p.grad.double().sum().item() for p in mlp.parameters())
img = torch.randn(32, 4, 84, 84)
conv = torch.nn.Sequential(torch.nn.Conv2d(4, 32, 8, 4), torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 4, 2))
out["Nature-CNN conv forward"] = conv(img).double().sum().item()
z = torch.randn(4096)
out["exp, tanh, log_softmax"] = (z.exp().sum() + z.tanh().sum() + z.view(64, 64).log_softmax(-1).sum()).item()
opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)
for _ in range(300):  # a short training run: tiny differences compound step by step, as in RL training
    opt.zero_grad()
    loss = (mlp(x) - torch.sin(x[:, :4])).square().mean()
    loss.backward()
    opt.step()
out["300 Adam steps (final loss)"] = loss.item()
out["300 Adam steps (weights)"] = sum(p.double().sum().item() for p in mlp.parameters())
print(json.dumps(out))
"""


# The cards that met their target on the native path (results/cards/, 10 seeds), checked again under a second
# float path on the first 5 of those seeds: a robust card holds there too, and a card that holds on
# 10 seeds natively but fails on most of 5 here would show it. PPO LunarLander has its own report (long runs).
SECOND_PATH = {"ATEN_CPU_CAPABILITY": "default"}
VALIDATED = [("cards", "ppo:CartPole-v1,a2c:CartPole-v1,reinforce:CartPole-v1,ppo:Acrobot-v1,a2c:Acrobot-v1,"
                          "ppo:Pendulum-v1,dqn:Acrobot-v1"),
             ("cards-lunarlander", "ppo:LunarLander-v3"), ("cards-continuous", "sac:Pendulum-v1,td3:Pendulum-v1")]


def probe(setting: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")}
    env.update(setting)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def label(setting: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in setting.items()) or "native"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results")
    parser.add_argument("--cards", action="store_true", help="then run the validated cards under the second float path")
    args = parser.parse_args()
    import torch  # only for the report header's versions (the probes run torch in their own processes)

    started = time.time()
    native = probe({})
    rows, real = [], []
    for setting in SETTINGS[1:]:
        got = probe(setting)
        differs = [name for name in native if got[name] != native[name]]
        if differs:
            real.append(label(setting))
        drift = abs(got["300 Adam steps (weights)"] - native["300 Adam steps (weights)"])
        rows.append(f"| `{label(setting)}` | {', '.join(differs) if differs else 'none: bit-identical to native'} | "
                    f"{drift:.3g} |")
    lines = header("Float paths on this machine", "python benchmarks/floatpaths.py", [0])
    lines[-2:] = []  # the evaluation paragraph does not apply: nothing here is an RL evaluation
    lines += [f"CPU capability torch detects: {torch.backends.cpu.get_cpu_capability()}. "
              f"Wall: {time.time() - started:.0f} s.", "",
              "Each switch runs the same operations in a fresh process (1 thread, seed 0) and is compared bit for "
              "bit with the native path. A switch that changes nothing here cannot show another CPU's trajectory on "
              "this one.", "",
              "| switch | operations that differ from native | weight-sum drift after 300 Adam steps |",
              "|---|---|---|", *rows, "",
              f"Switches that select another float path here: {', '.join(f'`{r}`' for r in real) or 'none'}.", ""]
    write(lines, Path(args.out))
    if args.cards:
        cards = Path(__file__).with_name("cards.py")
        for report, cells in VALIDATED:
            cmd = [sys.executable, str(cards), "--seeds", "100-104", "--cells", cells, "--report", report,
                   "--out", str(Path(args.out) / "floatpaths" / "float-default")]
            print("$", " ".join(f"{k}={v}" for k, v in SECOND_PATH.items()), *cmd[1:], flush=True)
            if subprocess.run(cmd, env={**os.environ, **SECOND_PATH}).returncode != 0:
                sys.exit(f"the cards under {SECOND_PATH} failed; their output is above")
        write(lines, Path(args.out))  # now listing the new reports


def write(lines: list[str], out: Path) -> None:
    """floatpaths/README.md: the measurement, then the verdicts of every card report made under another float path."""
    lines = list(lines)
    folder = report_folder(out, "floatpaths")
    for report in sorted(folder.glob("float-*/cards*/README.md")):
        text = report.read_text().splitlines()
        rows = [line for line in text if line.startswith("| ") and not line.startswith(("| card ", "|---"))]
        verdicts = [r for r in rows if r.rstrip(" |").endswith(("met",)) or "missed" in r][:20]
        lines += [f"[{report.relative_to(folder)}]({report.relative_to(folder)}): {text[0][2:]}, "
                  f"{next((t for t in text if t.startswith('Seeds:')), 'Seeds: ?')[7:]}", "",
                  "| card | target | measured | verdict |", "|---|---|---|---|", *verdicts, ""]
    path = folder / "README.md"
    path.write_text("\n".join(lines))
    print(f"wrote {path}")

if __name__ == "__main__":
    main()
