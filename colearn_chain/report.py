"""Results of a run as files people read: results.json, plot.png (colearn's layout) and summary.md.

Everything is drawn from the results dict that `colearn-chain run` assembles from the chain's events
and the agents' own evaluation logs, so the files never disagree with each other.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .extras import require
from .text import printable

matplotlib = require("matplotlib", "colearn-chain run's report (plot.png)")
matplotlib.use("Agg")  # files only, no display
plt = require("matplotlib.pyplot", "colearn-chain run's report (plot.png)")
Rectangle = require("matplotlib.patches", "colearn-chain run's report (plot.png)").Rectangle

OUTCOME_MARK = {"accepted": "A", "rejected": "R", "skipped": "S", "open": "?"}
DPI = 110
#: The figure grows with the run up to here (inches at ``DPI``: about 2,600 x 1,700 px), so a run of
#: thousands of epochs or a hundred members still makes a readable file of bounded size.
MAX_WIDTH, MAX_HEIGHT = 24.0, 15.0
#: Beyond this many epochs the per-epoch outcome letters and proposer outlines would overlap: left out.
MAX_MARKED_EPOCHS = 60


def write_json(results: dict[str, Any], out_dir: Path) -> Path:
    path = out_dir / "results.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    return path


def _score_matrix(results: dict[str, Any], key: str) -> np.ndarray:
    """epochs x learners matrix of a per-learner score (NaN where a learner has none)."""
    epochs = results["epochs"]
    n = len(results["learners"])
    matrix = np.full((len(epochs), n), np.nan)
    for row, epoch in enumerate(epochs):
        for vote in epoch["votes"]:
            if vote.get(key) is not None:
                matrix[row, vote["learner"]] = vote[key]
    return matrix


def plot(results: dict[str, Any], out_dir: Path) -> Path:
    """colearn's plot: per-learner test and vote scores per epoch with their means above, the vote grid
    below (green approve, red reject, grey missing; the proposer's cell outlined)."""
    epochs = results["epochs"]
    n = len(results["learners"])
    x = np.arange(len(epochs))
    test = _score_matrix(results, "test_score")
    vote = _score_matrix(results, "vote_score")

    width = min(MAX_WIDTH, max(8.0, len(epochs) * 0.45))
    height = min(MAX_HEIGHT, 7.5 + max(0, n - 12) * 0.08)
    fig, (ax_scores, ax_votes) = plt.subplots(
        2, 1, figsize=(width, height), sharex=True,
        gridspec_kw={"height_ratios": [3, min(4.0, max(1.2, n * 0.35))]},
    )
    for i in range(n):
        ax_scores.plot(x, test[:, i], color="tab:blue", alpha=0.25, linewidth=1)
        ax_scores.plot(x, vote[:, i], color="tab:orange", alpha=0.25, linewidth=1, linestyle="--")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # epochs where nobody scored (skipped) are gaps
        ax_scores.plot(x, np.nanmean(test, axis=1), color="tab:blue", linewidth=2.5,
                       label="proposal: mean local test score")
        ax_scores.plot(x, np.nanmean(vote, axis=1), color="tab:orange", linewidth=2.5, linestyle="--",
                       label="proposal: mean vote score")
    # The horizontal lines are on the global held-out test set, not the learners' local test splits.
    lines = (
        (results.get("final", {}).get("test_accuracy_mean"), "-", "collective, final (global test)"),
        (results.get("baselines", {}).get("centralized"), ":", "centralized (global test)"),
        (results.get("baselines", {}).get("solo_mean"), "-.", "solo mean (global test)"),
    )
    for value, style, label in lines:
        if value is not None:
            ax_scores.axhline(value, color="grey", linestyle=style, linewidth=1.2, label=label)
    ax_scores.set_ylabel("score (accuracy)")
    ax_scores.set_title(f"{_describe(results['config'])} · threshold {results['config'].get('threshold', '')}")
    ax_scores.grid(alpha=0.3)
    ax_scores.legend(loc="lower right", fontsize=8)

    grid = np.full((n, len(epochs)), 0.5)
    for col, epoch in enumerate(epochs):
        for v in epoch["votes"]:
            if v.get("approve") is not None:
                grid[v["learner"], col] = 1.0 if v["approve"] else 0.0
    cmap = matplotlib.colors.ListedColormap(["#d9534f", "#cccccc", "#5cb85c"])
    ax_votes.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest",
                    extent=(-0.5, len(epochs) - 0.5, n - 0.5, -0.5))
    marked = len(epochs) <= MAX_MARKED_EPOCHS
    for col, epoch in enumerate(epochs if marked else ()):
        ax_votes.add_patch(Rectangle((col - 0.5, epoch["proposer"] - 0.5), 1, 1, fill=False,
                                     edgecolor="black", linewidth=2))
        ax_votes.text(col, -0.9, OUTCOME_MARK.get(epoch["outcome"], "?"), ha="center", va="bottom", fontsize=8)
    rows = range(0, n, max(1, -(-n // 25)))  # at most 25 labels: a hundred would overlap
    ax_votes.set_yticks(list(rows))
    ax_votes.set_yticklabels([f"learner {i}" for i in rows], fontsize=8)
    ax_votes.set_xlabel("epoch (A accepted, R rejected, S skipped; outlined: proposer)" if marked
                        else "epoch (outcomes and proposers: summary.md and results.json)")
    ax_votes.set_ylim(n - 0.5, -1.4)
    ax_votes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    path = out_dir / "plot.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _describe(config: dict[str, Any]) -> str:
    learner = config.get("learner_config", {})
    n = learner.get("n_learners", config.get("learners"))
    if learner.get("kind") == "toy":
        return f"{n} toy learners"
    if "dataset" not in learner:
        return f"{n} learners · {learner.get('kind')}"
    if learner.get("data") is not None:
        return f"{n} learners · own data ({learner.get('data')}) · {learner.get('model')}"
    split = learner.get("split", "")
    if split == "dirichlet":
        split = f"dirichlet alpha={learner.get('alpha')}"
    return f"{n} learners · {learner.get('dataset')} ({split}) · {learner.get('model')}"


def _fmt(value: Any) -> str:
    """A value for summary.md: escaped (no control characters, no table-breaking ``|``), floats rounded."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return printable(value).replace("|", "\\|")


def summary(results: dict[str, Any], out_dir: Path) -> Path:
    """A short markdown report: outcome table, final accuracy against the baselines, reference check."""
    cfg, final, base = results["config"], results["final"], results.get("baselines", {})
    epochs = results["epochs"]
    accepted = sum(e["outcome"] == "accepted" for e in epochs)
    lines = [
        "# colearn-chain run",
        "",
        (f"{_fmt(_describe(cfg))}, threshold {printable(cfg.get('threshold'))}, "
         f"{'colearn variant' if cfg.get('colearn_variant') else 'seed rule'}, seed {printable(cfg.get('seed'))}."),
        f"Contract {_fmt(results['chain']['contract'])} on chain {_fmt(results['chain']['chain_id'])}.",
        "",
        "| | global test accuracy (held-out split) | mean local test accuracy (each learner's test split) |",
        "|---|---|---|",
        (f"| collective (final shared model, mean over learners) | {_fmt(final.get('test_accuracy_mean'))} "
         f"| {_fmt(final.get('local_test_accuracy_mean'))} |"),
        f"| solo (each learner alone, same budget), mean | {_fmt(base.get('solo_mean'))} | - |",
        f"| centralized (pooled training data) | {_fmt(base.get('centralized'))} | - |",
        "",
        *([f"Solo, centralized and the global test accuracy are not computed: {_fmt(reason)}.", ""]
          if (reason := base.get("absent", {}).get("solo")) else []),
        ("The global test set is held out before the data is split: no learner trains, votes or tests on it. "
         "Each learner's local test split comes from its own share (skewed like its data); the epoch table "
         "reports the proposal's score there, averaged over the voters."),
        "",
        f"Accepted {accepted} of {len(epochs)} epochs.",
    ]
    reference = base.get("reference")
    if reference:
        lines += [
            (f"In-memory reference driver on the same learners: decisions match: "
            f"{reference.get('decisions_match')}, final weights match: {reference.get('weights_match')}."),
        ]
    lines += [
        "",
        "| epoch | proposer | outcome | approvals | rejections | proposal's mean local test score | gas |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in epochs:
        scores = [v["test_score"] for v in e["votes"] if v.get("test_score") is not None]
        gas = sum(t.get("gas") or 0 for t in e.get("transactions", []))
        mean = f"{np.mean(scores):.4f}" if scores else "-"
        lines.append(
            f"| {_fmt(e['epoch'])} | {_fmt(e['proposer'])} | {_fmt(e['outcome'])} | {_fmt(e['approvals'])} "
            f"| {_fmt(e['rejections'])} | {mean} | {gas:,} |"
        )
    lines += ["", "Files: `results.json` (every vote and transaction), `plot.png`."]
    path = out_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_all(results: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "results": write_json(results, out_dir), "plot": plot(results, out_dir), "summary": summary(results, out_dir)
    }
