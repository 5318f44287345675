"""Tokenisation: exact prompt prefix (checked, not guessed), one BOS, one EOS, truncation."""
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from kto.data.records import Example
from kto.data.tokenize import Encoder
from kto.models import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_plain_text_one_bos_one_eos(tok):
    p, c = Encoder(tok).encode(Example("Hello", " world", True))
    assert p == tok("Hello")["input_ids"] and p[0] == tok.bos_token_id
    assert c == tok(" world", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert (p + c).count(tok.bos_token_id) == 1 and (p + c).count(tok.eos_token_id) == 1


def test_bos_already_in_the_text_is_not_doubled(tok):
    p, _ = Encoder(tok).encode(Example("<s>Hello", " world", True))
    assert p.count(tok.bos_token_id) == 1 and p[0] == tok.bos_token_id


def test_eos_already_in_the_completion_is_not_doubled(tok):
    _, c = Encoder(tok).encode(Example("Q", " A<|im_end|>", True))
    assert c.count(tok.eos_token_id) == 1 and c[-1] == tok.eos_token_id


def test_chat_template_prompt_is_an_exact_prefix(tok):
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi?"}]
    completion = [{"role": "assistant", "content": "hello"}]
    p, c = Encoder(tok).encode(Example(prompt, completion, True))
    rendered_prompt = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert p == tok(rendered_prompt, add_special_tokens=False)["input_ids"]
    full = tok.apply_chat_template(prompt + completion, tokenize=False)
    # the whole sequence is the template's rendering, cut right after the closing EOS
    assert tok.decode(p + c) == full[: full.rindex("<|im_end|>") + len("<|im_end|>")]
    assert (p + c).count(tok.bos_token_id) == 1 and c[-1] == tok.eos_token_id and c.count(tok.eos_token_id) == 1


def test_text_prompt_with_chat_completion_uses_the_template(tok):
    p, c = Encoder(tok).encode(Example("hi?", [{"role": "assistant", "content": "yo"}], False))
    assert tok.decode(p).endswith("<|im_start|>assistant\n") and tok.decode(c) == "yo<|im_end|>"


def test_boundary_merge_is_detected_not_guessed():
    # A BPE that merges "a"+"b": "a" + "b" renders as one token [ab], so the prompt's
    # tokens [a] are not a prefix of the full rendering. The encoder must notice and
    # tokenise the completion on its own, keeping the prompt exact.
    vocab = {"<eos>": 0, "a": 1, "b": 2, "ab": 3, "c": 4}
    t = Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b")]))
    t.pre_tokenizer = pre_tokenizers.Split(" ", "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>")
    assert fast("ab", add_special_tokens=False)["input_ids"] == [3]
    enc = Encoder(fast)
    p, c = enc.encode(Example("a", "bc", True))
    assert p == [1] and c == [2, 4, 0]
    assert sum(enc.stats.values()) == 1


def test_truncation_keeps_prompt_end_and_bos_then_cuts_completion_end(tok):
    enc = Encoder(tok)
    prompt = "".join(chr(ord("a") + i % 26) for i in range(300))
    completion = "".join(chr(ord("A") + i % 26) for i in range(300))
    p, c = enc.encode(Example(prompt, completion, True))
    tp, tc = enc.truncate(p, c, max_length=256, max_prompt_length=128)
    assert len(tp) == 128 and tp[0] == tok.bos_token_id and tp[1:] == p[-127:]
    assert tc == c[:128] and len(tp) + len(tc) == 256
    # short examples are untouched
    p2, c2 = enc.encode(Example("hi", "there", True))
    assert enc.truncate(p2, c2, 256, 128) == (p2, c2)
    # a long completion with a short prompt keeps the whole prompt
    p3, c3 = enc.encode(Example("hi", completion, True))
    tp3, tc3 = enc.truncate(p3, c3, 64, 32)
    assert tp3 == p3 and tc3 == c3[: 64 - len(p3)]


def test_prompt_limit_must_leave_room_for_a_completion(tok):
    # max_prompt_length < max_length guarantees at least one completion token survives
    enc = Encoder(tok)
    out = enc([Example("q" * 50, "fine", True), Example("q", "ok", False)], max_length=16, max_prompt_length=8)
    assert [len(t.prompt_ids) for t in out] == [8, 2] and all(t.completion_ids for t in out)
    with pytest.raises(Exception, match="max_prompt_length"):
        enc([Example("q", "fine", True)], max_length=16, max_prompt_length=16)


def test_empty_prompt_without_bos_still_scores_the_first_completion_token():
    # The log-prob of token t comes from position t−1: with no BOS and an empty prompt the
    # completion's first token would sit at position 0 and never be scored.
    vocab = {"<eos>": 0, "a": 1, "b": 2}
    t = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    fast = PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>")
    assert fast("", add_special_tokens=True)["input_ids"] == []
    p, c = Encoder(fast).encode(Example("", "ab", True))
    assert p == [0] and c == [1, 2, 0]


def test_empty_prompt_with_bos_is_just_bos(tok):
    p, c = Encoder(tok).encode(Example("", "ab", True))
    assert p == [tok.bos_token_id] and c[-1] == tok.eos_token_id
