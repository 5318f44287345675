"""SPEC.md §5.1 on a real (tiny) model: the KTO gradient of an example is
∓λ_y·β·σ(βz)·σ(−βz)·∇log πθ(y|x), z = r − z0, and z0 (from the batch's mismatched pairs)
passes no gradient."""
import copy

import torch

from kto.config import TrainConfig
from kto.data.batching import collate
from kto.data.tokenize import TokenizedExample
from kto.logprobs import model_logps
from kto.losses import kto_loss
from kto.models import tiny_model
from kto.reference import Reference
from kto.steps import Z0, kto_micro_step


def _examples():
    g = torch.Generator().manual_seed(0)
    rows = []
    for i, desirable in enumerate([True, False, True, False]):
        prompt = [1] + torch.randint(4, 260, (3 + i,), generator=g).tolist()
        completion = torch.randint(4, 260, (4 + 2 * i,), generator=g).tolist() + [2]
        rows.append(TokenizedExample(prompt, completion, desirable, index=i))
    return rows


def _models(seed):
    """(policy, reference): the reference is a noisy copy. A sharper random model gives random
    text lower log-probs than the near-uniform policy does, so the log-ratios (and z0) are > 0."""
    policy = tiny_model(260, seed=0)
    ref = copy.deepcopy(policy)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy, ref


def test_per_example_gradient_matches_the_proposition():
    policy, _ = _models(1)
    ex = _examples()
    batch = collate(ex, 0, 64)
    beta, w_d, w_u, z0 = 0.5, 1.5, 0.7, 0.3
    params = [policy.lm_head.weight]
    logps, _ = model_logps(policy, batch.input_ids, batch.attention_mask, batch.completion_mask)
    ref_logps = logps.detach() - torch.tensor([1.0, -2.0, 0.5, 3.0])  # r = 1, −2, 0.5, 3
    for i in range(len(ex)):
        out = kto_loss(logps, ref_logps, batch.desirable, z0, beta, w_d, w_u)
        (g_loss,) = torch.autograd.grad(out.losses[i], params, retain_graph=True)
        (g_logp,) = torch.autograd.grad(logps[i], params, retain_graph=True)
        z = (logps[i] - ref_logps[i] - z0).detach()
        lam = w_d if ex[i].desirable else w_u
        coef = lam * beta * torch.sigmoid(beta * z) * torch.sigmoid(-beta * z)
        sign = -1.0 if ex[i].desirable else 1.0  # descent raises desirable, lowers undesirable log-probs
        assert coef > 1e-4  # not saturated: the check below is not 0 = 0
        assert torch.allclose(g_loss, sign * coef * g_logp, rtol=1e-4, atol=1e-7)


def test_z0_from_the_batch_passes_no_gradient():
    """The micro-step's gradient equals the sum of the per-example formula with z0 held fixed;
    a z0 with gradient would add a term through the mismatched pairs."""
    cfg = TrainConfig(beta=1.0, batch_size=4)
    for seed in range(1, 30):  # find a policy whose batch z0 is strictly positive (not clamped away)
        policy, ref_model = _models(seed)
        ref = Reference(model=ref_model)
        batch = collate(_examples(), 0, 64)
        loss, stats, out = kto_micro_step(policy, ref, batch, cfg, Z0("batch", 0.9), lambda t: t, (1.0, 1.0))
        if stats["z0"] > 0.05:
            break
    assert stats["z0"] > 0.05
    policy.zero_grad()
    loss.backward()
    got = policy.lm_head.weight.grad.clone()
    z0 = stats["z0"]
    expected = torch.zeros_like(got)
    ref_logps = ref.logps(batch.input_ids, batch.attention_mask, batch.completion_mask)
    for i in range(4):
        policy.zero_grad()
        lp, _ = model_logps(policy, batch.input_ids[i:i + 1], batch.attention_mask[i:i + 1], batch.completion_mask[i:i + 1])
        lp.sum().backward()
        z = float(lp.detach()) - float(ref_logps[i]) - z0
        coef = cfg.beta * torch.sigmoid(torch.tensor(cfg.beta * z)) * torch.sigmoid(torch.tensor(-cfg.beta * z))
        sign = -1.0 if bool(batch.desirable[i]) else 1.0
        expected += sign * coef * policy.lm_head.weight.grad / 4
    assert torch.allclose(got, expected, rtol=1e-3, atol=1e-7)


def test_z0_tensor_given_with_grad_gets_none():
    z0 = torch.tensor(0.2, requires_grad=True)
    p = torch.tensor([-3.0, -4.0], requires_grad=True)
    kto_loss(p, torch.tensor([-3.5, -3.5]), torch.tensor([True, False]), z0).losses.sum().backward()
    assert z0.grad is None and p.grad.abs().sum() > 0
