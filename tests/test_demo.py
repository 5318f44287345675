"""The demo: its task and checker, its intervals, and `kto demo --tiny` end to end."""
import json
import math

import pytest

from kto.cli import main
from kto.demo.stats import paired_difference, wilson
from kto.demo.tasks import TASKS, Problem, check, final_number, is_correct, make_split


@pytest.mark.parametrize("task", sorted(TASKS))
def test_split_is_disjoint_by_operands_and_seeded(task):
    train, held = make_split(0, 300, 200, task)
    assert len(train) == 300 and len(held) == 200
    assert not {p.key for p in train} & {p.key for p in held}
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    # 7 + 8 and 8 + 7 are one key: a held-out sum is not trained on with its operands swapped
    # and, for compare, "larger" and "smaller" of one pair are one key too
    assert all(p.key[1] <= p.key[2] for p in train + held if p.key[0] in ("+", "*", "cmp"))
    again, held_again = make_split(0, 300, 200, task)
    assert [p.prompt for p in held_again] == [p.prompt for p in held]
    assert [p.prompt for p in make_split(1, 300, 200, task)[1]] != [p.prompt for p in held]
    with pytest.raises(ValueError):
        make_split(0, 100_000, 200, task)
    with pytest.raises(ValueError, match="unknown task"):
        make_split(0, 10, 10, "poetry")


def test_arithmetic_answers_are_right():
    train, held = make_split(3, 100, 100, "arithmetic")
    for p in train + held:
        op, a, b = p.key
        numbers = [int(x) for x in p.prompt.replace("?", " ").split() if x.isdigit()]
        x, y = numbers
        assert p.answer == {"+": x + y, "-": x - y, "*": x * y}[op]
        assert sorted((x, y)) == sorted((a, b))


def test_compare_answers_are_right():
    train, held = make_split(3, 100, 100, "compare")
    for p in train + held:
        x, y = [int(w) for w in p.prompt.replace("?", " ").replace(",", " ").split() if w.isdigit()]
        assert x != y and p.answer == (max(x, y) if "larger" in p.prompt else min(x, y))
        assert p.wrong == ((x + y - p.answer),)


def test_compare_checker_needs_the_answer_and_not_the_other_number():
    p = Problem("Which is larger, 71 or 39?", 71, ("cmp", 39, 71), (39,))
    assert check("71", p) and check("The answer is 71.", p) and check("71.", p)
    assert not check("39", p) and not check("71 or 39", p) and not check("39 is larger than 71.", p)
    assert not check("7 1", p) and not check("", p) and not check("710", p)
    assert not check("71-39", p) and not check("-71", p) and check("71.0", p)
    assert check("7 + 8 = 15", Problem("What is 7 + 8?", 15, ("+", 7, 8)))  # arithmetic: the last number


def test_checker_reads_the_last_number():
    assert final_number("7 + 8 = 15") == 15
    assert final_number("The answer is 1,200.") == 1200
    assert final_number("It is -3") == -3 and final_number("(-3)") == -3
    assert final_number("20-5") == 5  # a hyphen between numbers is not a minus sign
    assert final_number("no digits here") is None
    assert is_correct("7 times 8 is 56.", 56)
    assert not is_correct("56 is not right, it is 57", 56)
    assert not is_correct("5.6", 56)
    assert not is_correct("", 1)


def test_wilson_interval_by_hand():
    # k = 5, n = 20, z = 1.644854 (90%): p = 0.25, centre = (p + z²/2n)/(1 + z²/n) = 0.279789,
    # half = z·sqrt(p(1−p)/n + z²/4n²)/(1 + z²/n) = 0.152412
    lo, hi = wilson(5, 20)
    assert lo == pytest.approx(0.279789 - 0.152412, abs=1e-5)
    assert hi == pytest.approx(0.279789 + 0.152412, abs=1e-5)
    lo0, hi0 = wilson(0, 20)
    assert lo0 == 0.0 and 0 < hi0 < 0.2  # finite and informative at 0 successes


def test_paired_difference_by_hand():
    # d = after − before = [0, 1, 0, −1]: mean 0, sample variance 2/3, half-width z·sqrt(2/3/4)
    diff, lo, hi = paired_difference([True, False, False, True], [True, True, False, False])
    assert diff == 0.0
    assert hi == pytest.approx(1.644854 * math.sqrt(2 / 3 / 4), abs=1e-5) and lo == pytest.approx(-hi)
    diff, lo, hi = paired_difference([False] * 10, [True] * 5 + [False] * 5)
    assert diff == 0.5 and lo > 0  # an interval that excludes zero


def test_demo_tiny_writes_a_report_with_finite_numbers(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--tiny", "--output", str(out), "--no-progress"]) == 0
    for name in ("report.md", "accuracy.png", "loss.png", "z0.png", "rewards.png", "demo.json", "feedback.jsonl",
                 "generations.jsonl", "demo_config.yaml"):
        assert (out / name).stat().st_size > 0, name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "demo.json").read_text())
    for when in ("before", "after"):
        acc, (lo, hi) = summary[when]["accuracy"], summary[when]["interval"]
        assert all(math.isfinite(x) for x in (acc, lo, hi)) and 0 <= lo <= acc <= hi <= 1
    d = summary["difference"]
    assert math.isfinite(d["value"]) and d["interval"][0] <= d["value"] <= d["interval"][1]
    assert d["value"] == pytest.approx(summary["after"]["accuracy"] - summary["before"]["accuracy"])
    report = (out / "report.md").read_text()
    assert "before" in report and "after KTO" in report and "![loss](loss.png)" in report
    # every plotted training metric is finite, and the KTO run's first loss is the formula's 0.5
    rows = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["loss"] == 0.5
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["z0"]) for r in rows)
    # the feedback is the model's own replies to training questions only, labelled by the checker
    held = {json.loads(x)["prompt"] for x in (out / "generations.jsonl").read_text().splitlines()}
    feedback = [json.loads(x) for x in (out / "feedback.jsonl").read_text().splitlines()]
    assert feedback and not held & {r["prompt"][0]["content"] for r in feedback}
    # the training run's config names the final folders: `kto train --config train/config.yaml` reruns it
    import yaml

    saved = yaml.safe_load((out / "train" / "config.yaml").read_text())
    assert saved["data"] == str(out / "feedback.jsonl") and saved["output"] == str(out / "train")
    problems = {p.prompt: p for p in make_split(0, 48, 32, "compare")[0]}  # TINY's sizes, default task
    assert all(check(r["completion"][0]["content"], problems[r["prompt"][0]["content"]]) or not r["label"]
               for r in feedback)


def test_demo_refuses_a_non_empty_output(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["demo", "--tiny", "--output", str(out), "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
