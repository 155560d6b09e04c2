"""The two-rate runtime holding a fixed control rate while the generator runs.

    OMP_NUM_THREADS=1 python benchmarks/two_rate_runtime.py RUN --rate 1000 --horizons 8,32 --seconds 5 \\
        --out benchmarks/results/two-rate-runtime.json

Exports RUN (an LWD run) as the NumPy controller and ONNX graphs, then runs `lwd.deploy.runtime.run_loop`:
the exported controller at `--rate` Hz on observations replayed from the run's own training data
(the env cannot step at 1 kHz; what is timed is the loop: reading an observation, installing any
new weights, the MLP, handing the action over), while `generator.onnx` runs in its own process
and answers a request every H steps. Reports lateness against each step's deadline (jitter),
the control step's compute time, overruns, weight staleness and generation latency, with the
loop and the generator pinned to CPUs 0 and 1 and, for comparison, unpinned (`--pin yes,no`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    from lwd.checkpoint import read_run_config
    from lwd.data import Episodes
    from lwd.deploy.export import export_controller, export_onnx
    from lwd.deploy.numpy_controller import Controller
    from lwd.provenance import provenance
    import os

    from lwd.deploy.runtime import OnnxGeneratorProcess, pin_to, run_loop

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--horizons", default="8,32")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--pin", default="yes,no", help="pin loop and generator to CPUs 0 and 1: yes, no or both")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    run = read_run_config(args.run)
    obs = np.asarray(Episodes.load(run.data.dataset).data["obs"], np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export_controller(args.run, tmp)
        errors = export_onnx(args.run, tmp)
        everywhere = tuple(sorted(os.sched_getaffinity(0)))
        for pinned in (choice == "yes" for choice in args.pin.split(",")):
            pin_to((everywhere[0],) if pinned else everywhere)
            for horizon in map(int, args.horizons.split(",")):
                controller = Controller.load(tmp)
                sink: list[np.ndarray] = []
                with OnnxGeneratorProcess(tmp, seed=0, cpus=everywhere[1:] if pinned else None) as generator:
                    report = run_loop(controller, generator, lambda i: obs[i % len(obs)], sink.append,
                                      steps=int(args.seconds * args.rate), rate_hz=args.rate, action_horizon=horizon)
                rows.append({"pinned": pinned, **report.summary(), "controller_params": controller.num_params})
                print(json.dumps(rows[-1]), flush=True)
    result = {"run": args.run, "preset": run.preset, "inference_steps": errors["inference_steps"], "rows": rows,
              "provenance": provenance()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
