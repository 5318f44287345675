"""Every kind of bad input gets one line naming the file, the line (counted from 1) and
the problem, and a non-zero exit with no traceback, before any model is loaded; normal
quirks (empty prompt, trailing blank lines, BOM, CRLF) are accepted."""
import gzip
import json

import pytest

import kto.models
import kto.train
from kto.cli import main
from kto.data.readers import read_rows
from kto.data.schema import load_examples
from kto.errors import DataError

GOOD = {"prompt": "Say hi:", "completion": " hi", "label": True}
BAD = {"prompt": "Say hi:", "completion": " no", "label": False}


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    """Any model load fails the test: data problems must be caught before."""
    def refuse(*a, **k):
        raise AssertionError("a model was loaded")
    monkeypatch.setattr(kto.train, "build_policy", refuse)
    monkeypatch.setattr(kto.models, "load_model", refuse)


def jsonl(path, rows, raw_lines=()):
    lines = [json.dumps(r) if isinstance(r, dict) else r for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def validate(path, capsys, *flags):
    rc = main(["data", "validate", str(path), *flags])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def expect(path, capsys, where, problem, *flags):
    """validate fails; the line `where: ...problem...` is printed; training's reader too."""
    rc, out, err = validate(path, capsys, *flags)
    assert rc != 0
    hits = [line for line in err.splitlines() if line.startswith(f"{where}: ") and problem in line]
    assert hits, err
    return err


def loads_fail(path, where, problem):
    with pytest.raises(DataError) as e:
        load_examples(str(path))
    msg = str(e.value)
    assert msg.startswith(f"{where}: ") and problem in msg, msg


# ------------------------------------------------------------------ file level

def test_missing_file(tmp_path, capsys):
    path = tmp_path / "nope.jsonl"
    expect(path, capsys, str(path), "file does not exist")


def test_not_gzip_data(tmp_path, capsys):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(b'{"prompt": "a"}\n')
    expect(path, capsys, str(path), "not gzip data")


def test_truncated_gzip_names_the_line_and_keeps_the_rest(tmp_path, capsys):
    path = tmp_path / "d.jsonl.gz"
    body = "".join(json.dumps({"prompt": f"Q{i}", "completion": f" reply number {i} " * 20, "label": i % 2 == 0}) + "\n"
                   for i in range(40)).encode()
    whole = gzip.compress(body)
    path.write_bytes(whole[: len(whole) // 2])
    rc, out, err = validate(path, capsys)
    assert rc != 0
    line = int(err.split(f"{path}:")[1].split(": truncated gzip file")[0])
    assert 1 < line < 40
    assert f"{line - 1} complete line(s) before it" in err
    assert err.count(f"{path}") == 2  # the problem line and the summary: nothing else is wrong
    loads_fail(path, f"{path}:{line}", "truncated gzip file")
    rows = []
    with pytest.raises(StopIteration):  # the lenient reader keeps every complete line
        gen = read_rows(str(path), on_error=lambda e: rows.append(("error", str(e))))
        while True:
            rows.append(next(gen))
    assert len([r for r in rows if not isinstance(r, tuple)]) == line - 1


def test_utf16_file(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(GOOD).encode("utf-16"))
    expect(path, capsys, str(path), "UTF-16")


# ------------------------------------------------------------------ line level

def test_invalid_json_lists_every_bad_line(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [GOOD, BAD, '{"prompt": "x", ', GOOD, "[1, 2]", BAD])
    err = expect(path, capsys, f"{path}:3", "invalid JSON")
    assert f"{path}:5: expected a JSON object, got list" in err
    loads_fail(path, f"{path}:3", "invalid JSON")


def test_wrong_encoding(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + json.dumps(BAD).replace("no", "n\xe9").encode("latin-1") + b"\n")
    expect(path, capsys, f"{path}:2", "not valid UTF-8")
    loads_fail(path, f"{path}:2", "not valid UTF-8")


def test_missing_columns(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a", "label": True}])
    expect(path, capsys, f"{path}:1", "missing columns")
    path = jsonl(tmp_path / "e.jsonl", [GOOD, {"prompt": "p", "label": True, "completion": "x"}, {"prompt": "p", "label": 1},
                                        {"prompt": "p", "completion": "c"}])
    err = expect(path, capsys, f"{path}:3", "missing column 'completion'")
    assert f"{path}:4: missing column 'label'" in err
    loads_fail(path, f"{path}:3", "missing column 'completion'")


@pytest.mark.parametrize("label", ["maybe", 2, 0.5, "👍", [True]])
def test_labels_of_an_unknown_kind(tmp_path, capsys, label):
    path = jsonl(tmp_path / "d.jsonl", [GOOD, {**BAD, "label": label}])
    expect(path, capsys, f"{path}:2", "label")
    loads_fail(path, f"{path}:2", "is not a boolean")


@pytest.mark.parametrize("completion", ["", "   \n\t "])
def test_empty_or_whitespace_completion(tmp_path, capsys, completion):
    path = jsonl(tmp_path / "d.jsonl", [GOOD, {**BAD, "completion": completion}])
    expect(path, capsys, f"{path}:2", "completion is empty or whitespace only")
    loads_fail(path, f"{path}:2", "empty or whitespace only")


@pytest.mark.parametrize("key,problem", [("prompt", "prompt is null"), ("completion", "completion is null"),
                                         ("label", "label null")])
def test_null_values(tmp_path, capsys, key, problem):
    path = jsonl(tmp_path / "d.jsonl", [GOOD, GOOD, {**BAD, key: None}])
    expect(path, capsys, f"{path}:3", problem)
    loads_fail(path, f"{path}:3", problem)


@pytest.mark.parametrize("key,value,problem", [("prompt", 12, "prompt is int"), ("completion", {"text": "x"}, "completion is dict"),
                                               ("completion", 3.5, "completion is float")])
def test_values_of_the_wrong_type(tmp_path, capsys, key, value, problem):
    path = jsonl(tmp_path / "d.jsonl", [{**GOOD, key: value}, BAD])
    expect(path, capsys, f"{path}:1", problem)
    loads_fail(path, f"{path}:1", problem)


def test_paired_rows_whose_prompts_differ(tmp_path, capsys):
    same = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}
    differ = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hey\n\nAssistant: go away"}
    path = jsonl(tmp_path / "hh.jsonl", [same, differ, same])
    expect(path, capsys, f"{path}:2", "prompts differ")
    # training's choice: drop the pair, keep the rest, and say which row was dropped
    examples, report = load_examples(str(path))
    assert len(examples) == 4
    assert any("prompts differ" in line and f"{path}:2" in line for line in report.lines())


def test_messages_with_unknown_roles_or_no_assistant_turn(tmp_path, capsys):
    robot = {"prompt": [{"role": "robot", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}], "label": True}
    silent = {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "user", "content": "yo"}], "label": False}
    path = jsonl(tmp_path / "d.jsonl", [robot, silent])
    err = expect(path, capsys, f"{path}:1", "unknown role 'robot'")
    assert f"{path}:2: completion has no assistant turn" in err
    loads_fail(path, f"{path}:1", "unknown role 'robot'")
    # TRL-style paired conversations with an implicit prompt
    paired = {"chosen": [{"role": "user", "content": "hi"}], "rejected": [{"role": "user", "content": "hi"},
                                                                       {"role": "assistant", "content": "no"}]}
    path = jsonl(tmp_path / "p.jsonl", [paired])
    expect(path, capsys, f"{path}:1", "chosen has no assistant turn")


def test_csv_with_a_ragged_row(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text('prompt,completion,label\n"Say hi:", hi,true\n"Say",no,false,extra\n"a", b,1\n')
    expect(path, capsys, f"{path}:3", "ragged CSV row: 4 fields, the header has 3")
    loads_fail(path, f"{path}:3", "ragged CSV row")


# ------------------------------------------------------------------ data-set level (also through `kto train`)

def train(path, capsys, tmp_path, *flags):
    rc = main(["train", "--data", str(path), "--output", str(tmp_path / "run"), "--no-progress", *flags])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def test_one_class_only_is_allowed_with_advice(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [GOOD, {**GOOD, "completion": " hello"}, {**GOOD, "completion": " hey"}])
    rc, out, err = validate(path, capsys, "--batch-size", "2", "--eval-fraction", "0")
    assert rc == 0, err
    assert "desirable examples only (3)" in err and "add examples of the other class" in err


def test_too_few_examples_for_one_micro_batch(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [GOOD])
    expect(path, capsys, str(path), "too few for one micro-batch")
    rc, out, err = train(path, capsys, tmp_path)
    assert rc == 2 and f"kto: error: {path}: 1 example(s): too few for one micro-batch" in err


def test_too_few_examples_for_one_optimiser_step(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [GOOD, BAD, {**GOOD, "prompt": "Q2"}, {**BAD, "prompt": "Q2"}])
    flags = ("--batch-size", "2", "--grad-accum", "4", "--eval-fraction", "0")
    expect(path, capsys, str(path), "too few for one optimiser step", *flags)
    rc, out, err = train(path, capsys, tmp_path, *flags)
    assert rc == 2 and "too few for one optimiser step" in err


def test_nothing_left_to_train_on(tmp_path, capsys):
    """One prompt, and the held-out split takes at least one prompt: nothing to train on."""
    path = jsonl(tmp_path / "d.jsonl", [GOOD, BAD])
    expect(path, capsys, str(path), "every example is held out for evaluation")
    rc, out, err = train(path, capsys, tmp_path, "--max-length", "4", "--max-prompt-length", "2")
    assert rc == 2 and f"kto: error: {path}: no training examples left (2 held out for evaluation)" in err


def test_truncation_keeps_a_completion_token(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [GOOD, BAD, {**GOOD, "prompt": "Q2"}, {**BAD, "prompt": "Q2"}])
    rc, out, err = validate(path, capsys, "--max-length", "4", "--max-prompt-length", "2", "--eval-fraction", "0",
                            "--batch-size", "2")
    assert rc == 0, err


def test_output_folder_exists_and_is_not_empty(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [GOOD, BAD] * 4)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    rc, out, err = train(path, capsys, tmp_path)
    assert rc == 2 and f"kto: error: {tmp_path / 'run'}: output folder exists and is not empty" in err
    expect(path, capsys, str(tmp_path / "run"), "output folder exists", "--output", str(tmp_path / "run"))


def test_many_problems_are_capped(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [GOOD, BAD] + ["{oops"] * 30)
    rc, out, err = validate(path, capsys, "--max-problems", "5", "--eval-fraction", "0")
    assert rc == 2
    assert err.count("invalid JSON") == 5 and "and 25 more problem(s)" in err
    assert "kto: error:" in err and "30 problem(s) found" in err


# ------------------------------------------------------------------ normal quirks are accepted

def test_empty_prompt_blank_lines_bom_and_crlf_are_accepted(tmp_path, capsys):
    rows = [{**GOOD, "prompt": ""}, BAD, {**GOOD, "prompt": "Q2"}, {**BAD, "prompt": "Q2"}]
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(json.dumps(r) for r in rows).encode() + b"\r\n\r\n\n  \n")
    rc, out, err = validate(path, capsys, "--batch-size", "2", "--eval-fraction", "0")
    assert rc == 0, err
    examples, _ = load_examples(str(path))
    assert [e.prompt for e in examples] == ["", "Say hi:", "Q2", "Q2"]
    assert examples[1].where == f"{path}:2"


def test_csv_bom_crlf_and_multiline_field_keep_editor_line_numbers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b'\xef\xbb\xbfprompt,completion,label\r\n"two\r\nlines", hi,true\r\n"x",\r\n')
    with pytest.raises(DataError) as e:
        load_examples(str(path))
    assert str(e.value).startswith(f"{path}:4: ragged CSV row")
    path.write_bytes(b'\xef\xbb\xbfprompt,completion,label\r\n"two\r\nlines", hi,true\r\n"x", no,0\r\n\r\n')
    examples, _ = load_examples(str(path))
    assert [e.where for e in examples] == [f"{path}:2", f"{path}:4"]
    assert examples[0].prompt == "two\nlines"


# ------------------------------------------------------------------ the same problems through `kto train`

def _gz_truncated(path):
    body = "".join(json.dumps({"prompt": f"Q{i}", "completion": f" reply number {i} " * 20, "label": i % 2 == 0}) + "\n"
                   for i in range(40)).encode()
    whole = gzip.compress(body)
    path.write_bytes(whole[: len(whole) // 2])


def _lines(*rows):
    return "".join((json.dumps(r) if isinstance(r, dict) else r) + "\n" for r in rows).encode()


CHAT_ROBOT = {"prompt": [{"role": "robot", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}], "label": True}
CHAT_SILENT = {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "user", "content": "yo"}], "label": True}
HH_DIFFER = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hey\n\nAssistant: go away"}

# name, file suffix, content (bytes, a function writing the file, None: no file), line ("" the file
# as a whole, None: read it from the message), problem
TRAIN_CASES = [
    ("missing file", ".jsonl", None, "", "file does not exist"),
    ("not gzip", ".jsonl.gz", _lines(GOOD, BAD), "", "not gzip data"),
    ("truncated gzip", ".jsonl.gz", _gz_truncated, None, "truncated gzip file"),
    ("invalid JSON", ".jsonl", _lines(GOOD, BAD, '{"prompt": "x", ', GOOD), 3, "invalid JSON"),
    ("not UTF-8", ".jsonl", _lines(GOOD, BAD) + b'{"prompt": "n\xe9", "completion": " x", "label": true}\n', 3, "not valid UTF-8"),
    ("UTF-16", ".jsonl", json.dumps(GOOD).encode("utf-16"), "", "UTF-16"),
    ("missing columns", ".jsonl", _lines({"question": "q", "answer": "a", "label": True}), 1, "missing columns"),
    ("missing column", ".jsonl", _lines(GOOD, BAD, {"prompt": "p", "label": True}), 3, "missing column 'completion'"),
    ("unknown label", ".jsonl", _lines(GOOD, BAD, {**BAD, "label": "maybe"}), 3, "label 'maybe' is not a boolean"),
    ("empty completion", ".jsonl", _lines(GOOD, {**BAD, "completion": " \t"}), 2, "completion is empty or whitespace only"),
    ("null", ".jsonl", _lines(GOOD, BAD, {**BAD, "prompt": None}), 3, "prompt is null"),
    ("wrong type", ".jsonl", _lines(GOOD, {**BAD, "completion": 5}), 2, "completion is int"),
    ("unknown role", ".jsonl", _lines(GOOD, BAD, CHAT_ROBOT), 3, "unknown role 'robot'"),
    ("no assistant turn", ".jsonl", _lines(GOOD, BAD, CHAT_SILENT), 3, "completion has no assistant turn"),
    ("ragged CSV", ".csv", b'prompt,completion,label\n"a", b,true\n"b",c,false,extra\n', 3, "ragged CSV row"),
    ("JSON list item", ".json", json.dumps([GOOD, BAD, "oops"]).encode(), " row 3", "expected a JSON object, got str"),
]


@pytest.mark.parametrize("name,suffix,content,line,problem", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_stops_with_one_line_and_writes_nothing(tmp_path, capsys, name, suffix, content, line, problem):
    """`kto train` on each kind of bad file: exit 2, exactly one line on stderr naming the
    file, the line and the problem, no traceback, no model loaded (fixture), no run folder."""
    path = tmp_path / f"data{suffix}"
    if callable(content):
        content(path)
    elif content is not None:
        path.write_bytes(content)
    rc, out, err = train(path, capsys, tmp_path)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    if line is None:  # the truncated gzip: the line where the readable data ends
        line = int(err.split(f"{path}:")[1].split(":")[0])
    where = f"{path}" if line == "" else f"{path}:{line}"  # "FILE:3", or "FILE: row 3" for a JSON list
    assert err.startswith(f"kto: error: {where}: ") and problem in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name] if path.exists() else not any(tmp_path.iterdir())
    expect(path, capsys, where, problem)  # and validate says the same


def test_every_example_truncated_away(tmp_path, capsys):
    """The built-in truncation keeps a completion token (max_prompt_length < max_length),
    but CSFT's control token after the prompt can take the last place: then nothing is left."""
    path = jsonl(tmp_path / "d.jsonl", [{"prompt": "x" * 40 + str(i), "completion": " y", "label": i % 2 == 0} for i in range(8)])
    flags = ("--loss", "csft", "--max-length", "4", "--max-prompt-length", "3", "--eval-fraction", "0", "--batch-size", "2")
    expect(path, capsys, str(path), "every example was truncated away (max_length=4)", *flags)
    rc, out, err = train(path, capsys, tmp_path, *flags)
    assert rc == 2 and err.strip() == f"kto: error: {path}: every example was truncated away (max_length=4)"
    assert not (tmp_path / "run").exists()


def test_malformed_openassistant_trees_name_the_row(tmp_path, capsys):
    tree = {"message_tree_id": "t1", "prompt": {"role": "prompter", "text": "hi", "replies": [
        {"role": "assistant", "text": "yo", "emojis": {"+1": 2}, "message_id": "abcdef123"}]}}
    bad_role = {"message_tree_id": "t2", "prompt": {"role": "bot", "text": "hi", "replies": []}}
    bad_votes = {"message_tree_id": "t3", "prompt": {"role": "prompter", "text": "hi", "replies": [
        {"role": "assistant", "text": "yo", "emojis": {"+1": "many"}, "message_id": "0123456789"}]}}
    not_a_message = {"message_tree_id": "t4", "prompt": {"role": "prompter", "text": "hi", "replies": ["yo"]}}
    path = jsonl(tmp_path / "o.jsonl", [tree, bad_role, bad_votes, not_a_message])
    err = expect(path, capsys, f"{path}:2", "unknown role 'bot'")
    assert f"{path}:3 (reply 01234567): emojis" in err and f"{path}:4: a message of the tree is str" in err
    loads_fail(path, f"{path}:2", "unknown role 'bot'")


def test_message_role_of_the_wrong_type(tmp_path, capsys):
    row = {"prompt": [{"role": ["user"], "content": "hi"}], "completion": " x", "label": True}
    path = jsonl(tmp_path / "d.jsonl", [GOOD, row])
    expect(path, capsys, f"{path}:2", "prompt message 1 has unknown role ['user']")
    row = {"prompt": [{"role": "user", "content": None}], "completion": " x", "label": True}
    path = jsonl(tmp_path / "e.jsonl", [GOOD, row])
    expect(path, capsys, f"{path}:2", "prompt message 1 content is null")


def test_json_and_jsonl_mixed_up_get_a_hint(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps([GOOD, BAD], indent=1))
    expect(path, capsys, f"{path}:1", "looks like one JSON list: name it .json")
    path = tmp_path / "d.json"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(BAD) + "\n")
    expect(path, capsys, f"{path}:2", "looks like JSON Lines (one object a line): name it .jsonl")


def test_csv_unclosed_quote_and_long_fields(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text('prompt,completion,label\na, b,true\n"b, c,false\nc, d,true\n')
    expect(path, capsys, f"{path}:3", 'ragged CSV row: 1 fields, the header has 3; an unclosed " quote')
    path.write_text('prompt,completion,label\n"a","' + "x" * 200_000 + '",true\n"b", c,false\n')  # over csv's 128 KiB default
    examples, _ = load_examples(str(path))
    assert len(examples[0].completion) == 200_000
