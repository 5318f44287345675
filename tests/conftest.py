import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(rel: str) -> Path:
    """A file from ../shared/data, or skip: a user's fresh clone does not have that folder."""
    path = SHARED_DATA / rel
    if not path.exists():
        pytest.skip(f"{path} is absent (real feedback data lives in ../shared/data, outside the repo)")
    return path


def write_feedback(path: Path, n: int = 32, seed: int = 0) -> Path:
    """A small unpaired feedback file: answers that repeat the question's word are desirable."""
    import json
    import random

    rng = random.Random(seed)
    words = ["apple", "river", "stone", "cloud", "maple", "tiger", "ocean", "piano"]
    with open(path, "w") as f:
        for i in range(n):
            w = rng.choice(words)
            good = i % 2 == 0
            answer = f" {w} {w}." if good else f" {rng.choice([x for x in words if x != w])}?"
            f.write(json.dumps({"prompt": f"Say {w}:", "completion": answer, "label": good}) + "\n")
    return path
