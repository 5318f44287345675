"""End to end through the real CLI on the tiny model."""
import json

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from conftest import shared_file, write_feedback
from kto.cli import main
from kto.config import TrainConfig
from kto.data.schema import load_examples
from kto.models import load_model
from kto.reference import Reference
from kto.train import evaluate, prepare_data

FAST = ["--max-length", "96", "--max-prompt-length", "48", "--no-progress"]


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_cli_train_changes_parameters_and_saved_model_reloads(tmp_path):
    data = write_feedback(tmp_path / "fb.jsonl", n=40)
    out = tmp_path / "run"
    rc = main(["train", "--model", "tiny", "--data", str(data), "--output", str(out), "--max-steps", "6",
               "--batch-size", "4", "--lr", "1e-2", "--eval-fraction", "0.25", *FAST])
    assert rc == 0
    assert {"model", "config.yaml", "metrics.jsonl", "eval.json", "report.md", "loss.png"} <= {p.name for p in out.iterdir()}
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 7))
    # step 1: policy = reference, λ = 1 -> loss exactly 0.5, rewards and z0 exactly 0
    first = rows[0]
    assert first["loss"] == 0.5 and first["z0"] == 0.0 and first["z0_raw"] == 0.0
    assert first["reward_desirable"] in (0.0, None) and first["reward_undesirable"] in (0.0, None)
    for key in ("loss", "z0", "z0_raw", "reward_margin", "logps_desirable", "grad_norm", "lr", "tokens_per_sec"):
        assert key in first
    assert any(r["loss"] != 0.5 for r in rows[1:])

    cfg = TrainConfig(**yaml.safe_load((out / "config.yaml").read_text()))
    assert cfg.max_steps == 6 and cfg.lr == 1e-2

    start, _ = load_model("tiny", seed=cfg.seed)
    reloaded = AutoModelForCausalLM.from_pretrained(out / "model")
    changed = [n for n, p in reloaded.named_parameters() if not torch.equal(p, start.state_dict()[n])]
    assert len(changed) > 0

    # the reloaded model gives the logits the trained model had: recompute the held-out
    # evaluation with it and compare with eval.json's "end", computed in memory by the run
    examples, _ = load_examples(str(data))
    tok = load_model("tiny")[1]
    held = prepare_data(cfg, tok, examples).eval
    again = evaluate(reloaded, Reference(model=start), held, cfg, tok.pad_token_id, "cpu", lambda t: t, (1.0, 1.0))
    end = json.loads((out / "eval.json").read_text())["end"]
    assert again["loss"] == pytest.approx(end["loss"], abs=1e-6)
    assert again["logps_desirable"] == pytest.approx(end["logps_desirable"], abs=1e-4)
    assert again["reward_accuracy"] == end["reward_accuracy"]


def test_config_file_reproduces_the_run(tmp_path):
    data = write_feedback(tmp_path / "fb.jsonl", n=24)
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--data", str(data), "--output", str(a), "--max-steps", "3", "--batch-size", "4",
                 "--lr", "1e-2", "--seed", "7", *FAST]) == 0
    assert main(["train", "--config", str(a / "config.yaml"), "--output", str(b)]) == 0
    la = [r["loss"] for r in read_jsonl(a / "metrics.jsonl")]
    lb = [r["loss"] for r in read_jsonl(b / "metrics.jsonl")]
    assert la == pytest.approx(lb, abs=1e-6)


def test_refuses_nonempty_output_and_keeps_it(tmp_path, capsys):
    data = write_feedback(tmp_path / "fb.jsonl", n=16)
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["train", "--data", str(data), "--output", str(out), "--max-steps", "1", *FAST]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and str(out) in err and len(err.strip().splitlines()) == 1
    assert (out / "keep.txt").read_text() == "mine"


def test_batch_size_one_is_refused_clearly(tmp_path, capsys):
    data = write_feedback(tmp_path / "fb.jsonl", n=16)
    assert main(["train", "--data", str(data), "--output", str(tmp_path / "r"), "--batch-size", "1", *FAST]) == 2
    assert "batch-size 1" in capsys.readouterr().err


@pytest.mark.parametrize("rel", ["hh-rlhf/harmless-base-test.jsonl.gz", "oasst/en_100_tree.jsonl"])
def test_real_feedback_first_loss_is_one_half(tmp_path, rel):
    data = shared_file(rel)
    out = tmp_path / "run"
    assert main(["train", "--model", "tiny", "--data", str(data), "--output", str(out), "--max-steps", "2",
                 "--batch-size", "8", "--eval-fraction", "0.02", "--max-length", "128", "--max-prompt-length", "64",
                 "--no-progress"]) == 0
    first = read_jsonl(out / "metrics.jsonl")[0]
    assert first["loss"] == 0.5 and first["z0"] == 0.0
    assert first["reward_margin"] in (0.0, None)
