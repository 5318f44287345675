"""Batched generation for the demo: chat-rendered prompts, left padding, greedy or
sampled, stopping at EOS. Returns the decoded replies and whether each one finished."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Reply:
    text: str
    finished: bool  # the model closed its reply (EOS) within max_new_tokens
    tokens: int     # generated tokens, EOS included


def render_prompts(tokenizer, prompts: list[str]) -> list[str]:
    """Each prompt as one user turn, rendered with the chat template up to the
    assistant's turn (the same rendering kto.data.tokenize uses for training)."""
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts]


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 64,
             num_samples: int = 1, temperature: float = 0.0, seed: int = 0, desc: str | None = None) -> list[list[Reply]]:
    """Replies to each prompt: `num_samples` of them (greedy when temperature is 0).

    Returns a list (one entry per prompt) of lists of `num_samples` Replies.
    Left padding keeps every prompt's last token next to the first generated one; the
    attention mask tells the model where each row really starts. `desc` shows a progress
    bar with that title.
    """
    from tqdm.auto import tqdm

    if temperature <= 0 and num_samples != 1:
        raise ValueError("greedy decoding gives one completion per prompt; set temperature > 0 to sample")
    texts = render_prompts(tokenizer, prompts)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    # The chat template already starts with its own special tokens; add none.
    rows = [t for t in texts for _ in range(num_samples)]
    gen = torch.Generator().manual_seed(seed)
    eos = tokenizer.eos_token_id
    out: list[Reply] = []
    bar = tqdm(total=len(rows), desc=desc, unit="reply", disable=desc is None)
    try:
        for i in range(0, len(rows), batch_size):
            enc = tokenizer(rows[i: i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            kwargs = dict(do_sample=False)
            if temperature > 0:
                # Seed per chunk so a run is reproducible whatever else used the global RNG.
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                kwargs = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=eos, **kwargs)
            for row in ids[:, enc["input_ids"].shape[1]:].tolist():
                n = row.index(eos) + 1 if eos in row else len(row)
                out.append(Reply(tokenizer.decode(row[:n], skip_special_tokens=True), eos in row, n))
            bar.update(len(ids))
    finally:
        bar.close()
        tokenizer.padding_side = old_side
        model.train(was_training)
    return [out[j * num_samples:(j + 1) * num_samples] for j in range(len(prompts))]
