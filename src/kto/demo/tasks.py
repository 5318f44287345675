"""The demo's tasks: small number questions whose answers a program checks.

Two tasks, each a pool of questions generated from a seed and a checker:

- `compare` (the default): "Which is larger, 71 or 39? Answer with just the number."
  A reply is correct when it names the answer and does not name the other number, so
  "71", "The answer is 71." pass and "39 is larger than 71." or "71 or 39" fail.
- `arithmetic`: sums, differences and products of small numbers. A reply is judged on
  its last number, the way GSM8K-style graders do ("7 + 8 = 15" passes).

The training and held-out sets are disjoint by a question's key (its operands, in any
order): a held-out question is never asked in training, not even with its operands
swapped or, for `compare`, with the other question word.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

SUFFIX = " Answer with just the number."
# A minus sign counts only when it does not follow a word or a number: "71-39" is 71 and 39.
_NUMBER = re.compile(r"(?:(?<![\w.])-)?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Problem:
    prompt: str   # the user's question
    answer: int
    key: tuple    # identifies the question up to operand order; the train/held-out split is by key
    wrong: tuple = ()  # numbers a correct reply must not name (compare: the other operand)


def _arithmetic() -> list[Problem]:
    """Sums, differences and products of small numbers."""
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


def _compare() -> list[Problem]:
    """Which of two different two-digit numbers is larger (or smaller), in both orders."""
    out = []
    for a in range(10, 100):
        for b in range(a + 1, 100):
            for x, y in ((a, b), (b, a)):
                out.append(Problem(f"Which is larger, {x} or {y}?" + SUFFIX, b, ("cmp", a, b), (a,)))
                out.append(Problem(f"Which is smaller, {x} or {y}?" + SUFFIX, a, ("cmp", a, b), (b,)))
    return out


TASKS = {"compare": _compare, "arithmetic": _arithmetic}
DESCRIPTIONS = {
    "compare": "which of two different two-digit numbers is larger (or smaller); a reply is correct when it "
               "names the answer and not the other number",
    "arithmetic": "sums, differences and products of small numbers; a reply is correct when its last number "
                  "is the answer",
}


def make_split(seed: int, n_train: int, n_eval: int, task: str = "compare") -> tuple[list[Problem], list[Problem]]:
    """Draw n_train training and n_eval held-out questions whose keys are disjoint."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    by_key: dict[tuple, list[Problem]] = {}
    for p in TASKS[task]():
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


def numbers(reply: str) -> list[float]:
    """The numbers in a reply, in order (thousands separators ignored)."""
    return [float(x) for x in _NUMBER.findall(reply.replace(",", ""))]


def final_number(reply: str) -> float | None:
    """The last number in a reply, or None."""
    found = numbers(reply)
    return found[-1] if found else None


def is_correct(reply: str, answer: int) -> bool:
    """The last-number rule (arithmetic)."""
    return final_number(reply) == answer


def names_one_candidate(reply: str, p: Problem) -> bool:
    """Compare: the reply names exactly one of the two numbers (right or wrong). With
    `check`, this separates learning the format from learning which number to pick."""
    return len(set(numbers(reply)) & {p.answer, *p.wrong}) == 1


def check(reply: str, p: Problem) -> bool:
    """The task's checker: with `wrong` numbers (compare), the reply must name the answer
    and none of them; otherwise its last number must be the answer."""
    if p.wrong:
        found = set(numbers(reply))
        return p.answer in found and not found & set(p.wrong)
    return is_correct(reply, p.answer)
