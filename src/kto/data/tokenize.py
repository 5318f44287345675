"""Tokenise examples: prompt tokens are an exact prefix of the full sequence, one BOS
where the tokenizer uses one, one EOS closing the completion, then truncation."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..errors import DataError
from .records import Example


@dataclass
class TokenizedExample:
    prompt_ids: list[int]
    completion_ids: list[int]
    desirable: bool
    where: str = ""
    index: int = 0  # position in the data set, stable across epochs


def _uses_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]


def _as_messages(value, role: str) -> list[dict]:
    return value if isinstance(value, list) else [{"role": role, "content": value}]


class Encoder:
    """Turns Examples into token ids for one tokenizer.

    Plain text: the tokenizer's own special tokens (BOS) are added to the prompt.
    Chat messages: rendered with the tokenizer's chat template (which places BOS itself).
    The prompt boundary is checked, never guessed: if the prompt's tokens are not a prefix
    of the full sequence's tokens (a merge across the boundary), the completion is
    tokenised on its own and appended, and the event is counted in `stats`.
    An empty prompt with a tokenizer that adds no BOS becomes one BOS (or EOS) token: the
    log-prob of token t comes from position t−1, so without it the completion's first
    token would never be scored.
    """

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.bos = tokenizer.bos_token_id if _uses_bos(tokenizer) else None
        self.eos = tokenizer.eos_token_id
        if self.eos is None:
            raise DataError("the tokenizer has no EOS token; set one before training")
        self.stats: Counter = Counter()

    def _render_chat(self, ex: Example) -> tuple[str, str]:
        if getattr(self.tok, "chat_template", None) is None:
            raise DataError(f"{ex.where}: chat messages given but the tokenizer has no chat template")
        prompt = _as_messages(ex.prompt, "user")
        completion = _as_messages(ex.completion, "assistant")
        p = self.tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full = self.tok.apply_chat_template(prompt + completion, tokenize=False)
        if not full.startswith(p):
            raise DataError(f"{ex.where}: the chat template renders the prompt differently inside the full conversation")
        # Cut whatever the template adds after the closing EOS ("<|im_end|>\n" -> "<|im_end|>").
        eos_text = self.tok.eos_token
        tail = full[len(p):]
        if eos_text and eos_text in tail:
            tail = tail[: tail.rindex(eos_text) + len(eos_text)]
        return p, tail

    def encode(self, ex: Example) -> tuple[list[int], list[int]]:
        chat = isinstance(ex.prompt, list) or isinstance(ex.completion, list)
        if chat:
            p_text, c_text = self._render_chat(ex)
            special = False
        else:
            p_text, c_text = ex.prompt, ex.completion
            special = True
        p = self.tok(p_text, add_special_tokens=special)["input_ids"]
        full = self.tok(p_text + c_text, add_special_tokens=special)["input_ids"]
        if full[: len(p)] == p and len(full) > len(p):
            c = full[len(p):]
        else:
            self.stats["prompt boundary merged across; completion tokenised separately"] += 1
            c = self.tok(c_text, add_special_tokens=False)["input_ids"]
        if self.bos is not None:  # exactly one BOS
            while len(p) > 1 and p[0] == self.bos and p[1] == self.bos:
                p = p[1:]
            if not p or p[0] != self.bos:
                p = [self.bos] + p
        if not p:  # an empty prompt, no BOS: the first completion token needs a position to be predicted from
            p = [self.tok.bos_token_id if self.tok.bos_token_id is not None else self.eos]
        if not c or c[-1] != self.eos:  # exactly one EOS, closing the completion
            c = c + [self.eos]
        return p, c

    def truncate(self, p: list[int], c: list[int], max_length: int, max_prompt_length: int) -> tuple[list[int], list[int]]:
        """Keep the end of the prompt (and its BOS), then cut the end of the completion."""
        if len(p) + len(c) > max_length and len(p) > max_prompt_length:
            head = [p[0]] if self.bos is not None and p and p[0] == self.bos else []
            p = head + p[len(p) - (max_prompt_length - len(head)):]
        if len(p) + len(c) > max_length:
            c = c[: max(0, max_length - len(p))]
        return p, c

    def __call__(self, examples: list[Example], max_length: int, max_prompt_length: int) -> list[TokenizedExample]:
        if max_prompt_length >= max_length:
            raise DataError(f"max_prompt_length ({max_prompt_length}) must be smaller than max_length ({max_length})")
        out = []
        for i, ex in enumerate(examples):
            p, c = self.truncate(*self.encode(ex), max_length, max_prompt_length)
            if not c:
                self.stats["dropped: completion empty after truncation"] += 1
                continue
            out.append(TokenizedExample(p, c, ex.desirable, ex.where, i))
        return out
