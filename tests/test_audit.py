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
