"""Mismatched pairs for z0 (SPEC.md §3, §7) and the epoch order."""
import pytest
import torch

from kto.data.batching import collate, epoch_batches, mismatched_partner
from kto.data.tokenize import TokenizedExample
from kto.errors import KTOError


@pytest.mark.parametrize("m", [2, 3, 5])
def test_nobody_is_paired_with_itself_and_y_prime_set_is_the_batch(m):
    partner = mismatched_partner(m)
    assert all(partner[i] != i for i in range(m))
    assert sorted(partner) == list(range(m))


@pytest.mark.parametrize("m", [2, 3, 5])
def test_collate_builds_kl_rows_from_the_batch_own_completions(m):
    exs = [TokenizedExample([1, 10 + i], [100 + i] * (i + 1) + [2], i % 2 == 0, index=i) for i in range(m)]
    b = collate(exs, pad_id=0, max_length=64)
    kl_completions = []
    for i in range(m):
        row = b.kl_input_ids[i][b.kl_completion_mask[i]].tolist()
        assert b.kl_input_ids[i, :2].tolist() == [1, 10 + i]  # own prompt
        assert row != exs[i].completion_ids  # never its own completion
        kl_completions.append(tuple(row))
    assert sorted(kl_completions) == sorted(tuple(e.completion_ids) for e in exs)
    # main rows: completion mask covers exactly the completion
    for i, e in enumerate(exs):
        assert b.input_ids[i][b.completion_mask[i]].tolist() == e.completion_ids
        assert int(b.attention_mask[i].sum()) == len(e.prompt_ids) + len(e.completion_ids)


def test_micro_batch_of_one_is_refused():
    with pytest.raises(KTOError, match="batch"):
        collate([TokenizedExample([1], [5, 2], True)], pad_id=0, max_length=8)


def test_kl_rows_are_truncated_to_max_length():
    exs = [TokenizedExample([1] * 6, [7, 2], True), TokenizedExample([1, 3], [9] * 10 + [2], False)]
    b = collate(exs, pad_id=0, max_length=10)
    assert int(b.kl_attention_mask[0].sum()) == 10  # 6 prompt + 4 of the partner's 11


@pytest.mark.parametrize("n,bs", [(17, 4), (9, 2), (10, 3), (5, 5)])
def test_epoch_batches_cover_everything_once_and_never_leave_a_single(n, bs):
    batches = epoch_batches(n, bs, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert all(len(b) >= 2 for b in batches)


def test_shuffle_is_seeded_and_changes_each_epoch():
    a = epoch_batches(100, 8, seed=3, epoch=0)
    assert a == epoch_batches(100, 8, seed=3, epoch=0)
    assert a != epoch_batches(100, 8, seed=3, epoch=1)
    assert a != epoch_batches(100, 8, seed=4, epoch=0)


def test_micro_batches_mix_both_labels_even_when_data_comes_in_blocks():
    # the paired-to-unpaired split of a file in blocks: 200 desirable then 200 undesirable
    labels = [True] * 200 + [False] * 200
    batches = epoch_batches(400, 8, seed=0, epoch=0)
    mixed = sum(len({labels[i] for i in b}) == 2 for b in batches)
    assert mixed / len(batches) > 0.9
