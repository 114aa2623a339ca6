"""Print pip constraints pinning the packages whose lower bounds CI checks to exactly those bounds, read from
pyproject.toml, so the minimum-versions job installs what the project declares (a bound too low fails CI)."""

import re
import sys
import tomllib
from pathlib import Path

CHECKED = ("torch", "gymnasium", "stable-baselines3", "numpy", "click")

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
bounds = {}
for requirement in project["dependencies"]:
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)", requirement.split(";")[0].strip())
    if m and m[1].lower() in CHECKED:
        bounds[m[1].lower()] = m[2]
missing = [name for name in CHECKED if name not in bounds]
if missing:
    sys.exit(f"pyproject.toml declares no lower bound for {', '.join(missing)}")
print("\n".join(f"{name}=={version}" for name, version in bounds.items()))
