"""`lwd import`: convert another project's dataset (Diffusion Policy's PushT zarr, a robomimic HDF5
file, a LeRobot v3.0 dataset) into our episode store. The module is not named `import`: that is a
Python keyword."""

from __future__ import annotations

import argparse
import time

from lwd.cli.common import Subcommands, overwrite_flag
from lwd.outputs import check_writable, refuse_existing


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    im = subcommands.add_parser("import", help="convert a Diffusion Policy PushT zarr, a robomimic HDF5 file or a LeRobot dataset into an episode store")
    im.add_argument("format", choices=["dp-pusht", "robomimic", "lerobot"], help="source format")
    im.add_argument("source", help="dp-pusht: .zarr directory or .zarr.zip; robomimic: .hdf5 file; lerobot: the dataset folder (v3.0)")
    im.add_argument("--out", required=True, help="episode store to write (.zarr directory or .zarr.zip)")
    im.add_argument("--obs-type", choices=["keypoints", "state"], default="keypoints",
                    help="dp-pusht: 20-d keypoints + agent (DP's low-dim obs, default) or the 5-d state")
    im.add_argument("--no-keypoint-check", action="store_true", help="dp-pusht: skip checking keypoints against lwd's env")
    im.add_argument("--obs-keys", default=None, help="robomimic: comma-separated obs keys in order (default: object,robot0_eef_pos,robot0_eef_quat,robot0_gripper_qpos)")
    im.add_argument("--filter-key", default=None, help="robomimic: only demos listed in mask/<key>, e.g. train")
    im.add_argument("--task", choices=["lift", "can", "square"], default=None, help="robomimic: tag the data so eval uses robomimic/<task>")
    im.add_argument("--state-features", default=None,
                    help="lerobot: comma-separated features concatenated into the observation (default: observation.state, "
                         "plus observation.environment_state where present)")
    im.add_argument("--action-feature", default="action", help="lerobot: the action feature (default: action)")
    im.add_argument("--image-features", default=None,
                    help="lerobot: comma-separated image or video features read as camera frames (default: all; none: no frames)")
    im.add_argument("--suite", default=None, help="lerobot: tag the data with the suite it evaluates in, e.g. pusht")
    overwrite_flag(im, "dataset")
    return im


def run(args: argparse.Namespace) -> None:
    """Convert another project's dataset into our episode store (zarr, DP layout)."""
    refuse_existing(args.out, args.overwrite)
    check_writable(args.out)
    t0 = time.perf_counter()
    if args.format == "dp-pusht":
        from lwd.data.formats.dp_zarr import load_dp_pusht

        episodes = load_dp_pusht(args.source, obs_type=args.obs_type, check_keypoints=not args.no_keypoint_check)
    elif args.format == "lerobot":
        from lwd.data.formats.lerobot import load_lerobot

        features = args.state_features.split(",") if args.state_features else None
        cameras = None if args.image_features is None else [] if args.image_features == "none" else args.image_features.split(",")
        episodes = load_lerobot(args.source, features, args.action_feature, cameras)
        if args.suite:
            from lwd.suites import make_suite

            suite = make_suite(args.suite)
            if suite.obs_dim != episodes.data["obs"].shape[1] or suite.action_dim != episodes.data["action"].shape[1]:
                raise ValueError(f"--suite {suite.name} takes {suite.obs_dim}-d observations and {suite.action_dim}-d actions; "
                                 f"the dataset has {episodes.data['obs'].shape[1]} and {episodes.data['action'].shape[1]}")
            shapes = episodes.frame_shapes()
            wrong = {key: shape for key, shape in suite.images if tuple(shapes.get(key, ())) != tuple(shape)}
            if wrong:
                raise ValueError(f"--suite {suite.name} observes camera frames {wrong}; the dataset has "
                                 f"{shapes or 'none'} (choose them with --image-features)")
            episodes.attrs["suite"] = suite.name
            if not suite.multitask:
                episodes.attrs["tasks"] = list(suite.tasks)
    else:
        from lwd.data.formats.robomimic_hdf5 import load_robomimic_hdf5
        from lwd.envs.robomimic import OBS_KEYS

        keys = args.obs_keys.split(",") if args.obs_keys else list(OBS_KEYS)
        episodes = load_robomimic_hdf5(args.source, keys, filter_key=args.filter_key)
        task = args.task or episodes.attrs.get("robomimic_task")  # from the file's env_args when it names Lift/Can/Square
        if task and keys == list(OBS_KEYS):
            episodes.attrs.update(suite=f"robomimic/{task}", tasks=[task])
        elif args.task:
            raise ValueError("--task tags the data for evaluation in robomimic/<task>, which needs the default --obs-keys")
    path = episodes.save(args.out)
    cameras = f", frames {', '.join(f'{k} {s}' for k, s in episodes.frame_shapes().items())}" if episodes.frames else ""
    print(f"imported {episodes.num_episodes} episodes ({episodes.num_steps} steps, obs {episodes.data['obs'].shape[1]}-d{cameras}) "
          f"from {args.source} to {path} in {time.perf_counter() - t0:.1f} s")
