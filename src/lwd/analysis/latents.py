"""Latent maps: where the VAE puts demonstrations, projected to 2-D (`lwd latents RUN --data DEMOS --out PNG`).

Each demonstration's segments (every `stride`-th step, H steps each) are encoded to their
posterior means and projected with PCA (NumPy's SVD) and, when scikit-learn is installed, t-SNE.
Points are coloured by task on multitask data; on one task by what the segment does: the
direction (angle) in which its actions' first two components move over its H steps, e.g. on PushT
(actions are target positions) which way the pusher travels during the segment.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from lwd.checkpoint import load_model
from lwd.data import Episodes
from lwd.data.keys import ACTION, TASK
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
    if TASK in episodes.data and len(names) > 1:
        tasks = episodes.episode_tasks()[episode_of]
        colour, label, cmap = tasks, "task", "tab10"
    else:  # one task: the direction the segment's actions move in (first two components)
        h, ends = horizon, np.asarray(episodes.episode_starts) + np.asarray(episodes.lengths)
        actions = np.asarray(episodes.data[ACTION][:, :2])
        last = np.minimum(anchors + h, ends[episode_of]) - 1
        move = actions[last] - actions[anchors]
        colour, label, cmap = np.degrees(np.arctan2(move[:, 1], move[:, 0])), "segment's direction of motion (deg)", "twilight"
    panels = [("PCA", *pca_2d(z))]
    if importlib.util.find_spec("sklearn") is not None and len(z) > 5:
        from sklearn.manifold import TSNE

        coords = TSNE(2, perplexity=min(30.0, (len(z) - 1) / 3), random_state=seed, init="pca").fit_transform(z)
        panels.append(("t-SNE", coords, None))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
    for ax, (title, coords, explained) in zip(axes[0], panels):
        points = ax.scatter(coords[:, 0], coords[:, 1], c=colour, cmap=cmap, s=6, alpha=0.8)
        if explained is not None:
            title += f" ({explained[0]:.0%} + {explained[1]:.0%} of variance)"
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if label == "task" and names:
        handles = [plt.Line2D([], [], marker="o", ls="", color=plt.get_cmap(cmap)(i % 10), label=n) for i, n in enumerate(names)]
        axes[0][-1].legend(handles=handles, fontsize=7, loc="best", markerscale=1.2)
    else:
        fig.colorbar(points, ax=axes[0].tolist(), label=label)
    fig.suptitle(f"{model.name} posterior means, {len(z)} segments of {episodes.num_episodes} demos", fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return {"png": str(out), "points": int(len(z)), "coloured_by": label, "projections": [p[0] for p in panels],
            "pca_explained": [float(v) for v in panels[0][2]]}
