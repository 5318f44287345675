"""Read raw rows from local files (.jsonl, .jsonl.gz, .json, .parquet, .csv) or a
Hugging Face dataset name. Every error names the file and the line or row."""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zlib
from typing import Callable, Iterator, Optional

from ..errors import DataError
from .records import Row

# Called with a DataError for a bad line when the caller wants every problem listed
# (`kto data validate`); without it the first bad line raises.
OnError = Optional[Callable[[DataError], None]]

LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet", ".csv", ".csv.gz")


def _suffix(path: str) -> str:
    for s in sorted(LOCAL_SUFFIXES, key=len, reverse=True):
        if path.lower().endswith(s):
            return s
    return ""


def _report(err: DataError, on_error: OnError) -> None:
    if on_error is None:
        raise err
    on_error(err)


def _gunzip(path: str, raw: bytes, on_error: OnError) -> bytes:
    """Decompress; a truncated file names the line where the readable data ends and, when
    the caller lists problems instead of stopping, keeps the complete lines before it."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        reason = str(e) or type(e).__name__
    if not raw.startswith(b"\x1f\x8b"):
        raise DataError(f"{path}: unreadable gzip file: not gzip data (re-compress it, or drop the .gz suffix)")
    try:
        part = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)
    except zlib.error:
        part = b""
    complete = part.count(b"\n")
    if complete == 0:
        raise DataError(f"{path}: unreadable or truncated gzip file ({reason}); no complete line can be read")
    _report(DataError(f"{path}:{complete + 1}: truncated gzip file: the data ends inside this line ({reason}); "
                      f"{complete} complete line(s) before it"), on_error)
    return part[: part.rindex(b"\n") + 1]


def _read_bytes(path: str, on_error: OnError = None) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None
    if path.lower().endswith(".gz"):
        raw = _gunzip(path, raw, on_error)
    return raw


def _decode_lines(path: str, raw: bytes, on_error: OnError = None) -> list[str]:
    """UTF-8 lines; a byte-order mark and CRLF endings are accepted. A line that is not
    UTF-8 is reported (and kept as an empty line so that later line numbers stay right)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path}: the file is UTF-16 (byte-order mark); re-save it as UTF-8")
    lines = raw.split(b"\n")
    out = []
    for i, line in enumerate(lines, start=1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            _report(DataError(f"{path}:{i}: not valid UTF-8 (byte {e.start + 1} of the line); re-save the file as UTF-8"), on_error)
            out.append("")
    return out


def _jsonl(path: str, raw: bytes, on_error: OnError = None) -> Iterator[Row]:
    first = True
    for i, line in enumerate(_decode_lines(path, raw, on_error), start=1):
        if not line.strip():
            continue
        # A JSON list saved as .jsonl fails on its first line: say what the file probably is.
        hint = "; the file looks like one JSON list: name it .json" if first and line.lstrip().startswith("[") else ""
        first = False
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            _report(DataError(f"{path}:{i}: invalid JSON ({e.msg} at column {e.colno}){hint}"), on_error)
            continue
        if not isinstance(obj, dict):
            _report(DataError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}{hint}"), on_error)
            continue
        yield Row(f"{path}:{i}", obj)


def _json(path: str, raw: bytes, on_error: OnError = None) -> Iterator[Row]:
    text = "\n".join(_decode_lines(path, raw))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        hint = ("; the file looks like JSON Lines (one object a line): name it .jsonl"
                if e.msg == "Extra data" and text.lstrip().startswith("{") else "")
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno}){hint}") from None
    if isinstance(obj, dict):  # {"data": [...]} or column-oriented {"prompt": [...], ...}
        lists = {k: v for k, v in obj.items() if isinstance(v, list)}
        if len(lists) == 1:
            obj = next(iter(lists.values()))
        elif lists and len({len(v) for v in lists.values()}) == 1:
            n = len(next(iter(lists.values())))
            obj = [{k: v[i] for k, v in lists.items()} for i in range(n)]
        else:
            raise DataError(f"{path}: expected a JSON list of objects")
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a JSON list of objects, got {type(obj).__name__}")
    for i, item in enumerate(obj, start=1):
        if not isinstance(item, dict):
            _report(DataError(f"{path}: row {i}: expected a JSON object, got {type(item).__name__}"), on_error)
            continue
        yield Row(f"{path}: row {i}", item)


def _csv(path: str, raw: bytes, on_error: OnError = None) -> Iterator[Row]:
    text = "\n".join(_decode_lines(path, raw, on_error))
    csv.field_size_limit(2**31 - 1)  # long completions are normal; the default stops at 128 KiB
    reader = csv.reader(io.StringIO(text))
    header = None
    end = 0  # the line where the previous record ended; a quoted field may span lines
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(f"{path}:{end + 1}: unreadable CSV ({e})") from None
        line, end = end + 1, reader.line_num
        if header is None:
            header = fields
            continue
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            # A record that runs to the end of the file is usually an unclosed quote.
            hint = '; an unclosed " quote on this line?' if end > line and end >= text.count("\n") else ""
            _report(DataError(f"{path}:{line}: ragged CSV row: {len(fields)} fields, the header has {len(header)}{hint}"),
                    on_error)
            continue
        yield Row(f"{path}:{line}", dict(zip(header, fields)))


def _parquet(path: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: unreadable parquet file ({e})") from None
    for i, item in enumerate(table.to_pylist(), start=1):
        yield Row(f"{path}: row {i}", item)


def _hub(name: str, split: str) -> Iterator[Row]:
    import datasets

    name, _, subset = name.partition(":")
    try:
        ds = datasets.load_dataset(name, subset or None, split=split)
    except Exception as e:
        raise DataError(f"{name}: cannot load from the Hugging Face Hub ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    for i, item in enumerate(ds, start=1):
        yield Row(f"{name}[{split}]: row {i}", dict(item))


def is_local(path: str) -> bool:
    """A path rather than a Hub dataset name ("org/name" or "name"): it exists, has a data
    suffix, starts like a path, has more than one '/', or is a bare name with a dot
    (feedback.txt)."""
    return (os.path.exists(path) or bool(_suffix(path)) or path.startswith((".", "/", "~"))
            or path.count("/") > 1 or ("/" not in path and "." in path))


def read_rows(path: str, split: str = "train", on_error: OnError = None) -> Iterator[Row]:
    """Yield raw rows. `path` is a local file or a Hub dataset name ("org/name[:subset]").

    A bad line raises DataError, unless `on_error` is given: then it receives the error
    and reading goes on with the next line (problems that spoil the whole file still raise).
    """
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        if is_local(path):
            raise DataError(f"{path}: file does not exist")
        yield from _hub(path, split)
        return
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder; give a data file")
    suffix = _suffix(path)
    if suffix == ".parquet":
        yield from _parquet(path)
        return
    if not suffix:
        raise DataError(f"{path}: unknown file type; expected one of {', '.join(LOCAL_SUFFIXES)}")
    raw = _read_bytes(path, on_error)
    if suffix.startswith(".jsonl"):
        yield from _jsonl(path, raw, on_error)
    elif suffix.startswith(".json"):
        yield from _json(path, raw, on_error)
    else:
        yield from _csv(path, raw, on_error)
