"""Loop options (SPEC.md §3): class weights and the band rule, the learning-rate schedule,
--epochs, single-class micro-batches through the step, and refusals that name the problem."""
import json
import math
import warnings

import pytest
import torch

from kto.config import TrainConfig
from kto.data.batching import collate
from kto.data.records import Example
from kto.data.tokenize import Encoder
from kto.errors import DataError
from kto.losses import LOSSES
from kto.models import load_model
from kto.reference import Reference
from kto.steps import LossState, Z0, micro_step
from kto.train import summarize, train
from kto.weights import auto_weights, band_advice


def _examples(n_d, n_u):
    return ([Example(f"Q{i}: say yes.", f" yes {i}", True, f"row {i}") for i in range(n_d)]
            + [Example(f"R{i}: say no.", f" no {i}!", False, f"row {n_d + i}") for i in range(n_u)])


def _cfg(tmp_path, name="run", **kw):
    base = dict(model="tiny", output=str(tmp_path / name), max_steps=1, batch_size=4, max_length=64,
                max_prompt_length=32, eval_fraction=0.0, progress=False)
    return TrainConfig(**{**base, **kw})


def _rows(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_auto_weights_and_the_band():
    """1:10 imbalance (the paper's example, n_D = 10, n_U = 100): λ_D·10/(λ_U·100) must lie in
    [1, 4/3], so λ_D ∈ [10, 13.33] with λ_U = 1; auto takes the lower edge."""
    assert auto_weights(10, 100) == (10.0, 1.0)
    assert auto_weights(100, 25) == (1.0, 4.0)
    assert band_advice(10.0, 1.0, 10, 100) is None and band_advice(13.0, 1.0, 10, 100) is None
    assert "outside" in band_advice(14.0, 1.0, 10, 100) and "outside" in band_advice(9.0, 1.0, 10, 100)
    assert band_advice(1.0, 1.0, 50, 50) is None  # ratio 1: the band's lower edge


def test_weights_auto_in_the_loop(tmp_path, capsys):
    """keep 25% of 16 desirable: 4 desirable, 16 undesirable -> λ_D = 16/4 = 4, λ_U = 1, no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(_cfg(tmp_path, keep_desirable=0.25, weights="auto"), _examples(16, 16))
    out = capsys.readouterr().out
    assert "(4 desirable, 16 undesirable)" in out and "λ_D=4 λ_U=1" in out


def test_manual_weights_outside_the_band_warn(tmp_path):
    with pytest.warns(UserWarning, match=r"outside the paper's band.*λ_D=4, λ_U=1"):
        train(_cfg(tmp_path), _examples(4, 16))


def test_weighted_first_loss_is_the_weighted_mean(tmp_path):
    """Policy = reference: each loss is λ_y·(1 − σ(0)) = λ_y/2, and the batch loss is their
    plain mean (not divided by the weights). Whole data set in one micro-batch of 6
    (2 desirable, 4 undesirable), λ_D = 3, λ_U = 1: (2·1.5 + 4·0.5)/6 = 5/6."""
    with pytest.warns(UserWarning):  # 3·2/(1·4) = 1.5 is outside the band
        out = train(_cfg(tmp_path, batch_size=6, desirable_weight=3.0), _examples(2, 4))
    assert _rows(out)[0]["loss"] == pytest.approx(5 / 6)


def test_warmup_then_constant_or_cosine(tmp_path):
    """5 steps, 10% warmup = ceil(0.5) = 1 step: lr 0 at step 1, then the peak; constant
    stays there, cosine follows ½(1 + cos(π·(k−2)/4)) at step k ≥ 2."""
    lr = 1e-3
    const = [r["lr"] for r in _rows(train(_cfg(tmp_path, "c", max_steps=5, lr=lr), _examples(8, 8)))]
    assert const[0] == 0.0 and const[1:] == pytest.approx([lr] * 4)
    cos = [r["lr"] for r in _rows(train(_cfg(tmp_path, "k", max_steps=5, lr=lr, scheduler="cosine"), _examples(8, 8)))]
    assert cos[0] == 0.0
    assert cos[1:] == pytest.approx([lr * 0.5 * (1 + math.cos(math.pi * (k - 2) / 4)) for k in range(2, 6)])


def test_epochs_count_steps_and_reshuffle(tmp_path):
    """24 examples, micro-batch 4: 6 steps an epoch; --epochs 2 runs 12, the second epoch in
    a new order."""
    out = train(_cfg(tmp_path, max_steps=0, epochs=2.0, lr=1e-3), _examples(12, 12))
    rows = _rows(out)
    assert [r["epoch"] for r in rows] == [0] * 6 + [1] * 6


@pytest.mark.parametrize("label", [True, False])
def test_single_class_micro_batch_through_the_step(label):
    """A micro-batch with one label only (z0 from its mismatched pairs): finite loss and
    gradient; the absent class's metrics are None, never NaN."""
    policy, tok = load_model("tiny", seed=0)
    ref = Reference(model=load_model("tiny", seed=1)[0])  # policy ≠ reference: non-zero rewards
    exs = [Example(f"Q{i}", f" answer {i}" * (1 + i), label) for i in range(3)]
    batch = collate(Encoder(tok)(exs, 64, 32), tok.pad_token_id, 64)
    loss, stats, _ = micro_step(policy, ref, batch, TrainConfig(), LossState(LOSSES["kto"], Z0("batch", 0.9)),
                                lambda t: t)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in policy.parameters() if p.grad is not None)
    m = summarize(stats)
    present, absent = ("desirable", "undesirable") if label else ("undesirable", "desirable")
    assert m[f"reward_{absent}"] is None and m["reward_margin"] is None and m[f"logps_{absent}"] is None
    assert math.isfinite(m[f"reward_{present}"]) and math.isfinite(m["loss"]) and math.isfinite(m["z0_raw"])


@pytest.mark.filterwarnings("ignore:the training data holds")
def test_ema_with_one_training_example_refuses_self_pairing(tmp_path):
    with pytest.raises(DataError, match="mismatched pair"):
        train(_cfg(tmp_path, z0="ema", batch_size=1), _examples(1, 0))


def test_everything_held_out_is_said_plainly(tmp_path):
    """One prompt, and the held-out split takes whole prompts (at least one)."""
    exs = [Example("Q: say yes.", " yes", True), Example("Q: say yes.", " no", False)]
    with pytest.raises(DataError, match="no training examples left"):
        train(_cfg(tmp_path, eval_fraction=0.5), exs)
