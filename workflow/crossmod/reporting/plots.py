"""``python -m crossmod.reporting.plots``: the report's figures for one dataset.

- ``top3.png``: top-3 accuracy per task and method, mean over splits with the standard
  deviation as error bars, per setup, with the chance level;
- ``weights.png``: the weights OURS selected per task (mean over splits);
- ``style_map.png``: a 2-D t-SNE of STYLE embeddings of the users with the most
  annotations, coloured by user (like DEPER's Figure 4): points of one colour should
  gather if the style space captures who wrote or looked.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.manifold import TSNE

from crossmod.cli import ensure_parent, setup_logging
from crossmod.data.arrays import read_table
from crossmod.evaluation.ranking import TASKS
from crossmod.methods.registry import SETUPS, registry
from crossmod.reporting.tables import aggregate


def top3_figure(metrics: pd.DataFrame, dataset: str) -> plt.Figure:
    metrics = metrics[metrics["dataset"] == dataset]
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), sharey=True)
    # One colour per method in every panel (the registry's), whatever columns a setup has.
    methods_registry = registry()
    colours, labels = methods_registry.colours(), methods_registry.labels()
    for ax, setup in zip(axes, SETUPS, strict=True):
        methods = methods_registry.columns(setup)
        agg = aggregate(metrics, setup, methods).set_index(["task", "method"])
        width = 0.8 / len(methods)
        x = np.arange(len(TASKS))
        for k, method in enumerate(methods):
            means = [agg["top3"].get((t, method), np.nan) for t in TASKS]
            stds = [agg["top3_std"].get((t, method), np.nan) for t in TASKS]
            ax.bar(
                x + (k - len(methods) / 2 + 0.5) * width,
                means,
                width,
                yerr=stds,
                label=labels[method],
                capsize=2,
                color=colours[method],
            )
        ax.axhline(0.2, color="black", linestyle="--", linewidth=1, label="chance")
        ax.set_xticks(x, TASKS)
        ax.set_title(f"{dataset}: {setup} setup")
        ax.set_ylabel("top-3 accuracy (test)")
    axes[0].legend(loc="upper left", fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def plot_top3(metrics: pd.DataFrame, dataset: str, out: str) -> None:
    fig = top3_figure(metrics, dataset)
    fig.savefig(ensure_parent(out), dpi=100)
    plt.close(fig)


def plot_weights(weights: pd.DataFrame, dataset: str, out: str) -> None:
    weights = weights[weights["dataset"] == dataset]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    parts = ("b_style", "b_base", "b_content")
    for ax, setup in zip(axes, ("per-task", "joint"), strict=True):
        mean = weights[weights["setup"] == setup].groupby("task")[list(parts)].mean()
        mean = mean.reindex(TASKS)
        x = np.arange(len(TASKS))
        for k, part in enumerate(parts):
            ax.bar(x + (k - 1) * 0.27, mean[part], 0.27, label=part[2:])
        ax.set_xticks(x, TASKS)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{dataset}: weights chosen by OURS ({setup})")
    axes[0].set_ylabel("mean weight over splits")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ensure_parent(out), dpi=100)
    plt.close(fig)


def plot_style_map(
    embeddings: dict[str, str], features: str, out: str, n_users: int, seed: int
) -> None:
    """t-SNE of STYLE embeddings (one panel per given network=modality), coloured by user."""
    meta, _ = read_table(features)
    counts = meta["user"].value_counts(sort=False)
    users = counts.sort_values(ascending=False, kind="stable").index[:n_users]
    rows = np.flatnonzero(meta["user"].isin(users).to_numpy())
    colours = {u: plt.cm.tab10(i % 10) for i, u in enumerate(users)}
    fig, axes = plt.subplots(1, len(embeddings), figsize=(6 * len(embeddings), 5), squeeze=False)
    for ax, (label, path) in zip(axes[0], embeddings.items(), strict=True):
        network, modality = label.split(":")
        emb_meta, arrays = read_table(path)
        if not np.array_equal(emb_meta["annotation_id"], meta["annotation_id"]):
            raise ValueError(f"{path}: annotation order differs from {features}")
        points = TSNE(2, perplexity=min(30, len(rows) - 1), random_state=seed).fit_transform(
            arrays[modality][rows]
        )
        for user in users:
            mask = meta["user"].to_numpy()[rows] == user
            ax.scatter(*points[mask].T, s=12, color=colours[user], label=str(user))
        ax.set_title(f"{network}: {modality} embeddings, {n_users} users")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    fig.savefig(ensure_parent(out), dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--features", required=True)
    parser.add_argument("--style", nargs="*", default=[], help="network:modality=embeddings")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--top3", required=True)
    parser.add_argument("--weights-plot", required=True)
    parser.add_argument("--style-map", required=True)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    log = setup_logging()
    plot_top3(pd.read_csv(args.metrics), args.dataset, args.top3)
    plot_weights(pd.read_csv(args.weights), args.dataset, args.weights_plot)
    style = dict(item.split("=", 1) for item in args.style)
    if style:
        plot_style_map(style, args.features, args.style_map, args.users, args.seed)
    else:
        fig = plt.figure(figsize=(4, 1))
        fig.text(0.5, 0.5, "no STYLE network was trained", ha="center")
        fig.savefig(ensure_parent(args.style_map))
        plt.close(fig)
    log.info("wrote %s, %s, %s", args.top3, args.weights_plot, args.style_map)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
