"""Turn raw rows into unpaired KTO examples, whatever schema the file uses.

Schemas (detected from the first row, after column renaming):
  unpaired      prompt, completion, label
  paired        prompt, chosen, rejected            -> (chosen, D) and (rejected, U)
  hh            chosen, rejected (full dialogues)    -> prompt = shared text up to the last "\n\nAssistant:"
  llmbar        input, output_1, output_2, label (1|2)
  binary_feedback    prompt, output, label (0|1)          the HALOs repo's binary-feedback JSON
  pairwise_feedback  prompt, output_A, output_B, label    label 1: A is better, 0: B is better
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
    "binary_feedback": ("prompt", "output", "label"),
    "pairwise_feedback": ("prompt", "output_A", "output_B", "label"),
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
    for name in ("unpaired", "paired", "pairwise_feedback", "binary_feedback", "llmbar", "hh"):
        if set(SCHEMAS[name]) <= cols:
            return name
    wanted = "; ".join(f"{k}: {', '.join(v)}" for k, v in SCHEMAS.items() if k != "oasst_tree")
    raise DataError(f"{where}: missing columns: found {sorted(cols)}; expected one of [{wanted}] (map names with --columns)")


def _messages(value: list, where: str, field: str) -> list[dict]:
    out = []
    for i, m in enumerate(value, start=1):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}: {field} message {i} is not an object with 'role' and 'content'")
        if not isinstance(m["role"], str) or m["role"] not in ROLES:
            raise DataError(f"{where}: {field} message {i} has unknown role {m['role']!r} (expected one of {sorted(ROLES)})")
        if not isinstance(m["content"], str):
            kind = "null" if m["content"] is None else type(m["content"]).__name__
            raise DataError(f"{where}: {field} message {i} content is {kind}, expected text")
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


def split_chat(messages: list[dict]) -> tuple[list[dict], list[dict]] | None:
    """Messages before the last assistant turn, and that turn (TRL's implicit prompt)."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        return None
    return messages[:last], messages[last:]


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
        if not isinstance(msg, dict):
            raise DataError(f"{row.where}: a message of the tree is {type(msg).__name__}, expected an object")
        if msg.get("role") not in ("prompter", "assistant"):
            raise DataError(f"{row.where}: message with unknown role {msg.get('role')!r}")
        role = "user" if msg["role"] == "prompter" else "assistant"
        text = msg.get("text") or ""
        if not isinstance(text, str):
            raise DataError(f"{row.where}: a message's text is {type(text).__name__}, expected text")
        if role == "assistant":
            where = f"{row.where} (reply {str(msg['message_id'])[:8]})" if msg.get("message_id") else row.where
            votes = msg.get("emojis") or {}
            up, down = (votes.get("+1", 0), votes.get("-1", 0)) if isinstance(votes, dict) else (None, None)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (up, down)):
                raise DataError(f"{where}: emojis {votes!r} is not an object of vote counts like {{'+1': 3, '-1': 1}}")
            if up == down:
                report.drop("OpenAssistant reply with tied or no votes", where)
            elif not text.strip():
                report.drop("empty OpenAssistant reply", where)
            else:
                yield Example(list(path), [{"role": "assistant", "content": text}], up > down, where)
        here = path + [{"role": role, "content": text}]
        for reply in msg.get("replies") or []:
            yield from walk(reply, here)

    yield from walk(root, [])


def _label(data: dict, where: str) -> bool:
    if "label" not in data:
        raise DataError(f"{where}: missing column 'label'")
    return parse_label(data["label"], where)


def _pair_label(data: dict, where: str, allowed: tuple, what: str) -> Any:
    label = data.get("label")
    if "label" not in data:
        raise DataError(f"{where}: missing column 'label'")
    if isinstance(label, bool) or label not in allowed:
        raise DataError(f"{where}: label {'null' if label is None else repr(label)} must be {what}")
    return label


def _split_pair(chosen, rejected, where: str):
    """HH-style rows: the shared prompt and the two replies (text or chat messages)."""
    if isinstance(chosen, list) != isinstance(rejected, list):
        raise DataError(f"{where}: chosen and rejected must both be text or both be chat messages")
    split = split_chat if isinstance(chosen, list) else split_hh
    a, b = split(chosen), split(rejected)
    if a is None or b is None:
        side = "chosen" if a is None else "rejected"
        turn = "assistant message" if isinstance(chosen, list) else "'\\n\\nAssistant:' turn"
        raise DataError(f"{where}: no {turn} in {side}")
    return a, b


def _blank(value) -> bool:
    text = "".join(m["content"] for m in value) if isinstance(value, list) else value
    return not text.strip()


class PairProblem(DataError):
    """A paired row that training drops with a warning and `kto data validate` reports."""


def _row_examples(data: dict, where: str, schema: str, report: LoadReport, strict: bool, pair: int) -> list[Example]:
    """The examples of one validated row (two for a paired row)."""
    if schema == "oasst_tree":
        return list(_oasst(Row(where, data), report))
    if schema in ("unpaired", "binary_feedback"):
        key = "completion" if schema == "unpaired" else "output"
        return [Example(_text(data, "prompt", where, completion=False), _text(data, key, where, completion=True),
                        _label(data, where), where)]
    if schema == "paired":
        prompt = _text(data, "prompt", where, completion=False)
        chosen = _text(data, "chosen", where, completion=True)
        rejected = _text(data, "rejected", where, completion=True)
    elif schema == "llmbar":
        prompt = _text(data, "input", where, completion=False)
        better = int(_pair_label(data, where, (1, 2, "1", "2"), "1 or 2 (the better output)"))
        chosen = _text(data, f"output_{better}", where, completion=True)
        rejected = _text(data, f"output_{3 - better}", where, completion=True)
    elif schema == "pairwise_feedback":
        prompt = _text(data, "prompt", where, completion=False)
        a_better = int(_pair_label(data, where, (0, 1, "0", "1"), "1 (output_A is better) or 0 (output_B is better)")) == 1
        out_a = _text(data, "output_A", where, completion=True)
        out_b = _text(data, "output_B", where, completion=True)
        chosen, rejected = (out_a, out_b) if a_better else (out_b, out_a)
    else:  # hh: the prompt is the shared text before the last assistant turn
        (prompt, chosen), (other, rejected) = _split_pair(_text(data, "chosen", where, completion=True),
                                                          _text(data, "rejected", where, completion=True), where)
        problem = None
        if prompt != other:
            problem = "paired row whose chosen and rejected prompts differ", "HH pair whose chosen and rejected prompts differ"
        else:
            empty = [k for k, c in (("chosen", chosen), ("rejected", rejected)) if _blank(c)]
            if empty:
                problem = f"the {empty[0]} reply is empty", f"HH pair with an empty {empty[0]} reply"
        if problem:
            if strict:
                raise PairProblem(f"{where}: {problem[0]} (kto train drops such pairs with a warning)")
            report.drop(problem[1], where)
            return []
    return [Example(prompt, chosen, True, where, pair), Example(prompt, rejected, False, where, pair)]


def rows_to_examples(rows: Iterable[Row], columns: dict[str, str] | None = None, report: LoadReport | None = None,
                     *, on_error=None, strict: bool = False) -> Iterator[Example]:
    """Validate each row and yield unpaired examples. `columns` maps our name -> the file's name.

    By default the first bad row raises DataError, and HH pairs whose prompts differ (or
    whose reply is empty) are dropped and counted in `report` (training's lenient choice).
    `strict=True` makes those pairs errors too; `on_error` (a callable taking the
    DataError) collects every bad row and goes on, as `kto data validate` does. A file
    whose first row matches no schema still raises: every row would fail the same way.
    """
    report = report if report is not None else LoadReport()
    rename = {v: k for k, v in (columns or {}).items()}
    schema = None
    pair = 0
    for row in rows:
        data = {rename.get(k, k): v for k, v in row.data.items()} if rename else row.data
        report.rows += 1
        if schema is None:
            missing = [f"{ours}={theirs}" for ours, theirs in (columns or {}).items() if theirs not in row.data]
            if missing:  # a typo in a mapping must not fall back silently to a column of our name
                raise DataError(f"{row.where}: --columns {','.join(missing)}: no such column; found {sorted(row.data)}")
            schema = report.schema = detect_schema(data.keys(), row.where)
        try:
            examples = _row_examples(data, row.where, schema, report, strict, pair + 1)
        except DataError as e:
            if on_error is None:
                raise
            on_error(e)
            continue
        if examples and examples[0].pair_id is not None:
            pair += 1
        yield from examples


def load_examples(path: str, columns: dict[str, str] | None = None, split: str = "train") -> tuple[list[Example], LoadReport]:
    """Read and validate a whole data set; raise DataError on the first bad row."""
    from .readers import read_rows

    report = LoadReport()
    examples = list(rows_to_examples(read_rows(path, split), columns, report))
    if report.rows == 0:
        raise DataError(f"{path}: no rows")
    return examples, report
