"""Plots and a Markdown report for a run folder (metrics.jsonl, eval.json)."""
from __future__ import annotations

import json
import math
from pathlib import Path


def read_metrics(run: Path) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def plot_metrics(rows: list[dict], out: Path) -> list[str]:
    """Loss, z0 and the rewards of both classes over steps, as PNGs. Returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {
        "loss.png": ("loss", [("loss", "loss")]),
        "z0.png": ("reference point z0", [("z0", "z0 (clamped)"), ("z0_raw", "estimate (unclamped)")]),
        "rewards.png": ("implied reward β·r", [("reward_desirable", "desirable"), ("reward_undesirable", "undesirable")]),
    }
    written = []
    for name, (title, series) in panels.items():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key, label in series:
            pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None and math.isfinite(r[key])]
            if pts:
                ax.plot(*zip(*pts), label=label, marker="." if len(pts) < 50 else None)
        ax.set_title(title)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(name)
    return written


def _fmt(v) -> str:
    return "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def write_report(run: Path, title: str | None = None) -> Path:
    """Write report.md and the plots in a `kto train` run folder. `title` defaults to the
    folder's name (the loop passes the final name: it writes from a staging folder)."""
    from .errors import KTOError

    run = Path(run)
    if not run.is_dir() or not ((run / "metrics.jsonl").exists() or (run / "eval.json").exists()):
        hint = " (a kto demo folder: its training run is the train/ subfolder)" if (run / "demo.json").exists() else ""
        raise KTOError(f"{run}: not a kto train run folder (no metrics.jsonl or eval.json){hint}")
    rows = read_metrics(run)
    plots = plot_metrics(rows, run) if rows else []
    evals = json.loads((run / "eval.json").read_text()) if (run / "eval.json").exists() else {}
    lines = [f"# KTO run report: {title or run.name}", ""]
    if rows:
        first, last = rows[0], rows[-1]
        lines += ["## Training", "", "| metric | first step | last step |", "| --- | --- | --- |"]
        for k in ("loss", "z0", "z0_raw", "reward_desirable", "reward_undesirable", "reward_margin", "grad_norm", "tokens_per_sec"):
            lines.append(f"| {k} | {_fmt(first.get(k))} | {_fmt(last.get(k))} |")
        lines += ["", f"{len(rows)} logged steps, last step {last['step']}.", ""]
    if any(evals.values()):
        lines += ["## Held-out evaluation", "", "| | loss | z0 | reward accuracy | examples |", "| --- | --- | --- | --- | --- |"]
        for when, e in evals.items():
            if e:
                lines.append(f"| {when} | {_fmt(e['loss'])} | {_fmt(e['z0'])} | {_fmt(e['reward_accuracy'])} | {e['examples']} |")
        lines += ["", "Reward accuracy: share of held-out examples whose β·(r − z0) has the sign of their label "
                      "(a tie, as at step 0 where policy = reference, counts as wrong).", ""]
    for p in plots:
        lines += [f"![{p[:-4]}]({p})", ""]
    path = run / "report.md"
    path.write_text("\n".join(lines))
    return path
