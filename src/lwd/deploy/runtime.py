"""The two-rate runtime: a control loop at the control rate, fed new weights by a generator process.

LWD's deployment promise is that the expensive model (latent diffusion + hypernetwork) runs
rarely and the thing on the robot is a small MLP. Here the control loop steps the exported NumPy
controller (`lwd_controller.py`) at a fixed rate with the latest weights it has, and every H steps
sends the newest observation history to a generator running `generator.onnx` in a separate
process (its own interpreter, so its work never holds the loop's GIL). The loop never waits for
it: new weights are installed at the first control step after they arrive. The report says how
well the rate was held (lateness of each step against its deadline, the controller's compute
time, overruns) and how stale the weights were (steps between the observation a weight vector
was generated from and each step that used it).

    from lwd.deploy.runtime import OnnxGeneratorProcess, run_loop
    with OnnxGeneratorProcess("exported/") as generator:
        report = run_loop(controller, generator, observe, apply, steps=5000, rate_hz=1000, action_horizon=8)

The controller is anything with `obs_steps`, `set_weights(theta)` and `act(obs)`: the NumPy
runner, or the compiled C export (`lwd export RUN --format c`) through
`lwd.deploy.export_c.CController.load("exported/")`, whose step costs about a microsecond instead of
several (BENCHMARKS.md, "Deployable controllers").

Only NumPy and the standard library run in this process; the generator process needs
onnxruntime. Messages between them are raw float32/int64 bytes (no pickle).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

_HEADER = 2  # int64: the control step the observation was taken at, the task id


class ControllerLike(Protocol):
    obs_steps: int

    def set_weights(self, theta: np.ndarray) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


def _serve(folder: str, seed: int, threads: int, cpus: tuple[int, ...] | None, conn: Any) -> None:
    """The generator process: observation history in, weight vector out, until the pipe closes."""
    import os

    import onnxruntime as ort

    if cpus:
        os.sched_setaffinity(0, cpus)

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(Path(folder) / "generator.onnx"), options, providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    noise_dim = int(inputs["noise"].shape[1])
    hist_shape = tuple(int(d) for d in inputs["obs_history"].shape[1:]) if "obs_history" in inputs else None
    rng = np.random.default_rng(seed)
    conn.send_bytes(np.array([noise_dim, *(hist_shape or (0, 0))], np.int64).tobytes())  # ready
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:
            return
        header = np.frombuffer(message[: 8 * _HEADER], np.int64)
        feeds = {"noise": rng.standard_normal((1, noise_dim)).astype(np.float32)}
        if "step_noise" in inputs:  # a stochastic sampler (ddim_eta > 0): one draw per step
            feeds["step_noise"] = rng.standard_normal(tuple(int(d) for d in inputs["step_noise"].shape)).astype(np.float32)
        if hist_shape is not None:
            feeds["obs_history"] = np.frombuffer(message[8 * _HEADER:], np.float32).reshape(1, *hist_shape)
        if "task" in inputs:
            feeds["task"] = header[1:2].copy()
        theta = session.run(None, feeds)[0].reshape(-1).astype(np.float32)
        try:
            conn.send_bytes(header[:1].tobytes() + theta.tobytes())
        except (BrokenPipeError, EOFError, OSError):
            return  # the control loop closed the pipe while this request was being answered


class OnnxGeneratorProcess:
    """`generator.onnx` (from `lwd export RUN --format onnx`) in its own process, one request at a time.

    cpus: pin the generator to these CPUs (Linux). Pin the control loop elsewhere (see `pin_to`):
    unpinned, the kernel tends to wake the generator on the loop's own CPU, where it preempts the
    loop for a whole generation (measured: 2.6 ms p99 lateness at 1 kHz instead of 60 µs)."""

    def __init__(self, folder: str | Path, seed: int = 0, threads: int = 1, cpus: tuple[int, ...] | None = None) -> None:
        folder = Path(folder)
        if not (folder / "generator.onnx").is_file():
            raise FileNotFoundError(f"{folder}/generator.onnx is missing; write it with lwd export RUN --format onnx --out {folder}")
        context = mp.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(str(folder), seed, threads, cpus, child), daemon=True)
        self._process.start()
        child.close()
        try:
            if not self._conn.poll(120):
                raise EOFError("no answer within 120 s")
            ready = np.frombuffer(self._conn.recv_bytes(), np.int64)
        except EOFError as err:
            self.close()
            raise RuntimeError(f"the generator process did not start ({err or 'it exited'}); a script that starts one "
                               "needs an `if __name__ == '__main__':` guard (processes are spawned)") from err
        self.latent_dim, self.history_shape = int(ready[0]), (int(ready[1]), int(ready[2]))
        self.pending = False

    def request(self, obs_history: np.ndarray, step: int, task: int = 0) -> None:
        """Ask for weights from this (To, Do) raw observation history; returns at once."""
        history = np.asarray(obs_history, np.float32).reshape(-1)
        self._conn.send_bytes(np.array([step, task], np.int64).tobytes() + history.tobytes())
        self.pending = True

    def poll(self) -> tuple[np.ndarray, int] | None:
        """The weights of the request in flight, with its observation step, if they have arrived."""
        if not self.pending or not self._conn.poll():
            return None
        message = self._conn.recv_bytes()
        self.pending = False
        return np.frombuffer(message[8:], np.float32), int(np.frombuffer(message[:8], np.int64)[0])

    def generate(self, obs_history: np.ndarray, step: int = 0, task: int = 0) -> np.ndarray:
        """Blocking: the weights for this history (the first weights, before the loop starts)."""
        self.request(obs_history, step, task)
        while (reply := self.poll()) is None:
            self._conn.poll(1.0)
        return reply[0]

    def close(self) -> None:
        self._conn.close()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> "OnnxGeneratorProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def pin_to(cpus: tuple[int, ...]) -> None:
    """Pin this process (the control loop) to `cpus` (Linux; elsewhere an error names the problem)."""
    import os

    if not hasattr(os, "sched_setaffinity"):
        raise OSError("CPU pinning needs Linux (os.sched_setaffinity)")
    os.sched_setaffinity(0, cpus)


@dataclass
class LoopReport:
    """What a run of the control loop measured; times in seconds, staleness in control steps."""

    rate_hz: float
    action_horizon: int
    lateness: np.ndarray
    """(steps,) start of each control step minus its deadline (jitter)."""
    compute: np.ndarray
    """(steps,) time from reading the observation to handing over the action."""
    staleness: np.ndarray
    """(steps,) control steps since the observation the weights in use were generated from."""
    generation_latency: list[float] = field(default_factory=list)
    """Seconds from each request to its weights' arrival."""
    skipped_requests: int = 0
    """Requests not sent because the previous one was still being generated."""
    weights_installed: list[tuple[int, int]] = field(default_factory=list)
    """(control step installed at, observation step generated from) for every weight vector."""

    def summary(self) -> dict[str, Any]:
        us = 1e6
        period = 1.0 / self.rate_hz
        return {
            "rate_hz": self.rate_hz, "action_horizon": self.action_horizon, "steps": int(self.lateness.size),
            "lateness_us_median": float(np.median(self.lateness) * us), "lateness_us_p99": float(np.percentile(self.lateness, 99) * us),
            "lateness_us_max": float(self.lateness.max() * us),
            "compute_us_median": float(np.median(self.compute) * us), "compute_us_p99": float(np.percentile(self.compute, 99) * us),
            "overruns": int(np.sum(self.lateness + self.compute > period)),
            "staleness_steps_median": float(np.median(self.staleness)), "staleness_steps_max": int(self.staleness.max()),
            "generations": len(self.weights_installed),
            "generation_ms_median": float(np.median(self.generation_latency) * 1e3) if self.generation_latency else None,
            "skipped_requests": self.skipped_requests,
        }


def run_loop(controller: ControllerLike, generator: OnnxGeneratorProcess, observe: Callable[[int], np.ndarray],
             apply: Callable[[np.ndarray], None], steps: int, rate_hz: float, action_horizon: int, task: int = 0,
             spin_us: float = 300.0) -> LoopReport:
    """Step `controller` at `rate_hz` for `steps` steps: observe(i) -> act -> apply(action).

    Every `action_horizon` steps the newest history goes to the generator unless it is still busy
    (then the request is skipped and counted; the loop never queues stale work). The first weights
    are generated before the clock starts. Sleeping until `spin_us` before a deadline and spinning
    the rest trades a little CPU for a punctual start."""
    if steps < 1 or rate_hz <= 0 or action_horizon < 1:
        raise ValueError("steps, rate_hz and action_horizon must be positive")
    period, spin = 1.0 / rate_hz, spin_us * 1e-6
    to = generator.history_shape[0] or 1
    first = np.asarray(observe(0), np.float32)
    history = np.tile(first, (to, 1))  # (To, Do): before To observations exist the first stands in
    controller.set_weights(generator.generate(history, 0, task))
    report = LoopReport(rate_hz, action_horizon, np.zeros(steps), np.zeros(steps), np.zeros(steps, np.int64))
    report.weights_installed.append((0, 0))
    source, sent_at = 0, 0.0
    start = time.perf_counter()
    for i in range(steps):
        deadline = start + i * period
        while (left := deadline - time.perf_counter()) > spin:
            time.sleep(left - spin)
        while time.perf_counter() < deadline:
            pass
        began = time.perf_counter()
        obs = first if i == 0 else np.asarray(observe(i), np.float32)
        if i > 0:
            history[:-1] = history[1:]
            history[-1] = obs
        arrived = generator.poll()
        if arrived is not None:
            controller.set_weights(arrived[0])
            source = arrived[1]
            report.weights_installed.append((i, source))
            report.generation_latency.append(began - sent_at)
        apply(controller.act(obs))
        if i > 0 and i % action_horizon == 0:
            if generator.pending:
                report.skipped_requests += 1
            else:
                generator.request(history, i, task)
                sent_at = time.perf_counter()
        done = time.perf_counter()
        report.lateness[i], report.compute[i], report.staleness[i] = began - deadline, done - began, i - source
    return report
