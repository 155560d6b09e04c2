"""Latent maps: where the VAE puts demonstrations, projected to 2-D (`lwd latents RUN --data DEMOS --out PNG`).

Each demonstration's segments (every `stride`-th step, H steps each) are encoded to their
posterior means and projected with PCA (NumPy's SVD) and, when scikit-learn is installed, t-SNE.
Points are coloured by the demonstrator's style on data with several (`lwd demos --styles`: the
paper's figure, latents clustering by demonstrator), else by task on multitask data, else by what
the segment does: the direction (angle) in which its actions' first two components move over its
H steps, e.g. on PushT (actions are target positions) which way the pusher travels.

A map can mislead (t-SNE makes clusters of anything), so a categorical colouring (style or task)
also gets a number: how well the full latent, not its projection, tells the labels apart
(`label_separability`: the k-nearest-neighbour vote of each segment among *other episodes'*
segments, so an episode's own neighbouring segments cannot vouch for it), against chance.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from lwd.checkpoint import load_model
from lwd.data import Episodes
from lwd.data.keys import ACTION, STYLE, TASK
from lwd.methods.base import weight_generator_of


def encode_segments(model: Any, episodes: Episodes, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior means (N, Dz) of segments starting every `stride` steps, each one's episode (N,)
    and first step (N,). The model's `WeightGenerator` encodes them (others are refused)."""
    generator = weight_generator_of(model)
    dataset = generator.segments(episodes)
    anchors = np.concatenate([np.arange(s, s + n, stride) for s, n in zip(episodes.episode_starts, episodes.lengths)])
    means = [generator.encode(dataset.sample_batch(chunk)).numpy()
             for chunk in np.array_split(anchors, max(1, len(anchors) // 512))]
    return np.concatenate(means), dataset.anchor_episodes[anchors], anchors


def label_separability(z: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 5) -> dict[str, Any]:
    """How well latents z (N, D) tell categorical `labels` (N,) apart: each point's label is voted by
    its k nearest neighbours (Euclidean) among points of *other* groups (episodes), so segments of
    the same episode, near each other whatever the label, cannot vote for one another.

    Returns `knn_accuracy` (share voted right), `balanced_accuracy` (mean of the per-label recalls,
    `recall`), and `chance`: the accuracy of always voting the commonest label (`balanced_chance`
    is 1 / number of labels). Ties go to the label of the nearer neighbour."""
    z, labels, groups = np.asarray(z, np.float64), np.asarray(labels), np.asarray(groups)
    if not len(z) == len(labels) == len(groups):
        raise ValueError(f"z, labels and groups must have one row per point; got {len(z)}, {len(labels)}, {len(groups)}")
    names, y = np.unique(labels, return_inverse=True)
    squared = (z**2).sum(1)
    dist = squared[:, None] + squared[None, :] - 2 * z @ z.T  # (N, N) squared distances
    dist[groups[:, None] == groups[None, :]] = np.inf  # never a neighbour from the same episode
    votes = np.empty(len(z), np.int64)
    for i in range(len(z)):
        near = np.argsort(dist[i], kind="stable")[:k]
        near = near[np.isfinite(dist[i, near])]
        if not len(near):
            votes[i] = -1
            continue
        counts = np.bincount(y[near], minlength=len(names))
        top = np.flatnonzero(counts == counts.max())
        votes[i] = next(int(y[j]) for j in near if y[j] in top)  # a tie goes to the nearer neighbour's label
    recall = {str(name): float(np.mean(votes[y == c] == c)) for c, name in enumerate(names)}
    return {"k": k, "points": int(len(z)), "knn_accuracy": float(np.mean(votes == y)),
            "balanced_accuracy": float(np.mean(list(recall.values()))), "recall": recall,
            "chance": float(np.bincount(y).max() / len(y)), "balanced_chance": 1.0 / len(names)}


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates on the first two principal components, and the variance fraction each explains."""
    centred = x - x.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    explained = s**2 / max(float((s**2).sum()), 1e-12)
    return centred @ vt[:2].T, explained[:2]


def latent_map(run_dir: str | Path, data: str | Path, out: str | Path, stride: int | None = None,
               max_points: int = 3000, seed: int = 0) -> dict[str, Any]:
    """Write the PNG; returns what was plotted (counts, explained variance, projections used)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = load_model(run_dir).eval()
    horizon = weight_generator_of(model).horizon
    episodes = Episodes.load(data)
    stride = stride or horizon
    z, episode_of, anchors = encode_segments(model, episodes, stride)
    rng = np.random.default_rng(seed)
    if len(z) > max_points:
        keep = np.sort(rng.choice(len(z), max_points, replace=False))
        z, episode_of, anchors = z[keep], episode_of[keep], anchors[keep]
    names = list(episodes.attrs.get("tasks") or [])
    styles = list(episodes.attrs.get("styles") or [])
    separability = None
    if STYLE in episodes.data and len(styles) > 1:  # the demonstrator's style, recorded per step
        colour, label, cmap, names = np.asarray(episodes.data[STYLE])[anchors], "style", "tab10", styles
    elif TASK in episodes.data and len(names) > 1:
        colour, label, cmap = episodes.episode_tasks()[episode_of], "task", "tab10"
    else:  # one task: the direction the segment's actions move in (first two components)
        h, ends = horizon, np.asarray(episodes.episode_starts) + np.asarray(episodes.lengths)
        actions = np.asarray(episodes.data[ACTION][:, :2])
        last = np.minimum(anchors + h, ends[episode_of]) - 1
        move = actions[last] - actions[anchors]
        colour, label, cmap = np.degrees(np.arctan2(move[:, 1], move[:, 0])), "segment's direction of motion (deg)", "twilight"
    if label in ("style", "task"):
        separability = label_separability(z, np.asarray([names[int(c)] for c in colour]), episode_of)
    panels = [("PCA", *pca_2d(z))]
    if importlib.util.find_spec("sklearn") is not None and len(z) > 5:
        from sklearn.manifold import TSNE

        coords = TSNE(2, perplexity=min(30.0, (len(z) - 1) / 3), random_state=seed, init="pca").fit_transform(z)
        panels.append(("t-SNE", coords, None))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
    for ax, (title, coords, explained) in zip(axes[0], panels):
        if label in ("style", "task"):  # categories: each id its own tab10 colour, as in the legend
            points = ax.scatter(coords[:, 0], coords[:, 1], c=plt.get_cmap(cmap)(np.asarray(colour, int) % 10), s=6, alpha=0.8)
        else:
            points = ax.scatter(coords[:, 0], coords[:, 1], c=colour, cmap=cmap, s=6, alpha=0.8)
        if explained is not None:
            title += f" ({explained[0]:.0%} + {explained[1]:.0%} of variance)"
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if label in ("style", "task") and names:
        handles = [plt.Line2D([], [], marker="o", ls="", color=plt.get_cmap(cmap)(i % 10), label=n) for i, n in enumerate(names)]
        axes[0][-1].legend(handles=handles, fontsize=7, loc="best", markerscale=1.2)
    else:
        fig.colorbar(points, ax=axes[0].tolist(), label=label)
    title = f"{model.name} posterior means, {len(z)} segments of {episodes.num_episodes} demos"
    if separability is not None:
        title += (f"\n{label} from the latent, {separability['k']}-NN across episodes: {separability['knn_accuracy']:.2f} "
                  f"(balanced {separability['balanced_accuracy']:.2f}; chance {separability['chance']:.2f} / "
                  f"{separability['balanced_chance']:.2f})")
    fig.suptitle(title, fontsize=10, y=1.02 if separability is not None else 0.98)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return {"png": str(out), "points": int(len(z)), "coloured_by": label, "projections": [p[0] for p in panels],
            "pca_explained": [float(v) for v in panels[0][2]], "separability": separability}
