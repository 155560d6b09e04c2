"""Side-by-side GIF of two rollout videos of the same episode (e.g. LWD and DP on one PushT seed).

    lwd eval runs/show-lwd --episodes 20 --video 4 --video-dir runs/show-videos
    lwd eval runs/show-dp --episodes 20 --video 4 --video-dir runs/show-videos
    python benchmarks/pusht_rollouts_gif.py runs/show-videos/lwd-pusht-seed100000.mp4 \\
        runs/show-videos/dp-pusht-seed100000.mp4 --labels LWD,DP --out docs/pusht-rollouts.gif

Frames are downscaled and every `--every`-th one kept, so the GIF stays small enough for a README;
the shorter video holds its last frame until the longer one ends.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    import imageio.v2 as imageio
    from PIL import Image, ImageDraw

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", nargs="+")
    p.add_argument("--labels", default="", help="comma-separated titles drawn above each video")
    p.add_argument("--width", type=int, default=240, help="width of each panel in px")
    p.add_argument("--every", type=int, default=2, help="keep every N-th frame")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    labels = args.labels.split(",") if args.labels else [Path(v).stem for v in args.videos]
    clips = []
    for path in args.videos:
        frames = [f for f in imageio.get_reader(path)][:: args.every]
        h, w = frames[0].shape[:2]
        size = (args.width, round(h * args.width / w))
        clips.append([np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in frames])
    length = max(len(c) for c in clips)
    out = []
    for i in range(length):
        panels = []
        for clip, label in zip(clips, labels):
            frame = Image.fromarray(clip[min(i, len(clip) - 1)])
            canvas = Image.new("RGB", (frame.width, frame.height + 18), (255, 255, 255))
            canvas.paste(frame, (0, 18))
            ImageDraw.Draw(canvas).text((4, 3), label, fill=(0, 0, 0))
            panels.append(np.asarray(canvas))
        out.append(np.concatenate(panels, axis=1))
    imageio.mimwrite(args.out, out, duration=1000.0 * args.every / args.fps, loop=0)
    print(f"wrote {args.out}: {len(out)} frames, {Path(args.out).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
