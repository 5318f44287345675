"""Mistakes a user makes on the command line and in config files: each gets one line
(no traceback), a non-zero exit, and nothing written or destroyed."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import write_feedback
from kto.cli import main
from kto.config import TrainConfig
from kto.errors import KTOError

FAST = ["--max-length", "64", "--max-prompt-length", "32", "--eval-fraction", "0", "--no-progress"]


def run(capsys, *argv):
    """(exit code, stderr) of `kto argv`, argparse's SystemExit included."""
    try:
        rc = main(list(argv))
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip() and not x.startswith("kto: warning")]
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_flag_is_one_line_with_a_suggestion(capsys):
    rc, err = run(capsys, "train", "--bacth-size", "4")
    assert rc == 2
    assert one_line(err) == ("kto: error: unrecognized arguments: --bacth-size 4; did you mean --batch-size? "
                             "(see kto train --help)")


def test_bad_columns_flag_is_one_line(capsys):
    rc, err = run(capsys, "train", "--columns", "prompt")
    assert rc == 2 and "expected ours=theirs" in one_line(err) and "--columns" in err


def test_data_is_required(tmp_path, capsys):
    rc, err = run(capsys, "train", "--output", str(tmp_path / "x"))
    assert rc == 2 and one_line(err).startswith("kto: error: --data is required")


def test_a_missing_file_with_any_extension_is_a_missing_file(tmp_path, capsys):
    rc, err = run(capsys, "train", "--data", "feedback.txt", "--output", str(tmp_path / "x"))
    assert rc == 2 and one_line(err) == "kto: error: feedback.txt: file does not exist"


@pytest.mark.parametrize("flag", ["--model", "--ref-model"])
def test_a_missing_model_folder(tmp_path, capsys, flag):
    data = write_feedback(tmp_path / "fb.jsonl", n=8)
    rc, err = run(capsys, "train", "--data", str(data), "--output", str(tmp_path / "x"), flag, "./no/such/dir", *FAST)
    assert rc == 2 and one_line(err) == "kto: error: ./no/such/dir: no such model folder"
    assert not (tmp_path / "x").exists()


def test_a_column_mapping_that_names_no_column(tmp_path, capsys):
    data = write_feedback(tmp_path / "fb.jsonl", n=8)
    rc, err = run(capsys, "train", "--data", str(data), "--output", str(tmp_path / "x"), "--columns", "prompt=question")
    assert rc == 2
    assert one_line(err).startswith(f"kto: error: {data}:1: --columns prompt=question: no such column")


@pytest.mark.parametrize("field,value", [("lr", -1.0), ("lr", 0.0), ("weight_decay", -1.0), ("logging_steps", 0),
                                         ("lora_r", -1), ("lora_alpha", 0), ("z0_ema_decay", 2.0),
                                         ("warmup_ratio", 2.0), ("max_grad_norm", -1.0)])
def test_numbers_out_of_range_are_refused(field, value):
    with pytest.raises(KTOError, match=f"config: .*{field}"):
        TrainConfig(**{field: value})


def _config(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_yaml_numbers_without_a_dot_are_numbers(tmp_path):
    """YAML 1.1 reads 1e-4 as a string; the config takes it as the float it means."""
    from kto.cli import build_parser
    from kto.config import config_from_args

    path = _config(tmp_path, "lr: 1e-4\nbeta: 1e-1\nmax_steps: 10.0\nprogress: 'false'\ncolumns: prompt=q\n")
    cfg = config_from_args(build_parser().parse_args(["train", "--config", str(path)]))
    assert (cfg.lr, cfg.beta, cfg.max_steps, cfg.progress, cfg.columns) == (1e-4, 0.1, 10, False, {"prompt": "q"})


@pytest.mark.parametrize("text,problem", [("max_steps: abc\n", "c.yaml: max_steps: expected int, got 'abc'"),
                                          ("max_steps: 2.5\n", "c.yaml: max_steps: expected int, got 2.5"),
                                          ("lr: [1]\n", "c.yaml: lr: expected float, got [1]"),
                                          ("lr: 1\nbeta: : 2\n", "c.yaml:2: not valid YAML"),
                                          ("- lr\n", "c.yaml: expected a mapping")])
def test_bad_yaml_values_are_one_line(tmp_path, capsys, text, problem):
    path = _config(tmp_path, text)
    rc, err = run(capsys, "train", "--config", str(path), "--output", str(tmp_path / "x"))
    assert rc == 2 and problem in one_line(err)


def test_output_cannot_be_the_current_folder(tmp_path, capsys, monkeypatch):
    data = write_feedback(tmp_path / "fb.jsonl", n=8)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for output in (".", ".."):
        rc, err = run(capsys, "train", "--data", str(data), "--output", output, "--overwrite", *FAST)
        assert rc == 2 and "cannot be the current folder" in one_line(err)
    assert list(here.iterdir()) == []


def test_report_refuses_what_is_not_a_run(tmp_path, capsys):
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "demo.json").write_text("{}")
    (demo / "report.md").write_text("the demo's report")
    for path, problem in [(demo, "not a kto train run folder"), (tmp_path / "nothing", "not a kto train run folder")]:
        rc, err = run(capsys, "report", str(path))
        assert rc == 2 and problem in one_line(err)
    assert "train/ subfolder" in run(capsys, "report", str(demo))[1]
    assert (demo / "report.md").read_text() == "the demo's report"


def test_run_report_is_titled_with_the_final_folder(tmp_path):
    data = write_feedback(tmp_path / "fb.jsonl", n=8)
    assert main(["train", "--data", str(data), "--output", str(tmp_path / "myrun"), "--max-steps", "1",
                 "--batch-size", "4", *FAST]) == 0
    assert (tmp_path / "myrun" / "report.md").read_text().startswith("# KTO run report: myrun\n")


def test_sigterm_removes_the_staging_folder(tmp_path):
    data = write_feedback(tmp_path / "fb.jsonl", n=64)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "kto.cli", "train", "--data", str(data), "--output", str(out),
                             "--max-steps", "100000", "--batch-size", "4", *FAST],
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".run.partial-*/metrics.jsonl")) and time.time() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob(".run.partial-*")), "the run never started"
    time.sleep(1)  # well inside the loop
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "kto: interrupted" in err and "Traceback" not in err
    assert not list(tmp_path.glob(".run*")) and not out.exists()


def test_warnings_are_one_line_on_stderr(tmp_path):
    """As a user sees them: a process of its own (pytest records warnings instead of printing them)."""
    data = tmp_path / "fb.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": " a", "label": i < 2}) + "\n" for i in range(10)))
    r = subprocess.run([sys.executable, "-m", "kto.cli", "train", "--data", str(data), "--output", str(tmp_path / "x"),
                        "--max-steps", "1", "--batch-size", "4", *FAST],
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    warned = [x for x in r.stderr.splitlines() if "λ_D·n_D/(λ_U·n_U)" in x]
    assert warned == [x for x in warned if x.startswith("kto: warning: λ_D·n_D/(λ_U·n_U) = 1·2/(1·8)")] and len(warned) == 1
    assert "UserWarning" not in r.stderr and "[kto] warning" not in r.stdout
