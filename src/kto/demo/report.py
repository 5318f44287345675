"""The demo's report: accuracy before and after with intervals, sample generations, and
the training plots (loss, z0, rewards of both classes), in report.md beside the PNGs."""
from __future__ import annotations

import json
from pathlib import Path

from ..report import plot_metrics, read_metrics
from .tasks import DESCRIPTIONS


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def plot_accuracy(summary: dict, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3.5))
    for i, when in enumerate(("before", "after")):
        acc, (lo, hi) = summary[when]["accuracy"], summary[when]["interval"]
        ax.bar(i, acc, color=("#999999", "#3070b0")[i])
        ax.errorbar(i, acc, yerr=[[acc - lo], [hi - acc]], color="black", capsize=6)
    ax.set_xticks([0, 1], ["before", "after KTO"])
    ax.set_ylabel("held-out accuracy (greedy)")
    ax.set_ylim(0, 1)
    ax.set_title("accuracy, 90% Wilson intervals")
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=100)
    plt.close(fig)
    return "accuracy.png"


def _samples(path: Path, k: int) -> list[dict]:
    """Up to k held-out generations of each kind: fixed by training, broken, and unchanged."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    fixed = [r for r in rows if r["after_correct"] and not r["before_correct"]]
    broken = [r for r in rows if r["before_correct"] and not r["after_correct"]]
    same = [r for r in rows if r["before_correct"] == r["after_correct"]]
    return fixed[:k] + broken[: max(1, k // 3)] + same[: max(1, k // 3)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "⏎ ").strip() or "(empty)"


def write_demo_report(run: Path, summary: dict, n_samples: int = 6) -> Path:
    run = Path(run)
    train_dir = run / "train"
    rows = read_metrics(train_dir)
    plots = [plot_accuracy(summary, run)] + (plot_metrics(rows, run) if rows else [])
    b, a, d, fb = summary["before"], summary["after"], summary["difference"], summary["feedback"]
    lo, hi = d["interval"]
    lines = [
        f"# kto demo: {summary['model']} aligned with KTO on its own binary feedback", "",
        f"Task `{summary['task']}`: {DESCRIPTIONS[summary['task']]} (checked by a program). "
        f"{summary['held_out']} held-out questions, never trained on (disjoint operands); "
        f"{summary['train_questions']} training questions; seed {summary['seed']}.",
        "", "## Held-out accuracy (greedy)", "",
        "| | accuracy | 90% interval (Wilson) | replies finished | mean reply tokens |", "| --- | --- | --- | --- | --- |",
        f"| before | {_pct(b['accuracy'])} | {_pct(b['interval'][0])} – {_pct(b['interval'][1])} | {_pct(b['finished'])} | {b['mean_tokens']:.1f} |",
        f"| after KTO | {_pct(a['accuracy'])} | {_pct(a['interval'][0])} – {_pct(a['interval'][1])} | {_pct(a['finished'])} | {a['mean_tokens']:.1f} |",
        "",
        f"Difference: **{100 * d['value']:+.1f} points**, 90% interval {100 * lo:+.1f} to {100 * hi:+.1f} "
        f"(paired over the same questions; {d['fixed']} fixed, {d['broken']} broken). "
        + ("The interval excludes zero." if lo > 0 or hi < 0 else "The interval includes zero: no reliable change."),
        "",
        "A reply is correct when the model finished it within the length limit and the task's checker accepts it.",
    ]
    if "names_one" in b:
        def right(x):
            return "–" if x["right_when_one"] is None else _pct(x["right_when_one"])

        lines += [
            "", "What changed, format apart from choice:", "",
            "| | replies naming exactly one of the two numbers | correct among those |", "| --- | --- | --- |",
            f"| before | {_pct(b['names_one'])} | {right(b)} |",
            f"| after KTO | {_pct(a['names_one'])} | {right(a)} |", "",
            "Picking one number at random would be right half the time: a gain that comes with ‘correct among "
            "those’ near 50% is the model learning to answer with one number, not learning to compare.",
        ]
    lines += [
        "", "## Feedback", "",
        f"{fb['replies']} distinct sampled replies to the training questions, labelled by the checker: "
        f"{fb['desirable']} desirable, {fb['undesirable']} undesirable (kept as they came; the class weights "
        "follow the paper's band rule, `--weights auto`). The file is `feedback.jsonl`; the KTO run is in `train/` "
        "(its model, config, metrics and report).", "",
        "## Sample generations (held out)", "",
        "| question | answer | before | after |", "| --- | --- | --- | --- |",
    ]
    for r in _samples(run / "generations.jsonl", n_samples):
        mark = {True: "✓", False: "✗"}
        lines.append(f"| {_cell(r['prompt'])} | {r['answer']} | {mark[r['before_correct']]} {_cell(r['before'])} "
                     f"| {mark[r['after_correct']]} {_cell(r['after'])} |")
    lines += ["", "All held-out generations: `generations.jsonl`.", "", "## Plots", ""]
    lines += [f"![{p[:-4]}]({p})" for p in plots]
    secs = summary.get("seconds", {})
    if secs:
        lines += ["", "## Time", "", "| phase | seconds |", "| --- | --- |"]
        lines += [f"| {k} | {v:.0f} |" for k, v in secs.items()]
    path = run / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
