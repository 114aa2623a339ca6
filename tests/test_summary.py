"""results/README.md: one table of rlsuite against SB3 read from the reports' own tables."""

from rlsuite.experiments.summary import summary_lines, verdict, Side


def test_verdict_places_rlsuites_iqm_against_sb3s_interval():
    sb3 = Side("—", 10.0, (8.0, 12.0))
    assert verdict(Side("—", 9.0, None), sb3) == "inside"
    assert verdict(Side("—", 13.5, None), sb3) == "above (+1.5)"
    assert verdict(Side("—", 7.0, None), sb3) == "**below** (−1.0)"
    assert verdict(Side("—", None, None), sb3) == "—"


def test_the_table_reads_cells_from_the_reports_and_links_every_report(tmp_path):
    (tmp_path / "matrix").mkdir()
    (tmp_path / "matrix" / "README.md").write_text(
        "# Classic control\n\nDate: 2026-01-02 · Hardware: x\n\n"
        "| agent | env | steps/s ratio |\n|---|---|---|\n| DQN | CartPole-v1 | 1.99× |\n\n"
        "### DQN on CartPole-v1 (threshold 475, budget 50,000 steps)\n\n"
        "| implementation | solved | stays solved | final = 500 | IQM final [95% CI] | median steps/s |\n"
        "|---|---|---|---|---|---|\n"
        "| rlsuite | 10/10 | 9/10 | 9/10 | 500.0 [436.8, 500.0] | 1,606 |\n"
        "| sb3 | 10/10 | 7/10 | 6/10 | 462.6 [302.3, 500.0] | 808 |\n")
    (tmp_path / "pixels").mkdir()
    (tmp_path / "pixels" / "README.md").write_text(
        "# Pixels\n\n## MinAtar: DQN\n\nSeeds [0, 1, 2].\n\n"
        "| agent | game | rlsuite IQM final [95% CI] | SB3 IQM final [95% CI] | steps/s ratio | CPU steps/s ratio |\n"
        "|---|---|---|---|---|---|\n| DQN | MinAtar/Asterix-v1 | 11.2 [10.6, 12.5] | 13.8 [11.8, 16.9] | 1.17× | 1.12× |\n")
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "README.md").write_text("# MNIST\n\nDate: 2026-01-03 · x\n")
    text = "\n".join(summary_lines(tmp_path))
    assert ("| classic control | DQN | CartPole-v1 | 10 | 9/10 vs 7/10 | 500.0 [436.8, 500.0] | 462.6 [302.3, 500.0] "
            "| inside | 1.99× | — | [matrix](matrix/README.md) |") in text
    assert "| MinAtar | DQN | MinAtar/Asterix-v1 | 3 | — | 11.2 [10.6, 12.5] | 13.8 [11.8, 16.9] | **below** (−0.6) | 1.17× | 1.12× |" in text
    assert "- mnist: [MNIST](mnist/README.md) (2026-01-03)" in text and "- matrix: [Classic control](matrix/README.md) (2026-01-02)" in text
