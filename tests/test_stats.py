"""Aggregates: IQM and bootstrap interval against independent computations; solve extraction."""

import numpy as np
import pytest

from rlsuite.core.stats import aggregate, bootstrap_ci, iqm, solve_stats


def test_iqm_matches_a_hand_computation():
    x = [1, 2, 3, 4, 5, 6, 7, 100]  # the middle 50%: 3, 4, 5, 6
    assert iqm(x) == pytest.approx(4.5)
    assert iqm([10, 20, 30, 40]) == pytest.approx(25.0)


def test_bootstrap_interval_matches_an_independent_resampling():
    rng = np.random.default_rng(1)
    x = rng.normal(100, 15, size=12)
    low, high = bootstrap_ci(x)
    # independent percentile bootstrap of the IQM, written out with numpy only
    idx = np.random.default_rng(2).integers(0, len(x), size=(20_000, len(x)))
    samples = np.sort(x[idx], axis=1)[:, 3:9].mean(axis=1)  # n=12: drop 3 each side
    ref_low, ref_high = np.percentile(samples, [2.5, 97.5])
    assert low == pytest.approx(ref_low, abs=1.5) and high == pytest.approx(ref_high, abs=1.5)
    assert low < iqm(x) < high
    assert bootstrap_ci([500.0] * 5) == (500.0, 500.0)


def _rows(pairs):
    return [{"step": s, "wall_s": s / 100, "eval_mean": m} for s, m in pairs]


def test_steps_to_solve_and_stays_solved():
    solved = solve_stats(_rows([(1000, 20.0), (2000, 480.0), (3000, 500.0)]), 500.0, 475.0)
    assert solved == {"threshold": 475.0, "steps_to_solve": 2000, "wall_to_solve": 20.0, "solved": True, "stays_solved": True}
    collapsed = solve_stats(_rows([(1000, 480.0), (2000, 30.0)]), 25.0, 475.0)
    assert collapsed["solved"] and not collapsed["stays_solved"] and collapsed["steps_to_solve"] == 1000
    never = solve_stats(_rows([(1000, 10.0)]), 10.0, 475.0)
    assert not never["solved"] and never["steps_to_solve"] is None
    negative = solve_stats(_rows([(1000, -150.0), (2000, -99.0)]), -90.0, -100.0)  # Acrobot-style thresholds
    assert negative["steps_to_solve"] == 2000 and negative["stays_solved"]


def test_aggregate_counts_unsolved_at_the_budget():
    def summary(seed, final, solved, steps_to_solve):
        return {"seed": seed, "final_eval": {"mean": final}, "steps": 10_000, "wall_s": 50.0, "steps_per_s": 200.0,
                "solved": solved, "stays_solved": solved and final >= 475, "steps_to_solve": steps_to_solve,
                "wall_to_solve": steps_to_solve / 200 if steps_to_solve else None}
    agg = aggregate([summary(0, 500, True, 2000), summary(1, 20, True, 4000), summary(2, 30, False, None)])
    assert agg["solved"] == 2 and agg["stays_solved"] == 1 and agg["collapsed"] == 1 and agg["unsolved_marked"] == 1
    assert agg["median_steps_to_solve"] == 4000  # [2000, 4000, 10000 (unsolved counts as the budget)]
    assert agg["median_wall_to_solve"] == 20.0  # [10, 20, 50]


def test_target_verdict_says_by_how_much():
    from rlsuite.experiments.report import verdict

    assert verdict(0.34, 0.25, higher_is_better=False) == "**missed** by 1.36×"  # 0.34 / 0.25
    assert verdict(1.30, 3.0, higher_is_better=True) == "**missed** by 2.31×"  # 3 / 1.30
    assert verdict(0.20, 0.25, higher_is_better=False) == verdict(3.5, 3.0, higher_is_better=True) == "**met**"


def test_iqm_verdict_places_one_iqm_against_the_others_interval():
    # PROTOCOL's learning question: is one side's final IQM inside the other's 95% interval, above or below,
    # and by how much. Equal finals make the interval a point, so every number here is computed by hand.
    from rlsuite.experiments.report import iqm_verdict

    def side(*finals):
        return [{"final_eval": {"mean": f}, "steps": 100, "wall_s": 1.0, "steps_per_s": 100.0, "solved": False,
                 "stays_solved": False, "steps_to_solve": None, "wall_to_solve": None} for f in finals]

    sb3 = side(3000, 3000, 3000)
    assert iqm_verdict(side(3000, 3000, 3000), sb3, "rlsuite", "SB3") == \
        "rlsuite's final IQM 3,000.0 is **inside** SB3's 95% interval [3,000.0, 3,000.0] (SB3's IQM 3,000.0)"
    assert iqm_verdict(side(2000, 2500, 2000, 2500), sb3, "rlsuite", "SB3", "target: inside or above") == \
        ("rlsuite's final IQM 2,250.0 is **below** SB3's 95% interval [3,000.0, 3,000.0] by 750.0 "
         "(SB3's IQM 3,000.0; target: inside or above)")
    assert "is **above** SB3's 95% interval [3,000.0, 3,000.0] by 1,500.0" in iqm_verdict(side(4500), sb3, "a", "SB3")
    # a real interval: "above" is measured from its top, "below" from its bottom (never from the other end)
    wide = side(1000, 2000, 3000, 4000, 5000)
    lo, hi = aggregate(wide)["final_ci"]
    assert lo < hi
    assert f"**above** B's 95% interval [{lo:,.1f}, {hi:,.1f}] by {9000 - hi:,.1f}" in iqm_verdict(side(9000), wide, "a", "B")
    assert f"**below** B's 95% interval [{lo:,.1f}, {hi:,.1f}] by {lo - 100:,.1f}" in iqm_verdict(side(100), wide, "a", "B")


def test_a_kept_block_gets_its_verdicts_from_its_own_table():
    # A cell published before verdict lines were written (its runs gone, so only its text is left) read as if it
    # met its target: SAC Hopper-v5's miss was only in the table. The verdicts come from the table's numbers.
    from rlsuite.experiments.report import with_table_verdicts

    block = ["### SAC on Hopper-v5 (budget)", "", "*kept*", "", "- ratio 1.50×", "- bf16 ratio 2.24×", "",
             "- published ...", "",
             "| implementation | solved | stays solved | IQM final [95% CI] | median steps/s |",
             "|---|---|---|---|---|",
             "| rlsuite | 0/3 | 0/3 | 2116.2 [1202.6, 3418.8] | 83 |",
             "| sb3 | 0/3 | 0/3 | 3069.6 [2722.6, 3248.8] | 55 |",
             "| rlsuite-bf16 | 0/3 | 0/3 | 3300.0 [1026.1, 3425.6] | 124 |", ""]
    out = with_table_verdicts(block, "sb3", "SB3", "target: inside or above")
    assert out[4:8] == [
        "- ratio 1.50×", "- bf16 ratio 2.24×",
        "- rlsuite's final IQM 2,116.2 is **below** SB3's 95% interval [2,722.6, 3,248.8] by 606.4 "
        "(SB3's IQM 3,069.6; target: inside or above)",  # 2722.6 - 2116.2
        "- rlsuite-bf16's final IQM 3,300.0 is **above** SB3's 95% interval [2,722.6, 3,248.8] by 51.2 "
        "(SB3's IQM 3,069.6; target: inside or above)"]  # 3300.0 - 3248.8
    assert out[:6] + out[8:] == block  # nothing else moves
    assert with_table_verdicts(out, "sb3", "SB3") == out  # written once, however often it is kept
    assert with_table_verdicts(block[:9], "sb3", "SB3") == block[:9]  # no table, nothing to read


def test_table_verdicts_where_a_block_has_no_speed_bullets_and_numbers_carry_commas():
    # Found in review: "1,150.3"-style numbers gave no verdict, and a block whose first bullet is its reference
    # points got the verdicts after them (a live cell states them before).
    from rlsuite.experiments.report import with_table_verdicts

    table = ["| implementation | IQM final [95% CI] | mean final | median steps/s |", "|---|---|---|---|",
             "| rlsuite | -1,150.3 [-1,200.0, -1,100.0] | -1150.0 | 90 |",
             "| sb3 | -150.5 [-160.0, -140.0] | -150.0 | 80 |", ""]
    verdict = ("- rlsuite's final IQM -1,150.3 is **below** SB3's 95% interval [-160.0, -140.0] by 990.3 "
               "(SB3's IQM -150.5)")  # -160.0 - (-1,150.3)
    assert with_table_verdicts(["### X", "", "- published: 1", "", *table], "sb3", "SB3") == \
        ["### X", "", verdict, "", "- published: 1", "", *table]
    assert with_table_verdicts(["### X", "", *table], "sb3", "SB3") == ["### X", "", verdict, "", *table]
    assert with_table_verdicts(["### X", "", "| a | b |", "|---|---|", "| 1.2.3 | 4 |"], "sb3", "SB3") == \
        ["### X", "", "| a | b |", "|---|---|", "| 1.2.3 | 4 |"]  # not an IQM table: left as it is
