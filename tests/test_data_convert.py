"""`kto data convert`: every real file into every target, read back unchanged; the
extra sources (OASST ranks, ratings), one-y-per-x, and text <-> chat messages."""
import json
from collections import Counter

import pytest

from conftest import shared_file
from kto.cli import main
from kto.data.convert import TARGETS, convert, parse_prompt, render_prompt
from kto.data.schema import load_examples

REAL = ["hh-rlhf/harmless-base-test.jsonl.gz", "oasst/en_100_tree.jsonl", "llmbar/natural.json"]
SCHEMA_OF = {"unpaired": "unpaired", "paired": "paired", "binary": "binary_feedback", "pairwise": "pairwise_feedback",
             "hh": "hh", "llmbar": "llmbar"}


def text(value) -> str:
    return "".join(m["content"] for m in value) if isinstance(value, list) else value


def bag(examples, paired_only=False):
    """The examples as a multiset of (completion text, label), ignoring prompt rendering."""
    return Counter((text(e.completion).strip(), e.desirable) for e in examples
                   if not paired_only or e.pair_id is not None)


@pytest.mark.parametrize("rel", REAL)
def test_every_real_file_into_every_format(rel, tmp_path, capsys):
    src = shared_file(rel)
    original, _ = load_examples(str(src))
    for target in TARGETS:
        out = tmp_path / f"out.{target}.jsonl"
        assert main(["data", "convert", str(src), str(out), "--to", target]) == 0
        printed = capsys.readouterr().out
        back, report = load_examples(str(out))
        assert report.schema == SCHEMA_OF[target]
        assert not report.dropped, report.lines()
        if target in ("unpaired", "binary") or "oasst" not in rel:  # paired sources lose nothing
            assert bag(back) == bag(original), target
            assert f"wrote {len(back) if target in ('unpaired', 'binary') else len(back) // 2} {target} row(s)" in printed
        else:  # OASST votes -> pairs: only prompts with both labels pair up; the rest is counted
            assert len(back) < len(original) and "examples with no partner of the other label under the same prompt" in printed
            assert set(bag(back)) <= set(bag(original))


def test_hh_round_trip_is_exact(tmp_path):
    src = shared_file("hh-rlhf/harmless-base-test.jsonl.gz")
    out = tmp_path / "hh.jsonl"
    convert(str(src), str(out), "hh")
    original = [json.loads(line) for line in __import__("gzip").open(src, "rt")]
    written = [json.loads(line) for line in open(out)]
    dropped = {87, 517, 926, 1104, 1255, 1689, 1951, 1953, 2037}  # the rows training drops too
    assert written == [r for i, r in enumerate(original, start=1) if i not in dropped]


def test_llmbar_and_authors_pairwise_keep_the_better_side(tmp_path):
    src = shared_file("llmbar/natural.json")
    rows = json.loads(src.read_text())
    convert(str(src), str(tmp_path / "pw.json"), "pairwise")
    for row, pw in zip(rows, json.loads((tmp_path / "pw.json").read_text())):
        better = row[f"output_{row['label']}"]
        assert text(pw["output_A"] if pw["label"] == 1 else pw["output_B"]) == better
        assert pw["type"] == "pairwise_feedback" and pw["prompt"] == [{"role": "user", "content": row["input"]}]
    assert 20 < sum(pw["label"] for pw in json.loads((tmp_path / "pw.json").read_text())) < 80  # sides are mixed


def test_oasst_ranks_become_pairs(tmp_path, capsys):
    src = shared_file("oasst/en_100_tree.jsonl")
    out = tmp_path / "ranks.jsonl"
    assert main(["data", "convert", str(src), str(out), "--to", "paired", "--oasst", "ranks"]) == 0
    rows = [json.loads(line) for line in open(out)]
    first = json.loads(src.open().readline())["prompt"]
    ranked = sorted((r for r in first["replies"] if r.get("rank") is not None), key=lambda r: r["rank"])
    assert rows[0]["prompt"] == [{"role": "user", "content": first["text"]}]
    assert text(rows[0]["chosen"]) == ranked[0]["text"] and text(rows[0]["rejected"]) == ranked[1]["text"]
    assert len(rows) > 300


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("threshold,labels", [("median", [False, False, True, True, True]),
                                              ("mean", [False, False, False, True, True]),
                                              ("4", [False, False, False, True, True]),
                                              ("1", [False, True, True, True, True])])
def test_ratings_to_labels(tmp_path, threshold, labels):
    src = write(tmp_path / "r.jsonl", [{"prompt": f"q{i}", "output": f" a{i}", "score": s}
                                       for i, s in enumerate([0, 1, 2, "4.5", 10])])
    out = tmp_path / "o.jsonl"
    convert(str(src), str(out), "unpaired", ratings="score", threshold=threshold)
    assert [json.loads(line)["label"] for line in open(out)] == labels


def test_bad_ratings_name_the_row(tmp_path, capsys):
    src = write(tmp_path / "r.jsonl", [{"prompt": "q", "completion": " a", "score": 1}, {"prompt": "q", "completion": " b", "score": "high"}])
    assert main(["data", "convert", str(src), str(tmp_path / "o.jsonl"), "--to", "unpaired", "--ratings", "score"]) == 2
    assert f"{src}:2: rating 'high' is not a number" in capsys.readouterr().err


def test_one_y_per_x_keeps_one_example_per_prompt(tmp_path):
    src = write(tmp_path / "p.jsonl", [{"prompt": f"q{i}", "chosen": f" good{i}", "rejected": f" bad{i}"} for i in range(40)])
    out = tmp_path / "o.jsonl"
    convert(str(src), str(out), "unpaired", one_per_x=True, seed=1)
    rows = [json.loads(line) for line in open(out)]
    assert sorted(r["prompt"] for r in rows) == sorted(f"q{i}" for i in range(40))
    assert 8 < sum(r["label"] for r in rows) < 32  # chosen at random, not always the desirable one
    with pytest.raises(Exception, match="no pairs"):
        convert(str(src), str(tmp_path / "x.jsonl"), "paired", one_per_x=True)


@pytest.mark.parametrize("template", ["hh", "chatml"])
def test_messages_text_round_trip(template):
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\nthere"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]
    rendered = render_prompt(chat, template)
    assert parse_prompt(rendered, template) == chat
    assert parse_prompt("no markers here", template) == [{"role": "user", "content": "no markers here"}]


def test_text_plain_and_messages_flags(tmp_path):
    chat = {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Yo"}], "label": True}
    src = write(tmp_path / "c.jsonl", [chat])
    convert(str(src), str(tmp_path / "t.jsonl"), "unpaired", text="plain", template="chatml")
    row = json.loads(open(tmp_path / "t.jsonl").read())
    assert row["prompt"] == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" and row["completion"] == "Yo"
    convert(str(tmp_path / "t.jsonl"), str(tmp_path / "m.jsonl"), "unpaired", text="messages", template="chatml")
    assert json.loads(open(tmp_path / "m.jsonl").read()) == chat


def test_output_file_is_never_overwritten_silently(tmp_path, capsys):
    src = write(tmp_path / "u.jsonl", [{"prompt": "q", "completion": " a", "label": True}])
    out = tmp_path / "o.jsonl"
    out.write_text("precious\n")
    assert main(["data", "convert", str(src), str(out), "--to", "unpaired"]) == 2
    assert "output file exists" in capsys.readouterr().err and out.read_text() == "precious\n"
    assert main(["data", "convert", str(src), str(out), "--to", "unpaired", "--overwrite"]) == 0
    assert json.loads(out.read_text())["completion"] == " a"


def test_csv_output_needs_text(tmp_path, capsys):
    chat = {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Yo"}], "label": True}
    src = write(tmp_path / "c.jsonl", [chat, {**chat, "label": False}])
    assert main(["data", "convert", str(src), str(tmp_path / "o.csv"), "--to", "unpaired"]) == 2
    assert "--text plain" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
    assert main(["data", "convert", str(src), str(tmp_path / "o.csv"), "--to", "unpaired", "--text", "plain"]) == 0
    back, _ = load_examples(str(tmp_path / "o.csv"))
    assert [e.desirable for e in back] == [True, False] and back[0].completion == " Yo"


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".json", ".csv", ".parquet"])
def test_every_output_file_type_reads_back(tmp_path, suffix):
    rows = [{"prompt": f"q{i}", "completion": f" a{i}", "label": i % 3 == 0} for i in range(6)]
    src = write(tmp_path / "u.jsonl", rows)
    out = tmp_path / f"o{suffix}"
    convert(str(src), str(out), "unpaired")
    back, report = load_examples(str(out))
    assert report.schema == "unpaired"
    assert [(e.prompt, e.completion, e.desirable) for e in back] == [(r["prompt"], r["completion"], r["label"]) for r in rows]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging file left


@pytest.mark.parametrize("dest,problem", [("missing/o.jsonl", "the folder"), ("folder", "is a folder"),
                                          ("o.txt", "unknown output type")])
def test_bad_destinations_are_refused_before_reading(tmp_path, capsys, dest, problem):
    (tmp_path / "folder").mkdir()
    src = tmp_path / "absent.jsonl"  # never read: the destination is checked first
    assert main(["data", "convert", str(src), str(tmp_path / dest), "--to", "unpaired", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kto: error: {tmp_path / dest}: ") and problem in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_parquet_with_text_and_messages_mixed_is_one_line_and_writes_nothing(tmp_path, capsys):
    chat = {"prompt": [{"role": "user", "content": "Hi"}], "completion": " Yo", "label": True}
    src = write(tmp_path / "c.jsonl", [{"prompt": "Hi", "completion": " Yo", "label": False}, chat])
    out = tmp_path / "o.parquet"
    assert main(["data", "convert", str(src), str(out), "--to", "unpaired"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kto: error: {out}: parquet needs one type per column") and "--text plain" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl"]
    assert main(["data", "convert", str(src), str(out), "--to", "unpaired", "--text", "plain"]) == 0
    assert len(load_examples(str(out))[0]) == 2


def test_nothing_to_write_is_an_error(tmp_path, capsys):
    src = write(tmp_path / "u.jsonl", [{"prompt": "q", "completion": " a", "label": True},
                                       {"prompt": "r", "completion": " b", "label": False}])
    assert main(["data", "convert", str(src), str(tmp_path / "o.jsonl"), "--to", "paired"]) == 2
    err = capsys.readouterr().err
    assert "nothing to write: no paired row can be made from its 2 example(s)" in err
    assert "dropped 2: examples with no partner of the other label under the same prompt" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_malformed_ranks_name_the_reply(tmp_path, capsys):
    tree = {"message_tree_id": "t", "prompt": {"role": "prompter", "text": "hi", "replies": [
        {"role": "assistant", "text": "a", "rank": 0, "message_id": "aaaaaaaa1"},
        {"role": "assistant", "text": "b", "rank": "first", "message_id": "bbbbbbbb2"}]}}
    src = write(tmp_path / "t.jsonl", [tree])
    assert main(["data", "convert", str(src), str(tmp_path / "o.jsonl"), "--to", "paired", "--oasst", "ranks"]) == 2
    assert f"{src}:1 (reply bbbbbbbb): rank 'first' is not a whole number" in capsys.readouterr().err
