"""The house rules a reader relies on: docs inside the repository, a short README, reports in folders."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def user_facing_files():
    yield ROOT / "README.md"
    yield ROOT / "CONTRIBUTING.md"
    for folder, pattern in (("docs", "*.md"), ("rlsuite", "*.py"), ("cards", "*.yaml"), ("results", "*.md")):
        for path in (ROOT / folder).rglob(pattern):
            if "run-records" not in path.parts:
                yield path


def test_nothing_a_user_reads_points_outside_the_repository_or_to_an_issue():
    offenders = []
    for path in user_facing_files():
        text = path.read_text(encoding="utf-8")
        if "../shared" in text or re.search(r"\bissues? \d+\b|\bissue-\d+\b", text, re.IGNORECASE):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_readme_fits_in_two_screens_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if "://" not in target:
            assert (ROOT / target).exists(), target


def test_results_holds_folders_not_loose_reports():
    loose = [p.name for p in (ROOT / "results").iterdir() if p.is_file() and p.name != "README.md"
             and not p.name.startswith(".")]  # a lock sidecar (git-ignored) is no report
    assert loose == []
    for folder in (ROOT / "results").iterdir():
        if folder.is_dir() and folder.name not in ("run-records", "tune_cards", "runs"):
            assert (folder / "README.md").exists(), folder.name
            assert not list(folder.glob("*.svg")), folder.name  # figures in one format: PNG


def test_every_report_folder_has_its_script():
    for folder in (ROOT / "results").iterdir():
        if folder.is_dir() and folder.name not in ("run-records", "runs"):
            script = folder.name.split("-")[0]  # cards-changed, faults-sac-Hopper-v5: variants of one script
            assert (ROOT / "benchmarks" / f"{script}.py").exists(), folder.name
