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
