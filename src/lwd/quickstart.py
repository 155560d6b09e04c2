"""`lwd quickstart`: the whole method on Metaworld MT10 in one command, on a CPU, in < 15 minutes.

1. Collect 50 demonstrations per task from Metaworld's scripted experts.
2. Train task-conditioned LWD (preset `mt10-quick`): VAE whose decoder writes the MLP's weights from a
   32-direction weight basis (`decoder=basis`), then the latent prior.
3. Evaluate 50 episodes per task on fixed test seeds; print per-task success, FLOPs and params;
   write results.json and results.png.
Finished stages are reused when the command is run again on the same folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from lwd.provenance import provenance


def quickstart(
    out: Path,
    episodes_per_task: int = 50,
    eval_episodes: int = 50,
    n_envs: int = 2,
    preset: str = "mt10-quick",
    overrides: tuple[str, ...] = (),
) -> dict:
    import torch

    from lwd.data import Episodes
    from lwd.demos import collect_demos
    from lwd.suites import make_suite
    from lwd.evaluation.evaluate import format_table, plot_success
    from lwd.checkpoint import has_train_state
    from lwd.pipeline import evaluate_run, train_run

    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    suite = make_suite("metaworld/mt10")
    data = out / "mt10.zarr"
    run_dir = out / "mt10-lwd"

    print(f"[1/3] demonstrations: {episodes_per_task} per task from Metaworld's scripted experts -> {data}")
    t0 = time.perf_counter()
    if data.exists() and Episodes.load(data).num_episodes == episodes_per_task * len(suite.tasks):
        print("      reusing existing demonstrations")
    else:
        collect_demos(suite, episodes_per_task).save(data)
    timings["demos"] = time.perf_counter() - t0

    print(f"[2/3] training LWD (task-conditioned, preset {preset}) -> {run_dir}")
    t0 = time.perf_counter()
    if (run_dir / "model.safetensors").exists():
        print("      reusing trained model")
    else:
        train_run("lwd", data, run_dir, preset=preset, overrides=list(overrides), resume=has_train_state(run_dir))
    timings["train"] = time.perf_counter() - t0

    print(f"[3/3] evaluating {eval_episodes} episodes per task ({n_envs} env processes)")
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    result = evaluate_run(run_dir, episodes=eval_episodes, n_envs=n_envs, vector="async" if n_envs > 1 else "sync")
    timings["eval"] = time.perf_counter() - t0
    result["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    result["provenance"] = provenance()
    (out / "results.json").write_text(json.dumps(result, indent=2))
    plot_success(result, str(out / "results.png"), title=f"LWD on MT10: mean success {result['mean_success']:.3f}")

    print()
    print(format_table(result))
    print(" | ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f" | total {sum(timings.values()):.0f} s")
    print(f"results: {out / 'results.json'}, plot: {out / 'results.png'}, training curves: {run_dir / 'train_loss.png'}")
    return result
