"""`kto data audit`: flip the labels of a few examples in a learnable set, train `tiny`,
and the flipped ones must come out as the most suspicious."""
import json
import random

import pytest

from kto.cli import main
from kto.config import TrainConfig
from kto.data.audit import score_run
from kto.train import train

FLIPPED = {3, 17, 30, 41}  # 0-based rows; the file's lines are these + 1


def learnable(path, n=48, seed=0):
    """Desirable completions use the letters a-e, undesirable ones v-z; rows in FLIPPED
    carry the wrong label."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            good = i % 2 == 0
            completion = " " + "".join(rng.choice("abcde" if good else "vwxyz") for _ in range(12))
            f.write(json.dumps({"prompt": f"Q{i}:", "completion": completion, "label": good != (i in FLIPPED)}) + "\n")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    data = learnable(root / "data.jsonl")
    cfg = TrainConfig(data=str(data), output=str(root / "run"), model="tiny", lr=5e-3, max_steps=12, batch_size=8,
                      eval_fraction=0, warmup_ratio=0, beta=0.1, max_length=64, max_prompt_length=16, progress=False)
    return train(cfg), data


def line_of(where: str) -> int:
    return int(where.rsplit(":", 1)[1])


def test_flipped_labels_rank_at_the_top(run):
    out, data = run
    scores, z0 = score_run(out)
    assert len(scores) == 48 and z0 >= 0
    top = {line_of(s.where) - 1 for s in scores[: len(FLIPPED)]}
    assert top == FLIPPED
    for s in scores[: len(FLIPPED)]:  # on the wrong side of z0, where KTO's gradient has faded
        assert s.suspicion > 0 and s.gradient_share < 0.5
        assert (s.reward < 0) if s.desirable else (s.reward > 0)
    assert all(s.suspicion < 0 for s in scores[len(FLIPPED):])


def test_audit_cli_prints_and_writes_the_ranking(run, tmp_path, capsys):
    out, data = run
    table = tmp_path / "audit.jsonl"
    assert main(["data", "audit", str(out), "--top", "4", "--output", str(table)]) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if str(data) in line]
    assert len(lines) == 4 and {int(line.split(f"{data}:")[1].split()[0]) - 1 for line in lines} == FLIPPED
    rows = [json.loads(line) for line in open(table)]
    assert len(rows) == 48 and rows[0]["suspicion"] >= rows[-1]["suspicion"]


def test_audit_needs_a_run_folder(tmp_path, capsys):
    assert main(["data", "audit", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_audit_refuses_an_existing_output_before_scoring(tmp_path, capsys):
    table = tmp_path / "audit.jsonl"
    table.write_text("keep\n")
    assert main(["data", "audit", str(tmp_path), "--output", str(table)]) == 2  # before "not a run folder"
    assert "output file exists" in capsys.readouterr().err and table.read_text() == "keep\n"


def test_training_split_matches_what_training_used():
    """The audit marks the examples training held out or never saw (one-y-per-x here)."""
    from kto.data.audit import training_split
    from kto.data.records import Example
    from kto.train import one_y_per_x, split_by_prompt

    examples = [Example(f"Q{i // 2}", f" a{i}", i % 2 == 0, f"f:{i + 1}") for i in range(40)]
    cfg = TrainConfig(data="f", output="o", one_y_per_x=True, eval_fraction=0.1, seed=3)
    held, trained = training_split(cfg, examples)
    expected_train, expected_held = split_by_prompt(one_y_per_x(examples, 3), 0.1, 3)
    assert trained == {id(e) for e in expected_train} and len(trained) == 18
    assert len(held) == 4 and not held & trained  # both completions of the 2 held-out prompts
    assert {e.prompt for e in examples if id(e) in held} == {e.prompt for e in expected_held}
