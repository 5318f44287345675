"""Micro-batches, with the mismatched pairs for the KL reference point built inside
each micro-batch (SPEC.md §3): example i is paired with completion (i+1) mod m."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import KTOError
from .tokenize import TokenizedExample


@dataclass
class Batch:
    """A padded micro-batch. Shapes: (B, T) unless noted; KL rows are the mismatched pairs.

    completion_mask marks positions holding completion tokens (the ones scored).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    desirable: torch.Tensor  # (B,) bool
    kl_input_ids: torch.Tensor
    kl_attention_mask: torch.Tensor
    kl_completion_mask: torch.Tensor
    index: torch.Tensor  # (B,) position of each example in the data set

    def to(self, device) -> "Batch":
        return Batch(**{k: v.to(device) for k, v in self.__dict__.items()})

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum() + self.kl_attention_mask.sum())


def mismatched_partner(m: int) -> list[int]:
    """Index of the completion paired with each prompt: a cyclic shift by one.
    Every completion is used once and, for m >= 2, nobody gets its own."""
    if m < 2:
        raise KTOError("a micro-batch of one example cannot form mismatched pairs for the KL estimate; use --batch-size 2 or more")
    return [(i + 1) % m for i in range(m)]


def _pad(rows: list[tuple[list[int], list[int]]], pad_id: int, length: int):
    n = len(rows)
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    attn = torch.zeros((n, length), dtype=torch.long)
    comp = torch.zeros((n, length), dtype=torch.bool)
    for r, (p, c) in enumerate(rows):
        seq = p + c
        ids[r, : len(seq)] = torch.tensor(seq)
        attn[r, : len(seq)] = 1
        comp[r, len(p): len(seq)] = True
    return ids, attn, comp


def collate(examples: list[TokenizedExample], pad_id: int, max_length: int, with_kl: bool = True,
            kl_completions: list[list[int]] | None = None) -> Batch:
    """Pad a micro-batch. The KL rows pair prompt i with completion (i+1) mod m, or, when
    `kl_completions` is given (a micro-batch of one with z0 'ema'), with those completions:
    the caller guarantees they are not the examples' own."""
    main = [(e.prompt_ids, e.completion_ids) for e in examples]
    if with_kl:
        if kl_completions is None:
            partner = mismatched_partner(len(examples))
            kl_completions = [examples[partner[i]].completion_ids for i in range(len(examples))]
        kl = []
        for e, c in zip(examples, kl_completions, strict=True):
            kl.append((e.prompt_ids, c[: max_length - len(e.prompt_ids)]))
    else:
        kl = []
    length = max(len(p) + len(c) for p, c in main + kl)
    ids, attn, comp = _pad(main, pad_id, length)
    if kl:
        kl_ids, kl_attn, kl_comp = _pad(kl, pad_id, length)
    else:
        kl_ids, kl_attn, kl_comp = ids[:0], attn[:0], comp[:0]
    return Batch(ids, attn, comp, torch.tensor([e.desirable for e in examples]), kl_ids, kl_attn, kl_comp,
                 torch.tensor([e.index for e in examples]))


def collate_pairs(pairs: list[tuple[TokenizedExample, TokenizedExample]], pad_id: int, max_length: int) -> Batch:
    """A paired micro-batch of P (chosen, rejected) pairs of one prompt each: rows 0..P−1 are
    the chosen completions, rows P..2P−1 the rejected ones in the same order. No KL rows."""
    for c, r in pairs:
        if not c.desirable or r.desirable:
            raise KTOError(f"{c.where}: a pair must hold one desirable and one undesirable completion")
    return collate([c for c, _ in pairs] + [r for _, r in pairs], pad_id, max_length, with_kl=False)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True) -> list[list[int]]:
    """Index lists for one epoch, reshuffled with (seed, epoch) so micro-batches mix labels.
    A trailing batch of one joins the previous batch instead of being paired with itself."""
    if shuffle:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    batches = [order[i: i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())
    return batches
