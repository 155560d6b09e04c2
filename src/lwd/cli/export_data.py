"""`lwd export-data`: our episode store as a robomimic HDF5 file or a LeRobot v3.0 dataset, so other
projects' trainers can read demos collected here."""

from __future__ import annotations

import argparse

from lwd.cli.common import Subcommands, overwrite_flag, positive
from lwd.outputs import check_writable, refuse_existing, replacing

DATA_FORMATS = ("robomimic", "lerobot")


def add_parser(subcommands: Subcommands) -> argparse.ArgumentParser:
    xd = subcommands.add_parser("export-data", help="demos as a robomimic HDF5 file or a LeRobot v3.0 dataset")
    xd.add_argument("format", choices=DATA_FORMATS, help="robomimic (HDF5, robomimic's layout) or lerobot (v3.0)")
    xd.add_argument("data", help="episode store (robomimic: written by `lwd demos robomimic/<task>`)")
    xd.add_argument("--out", required=True, help="robomimic: HDF5 file; lerobot: a new dataset folder")
    xd.add_argument("--fps", type=positive, default=10, help="lerobot: frames per second recorded in info.json (default 10)")
    xd.add_argument("--frames", choices=("video", "image"), default="video",
                    help="lerobot: camera frames as H.264 videos (LeRobot's default) or PNG images in the data files (exact)")
    overwrite_flag(xd, "dataset")
    return xd


def run(args: argparse.Namespace) -> None:
    """Demos in robomimic's HDF5 layout or as a LeRobot v3.0 dataset."""
    from lwd.data import Episodes

    refuse_existing(args.out, args.overwrite)
    check_writable(args.out, folder=args.format == "lerobot")
    episodes = Episodes.load(args.data)
    if args.format == "lerobot":
        from lwd.data.formats.lerobot import save_lerobot

        with replacing(args.out) as tmp:  # an existing dataset is replaced only by a complete new one
            save_lerobot(episodes, tmp, fps=args.fps, frames=args.frames)
        cameras = f"cameras {', '.join(episodes.image_keys)} as {args.frames}s" if episodes.frames else "state only"
        print(f"wrote {episodes.num_episodes} episodes ({episodes.num_steps} frames) to {args.out} (LeRobot v3.0, {cameras})")
        return
    from lwd.data.formats.robomimic_hdf5 import save_robomimic_hdf5
    from lwd.envs.robomimic import RobomimicEnv, obs_key_dims

    suite = str(episodes.attrs.get("suite", ""))
    if not suite.startswith("robomimic/"):
        raise ValueError(f"{args.data} holds {suite or 'untagged'} data; robomimic export needs demos from `lwd demos robomimic/<task>`")
    task = suite.split("/", 1)[1]
    env = RobomimicEnv(task)
    try:
        env_args = env.env_args()
    finally:
        env.close()
    with replacing(args.out) as tmp:
        save_robomimic_hdf5(episodes, tmp, obs_key_dims(task), env_args)
    print(f"wrote {episodes.num_episodes} demos to {args.out} (robomimic layout, env {env_args.get('env_name')})")
