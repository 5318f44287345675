"""Turn raw rows into unpaired KTO examples, whatever schema the file uses.

Schemas (detected from the first row, after column renaming):
  unpaired      prompt, completion, label
  paired        prompt, chosen, rejected            -> (chosen, D) and (rejected, U)
  hh            chosen, rejected (full dialogues)    -> prompt = shared text up to the last "\n\nAssistant:"
  llmbar        input, output_1, output_2, label (1|2)
  oasst_tree    OpenAssistant trees: a reply with more +1 than -1 votes is desirable,
                more -1 undesirable, ties dropped; prompt = the path as chat messages.
prompt/completion may be text or lists of {role, content} messages.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from ..errors import DataError
from .records import Example, LoadReport, Row

HH_MARK = "\n\nAssistant:"
ROLES = {"system", "user", "assistant"}
SCHEMAS = {
    "unpaired": ("prompt", "completion", "label"),
    "paired": ("prompt", "chosen", "rejected"),
    "hh": ("chosen", "rejected"),
    "llmbar": ("input", "output_1", "output_2", "label"),
    "oasst_tree": ("message_tree_id", "prompt"),
}
_TRUE = {"true", "1"}  # "1"/"0": CSV cells are strings
_FALSE = {"false", "0"}


def parse_label(value: Any, where: str) -> bool:
    """Booleans, 0/1 and the strings true/false; anything else names the row."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    shown = "null" if value is None else repr(value)
    raise DataError(f"{where}: label {shown} is not a boolean, 0/1 or true/false")


def detect_schema(columns: Iterable[str], where: str) -> str:
    cols = set(columns)
    if "message_tree_id" in cols:
        return "oasst_tree"
    for name in ("unpaired", "paired", "llmbar", "hh"):
        if set(SCHEMAS[name]) <= cols:
            return name
    wanted = "; ".join(f"{k}: {', '.join(v)}" for k, v in SCHEMAS.items() if k != "oasst_tree")
    raise DataError(f"{where}: missing columns: found {sorted(cols)}; expected one of [{wanted}] (map names with --columns)")


def _messages(value: list, where: str, field: str) -> list[dict]:
    out = []
    for i, m in enumerate(value, start=1):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}: {field} message {i} is not an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise DataError(f"{where}: {field} message {i} has unknown role {m['role']!r} (expected one of {sorted(ROLES)})")
        if not isinstance(m["content"], str):
            raise DataError(f"{where}: {field} message {i} content is {type(m['content']).__name__}, expected text")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _text(row: dict, key: str, where: str, *, completion: bool):
    """Validate a prompt (may be empty) or completion (may not)."""
    if key not in row:
        raise DataError(f"{where}: missing column {key!r}")
    value = row[key]
    if value is None:
        raise DataError(f"{where}: {key} is null")
    if isinstance(value, list):
        msgs = _messages(value, where, key)
        if completion:
            if not any(m["role"] == "assistant" for m in msgs):
                raise DataError(f"{where}: {key} has no assistant turn")
            if not "".join(m["content"] for m in msgs if m["role"] == "assistant").strip():
                raise DataError(f"{where}: {key} is empty or whitespace only")
        return msgs
    if not isinstance(value, str):
        raise DataError(f"{where}: {key} is {type(value).__name__}, expected text or a list of chat messages")
    if completion and not value.strip():
        raise DataError(f"{where}: {key} is empty or whitespace only")
    return value


def split_hh(text: str) -> tuple[str, str] | None:
    """Prompt up to and including the last "\n\nAssistant:", and what follows."""
    i = text.rfind(HH_MARK)
    if i < 0:
        return None
    j = i + len(HH_MARK)
    return text[:j], text[j:]


def _oasst(row: Row, report: LoadReport) -> Iterator[Example]:
    root = row.data.get("prompt")
    if not isinstance(root, dict):
        raise DataError(f"{row.where}: 'prompt' is not an OpenAssistant message tree")

    def walk(msg: dict, path: list[dict]):
        role = "user" if msg.get("role") == "prompter" else "assistant"
        if msg.get("role") not in ("prompter", "assistant"):
            raise DataError(f"{row.where}: message with unknown role {msg.get('role')!r}")
        text = msg.get("text") or ""
        if role == "assistant":
            votes = msg.get("emojis") or {}
            up, down = int(votes.get("+1", 0)), int(votes.get("-1", 0))
            if up == down:
                report.drop("OpenAssistant reply with tied or no votes", row.where)
            elif not text.strip():
                report.drop("empty OpenAssistant reply", row.where)
            else:
                yield Example(list(path), [{"role": "assistant", "content": text}], up > down, row.where)
        here = path + [{"role": role, "content": text}]
        for reply in msg.get("replies") or []:
            yield from walk(reply, here)

    yield from walk(root, [])


def rows_to_examples(rows: Iterable[Row], columns: dict[str, str] | None = None, report: LoadReport | None = None) -> Iterator[Example]:
    """Validate each row and yield unpaired examples. `columns` maps our name -> the file's name."""
    report = report if report is not None else LoadReport()
    rename = {v: k for k, v in (columns or {}).items()}
    schema = None
    pair = 0
    for row in rows:
        data = {rename.get(k, k): v for k, v in row.data.items()} if rename else row.data
        where = row.where
        report.rows += 1
        if schema is None:
            schema = report.schema = detect_schema(data.keys(), where)
        if schema == "oasst_tree":
            yield from _oasst(Row(where, data), report)
        elif schema == "unpaired":
            yield Example(_text(data, "prompt", where, completion=False), _text(data, "completion", where, completion=True),
                          parse_label(data.get("label"), where), where)
        elif schema in ("paired", "llmbar"):
            if schema == "paired":
                prompt, chosen, rejected = (data.get(k) for k in ("prompt", "chosen", "rejected"))
                prompt = _text(data, "prompt", where, completion=False)
                chosen = _text(data, "chosen", where, completion=True)
                rejected = _text(data, "rejected", where, completion=True)
            else:
                prompt = _text(data, "input", where, completion=False)
                label = data.get("label")
                if label not in (1, 2, "1", "2"):
                    raise DataError(f"{where}: label {label!r} must be 1 or 2 (the better output)")
                better = int(label)
                chosen = _text(data, f"output_{better}", where, completion=True)
                rejected = _text(data, f"output_{3 - better}", where, completion=True)
            pair += 1
            yield Example(prompt, chosen, True, where, pair)
            yield Example(prompt, rejected, False, where, pair)
        else:  # hh
            chosen = _text(data, "chosen", where, completion=True)
            rejected = _text(data, "rejected", where, completion=True)
            a, b = split_hh(chosen), split_hh(rejected)
            if a is None or b is None:
                raise DataError(f"{where}: no '\\n\\nAssistant:' turn in {'chosen' if a is None else 'rejected'}")
            if a[0] != b[0]:
                report.drop("HH pair whose chosen and rejected prompts differ", where)
                continue
            empty = [k for k, s in (("chosen", a), ("rejected", b)) if not s[1].strip()]
            if empty:
                report.drop(f"HH pair with an empty {empty[0]} reply", where)
                continue
            pair += 1
            yield Example(a[0], a[1], True, where, pair)
            yield Example(b[0], b[1], False, where, pair)


def load_examples(path: str, columns: dict[str, str] | None = None, split: str = "train") -> tuple[list[Example], LoadReport]:
    """Read and validate a whole data set; raise DataError on the first bad row."""
    from .readers import read_rows

    report = LoadReport()
    examples = list(rows_to_examples(read_rows(path, split), columns, report))
    if report.rows == 0:
        raise DataError(f"{path}: no rows")
    return examples, report
