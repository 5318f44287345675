"""`kto data inspect`: what is in a feedback file, before training on it.

Rows and schema, label balance and the weights the band rule suggests, token-length
percentiles for one tokenizer, how many examples the length limits would cut, exact
duplicates, and prompts that carry both labels.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np

from ..weights import BAND, auto_weights
from .records import Example
from .tokenize import Encoder
from .validate import Checked

PERCENTILES = (50, 90, 99)


def _key(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _lengths(values: list[int]) -> dict:
    if not values:
        return {}
    a = np.asarray(values)
    out = {f"p{q}": int(np.percentile(a, q, method="nearest")) for q in PERCENTILES}
    return {"min": int(a.min()), **out, "max": int(a.max()), "mean": round(float(a.mean()), 1)}


def label_stats(examples: list[Example]) -> dict:
    """Class counts and the band rule (SPEC.md §3): λ_D·n_D/(λ_U·n_U) in [1, 4/3], the
    majority class at weight 1, the minority's weight anywhere in the matching range."""
    n_d = sum(e.desirable for e in examples)
    n_u = len(examples) - n_d
    w_d, w_u = auto_weights(n_d, n_u)
    rule = {"desirable_weight": round(w_d, 4), "undesirable_weight": round(w_u, 4), "band": [BAND[0], round(BAND[1], 4)]}
    if n_d == 0 or n_u == 0:
        rule["note"] = "one class only: the band rule cannot balance classes"
    elif n_d <= n_u:  # balanced data too: the ratio 1..4/3 is then λ_D in [1, 4/3] with λ_U = 1
        rule["raise"], rule["range"] = "λ_D", [round(n_u / n_d * BAND[0], 4), round(n_u / n_d * BAND[1], 4)]
    else:
        rule["raise"], rule["range"] = "λ_U", [round(n_d / n_u / BAND[1], 4), round(n_d / n_u / BAND[0], 4)]
    return {"desirable": n_d, "undesirable": n_u,
            "desirable_share": round(n_d / len(examples), 4) if examples else None, "band_rule": rule}


def duplicate_stats(examples: list[Example]) -> dict:
    """Exact duplicates (prompt, completion, label), the same text under both labels, and
    prompts whose completions carry both labels (paired data has one per prompt)."""
    seen = Counter((_key(e.prompt), _key(e.completion), e.desirable) for e in examples)
    labels_of_text = defaultdict(set)
    labels_of_prompt = defaultdict(set)
    for e in examples:
        labels_of_text[(_key(e.prompt), _key(e.completion))].add(e.desirable)
        labels_of_prompt[_key(e.prompt)].add(e.desirable)
    per_prompt = Counter(_key(e.prompt) for e in examples)
    return {
        "duplicate_examples": sum(n - 1 for n in seen.values()),
        "same_text_both_labels": sum(len(v) == 2 for v in labels_of_text.values()),
        "distinct_prompts": len(labels_of_prompt),
        "prompts_with_both_labels": sum(len(v) == 2 for v in labels_of_prompt.values()),
        "prompts_desirable_only": sum(v == {True} for v in labels_of_prompt.values()),
        "prompts_undesirable_only": sum(v == {False} for v in labels_of_prompt.values()),
        "max_examples_per_prompt": max(per_prompt.values(), default=0),
        "empty_prompts": sum(1 for e in examples if not _key(e.prompt).strip() or e.prompt == []),
    }


def token_stats(examples: list[Example], tokenizer, max_length: int, max_prompt_length: int) -> dict:
    """Lengths in tokens as training would see them (BOS, chat template, closing EOS), and
    what the limits would do: prompts cut at the start, completions cut at the end."""
    enc = Encoder(tokenizer)
    prompts, completions = [], []
    cut_prompt = cut_completion = dropped = 0
    for ex in examples:
        p, c = enc.encode(ex)
        prompts.append(len(p))
        completions.append(len(c))
        tp, tc = enc.truncate(p, c, max_length, max_prompt_length)
        cut_prompt += len(tp) < len(p)
        cut_completion += len(tc) < len(c)
        dropped += not tc
    return {
        "prompt": _lengths(prompts),
        "completion": _lengths(completions),
        "total": _lengths([a + b for a, b in zip(prompts, completions)]),
        "limits": {"max_length": max_length, "max_prompt_length": max_prompt_length,
                   "prompt_cut": cut_prompt, "completion_cut": cut_completion, "dropped": dropped},
        "notes": dict(enc.stats),
    }


def inspect_examples(checked: Checked, tokenizer=None, tokenizer_name: str = "", max_length: int = 512,
                     max_prompt_length: int = 256) -> dict:
    ex = checked.examples
    out = {"file": checked.path, "schema": checked.report.schema, "rows": checked.report.rows, "examples": len(ex),
           "problems": len(checked.errors), "dropped": {k: len(v) for k, v in checked.report.dropped.items()}}
    if not ex:
        return out
    out["labels"] = label_stats(ex)
    if tokenizer is not None:
        out["tokens"] = {"tokenizer": tokenizer_name, **token_stats(ex, tokenizer, max_length, max_prompt_length)}
    out["duplicates"] = duplicate_stats(ex)
    return out


def format_inspection(info: dict) -> str:
    """The human-readable report printed by `kto data inspect`."""
    lines = [f"file        {info['file']}",
             f"schema      {info['schema'] or '?'}: {info['rows']} row(s) -> {info['examples']} example(s)"]
    for reason, n in info["dropped"].items():
        lines.append(f"dropped     {n}: {reason}")
    if info["problems"]:
        lines.append(f"problems    {info['problems']} bad row(s) skipped here (`kto data validate` lists them)")
    if "labels" not in info:
        return "\n".join(lines)
    lab = info["labels"]
    share = lab["desirable_share"]
    lines.append(f"labels      {lab['desirable']} desirable / {lab['undesirable']} undesirable ({100 * share:.1f}% desirable)")
    rule = lab["band_rule"]
    if "note" in rule:
        lines.append(f"weights     {rule['note']}")
    else:
        lo, hi = rule["band"]
        rng = rule["range"]
        lines.append(f"weights     band rule λ_D·n_D/(λ_U·n_U) in [{lo:g}, {hi:.4g}]: --weights auto uses "
                     f"λ_D={rule['desirable_weight']:.4g}, λ_U={rule['undesirable_weight']:.4g}; "
                     f"{rule['raise']} in [{rng[0]:.4g}, {rng[1]:.4g}] with the other at 1")
    if "tokens" in info:
        tok = info["tokens"]
        lines.append(f"tokens      tokenizer {tok['tokenizer']}   " + "  ".join(f"{k:>6}" for k in tok["prompt"]))
        for part in ("prompt", "completion", "total"):
            lines.append(f"  {part:<10}" + " " * (len(tok["tokenizer"]) + 13) + "  ".join(f"{v:>6}" for v in tok[part].values()))
        lim = tok["limits"]
        lines.append(f"limits      max_length {lim['max_length']}, max_prompt_length {lim['max_prompt_length']}: "
                     f"{lim['prompt_cut']} prompt(s) cut at the start, {lim['completion_cut']} completion(s) cut at the end, "
                     f"{lim['dropped']} dropped")
        for note, n in tok["notes"].items():
            lines.append(f"            {note}: {n}")
    dup = info["duplicates"]
    lines.append(f"duplicates  {dup['duplicate_examples']} exact duplicate example(s); "
                 f"{dup['same_text_both_labels']} (prompt, completion) pair(s) labelled both ways")
    lines.append(f"prompts     {dup['distinct_prompts']} distinct: {dup['prompts_with_both_labels']} with both labels, "
                 f"{dup['prompts_desirable_only']} desirable only, {dup['prompts_undesirable_only']} undesirable only; "
                 f"at most {dup['max_examples_per_prompt']} example(s) per prompt; {dup['empty_prompts']} empty prompt(s)")
    return "\n".join(lines)
