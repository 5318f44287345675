"""The demo's task: small arithmetic questions whose answers a program checks.

Each problem is one question ("What is 7 times 8? Answer with just the number."). The
checker reads the last number of a reply, the way GSM8K-style graders do, so a reply is
judged on its final answer, not on its wording. Problems are generated from a seed;
the training and held-out sets are disjoint by operands: a held-out question is never
asked in training, not even with its operands swapped (7 × 8 and 8 × 7 are one key).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

SUFFIX = " Answer with just the number."
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Problem:
    prompt: str   # the user's question
    answer: int
    key: tuple    # identifies the question up to operand order; the train/held-out split is by key


def _problems() -> list[Problem]:
    """Every question the demo can ask: sums, differences and products of small numbers."""
    out = []
    for a in range(1, 21):
        for b in range(a, 21):
            out.append(Problem(f"What is {a} + {b}?" + SUFFIX, a + b, ("+", a, b)))
            if b != a:
                out.append(Problem(f"What is {b} + {a}?" + SUFFIX, a + b, ("+", a, b)))
    for a in range(10, 31):
        for b in range(1, 10):
            out.append(Problem(f"What is {a} - {b}?" + SUFFIX, a - b, ("-", a, b)))
    for a in range(2, 13):
        for b in range(a, 13):
            out.append(Problem(f"What is {a} times {b}?" + SUFFIX, a * b, ("*", a, b)))
            if b != a:
                out.append(Problem(f"What is {b} times {a}?" + SUFFIX, a * b, ("*", a, b)))
    return out


def make_split(seed: int, n_train: int, n_eval: int) -> tuple[list[Problem], list[Problem]]:
    """Draw n_train training and n_eval held-out questions whose keys are disjoint."""
    by_key: dict[tuple, list[Problem]] = {}
    for p in _problems():
        by_key.setdefault(p.key, []).append(p)
    keys = sorted(by_key)
    rng = random.Random(seed)
    rng.shuffle(keys)
    held, train = [], []
    for k in keys:  # one question per key in the held-out set, all of a key's questions in training
        if len(held) < n_eval:
            held.append(rng.choice(by_key[k]))
        else:
            train.extend(by_key[k])
    if len(held) < n_eval or len(train) < n_train:
        raise ValueError(f"the task has {len(keys)} question keys: too few for {n_eval} held-out and {n_train} training questions")
    rng.shuffle(train)
    return train[:n_train], held


def final_number(reply: str) -> float | None:
    """The last number in a reply (thousands separators ignored), or None."""
    found = _NUMBER.findall(reply.replace(",", ""))
    return float(found[-1]) if found else None


def is_correct(reply: str, answer: int) -> bool:
    return final_number(reply) == answer
