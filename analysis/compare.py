"""compare.md and compare.png: the methods side by side (mean ± standard error over seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _cell(stat: dict | None, digits: int = 4) -> str:
    if not stat:
        return "-"
    return f"{stat['mean']:.{digits}g} ± {stat['se']:.2g}"


def render_markdown(result: dict) -> str:
    obj = result["objective"]
    better = "lower" if obj["direction"] == "minimize" else "higher"
    lines = [f"# compare: {result['task']}", "",
             f"Objective `{obj['metric']}` ({better} is better; selection on validation, `{obj['test_metric']}` of the "
             f"selected schedule reported). Budget {result['budget_steps']} steps per run "
             f"({result['budget_steps'] // result['horizon']} horizons of {result['horizon']}), "
             f"seeds 0..{result['seeds'] - 1}. Mean ± standard error over seeds.", "",
             "| method | best val | its test | steps used | wall s | seeds |", "|---|---|---|---|---|---|"]
    for key, m in result["methods"].items():
        lines.append(f"| {key} | {_cell(m.get('best_val'))} | {_cell(m.get('test'))} | "
                     f"{_cell(m.get('steps_used'), 5)} | {_cell(m.get('wall_s'), 3)} | {len(m['seeds'])} |")
    lines += ["", "Per seed (best val / test / run):", ""]
    for key, m in result["methods"].items():
        cells = [f"seed {r['seed']}: {r['best_val']:.4g} / {r['test']:.4g} (`{r['run']}`)" if r["best_val"] is not None
                 else f"seed {r['seed']}: no complete schedule (`{r['run']}`)" for r in m["seeds"]]
        lines.append(f"- {key}: " + "; ".join(cells))
    return "\n".join(lines) + "\n"


def best_so_far(curve: list, grid: np.ndarray) -> np.ndarray:
    """A run's best complete-schedule value as of each step of ``grid`` (NaN before its first)."""
    out = np.full(len(grid), np.nan)
    for steps, value in curve:
        if value is not None:
            out[grid >= steps] = value
    return out


def plot_compare(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, result["budget_steps"], 200)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=90)
    drawn = 0
    for key, m in result["methods"].items():
        runs = np.array([best_so_far(r["curve"], grid) for r in m["seeds"]])
        if not len(runs):
            continue
        seen = ~np.isnan(runs).any(axis=0)  # steps where every seed has a complete schedule
        if not seen.any():
            continue
        mean = runs[:, seen].mean(axis=0)
        se = runs[:, seen].std(axis=0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
        line, = ax.plot(grid[seen], mean, label=f"{key} (n={len(runs)})", lw=1.6)
        ax.fill_between(grid[seen], mean - se, mean + se, color=line.get_color(), alpha=0.2, lw=0)
        drawn += 1
    obj = result["objective"]
    ax.set_xlabel("training steps spent")
    ax.set_ylabel(f"best complete schedule's {obj['metric']}")
    ax.set_title(f"{result['task']}: best-so-far validation, mean ± se over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no method completed a schedule on every seed", ha="center", va="center",
                transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
