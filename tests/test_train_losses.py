"""Every loss through the real loop: `kto train --loss NAME` runs, and the first logged loss
matches the loss's formula at policy = reference; data rules (paired/unpaired), SFT then
align, z0 'ema' with a micro-batch of one, one-y-per-x, subsampling, CSFT's tokens, PPO."""
import gzip
import json
import math

import pytest
import torch

from conftest import shared_file
from kto.cli import main
from kto.config import TrainConfig
from kto.data.records import Example
from kto.errors import DataError, KTOError
from kto.losses import LOSSES
from kto.train import build_policy, one_y_per_x, subsample, train

@pytest.fixture(scope="module")
def hh_small(tmp_path_factory):
    """The first 40 rows of the HH harmless test file (skips when ../shared/data is absent)."""
    src = shared_file("hh-rlhf/harmless-base-test.jsonl.gz")
    with gzip.open(src, "rt") as f:
        rows = [next(f) for _ in range(40)]
    path = tmp_path_factory.mktemp("hh") / "hh40.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(rows)
    return path


def _first_row(run):
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])


def _sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def _ppo_by_hand(mask, desirable):
    """Policy = reference (ratio 1, KL 0), zero value head: with T_i completion tokens and
    s_i = ±1, A_t = s_i·(γλ)^(T_i−1−t) (γλ = 0.99·0.95 = 0.9405); Â whitened over all the
    micro-batch's completion tokens; loss_i = −mean_t Â + 0.01·½·mean_t A²."""
    adv = [torch.tensor([(1.0 if d else -1.0) * 0.9405 ** (t_i - 1 - t) for t in range(t_i)], dtype=torch.float64)
           for t_i, d in zip(mask.sum(1).tolist(), desirable.tolist())]
    flat = torch.cat(adv)
    mu, sd = flat.mean(), flat.var(unbiased=False).add(1e-8).sqrt()
    return sum(-((a - mu) / sd).mean() + 0.01 * 0.5 * (a ** 2).mean() for a in adv) / len(adv)


def expected_first_loss(name, lp, n, mask, desirable):
    """The first micro-batch's loss at policy = reference, from the formulas of SPEC.md §3–§4
    with the default hyper-parameters. lp (B,) summed completion log-probs of the starting
    model (float64), n (B,) token counts, mask (B, T−1) the scored positions; paired batches
    hold the P chosen rows first, then the P rejected rows. r = 0 for every loss with a
    reference, so those are constants."""
    m = lp / n  # per-token means
    p = len(lp) // 2
    constants = {"kto": 0.5, "apo-zero": 0.5, "dpo": math.log(2), "cdpo": math.log(2),  # 1 − σ(0); −log σ(0)
                 "bco": math.log(2),  # δ = mean of rewards seen = 0: −log σ(0)
                 "ipo": 25.0}  # (0 − 1/(2·0.1))²
    if name in constants:
        return constants[name]
    if name in ("sft", "csft"):  # mean over sequences of the per-token NLL
        return float((-m).mean())
    if name == "slic":  # max(0, 1 − lp_w + lp_l) + 0.1·(−lp_w), summed log-probs
        return float((torch.clamp(1 - lp[:p] + lp[p:], min=0) - 0.1 * lp[:p]).mean())
    if name == "simpo":  # −log σ(2·m_w − 2·m_l − 0.5)
        return float((-torch.log(_sigmoid(2 * (m[:p] - m[p:]) - 0.5))).mean())
    if name == "orpo":  # −m_w − 0.25·log σ(log odds_w − log odds_l), log odds = m − log(1 − e^m)
        lo = m - torch.log(1 - torch.exp(m))
        return float((-m[:p] - 0.25 * torch.log(_sigmoid(lo[:p] - lo[p:]))).mean())
    if name == "ppo":
        return float(_ppo_by_hand(mask, desirable))
    raise KeyError(name)


HH_ARGS = ["--max-steps", "1", "--batch-size", "2", "--max-length", "96", "--max-prompt-length", "48",
           "--eval-fraction", "0.1", "--no-progress"]


def _first_batch_by_hand(name, data_path):
    """Rebuild the run's first micro-batch and score it with the starting model, computing the
    log-probs here from the logits (float64), not with kto.logprobs."""
    from accelerate.utils import set_seed

    from kto.data.schema import load_examples
    from kto.models import load_tokenizer
    from kto.train import micro_batches, prepare_data

    cfg = TrainConfig(loss=name, model="tiny", data=str(data_path), max_steps=1, batch_size=2, max_length=96,
                      max_prompt_length=48, eval_fraction=0.1)
    spec = LOSSES[name]
    set_seed(cfg.seed)  # as the loop does before loading the model (CSFT's new embeddings are drawn)
    tok = load_tokenizer("tiny")
    data = prepare_data(cfg, tok, load_examples(str(data_path))[0], spec)
    batch = next(micro_batches(spec, data.items(spec), cfg, tok.pad_token_id))[1]
    set_seed(cfg.seed)
    policy = build_policy(cfg, spec)[0]
    with torch.no_grad():
        logits = policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.double()
    token_lp = torch.log_softmax(logits[:, :-1], -1).gather(2, batch.input_ids[:, 1:, None])[..., 0]
    mask = batch.completion_mask[:, 1:]
    lp = (token_lp * mask).sum(1)
    return expected_first_loss(name, lp, mask.sum(1).double(), mask, batch.desirable)


def test_every_loss_is_checked():
    for name in LOSSES:
        expected_first_loss(name, torch.tensor([-5.0, -6.0], dtype=torch.float64), torch.tensor([3.0, 4.0]),
                            torch.ones(2, 4, dtype=torch.bool), torch.tensor([True, False]))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_cli_runs_every_loss_on_hh(name, hh_small, tmp_path):
    """`kto train --loss NAME` on real HH rows: its first logged loss equals the formula at
    policy = reference, computed by hand from the first micro-batch."""
    out = tmp_path / name
    rc = main(["train", "--loss", name, "--model", "tiny", "--data", str(hh_small), "--output", str(out), *HH_ARGS])
    assert rc == 0
    row = _first_row(out)
    assert row["loss"] == pytest.approx(_first_batch_by_hand(name, hh_small), rel=1e-5, abs=1e-6), row
    if LOSSES[name].needs_ref:  # policy = reference: every implied reward is exactly 0
        assert row["reward_desirable"] in (0.0, None) and row["reward_undesirable"] in (0.0, None)
    assert {"model", "config.yaml", "metrics.jsonl", "eval.json"} <= {p.name for p in out.iterdir()}
    assert (out / "value_head.pt").exists() == (name == "ppo")


def _pairs(n=12):
    out = []
    for i in range(n):
        p = f"Question {i}: what is {i} plus one?"
        out.append(Example(p, f" It is {i + 1}.", True, f"row {i}", i + 1))
        out.append(Example(p, " I will not say." + "!" * (i % 3), False, f"row {i}", i + 1))
    return out


def _cfg(tmp_path, name="run", **kw):
    base = dict(model="tiny", output=str(tmp_path / name), max_steps=2, batch_size=2, max_length=64,
                max_prompt_length=32, eval_fraction=0.0, progress=False)
    return TrainConfig(**{**base, **kw})


def test_paired_loss_on_unpaired_data_says_so(tmp_path):
    unpaired = [Example(e.prompt, e.completion, e.desirable, e.where, None) for e in _pairs()]
    with pytest.raises(DataError, match="needs paired data"):
        train(_cfg(tmp_path, loss="dpo"), unpaired)


def test_unpaired_loss_takes_paired_data_split(tmp_path):
    out = train(_cfg(tmp_path, loss="apo-zero"), _pairs())
    assert _first_row(out)["loss"] == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["slic", "simpo", "orpo", "sft", "csft"])
def test_losses_without_a_reference_load_none(name):
    assert build_policy(TrainConfig(loss=name, model="tiny"))[1] is None
    assert build_policy(TrainConfig(loss="dpo", model="tiny"))[1] is not None


def test_config_rejects_unknown_losses_and_broken_pairs():
    with pytest.raises(KTOError, match="unknown loss"):
        TrainConfig(loss="nope")
    with pytest.raises(KTOError, match="pairs"):
        TrainConfig(loss="dpo", one_y_per_x=True)
    with pytest.raises(KTOError, match="pairs"):
        TrainConfig(loss="ipo", keep_desirable=0.5)


def test_sft_then_align_uses_the_sft_model_as_reference(tmp_path):
    """Stage 1 SFT on desirable completions; stage 2 starts KTO from its model, whose frozen
    copy is the reference: policy = reference again, so KTO's first loss is exactly 0.5."""
    sft = train(_cfg(tmp_path, "sft", loss="sft", lr=1e-2, warmup_ratio=0.0, max_steps=3), _pairs())
    rows = [json.loads(x) for x in (sft / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["n_undesirable"] == 0 and rows[-1]["loss"] < rows[0]["loss"]
    kto = train(_cfg(tmp_path, "kto", loss="kto", model=str(sft / "model")), _pairs())
    assert _first_row(kto)["loss"] == pytest.approx(0.5)
    fresh = train(_cfg(tmp_path, "fresh", loss="kto"), _pairs())
    # same first micro-batch; the SFT model gives its desirable completion a higher log-prob
    assert _first_row(kto)["logps_desirable"] > _first_row(fresh)["logps_desirable"] + 1.0


def test_ema_z0_with_a_micro_batch_of_one(tmp_path):
    out = train(_cfg(tmp_path, z0="ema", batch_size=1, max_steps=4, lr=1e-2, warmup_ratio=0.0), _pairs())
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(math.isfinite(r["z0_raw"]) for r in rows)
    assert rows[-1]["z0_raw"] != 0.0  # a mismatched pair was scored every step


def test_ema_with_a_micro_batch_of_one_never_pairs_an_example_with_itself():
    """Each single-example micro-batch's KL row holds the previous micro-batch's completion."""
    from kto.data.tokenize import Encoder
    from kto.models import tiny_tokenizer
    from kto.train import micro_batches

    tok = tiny_tokenizer()
    items = Encoder(tok)(_pairs(4), 64, 32)
    cfg = TrainConfig(z0="ema", batch_size=1, max_length=64, max_prompt_length=32)
    stream = micro_batches(LOSSES["kto"], items, cfg, 0)
    batches = [next(stream)[1] for _ in range(7)]  # 8 examples: 6 of one, then the merged last two
    assert [len(b.index) for b in batches] == [1] * 6 + [2]
    for prev, b in zip([batches[-1]] + batches[:-1], batches[:-1]):
        partner = items[int(prev.index[-1])].completion_ids
        kl = b.kl_input_ids[0][b.kl_completion_mask[0]].tolist()
        assert kl == partner and int(prev.index[-1]) != int(b.index[0])


def test_one_y_per_x_keeps_one_completion_per_prompt():
    ex = _pairs(20)
    kept = one_y_per_x(ex, seed=0)
    assert len(kept) == 20 and len({e.prompt for e in kept}) == 20
    assert 0 < sum(e.desirable for e in kept) < 20  # chosen at random, not always the first
    assert [e.completion for e in one_y_per_x(ex, seed=0)] == [e.completion for e in kept]


def test_subsample_keeps_a_share_of_one_class():
    ex = _pairs(20)
    kept = subsample(ex, 0.1, 1.0, seed=0)
    assert sum(e.desirable for e in kept) == 2 and sum(not e.desirable for e in kept) == 20


def test_keep_desirable_and_auto_weights_in_training(tmp_path):
    out = train(_cfg(tmp_path, keep_desirable=0.25, weights="auto", one_y_per_x=False), _pairs(16))
    assert out.exists()


def test_csft_adds_control_tokens(tmp_path):
    from transformers import AutoTokenizer

    out = train(_cfg(tmp_path, loss="csft"), _pairs())
    tok = AutoTokenizer.from_pretrained(out / "model")
    ids = tok.convert_tokens_to_ids(["<|good|>", "<|bad|>"])
    assert ids == [260, 261]
    assert json.loads((out / "model" / "config.json").read_text())["vocab_size"] == 262


# ----------------------------------------------------------------------------- exact first values, step level

def _batch_and_models(loss):
    from kto.data.batching import collate, collate_pairs
    from kto.data.tokenize import Encoder
    from kto.models import tiny_tokenizer
    from kto.steps import LossState, Z0

    cfg = TrainConfig(loss=loss, model="tiny", batch_size=4)
    policy, ref, _ = build_policy(cfg)
    tok = tiny_tokenizer()
    toks = Encoder(tok)(_pairs(2), 64, 32)
    spec = LOSSES[loss]
    batch = collate_pairs([(toks[0], toks[1]), (toks[2], toks[3])], 0, 64) if spec.paired else collate(toks, 0, 64, with_kl=False)
    head = None
    if spec.value_head:
        from kto.losses import ValueHead
        head = ValueHead(policy.config.hidden_size)
    return cfg, policy, ref, batch, LossState(spec, Z0("batch", 0.9), value_head=head)


@pytest.mark.parametrize("name", ["slic", "simpo", "orpo"])
def test_first_value_of_losses_without_a_reference(name):
    """Recompute the formula from the model's own log-probs (two pairs)."""
    from kto.logprobs import model_logps
    from kto.steps import micro_step

    cfg, policy, ref, batch, state = _batch_and_models(name)
    loss, _, _ = micro_step(policy, ref, batch, cfg, state, lambda t: t, grad=False)
    with torch.no_grad():
        lp, n = model_logps(policy, batch.input_ids, batch.attention_mask, batch.completion_mask)
    lp, n = lp.double(), n.double()
    m = lp / n
    if name == "slic":  # max(0, 1 − lp_w + lp_l) + 0.1·(−lp_w)
        expect = (torch.clamp(1 - lp[:2] + lp[2:], min=0) - 0.1 * lp[:2]).mean()
    elif name == "simpo":  # −log σ(2·(m_w − m_l) − 0.5)
        expect = (-torch.log(torch.sigmoid(2 * (m[:2] - m[2:]) - 0.5))).mean()
    else:  # −m_w − 0.25·log σ(log odds_w − log odds_l), log odds = m − log(1 − e^m)
        lo = m - torch.log(1 - torch.exp(m))
        expect = (-m[:2] - 0.25 * torch.log(torch.sigmoid(lo[:2] - lo[2:]))).mean()
    assert loss.item() == pytest.approx(expect.item(), rel=1e-5)


def test_first_value_of_ppo():
    """Step level: the formula of `_ppo_by_hand` on two pairs' four completions."""
    from kto.steps import micro_step

    cfg, policy, ref, batch, state = _batch_and_models("ppo")
    loss, _, _ = micro_step(policy, ref, batch, cfg, state, lambda t: t, grad=False)
    expect = _ppo_by_hand(batch.completion_mask[:, 1:], batch.desirable)
    assert loss.item() == pytest.approx(expect.item(), rel=1e-4, abs=1e-6)
