"""The reference (SPEC.md §1, §7): log-probs come from the frozen starting policy (or
--ref-model, or with LoRA the base with the adapter disabled), never from the policy being
trained; under bf16 and with dropout the policy still equals the reference at step 1."""
import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import write_feedback
from kto.cli import main
from kto.config import TrainConfig
from kto.data.batching import collate
from kto.data.records import Example
from kto.data.tokenize import Encoder
from kto.logprobs import model_logps
from kto.models import load_model, tiny_model, tiny_tokenizer
from kto.steps import LossState, Z0, micro_step
from kto.losses import LOSSES
from kto.train import build_policy

FAST = ["--max-length", "64", "--max-prompt-length", "32", "--eval-fraction", "0", "--no-progress"]


def _batch():
    tok = tiny_tokenizer()
    exs = [Example(f"Q{i}: name a colour.", f" colour {i}" * (1 + i % 2), i % 2 == 0) for i in range(4)]
    return collate(Encoder(tok)(exs, 64, 32), tok.pad_token_id, 64)


def _logps(model, b):
    with torch.no_grad():
        return model_logps(model, b.input_ids, b.attention_mask, b.completion_mask)[0]


def _train_steps(policy, ref, cfg, batch, steps=3, lr=1e-2):
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr)
    state = LossState(LOSSES["kto"], Z0("batch", 0.9))
    for _ in range(steps):
        loss, _, _ = micro_step(policy, ref, batch, cfg, state, lambda t: t)
        loss.backward()
        opt.step()
        opt.zero_grad()


def test_frozen_copy_is_not_trained():
    cfg = TrainConfig(model="tiny", batch_size=4)
    policy, ref, _ = build_policy(cfg)
    assert ref.model is not policy and not any(p.requires_grad for p in ref.model.parameters())
    b = _batch()
    start = _logps(policy, b)
    _train_steps(policy, ref, cfg, b)
    assert not torch.allclose(_logps(policy, b), start)  # the policy moved
    assert torch.equal(ref.logps(b.input_ids, b.attention_mask, b.completion_mask), start)  # the reference did not


def test_lora_reference_is_the_base_with_the_adapter_disabled():
    cfg = TrainConfig(model="tiny", batch_size=4, lora_r=4)
    policy, ref, _ = build_policy(cfg)
    assert ref.model is None and ref.policy is policy  # no second copy of the weights
    b = _batch()
    base = _logps(load_model("tiny", seed=cfg.seed)[0], b)
    _train_steps(policy, ref, cfg, b, lr=5e-2)
    assert not torch.allclose(_logps(policy, b), base, atol=1e-4)  # the adapter learned
    torch.testing.assert_close(ref.logps(b.input_ids, b.attention_mask, b.completion_mask), base)


@pytest.mark.parametrize("lora_r", [0, 4])
def test_ref_model_path_is_the_reference_with_or_without_lora(tmp_path, lora_r):
    other = tiny_model(len(tiny_tokenizer()), seed=1)
    other.save_pretrained(tmp_path / "ref")
    tiny_tokenizer().save_pretrained(tmp_path / "ref")
    _, ref, _ = build_policy(TrainConfig(model="tiny", lora_r=lora_r, ref_model=str(tmp_path / "ref")))
    assert ref.model is not None
    b = _batch()
    torch.testing.assert_close(ref.logps(b.input_ids, b.attention_mask, b.completion_mask), _logps(other, b))


def test_ref_model_makes_step_one_rewards_non_zero(tmp_path):
    tiny_model(len(tiny_tokenizer()), seed=1).save_pretrained(tmp_path / "ref")
    tiny_tokenizer().save_pretrained(tmp_path / "ref")
    data = write_feedback(tmp_path / "fb.jsonl", n=16)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--output", str(out), "--max-steps", "1", "--batch-size", "8",
                 "--ref-model", str(tmp_path / "ref"), *FAST]) == 0
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert row["reward_desirable"] != 0.0 and row["loss"] != 0.5


def test_bf16_reference_matches_the_policy_at_step_one(tmp_path):
    """accelerate autocasts only the prepared policy; the reference runs under the same
    autocast, so at step 1 r is exactly 0 in bf16 too (bf16 autocast works on CPU)."""
    data = write_feedback(tmp_path / "fb.jsonl", n=16)
    out = tmp_path / "run"
    # a process of its own: accelerate's state (the precision) is fixed once per process
    r = subprocess.run([sys.executable, "-m", "kto.cli", "train", "--data", str(data), "--output", str(out),
                        "--max-steps", "1", "--batch-size", "8", "--precision", "bf16", *FAST],
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert row["loss"] == 0.5 and row["reward_desirable"] == 0.0 and row["reward_undesirable"] == 0.0


def test_policy_trains_without_dropout(tmp_path):
    """A model with dropout: the reference runs in eval mode, so a policy with dropout on
    would differ from it at step 1. The loop switches dropout off: the first loss is 0.5."""
    tok = tiny_tokenizer()
    model = tiny_model(len(tok), seed=0)
    model.config.attention_dropout = 0.5
    model.save_pretrained(tmp_path / "drop")
    tok.save_pretrained(tmp_path / "drop")
    policy, _, _ = build_policy(TrainConfig(model=str(tmp_path / "drop")))
    policy.train()
    b = _batch()
    torch.testing.assert_close(_logps(policy, b), _logps(copy.deepcopy(policy).eval(), b))
    data = write_feedback(tmp_path / "fb.jsonl", n=16)
    out = tmp_path / "run"
    assert main(["train", "--model", str(tmp_path / "drop"), "--data", str(data), "--output", str(out),
                 "--max-steps", "1", "--batch-size", "8", *FAST]) == 0
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["loss"] == 0.5
