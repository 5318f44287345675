"""Typed records passed between the data stages."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

Messages = list  # list[dict(role=str, content=str)]
Text = Union[str, Messages]


@dataclass
class Row:
    """One raw record and where it came from (for error messages)."""

    where: str  # "data.jsonl:12" (line, as an editor counts) or "data.parquet: row 12"
    data: dict[str, Any]


@dataclass
class Example:
    """One unpaired feedback example (x, y, desirable?).

    prompt/completion are plain text, or lists of {role, content} chat messages
    (rendered later with the tokenizer's chat template).
    """

    prompt: Text
    completion: Text
    desirable: bool
    where: str = ""
    pair_id: int | None = None  # examples split from one paired row share it


@dataclass
class LoadReport:
    """What happened while reading a data set (reported to the user, never silent)."""

    rows: int = 0
    schema: str = ""
    dropped: dict[str, list[str]] = field(default_factory=dict)  # reason -> locations

    def drop(self, reason: str, where: str) -> None:
        self.dropped.setdefault(reason, []).append(where)

    def lines(self) -> list[str]:
        """One line per reason. The count is of what the reason names (HH pairs, OpenAssistant
        replies, examples), not of file rows: one OpenAssistant row holds many replies."""
        out = []
        for reason, places in self.dropped.items():
            shown = ", ".join(places[:5]) + (f" and {len(places) - 5} more" if len(places) > 5 else "")
            out.append(f"dropped {len(places)}: {reason} ({shown})")
        return out
