"""Gradient accumulation: 8 examples × 1 micro-batch equals 4 × 2 (SPEC.md §7)."""
import copy
import json

import pytest
import torch

from conftest import write_feedback
from kto.cli import main
from kto.config import TrainConfig
from kto.data.batching import collate
from kto.data.schema import load_examples
from kto.data.tokenize import Encoder
from kto.models import load_model
from kto.reference import Reference
from kto.train import Z0, kto_micro_step


def _grads(policy, ref, examples, chunks, cfg, pad):
    policy.zero_grad()
    size = len(examples) // chunks
    for k in range(chunks):
        batch = collate(examples[k * size:(k + 1) * size], pad, cfg.max_length)
        loss, _, _ = kto_micro_step(policy, ref, batch, cfg, Z0(cfg.z0, 0.9), lambda t: t, (1.5, 1.0))
        (loss / chunks).backward()
    return {n: p.grad.clone() for n, p in policy.named_parameters()}


def test_8x1_equals_4x2_on_a_trained_policy():
    # policy ≠ reference, so rewards are non-zero; z0 = 0 keeps per-example losses
    # independent of how examples are grouped, so only the scaling can differ.
    policy, tok = load_model("tiny", seed=0)
    ref = Reference(model=copy.deepcopy(policy))
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    from kto.data.records import Example
    exs = [Example(f"q{i}", f" answer {i}" * (1 + i % 3), i % 3 != 0) for i in range(8)]
    tokd = Encoder(tok)(exs, 64, 32)
    cfg = TrainConfig(max_length=64, max_prompt_length=32, z0="zero")
    g1 = _grads(policy, ref, tokd, 1, cfg, tok.pad_token_id)
    g2 = _grads(policy, ref, tokd, 2, cfg, tok.pad_token_id)
    assert max(g.abs().max() for g in g1.values()) > 0
    for n in g1:
        torch.testing.assert_close(g1[n], g2[n], atol=1e-6, rtol=1e-5)


def test_loop_logs_the_same_gradient_norm_for_8x1_and_4x2(tmp_path):
    # At step 1 policy = reference so z0 = 0 either way; the loop's scaling must make the
    # accumulated gradient (logged before clipping) equal to the one big batch's.
    data = write_feedback(tmp_path / "fb.jsonl", n=32)
    norms = []
    for bs, acc in ((8, 1), (4, 2)):
        out = tmp_path / f"r{bs}"
        assert main(["train", "--data", str(data), "--output", str(out), "--max-steps", "1", "--batch-size", str(bs),
                     "--grad-accum", str(acc), "--eval-fraction", "0", "--max-length", "64",
                     "--max-prompt-length", "32", "--no-progress"]) == 0
        row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
        norms.append(row["grad_norm"])
    assert norms[0] > 0
    assert norms[0] == pytest.approx(norms[1], rel=1e-5)
