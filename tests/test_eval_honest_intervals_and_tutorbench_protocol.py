"""Honest intervals (exact for shares, never zero-width, Holm as in the textbook) and the tutorbench protocol
(seeded separate draws off rm/rl problems, the stop string at position 0, exact number comparison), and an
untrusted judge labelled so in the tutorbench and sweep tables too (issue #29)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.stats import clopper_pearson, format_interval, holm, mean_interval, rate_interval, win_rate
from policy.evaluation.tutorbench import TutorBenchOptions, cut_at_stops, exact_number, extract_answers, load_task


def test_zero_of_ten_has_the_exact_upper_bound_not_a_zero_width_interval():
    out = rate_interval([False] * 10)
    assert out["mean"] == 0 and out["low"] == 0 and out["high"] == pytest.approx(0.3085, abs=1e-4)
    assert clopper_pearson(10, 10)[0] == pytest.approx(1 - 0.3085, abs=1e-4)
    lost_all = win_rate([0] * 12, [1] * 12)
    assert lost_all["mean"] == 0 and lost_all["high"] == pytest.approx(0.2646, abs=1e-4)


def test_win_rate_counts_ties_half_and_brackets_them_in_its_interval():
    out = win_rate([2, 1, 1, 0, 2, 2], [1, 1, 2, 0, 0, 0])
    assert out["mean"] == pytest.approx((3 + 0.5 * 2) / 6)
    assert (out["wins"], out["ties"], out["losses"]) == (3, 2, 1)
    assert out["low"] == pytest.approx(clopper_pearson(3, 6)[0]) and out["high"] == pytest.approx(clopper_pearson(5, 6)[1])


def test_a_sample_without_spread_gets_hoeffdings_interval_or_says_it_has_none():
    same = mean_interval(np.zeros(40), value_range=4.0)
    assert same["low"] < 0 < same["high"] and same["method"] == "hoeffding" and same["p_value"] == 1.0
    assert same["high"] == pytest.approx(4.0 * np.sqrt(np.log(2 / 0.05) / 80))
    bare = mean_interval(np.ones(5))
    assert bare["degenerate"] and "no interval" in format_interval(bare) and "[" not in format_interval(bare)


def test_holm_matches_the_step_down_procedure():
    # p sorted: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06 after monotone max), 0.5 (x1)
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert np.isnan(holm([0.01, float("nan")])[1]) and holm([0.01, float("nan")])[0] == pytest.approx(0.01)


def test_bootstrap_p_value_is_small_for_a_clear_shift_and_large_for_none():
    rng = np.random.default_rng(0)
    assert mean_interval(rng.normal(0.5, 1, 80))["p_value"] < 0.01
    assert mean_interval(rng.normal(0.0, 1, 80))["p_value"] > 0.05


def test_a_stop_string_at_position_zero_empties_the_turn():
    assert cut_at_stops("Student: I got 5") == ""
    assert cut_at_stops("\n\nTeacher: hi") == ""
    assert cut_at_stops("Well done. Student: thanks") == "Well done."


def test_numbers_are_compared_exactly_with_strict_and_flexible_extraction():
    assert extract_answers("13*2 = 26. Final answer: $1,026.") == {"strict": exact_number("1026"),
                                                                 "flexible": exact_number("1026")}
    assert extract_answers("She makes 26 dollars") == {"strict": None, "flexible": exact_number("26")}
    assert extract_answers("Final answer: 7\nQuestion: next 99") == {"strict": exact_number("7"),
                                                                    "flexible": exact_number("7")}
    assert exact_number("26.00") == exact_number("26") and exact_number("25.9999") != exact_number("26")


def test_dialogues_are_drawn_per_setting_seeded_and_off_the_rm_rl_problems(tmp_path):
    from core.sources import load_mathtutorbench
    from policy.evaluation.tutorbench import DATA

    every = load_mathtutorbench(DATA["main"])
    avoid = tmp_path / "rm.jsonl"  # a prompt file holding the first 30 dialogues' problems
    avoid.write_text("".join(json.dumps({
        "id": f"x{i}", "source": "gsm8k", "problem_id": item.problem_id, "split": "rm", "kind": "single_turn",
        "problem": item.problem}) + "\n" for i, item in enumerate(every[:30])))
    options = TutorBenchOptions(items=12, avoid_problems_from=[str(avoid)])
    main = load_task("scaffolding_generation", options)
    pedagogy = load_task("pedagogy_following", options)
    avoided = {item.problem_id for item in every[:30]}
    assert len(main.ids) == 12 and not avoided & set(main.problems) and not avoided & set(pedagogy.problems)
    assert main.ids != pedagogy.ids  # same file, separate draws
    assert main.ids != [item.id for item in every if item.problem_id not in avoided][:12]  # not the first N
    assert load_task("scaffolding_generation", options).ids == main.ids  # seeded
    assert load_task("scaffolding_generation", options.model_copy(update={"seed": 1})).ids != main.ids
    assert main.file_items == len(every) and main.available < len(every)


def test_an_untrusted_judge_is_labelled_untrusted_in_the_tutorbench_and_sweep_tables(tmp_path):
    from policy.evaluation.report import tutorbench_markdown
    from policy.experiments.sweep import sweep_holm, write_sweep_markdown

    interval = {"mean": 0.4, "low": 0.2, "high": 0.6, "n": 12, "p_value": 0.3}
    scores = {"rm:training": {"teacher_mean": 1.0, "base": {"win_rate": dict(interval)},
                              "tuned": {"win_rate": dict(interval), "margin": dict(interval)}},
              "judge:weak": {"teacher_mean": 1.0, "base": {"win_rate": dict(interval)},
                             "tuned": {"win_rate": dict(interval), "margin": dict(interval)}}}
    bench = {"settings": {"scaffolding_generation": {"items": 12, "available": 1100, "file_items": 1150,
                                                     "scores": scores}}}
    trust = {"rm:training": "the reward the policy was trained on", "judge:weak": "untrusted: mean QWK 0.02 < 0.2"}
    lines = tutorbench_markdown(bench, trust)
    assert [line for line in lines if "| judge:weak |" in line][0].count("untrusted") == 1
    assert any("| rm:training | the reward the policy was trained on |" in line for line in lines)
    assert any("Not comparable with the MathTutorBench leaderboard" in line for line in lines)

    diff = {"mean": 0.1, "low": -0.1, "high": 0.3, "n": 16, "p_value": 0.4, "excludes_zero": False}
    run = {"weights": {"H": 1.0}, "difference": {"H": dict(diff)}, "tuned": {"length_tokens": 20.0},
           "independent": {"judge:weak": {"mean": {"difference": dict(diff), "normalised_gain": dict(diff), "n": 16}}}}
    report = {"dimensions": ["H"], "max_steps": 1, "prompts": 16, "runs": [run],
              "base": {"mean": {"H": 1.0}, "length_tokens": 20.0},
              "scorers": {"judge:weak": {"kind": "judge", "standing": trust["judge:weak"]}}}
    sweep_holm(report, 0.05)
    write_sweep_markdown(report, tmp_path / "sweep.md")
    rows = [line for line in (tmp_path / "sweep.md").read_text().splitlines() if "| judge:weak |" in line]
    assert rows and all("untrusted" in line and "| 16 |" in line for line in rows)
