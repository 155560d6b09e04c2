"""Rollout videos: watch what a policy does, with the step, the outcome and each generation marked.

Videos are made by replaying planned episodes after an evaluation, not inside it, so an
evaluation that asks for none pays nothing. Replays are exact: an episode is fully defined by its
(task, seed) and a policy object reset with that seed (the evaluator's own guarantee), and every
video records whether the replay ended as the evaluation's episode did.

Each frame is the env's off-screen render with a strip below it: the step, "success" once the
episode has succeeded, and a mark on the steps where the policy generated (LWD: new MLP weights;
DP: a new action chunk). Written as mp4 (H.264, through imageio's ffmpeg) or, where no encoder is
installed, as an animated GIF.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lwd.envs.perturb import apply_perturbation
from lwd.methods.base import Method, RuntimeOptions
from lwd.suites import Suite

STRIP = 22  # px of caption below each frame


def annotate(frame: np.ndarray, step: int, success: bool, generated: bool, generations: int) -> np.ndarray:
    """The frame (H, W, 3) uint8 with a caption strip: step, success, and a generation mark."""
    from PIL import Image, ImageDraw

    height, width = frame.shape[:2]
    canvas = Image.new("RGB", (width, height + STRIP), (255, 255, 255))
    canvas.paste(Image.fromarray(np.ascontiguousarray(frame[..., :3]).astype(np.uint8)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    if generated:  # a red frame around the image on the step a new policy / chunk was generated
        draw.rectangle([0, 0, width - 1, height - 1], outline=(220, 30, 30), width=4)
    draw.text((4, height + 5), f"step {step}", fill=(0, 0, 0))
    draw.text((70, height + 5), f"generation {generations}", fill=(220, 30, 30) if generated else (90, 90, 90))
    if success:
        draw.text((width - 60, height + 5), "success", fill=(0, 140, 0))
    return np.asarray(canvas)


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> Path:
    """mp4 when an ffmpeg encoder is installed (imageio[ffmpeg]), else GIF; returns the path written."""
    import imageio.v2 as imageio

    try:
        import imageio_ffmpeg  # noqa: F401

        target = path.with_suffix(".mp4")
        # macro_block_size 1 keeps odd frame sizes; yuv420p plays everywhere
        imageio.mimwrite(target, frames, fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p")
    except ImportError:
        target = path.with_suffix(".gif")
        imageio.mimwrite(target, frames, duration=1000.0 / fps, loop=0)
    return target


def record_episode(method: Method, suite: Suite, task: str, task_id: int | None, seed: int, runtime: RuntimeOptions,
                   perturb: str | None, path: Path) -> dict[str, Any]:
    """Replay one planned episode with rendering and write its video; returns what happened.

    The video shows the env's own render (on an image suite too: the scene as `render()` draws it,
    not the small frames the policy reads)."""
    from lwd.evaluation.evaluate import policy_observation

    os.environ.setdefault("MUJOCO_GL", "egl")  # off-screen MuJoCo (Metaworld, robosuite); must precede their first render
    env = apply_perturbation(suite.make_env(task, render_mode="rgb_array"), perturb)
    policy = method.make_policy(runtime)
    policy.reset(seed, task_id)
    obs, _ = env.reset(seed=seed)
    # Frame k shows the observation of step k (k = 0 before the first action). A generation at step k
    # is computed from that observation, so frame k carries its mark: the video's marked steps are
    # the result's generation_steps.
    shown: list[tuple[np.ndarray, bool]] = [(env.render(), False)]  # (frame, success so far)
    success, steps, generation_steps = False, 0, []
    try:
        for steps in range(1, suite.max_episode_steps + 1):
            before = policy.generations
            action = policy.act(policy_observation(method, obs))
            if policy.generations > before:
                generation_steps.append(steps - 1)
            obs, _, terminated, truncated, info = env.step(action)
            success = success or bool(info.get("success", False))
            shown.append((env.render(), success))
            if terminated or truncated:
                break
    finally:
        env.close()
    marked = set(generation_steps)
    frames = [annotate(frame, k, done, k in marked, sum(g <= k for g in generation_steps))
              for k, (frame, done) in enumerate(shown)]
    fps = float(getattr(env, "metadata", {}).get("render_fps") or 10)
    written = write_video(frames, path, fps)
    return {"task": task, "seed": seed, "success": success, "steps": steps, "video": str(written),
            "frames": len(frames), "generation_steps": generation_steps}


def record_videos(method: Method, suite: Suite, result: dict[str, Any], count: int, runtime: RuntimeOptions,
                  perturb: str | None, folder: Path) -> list[dict[str, Any]]:
    """Videos of the first `count` planned episodes of an evaluation `result`, each checked against it."""
    from lwd.evaluation.evaluate import passes_task_id

    folder.mkdir(parents=True, exist_ok=True)
    pass_task = passes_task_id(method, suite)
    from tqdm.auto import tqdm

    videos = []
    chosen = result["episodes"][:count]
    for episode in tqdm(chosen, desc="videos (replay with rendering)", unit="ep", disable=not chosen):  # plan order
        task, seed = episode["task"], episode["seed"]
        name = f"{method.name}-{task.replace('/', '-')}-seed{seed}"
        task_id = suite.task_id(task) if pass_task else None
        record = record_episode(method, suite, task, task_id, seed, runtime, perturb, folder / name)
        record["matches_evaluation"] = (record["success"], record["steps"]) == (episode["success"], episode["steps"])
        videos.append(record)
    return videos
