"""One process with micro-batch 8 equals two processes with micro-batch 4 (DDP on CPU, gloo)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import write_feedback

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))
ARGS = ["--max-steps", "3", "--eval-fraction", "0", "--max-length", "64", "--max-prompt-length", "32",
        "--no-progress", "--lr", "1e-3", "--warmup-ratio", "0"]


def _run(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found next to the interpreter")
@pytest.mark.parametrize("z0", ["zero", "batch"])
def test_two_processes_equal_one(tmp_path, z0):
    data = write_feedback(tmp_path / "fb.jsonl", n=32)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "kto.cli", "train", "--data", str(data), "--output", str(one), "--batch-size", "8",
          "--z0", z0, *ARGS], env)
    _run([TORCHRUN, "--nproc_per_node", "2", "-m", "kto.cli", "train", "--data", str(data), "--output", str(two),
          "--batch-size", "4", "--z0", z0, *ARGS], env)
    a = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    # metrics are reduced over both processes: the same 8 examples per step
    assert [r["n_desirable"] + r["n_undesirable"] for r in b] == [8, 8, 8]
    # with z0 = 0 the step is identical for all three steps; with the batch estimate,
    # each process pairs within its own micro-batch (SPEC §3), so only step 1 (z0 = 0) is.
    steps = 3 if z0 == "zero" else 1
    for ra, rb in zip(a[:steps], b[:steps]):
        assert rb["loss"] == pytest.approx(ra["loss"], abs=1e-6)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-4)
    assert a[1]["loss"] != 0.5  # the steps did move the policy
