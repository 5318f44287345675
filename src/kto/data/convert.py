"""`kto data convert`: move feedback between the formats users have.

Sources: every schema `load_examples` reads (TRL unpaired/paired, HH dialogues, LLMBar,
the HALOs repo's binary/pairwise feedback JSON, OpenAssistant trees with votes as
labels), plus OpenAssistant ranks as pairs (`--oasst ranks`) and numeric ratings turned
into labels by a threshold (`--ratings COLUMN --threshold VALUE|median|mean`).
Targets: unpaired, paired, binary, pairwise, hh, llmbar. Text and chat messages convert
either way with a template (hh or chatml). Nothing is left out silently: every example
that cannot go into the target is counted, with the reason.
"""
from __future__ import annotations

import gzip
import json
import os
import random
import re
import statistics
from collections import defaultdict

from ..errors import DataError, KTOError
from .readers import read_rows
from .records import Example, LoadReport
from .schema import _text, detect_schema, load_examples

TARGETS = ("unpaired", "paired", "binary", "pairwise", "hh", "llmbar")
PAIRED_TARGETS = ("paired", "pairwise", "hh", "llmbar")
OUT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".csv", ".parquet")

# ------------------------------------------------------------------ text <-> messages

TEMPLATES = {
    # role -> the marker that opens its turn; the prompt ends with the assistant's marker
    "hh": {"system": "\n\nSystem:", "user": "\n\nHuman:", "assistant": "\n\nAssistant:"},
    "chatml": {},  # <|im_start|>role\ncontent<|im_end|>\n
}


def render_prompt(messages: list[dict], template: str) -> str:
    """Chat messages -> prompt text, ending where the assistant's reply begins."""
    if template == "hh":
        marks = TEMPLATES["hh"]
        return "".join(f"{marks[m['role']]} {m['content']}" for m in messages) + marks["assistant"]
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


def render_completion(messages: list[dict], template: str) -> str:
    """The assistant's reply as text (HH replies start with a space after 'Assistant:')."""
    text = "".join(m["content"] for m in messages)
    return " " + text if template == "hh" else text


def parse_prompt(text: str, template: str) -> list[dict]:
    """Prompt text -> chat messages. Text without the template's markers is one user turn."""
    if template == "hh":
        marks = {v: k for k, v in TEMPLATES["hh"].items()}
        parts = re.split("(" + "|".join(re.escape(m) for m in marks) + ")", text)
        if len(parts) == 1:
            return [{"role": "user", "content": text}]
        out = [{"role": "system", "content": parts[0]}] if parts[0].strip() else []
        for mark, content in zip(parts[1::2], parts[2::2]):
            out.append({"role": marks[mark], "content": content[1:] if content.startswith(" ") else content})
    else:
        turns = re.findall(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>\n?|$)", text, flags=re.S)
        if not turns:
            return [{"role": "user", "content": text}]
        out = [{"role": r, "content": c} for r, c in turns]
    if out and out[-1]["role"] == "assistant" and not out[-1]["content"]:
        out.pop()  # the generation prompt ("\n\nAssistant:" with nothing after it)
    return out


def parse_completion(text: str, template: str) -> list[dict]:
    return [{"role": "assistant", "content": text[1:] if template == "hh" and text.startswith(" ") else text}]


def as_text(ex: Example, template: str) -> Example:
    prompt = render_prompt(ex.prompt, template) if isinstance(ex.prompt, list) else ex.prompt
    completion = render_completion(ex.completion, template) if isinstance(ex.completion, list) else ex.completion
    return Example(prompt, completion, ex.desirable, ex.where, ex.pair_id)


def as_messages(ex: Example, template: str) -> Example:
    prompt = ex.prompt if isinstance(ex.prompt, list) else parse_prompt(ex.prompt, template) if ex.prompt else []
    completion = ex.completion if isinstance(ex.completion, list) else parse_completion(ex.completion, template)
    return Example(prompt, completion, ex.desirable, ex.where, ex.pair_id)


# ------------------------------------------------------------------ extra sources

def oasst_rank_pairs(path: str, split: str = "train") -> tuple[list[Example], LoadReport]:
    """OpenAssistant ranks -> pairs: among sibling replies ranked by the crowd, the best
    (rank 0) against each lower-ranked one. Unranked and empty replies are counted."""
    report = LoadReport(schema="oasst_tree (ranks)")
    examples, pair = [], 0
    for row in read_rows(path, split):
        report.rows += 1
        if detect_schema(row.data.keys(), row.where) != "oasst_tree" or not isinstance(row.data.get("prompt"), dict):
            raise DataError(f"{row.where}: --oasst ranks needs OpenAssistant trees (message_tree_id, prompt)")
        stack = [(row.data["prompt"], [])]
        while stack:
            msg, path_ = stack.pop()
            if not isinstance(msg, dict):
                raise DataError(f"{row.where}: a message of the tree is {type(msg).__name__}, expected an object")
            role = {"prompter": "user", "assistant": "assistant"}.get(msg.get("role"))
            if role is None:
                raise DataError(f"{row.where}: message with unknown role {msg.get('role')!r}")
            here = path_ + [{"role": role, "content": msg.get("text") or ""}]
            replies = [r for r in msg.get("replies") or [] if isinstance(r, dict) and r.get("role") == "assistant"]
            for r in replies:
                if r.get("rank") is not None and (isinstance(r["rank"], bool) or not isinstance(r["rank"], int)):
                    raise DataError(f"{row.where} (reply {str(r.get('message_id', ''))[:8]}): rank {r['rank']!r} "
                                    "is not a whole number")
            usable = [r for r in replies if r.get("rank") is not None and isinstance(r.get("text"), str) and r["text"].strip()]
            ranked = sorted(usable, key=lambda r: r["rank"])
            for r in replies:
                if r not in ranked or len(ranked) == 1:
                    reason = "without a rank (or empty)" if r not in ranked else "with no ranked sibling"
                    report.drop(f"OpenAssistant reply {reason}", f"{row.where} (reply {str(r.get('message_id', ''))[:8]})")
            for worse in ranked[1:]:
                pair += 1
                where = f"{row.where} (reply {str(worse.get('message_id', ''))[:8]})"
                best = [{"role": "assistant", "content": ranked[0]["text"]}]
                examples.append(Example(list(here), best, True, where, pair))
                examples.append(Example(list(here), [{"role": "assistant", "content": worse["text"]}], False, where, pair))
            stack.extend((r, here) for r in reversed(msg.get("replies") or []))
    return examples, report


def _threshold(values: list[float], threshold: str) -> float:
    if threshold == "median":
        return statistics.median(values)
    if threshold == "mean":
        return statistics.fmean(values)
    try:
        return float(threshold)
    except ValueError:
        raise KTOError(f"--threshold: expected a number, 'median' or 'mean', got {threshold!r}") from None


def rated_examples(path: str, column: str, threshold: str, columns: dict | None = None,
                   split: str = "train") -> tuple[list[Example], LoadReport, float]:
    """Rows with a prompt, a completion (or `output`) and a numeric rating: desirable when
    rating >= threshold (a value, or the median or mean of all the ratings)."""
    report = LoadReport(schema=f"ratings ({column})")
    rename = {v: k for k, v in (columns or {}).items()}
    kept: list[tuple[object, object, float, str]] = []
    for row in read_rows(path, split):
        data = {rename.get(k, k): v for k, v in row.data.items()}
        report.rows += 1
        if column not in data:
            raise DataError(f"{row.where}: missing column {column!r} (the ratings)")
        value = data[column]
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise DataError(f"{row.where}: rating {'null' if value is None else repr(value)} is not a number")
        key = "completion" if "completion" in data else "output"
        kept.append((_text(data, "prompt", row.where, completion=False), _text(data, key, row.where, completion=True),
                     float(value), row.where))
    if not kept:
        raise DataError(f"{path}: no rows")
    cut = _threshold([v for _, _, v, _ in kept], threshold)
    return [Example(p, c, v >= cut, w) for p, c, v, w in kept], report, cut


# ------------------------------------------------------------------ reshaping

def one_per_prompt(examples: list[Example], seed: int) -> list[Example]:
    """The paper's one-y-per-x: keep one example per prompt, chosen at random."""
    groups = defaultdict(list)
    for e in examples:
        groups[_key(e.prompt)].append(e)
    rng = random.Random(seed)
    keep = {id(rng.choice(g)) for g in groups.values()}
    return [e for e in examples if id(e) in keep]


def _key(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def make_pairs(examples: list[Example], report: LoadReport) -> list[tuple[Example, Example]]:
    """(chosen, rejected) pairs: the pairs the source had, else desirable and undesirable
    examples of the same prompt matched in file order. The rest is counted in `report`."""
    pairs = []
    by_id = defaultdict(list)
    loose = defaultdict(lambda: ([], []))
    for e in examples:
        if e.pair_id is not None:
            by_id[e.pair_id].append(e)
        else:
            loose[_key(e.prompt)][0 if e.desirable else 1].append(e)
    for group in by_id.values():
        good = [e for e in group if e.desirable]
        bad = [e for e in group if not e.desirable]
        pairs.extend(zip(good, bad))
    for good, bad in loose.values():
        pairs.extend(zip(good, bad))
        for e in (good[len(bad):] + bad[len(good):]):
            report.drop("examples with no partner of the other label under the same prompt", e.where)
    return pairs


def to_rows(examples: list[Example], target: str, template: str, seed: int, report: LoadReport) -> list[dict]:
    rng = random.Random(seed)
    prompt_ids: dict[str, int] = {}

    def pid(prompt) -> int:
        return prompt_ids.setdefault(_key(prompt), len(prompt_ids))

    if target == "unpaired":
        return [{"prompt": e.prompt, "completion": e.completion, "label": e.desirable} for e in examples]
    if target == "binary":
        return [{"prompt_id": pid(e.prompt), "prompt": e.prompt, "output": e.completion, "label": int(e.desirable),
                 "type": "binary_feedback"} for e in (as_messages(x, template) for x in examples)]
    pairs = make_pairs(examples, report)
    rows = []
    for good, bad in pairs:
        if target == "paired":
            rows.append({"prompt": good.prompt, "chosen": good.completion, "rejected": bad.completion})
        elif target == "pairwise":
            good, bad = as_messages(good, template), as_messages(bad, template)
            a_better = rng.random() < 0.5  # which side holds the better output is random, as in the authors' files
            a, b = (good, bad) if a_better else (bad, good)
            rows.append({"prompt_id": pid(good.prompt), "prompt": good.prompt, "output_A": a.completion,
                         "output_B": b.completion, "label": int(a_better), "type": "pairwise_feedback"})
        elif target == "hh":
            good, bad = as_text(as_messages(good, template), "hh"), as_text(as_messages(bad, template), "hh")
            rows.append({"chosen": good.prompt + good.completion, "rejected": bad.prompt + bad.completion})
        else:  # llmbar: plain text, the better output on a random side
            good, bad = as_text(good, template), as_text(bad, template)
            first = rng.random() < 0.5
            o1, o2 = (good, bad) if first else (bad, good)
            rows.append({"input": good.prompt, "output_1": o1.completion, "output_2": o2.completion,
                         "label": 1 if first else 2})
    return rows


# ------------------------------------------------------------------ writing

def check_destination(path: str, overwrite: bool) -> None:
    """Refuse, before any work, an output that exists (unless `overwrite`), is a folder, or
    whose folder does not exist."""
    if os.path.isdir(path):
        raise KTOError(f"{path}: is a folder; give an output file name")
    if os.path.exists(path) and not overwrite:
        raise KTOError(f"{path}: output file exists; choose another or pass --overwrite")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise KTOError(f"{path}: the folder {folder} does not exist")
    if not path.lower().endswith(OUT_SUFFIXES):
        raise KTOError(f"{path}: unknown output type; use {', '.join(OUT_SUFFIXES)}")


def write_rows(rows: list[dict], path: str, overwrite: bool = False) -> None:
    """Write by suffix: .jsonl, .jsonl.gz, .json (a list), .csv (text only), .parquet.
    An existing file is kept unless `overwrite`; the rows go to a hidden file in the same
    folder, renamed over `path` only once complete, so a failure leaves nothing behind."""
    check_destination(path, overwrite)
    lower = path.lower()
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.partial-{os.getpid()}")
    try:
        if lower.endswith((".jsonl", ".jsonl.gz")):
            opener = gzip.open if lower.endswith(".gz") else open
            with opener(tmp, "wt", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        elif lower.endswith(".json"):
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(rows, f, ensure_ascii=False, indent=1)
        elif lower.endswith(".csv"):
            import csv

            cols = list(rows[0]) if rows else []
            if any(isinstance(v, (list, dict)) for r in rows for v in r.values()):
                raise KTOError(f"{path}: CSV cannot hold chat messages; write .jsonl (kto data convert: or pass --text plain)")
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                w = csv.DictWriter(f, cols)
                w.writeheader()
                w.writerows(rows)
        else:  # .parquet
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                table = pa.Table.from_pylist(rows)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise KTOError(f"{path}: parquet needs one type per column ({e}); some prompts or completions "
                               "are text and others chat messages: pass --text plain or --text messages") from None
            pq.write_table(table, tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise KTOError(f"{path}: cannot write: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def convert(src: str, out: str, target: str, *, columns: dict | None = None, split: str = "train",
            oasst: str = "votes", ratings: str = "", threshold: str = "median", text: str = "keep",
            template: str = "hh", one_per_x: bool = False, seed: int = 0, overwrite: bool = False) -> list[str]:
    """Read `src`, reshape, write `out`. Returns the lines to show the user."""
    if target not in TARGETS:
        raise KTOError(f"--to: unknown format {target!r}; expected one of {', '.join(TARGETS)}")
    if one_per_x and target in PAIRED_TARGETS:
        raise KTOError(f"--one-per-prompt leaves no pairs; it applies to unpaired targets, not {target}")
    check_destination(out, overwrite)  # before reading a large file for nothing
    notes = []
    if ratings:
        examples, report, cut = rated_examples(src, ratings, threshold, columns, split)
        notes.append(f"ratings in {ratings!r}: desirable when >= {cut:g} ({threshold})")
    elif oasst == "ranks":
        examples, report = oasst_rank_pairs(src, split)
    else:
        examples, report = load_examples(src, columns, split)
    n_in = len(examples)
    if one_per_x:
        examples = [Example(e.prompt, e.completion, e.desirable, e.where) for e in one_per_prompt(examples, seed)]
        notes.append(f"one example per prompt: kept {len(examples)} of {n_in}")
    if text == "plain":
        examples = [as_text(e, template) for e in examples]
    elif text == "messages":
        examples = [as_messages(e, template) for e in examples]
    rows = to_rows(examples, target, template, seed, report)
    if not rows:
        raise KTOError(f"{src}: nothing to write: no {target} row can be made from its {n_in} example(s)"
                       + "".join(f"; {line}" for line in report.lines()))
    write_rows(rows, out, overwrite)
    n_d = sum(e.desirable for e in examples)
    lines = [f"read {report.rows} row(s) ({report.schema}) from {src}: {n_in} example(s)"] + notes
    lines += report.lines()
    lines.append(f"wrote {len(rows)} {target} row(s) to {out}"
                 + (f" ({n_d} desirable, {len(examples) - n_d} undesirable)" if target in ("unpaired", "binary") else ""))
    return lines

