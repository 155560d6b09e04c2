"""How wrong is WARPD's world model, and does it know when? Open-loop error per rollout length on
one or more episode stores, with the ensemble's disagreement beside it.

    OMP_NUM_THREADS=1 python benchmarks/world_model_error.py runs/studies/warpd-<key> \\
        --data clean=data/studies/robomimic-lift-clean-....zarr,recovery=data/studies/robomimic-lift-recovery-....zarr \\
        --out benchmarks/results/world-model-error-lift.json

For every window of L+1 steps (starting every --stride steps of every episode), the model replays
the demonstrated actions from the window's first state and is compared with the demonstrated
state L steps later (MSE in the run's normalised units, the units of the assisted loss). A model
trained on clean demos and measured on demos with pushes and recoveries shows how far its
imagined rollouts can be trusted off the states it learnt from, which is where WARPD's assisted
loss would have to help. "disagreement" is the members' spread after one step, the quantity that
`assist_gate` weighs by (always in the run's own units).

Two runs trained on different data have different normalisers, so their errors are in different
units; `--units OTHER_RUN` reports the errors in OTHER_RUN's normalised units instead, so that a
model trained on recovery demos and one trained on clean demos compare on the same scale.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def measure(model, episodes, lengths: list[int], stride: int, units=None) -> dict:
    """Open-loop error per rollout length over windows starting every `stride` steps.

    The model replays what the env executed (`executed_action` where the store has it, i.e. with
    DART noise; the labels otherwise), and a window counts for length L only if its L transitions
    stay inside the episode and none of them was a push (`pushed`): a push is not the action's
    doing, so no dynamics model should predict it. `units`: a normaliser to express the errors in
    (default: the model's own)."""
    from lwd.data import SegmentDataset, WindowSpec
    from lwd.data.keys import DRIVING_ACTIONS, MASK, OBS, STATES, UNPUSHED

    norm = model.normalizer
    # the model's units -> raw -> `units`: a per-dimension factor on every state error
    scale = 1.0 if units is None else torch.from_numpy(
        (norm.affine(OBS, inverse=True)[0] * units.affine(OBS)[0]).astype(np.float32))
    executed = "executed_action" in episodes.data
    pushed = episodes.data.get("pushed", np.zeros(episodes.num_steps, bool)).astype(bool)
    longest = max(lengths)
    # WARPD's own dynamics windows: executed actions, push flags, padding masked past each episode's end
    spec = WindowSpec(obs_steps=1, action_steps=longest + 1, with_dynamics=True)
    dataset = SegmentDataset(episodes, spec, norm, short_episodes="pad")
    anchors = np.concatenate([np.arange(a, b - 1, stride) for a, b in zip(episodes.episode_starts, episodes.episode_ends)])
    windows = dataset.sample_batch(anchors)
    inside = windows[MASK].bool()  # state j exists
    clean = windows[UNPUSHED][:, :-1].cumprod(1).bool()  # no push in transitions <= j
    errors = {length: [] for length in lengths}
    spread = []
    with torch.no_grad():
        for chunk in np.array_split(np.arange(len(anchors)), max(1, len(anchors) // 512)):
            states, acts = windows[STATES][chunk], windows[DRIVING_ACTIONS][chunk]
            state = states[:, 0]
            for j in range(longest):
                state, disagreement = model.world_model.step(state, acts[:, j])
                if j == 0:
                    spread.append(disagreement.numpy())
                length = j + 1
                if length in errors:
                    valid = (inside[chunk, length] & clean[chunk, length - 1]).numpy()
                    errors[length].append((((state - states[:, length]) * scale) ** 2).mean(-1).numpy()[valid])
    out = {"windows": int(len(anchors)), "actions": "executed" if executed else "labels",
           "pushed_transitions": int(pushed.sum()), "disagreement_1": float(np.concatenate(spread).mean())}
    for length, parts in errors.items():
        values = np.concatenate(parts)
        out[f"windows_{length}"] = int(values.size)
        out[f"mse_{length}"] = float(values.mean()) if values.size else None
        out[f"mse_{length}_median"] = float(np.median(values)) if values.size else None
        out[f"mse_{length}_p90"] = float(np.percentile(values, 90)) if values.size else None
    return out


def main() -> None:
    from lwd.checkpoint import load_model
    from lwd.data import Episodes
    from lwd.provenance import provenance

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a warpd run directory")
    p.add_argument("--data", required=True, help="NAME=STORE[,NAME=STORE...] episode stores to measure on")
    p.add_argument("--lengths", default="1,4,8,16")
    p.add_argument("--stride", type=int, default=4, help="steps between window starts")
    p.add_argument("--units", help="report errors in this run's normalised units (default: the measured run's)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.run)
    if getattr(model, "world_model", None) is None:
        raise SystemExit(f"{args.run} is a {model.name} run; this measures WARPD's world model")
    lengths = sorted({int(x) for x in args.lengths.split(",")})
    units = None if args.units is None else load_model(args.units).normalizer
    result = {"run": args.run, "units": args.units or args.run, "lengths": lengths, "stride": args.stride, "reports": json.loads(
        (Path(args.run) / "train_log.json").read_text()).get("reports", {}), "data": {}}
    for item in args.data.split(","):
        name, _, store = item.partition("=")
        result["data"][name] = {"store": store, **measure(model, Episodes.load(store), lengths, args.stride, units)}
        row = result["data"][name]
        print(f"{name:10s} windows {row['windows']:6d}  disagreement {row['disagreement_1']:.4f}  "
              + "  ".join(f"mse@{n} {row[f'mse_{n}']:.4g} (median {row[f'mse_{n}_median']:.4g})" for n in lengths
                           if row[f"mse_{n}"] is not None))
    result["provenance"] = provenance(["python", "benchmarks/world_model_error.py", *__import__("sys").argv[1:]])
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
