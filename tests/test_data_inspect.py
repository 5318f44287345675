"""`kto data inspect` and `kto data validate` on the real files and on small synthetic sets."""
import json

import pytest

from conftest import shared_file
from kto.cli import main
from kto.data.inspect import duplicate_stats, inspect_examples, label_stats, token_stats
from kto.data.records import Example
from kto.data.validate import check_file
from kto.models import tiny_tokenizer

# file, schema, examples, desirable, undesirable (from the data README, after the drops below)
REAL = [
    ("hh-rlhf/harmless-base-test.jsonl.gz", "hh", 4606, 2303, 2303),
    ("oasst/en_100_tree.jsonl", "oasst_tree", 430, 334, 96),
    ("llmbar/natural.json", "llmbar", 200, 100, 100),
]


@pytest.mark.parametrize("rel,schema,n,n_d,n_u", REAL)
def test_inspect_real_files(rel, schema, n, n_d, n_u, capsys):
    path = shared_file(rel)
    assert main(["data", "inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["schema"], info["examples"]) == (schema, n)
    assert (info["labels"]["desirable"], info["labels"]["undesirable"]) == (n_d, n_u)
    tokens = info["tokens"]
    assert tokens["prompt"]["p50"] <= tokens["prompt"]["p90"] <= tokens["prompt"]["p99"] <= tokens["prompt"]["max"]
    assert 0 < tokens["limits"]["completion_cut"] < n and tokens["limits"]["dropped"] == 0
    assert info["duplicates"]["prompts_with_both_labels"] > 0
    assert main(["data", "inspect", str(path), "--no-tokens"]) == 0  # the text form prints too
    text = capsys.readouterr().out
    assert f"{n_d} desirable / {n_u} undesirable" in text and f"schema      {schema}" in text


def test_inspect_oasst_suggests_the_band_rule_weights(capsys):
    path = shared_file("oasst/en_100_tree.jsonl")
    assert main(["data", "inspect", str(path), "--json", "--no-tokens"]) == 0
    rule = json.loads(capsys.readouterr().out)["labels"]["band_rule"]
    # 334 desirable : 96 undesirable -> raise λ_U to 334/96 (ratio 1), anywhere down to ratio 4/3
    assert rule["undesirable_weight"] == pytest.approx(334 / 96, abs=1e-3) and rule["desirable_weight"] == 1
    assert rule["raise"] == "λ_U" and rule["range"] == pytest.approx([334 / 96 / (4 / 3), 334 / 96], abs=1e-3)


def test_validate_real_files(capsys):
    """HH holds 9 pairs training drops (5 prompts differ, 4 empty replies): validate lists each."""
    hh = shared_file("hh-rlhf/harmless-base-test.jsonl.gz")
    assert main(["data", "validate", str(hh)]) == 2
    err = capsys.readouterr().err
    assert err.count("prompts differ") == 5 and err.count("reply is empty") == 4
    assert f"{hh}:1255: paired row whose chosen and rejected prompts differ" in err
    for rel in ("oasst/en_100_tree.jsonl", "llmbar/natural.json"):
        assert main(["data", "validate", str(shared_file(rel))]) == 0
    out, err = capsys.readouterr()
    assert "outside the paper's band" in err  # OASST is imbalanced 3.5 : 1


def ex(prompt, completion, desirable):
    return Example(prompt, completion, desirable, "f:1")


def test_label_stats_band_rule():
    s = label_stats([ex("p", "a", True)] + [ex("p", "b", False)] * 10)
    assert s["band_rule"]["desirable_weight"] == 10 and s["band_rule"]["range"] == pytest.approx([10, 40 / 3], abs=1e-3)
    assert "note" in label_stats([ex("p", "a", True)] * 3)["band_rule"]
    balanced = label_stats([ex("p", "a", True), ex("p", "b", False)])["band_rule"]  # λ_D in [1, 4/3], λ_U = 1
    assert balanced["raise"] == "λ_D" and balanced["range"] == pytest.approx([1, 4 / 3], abs=1e-3)


def test_duplicates_and_prompts_with_both_labels():
    data = [ex("p", "a", True), ex("p", "a", True), ex("p", "a", False), ex("q", "b", True), ex("r", "c", False),
            ex("", "d", True)]
    d = duplicate_stats(data)
    assert d["duplicate_examples"] == 1 and d["same_text_both_labels"] == 1
    assert (d["distinct_prompts"], d["prompts_with_both_labels"]) == (4, 1)
    assert (d["prompts_desirable_only"], d["prompts_undesirable_only"], d["empty_prompts"]) == (2, 1, 1)


def test_token_lengths_and_limits_with_the_byte_tokenizer():
    """tiny is byte-level: a text prompt is BOS + its bytes, a completion its bytes + EOS."""
    data = [ex("abcd", " xy", True), ex("a" * 30, " " + "z" * 20, False), ex("ab", " " + "w" * 40, True)]
    s = token_stats(data, tiny_tokenizer(), max_length=24, max_prompt_length=8)
    assert s["prompt"]["min"] == 3 and s["prompt"]["max"] == 31
    assert s["completion"]["min"] == 4 and s["completion"]["max"] == 42
    assert s["limits"] == {"max_length": 24, "max_prompt_length": 8, "prompt_cut": 1, "completion_cut": 2, "dropped": 0}


def test_inspect_lists_problem_count_but_describes_the_good_rows(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([json.dumps({"prompt": "a", "completion": " b", "label": True}), "{bad",
                               json.dumps({"prompt": "a", "completion": " c", "label": 0})]) + "\n")
    info = inspect_examples(check_file(str(path), strict=False))
    assert info["problems"] == 1 and info["examples"] == 2 and info["labels"]["undesirable"] == 1
