"""Bad input through the command line, as a user meets it: every case exits with status 2 and one
line that names the problem, never a traceback, and leaves no partial output where the input was
refused. Each case runs `lwd` in its own process (forked from one that has done the start-up imports:
tests/cli_forkserver.py); the cases run two at a time."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lwd.data import Episodes

from conftest import make_episodes

pytest.importorskip("gym_pusht")

LWD = [sys.executable, "-m", "lwd.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
TINY_LWD = ["--set", "vae_steps=3", "--set", "prior_steps=3", "--set", "horizon=4", "--set", "condition=state",
            "--set", "latent_dim=4", "--set", "policy_hidden=[8]", "--set", "chunk_size=64", "--set", "hyper_hidden=[8]",
            "--set", "encoder_dim=8", "--set", "encoder_heads=2", "--set", "denoiser_width=8", "--set", "denoiser_blocks=1"]


def _store(path: Path, **changes: object) -> Path:
    """A small valid episode store (5-d obs, 2-d actions, tagged pusht/state), with `changes` applied."""
    episodes = make_episodes(num_episodes=4, length=12, num_tasks=1)
    data = {k: np.asarray(v).copy() for k, v in episodes.data.items()}
    data.pop("task")
    ends = episodes.episode_ends.copy()
    attrs = {"suite": "pusht/state", "tasks": ["pusht"]}
    for key, value in changes.items():
        if key == "episode_ends":
            ends = np.asarray(value)
        elif key == "attrs":
            attrs.update(value)  # type: ignore[arg-type]
        elif value is None:
            data.pop(key)
        else:
            data[key] = np.asarray(value)
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2, attributes=attrs)
    for key, value in data.items():
        root.create_array(f"data/{key}", data=value)
    root.create_array("meta/episode_ends", data=ends)
    return path


def _default_sigint() -> None:
    """A child started from a background job inherits SIGINT ignored (POSIX shells do that); give it
    the default disposition, so Python installs its own handler as it does in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _lwd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*LWD, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


class _ForkServer:
    """`lwd ARGS` in its own process, forked from one that has done the start-up imports already
    (tests/cli_forkserver.py): the same main, exit status and output as `_lwd`, seconds sooner."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("cli_forkserver.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
        self.runs = 0

    def run(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        self.runs += 1
        out, err = self.scratch / f"{self.runs}.out", self.scratch / f"{self.runs}.err"
        self.proc.stdin.write(json.dumps({"args": list(args), "stdout": str(out), "stderr": str(err), "timeout": timeout}) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the fork server ended (exit {self.proc.wait()})")
        return subprocess.CompletedProcess([*LWD, *args], json.loads(answer)["returncode"], out.read_text(), err.read_text())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Datasets, trained runs and broken copies of them, made once for every case."""
    root = tmp_path_factory.mktemp("cli")
    good = _store(root / "good.zarr")
    obs = np.asarray(Episodes.load(good).data["obs"])
    bad_obs = obs.copy()
    bad_obs[5, 1] = np.nan
    _store(root / "nan.zarr", obs=bad_obs)
    bad_action = np.asarray(Episodes.load(good).data["action"]).copy()
    bad_action[30, 0] = np.inf
    _store(root / "inf.zarr", action=bad_action)
    _store(root / "empty-episode.zarr", episode_ends=[12, 12, 24, 36, 48])
    _store(root / "non-monotonic.zarr", episode_ends=[12, 36, 24, 48])
    _store(root / "no-action.zarr", action=None)
    _store(root / "int-obs.zarr", obs=np.round(obs * 10).astype(np.int64))
    _store(root / "bool-obs.zarr", obs=obs > 0)
    _store(root / "bad-task.zarr", task=np.repeat(np.arange(4), 12), attrs={"tasks": ["a", "b"]})
    _store(root / "obs-3d.zarr", obs=obs.reshape(len(obs), 5, 1))
    _store(root / "ragged.zarr", action=np.asarray(Episodes.load(good).data["action"])[:-3])
    (root / "notes.txt").write_text("not a dataset")
    _store(root / "wide-action.zarr", action=np.zeros((len(obs), 3), np.float32))
    rng = np.random.default_rng(0)  # Diffusion Policy's PushT layout, with keypoints that do not fit the states
    _store(root / "dp-layout.zarr", obs=None, state=rng.uniform(100, 400, (len(obs), 5)).astype(np.float32),
           keypoint=rng.uniform(0, 512, (len(obs), 9, 2)).astype(np.float32))

    runs = root / "runs"
    for name, method, data, extra in [("bc", "bc", good, ["--set", "steps=3"]), ("lwd", "lwd", good, TINY_LWD),
                                      ("bc-wide", "bc", root / "wide-action.zarr", ["--set", "steps=3"])]:
        done = _lwd("train", method, "--data", str(data), "--out", str(runs / name), *extra)
        assert done.returncode == 0, done.stderr[-2000:]

    def broken(name: str, edit) -> str:
        target = runs / name
        subprocess.run(["cp", "-r", str(runs / "bc"), str(target)], check=True)
        edit(target)
        return str(target)

    def config_edit(**method_config: object):
        def apply(run: Path) -> None:
            cfg = json.loads((run / "config.json").read_text())
            for key, value in method_config.items():
                if key == "method_config":
                    cfg["method_config"] = value
                elif key == "method":
                    cfg["method"] = value
                else:
                    cfg["method_config"][key] = value
            (run / "config.json").write_text(json.dumps(cfg))
        return apply

    broken("steps-str", config_edit(steps="32"))
    broken("steps-float", config_edit(steps=32.5))
    broken("hidden-list", config_edit(hidden=[[64]]))
    broken("config-null", config_edit(method_config=None))
    broken("unknown-method", config_edit(method="gan"))
    broken("bad-json", lambda run: (run / "config.json").write_text("{not json"))
    broken("corrupt-weights", lambda run: (run / "model.safetensors").write_bytes(b"\x00" * 64))
    (root / "a-file").write_text("x")

    # targets that exist: refused without --overwrite, and must come out byte for byte unchanged
    subprocess.run(["cp", "-r", str(good), str(root / "keep.zarr")], check=True)
    (root / "existing-folder").mkdir()
    (root / "existing-folder" / "mine.txt").write_text("a user's file")
    (root / "results.json").write_text('{"mean_success": 0.5}')
    from lwd.deploy.export import export_controller

    export_controller(runs / "lwd", root / "ctl-existing")
    exported_elsewhere = root / "exported-bad-activation"
    export_controller(runs / "lwd", exported_elsewhere)
    spec = json.loads((exported_elsewhere / "controller.json").read_text())
    (exported_elsewhere / "controller.json").write_text(json.dumps({**spec, "activation": "gelu"}))
    for name in ("generator.onnx", "onnx.json"):
        (exported_elsewhere / name).write_text("{}")

    # study specs, each wrong in one key
    (root / "spec-folder").mkdir()
    base = ('name = "s"\nsuite = "pusht/state"\nepisodes = 1\nseeds = [0]\nhorizons = [8]\n'
            '[data.clean]\ndemos = 1\n[methods.bc]\nset = ["steps=3"]\n')
    (root / "spec-good.toml").write_text(base)
    for name, text in {"n-envs-0": base.replace("episodes = 1", "episodes = 1\nn_envs = 0"),
                       "seeds-string": base.replace("seeds = [0]", 'seeds = "12"'),
                       "horizons-string": base.replace("horizons = [8]", 'horizons = [8, "abc"]'),
                       "data-list": base.replace("[data.clean]\ndemos = 1\n", "").replace("seeds = [0]", 'seeds = [0]\ndata = ["clean"]'),
                       "escape": base.replace('name = "s"', 'name = "../../../escaped-study"'),
                       "method-escape": base.replace("[methods.bc]", '[methods."../bc"]')}.items():
        (root / f"spec-{name}.toml").write_text(text)
    return root


def _tree_hash(path: Path) -> str:
    """SHA-256 over a file or folder: every file's relative name and bytes (hidden files included)."""
    import hashlib

    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _unchanged(w: Path) -> dict[str, Path]:
    """Case id -> an existing target the case must leave exactly as it was."""
    return {"demos-over-dataset": w / "keep.zarr", "import-over-dataset": w / "keep.zarr",
            "export-lerobot-over-folder": w / "existing-folder", "export-npz-over-files": w / "ctl-existing",
            "eval-out-exists": w / "results.json", "train-over-run": w / "runs" / "bc", "study-name-escapes": w / "spec-escape.toml"}


def _cases(w: Path) -> list[tuple[str, list[str], str, str | None]]:
    """(id, arguments, regex the error line must match, a path that must not exist afterwards)."""
    data, runs, out = str(w / "good.zarr"), w / "runs", w / "out"
    bc, lwd = str(runs / "bc"), str(runs / "lwd")
    train = lambda d, *a: ["train", "bc", "--data", str(w / d), "--out", str(out / d), *a]  # noqa: E731
    cases = [
        # datasets: refused before any training, nothing written
        ("nan", train("nan.zarr"), r"'obs' contains NaN \(first in episode 0 at step 5\)", str(out / "nan.zarr")),
        ("inf", train("inf.zarr"), r"'action' contains inf", str(out / "inf.zarr")),
        ("empty-episode", train("empty-episode.zarr"), r"episode 1 is empty", str(out / "empty-episode.zarr")),
        ("non-monotonic", train("non-monotonic.zarr"), r"strictly increasing", str(out / "non-monotonic.zarr")),
        ("missing-key", train("no-action.zarr"), r"required key 'action' is missing", str(out / "no-action.zarr")),
        ("integer-obs", train("int-obs.zarr"), r"'obs' holds int64 values; .*floating point", str(out / "int-obs.zarr")),
        ("bool-obs", train("bool-obs.zarr"), r"'obs' holds bool values", str(out / "bool-obs.zarr")),
        ("task-ids", train("bad-task.zarr"), r"task ids go up to 3 but the dataset names 2 tasks", str(out / "bad-task.zarr")),
        ("obs-3d", train("obs-3d.zarr"), r"'obs' must be 2-D", str(out / "obs-3d.zarr")),
        ("ragged", train("ragged.zarr"), r"'action' has 45 steps but episode_ends\[-1\] is 48", str(out / "ragged.zarr")),
        ("not-a-store", train("notes.txt"), r"not a zarr store", str(out / "notes.txt")),
        ("missing-data", train("nowhere.zarr"), r"does not exist", str(out / "nowhere.zarr")),
        ("horizon-too-long", ["train", "lwd", "--data", data, "--out", str(out / "h"), *TINY_LWD, "--set", "horizon=100000"],
         r"longer than the longest episode \(12 steps\).*at most 12", str(out / "h")),
        # settings: type-checked where parsed
        ("set-abc", [*train("good.zarr"), "--set", "steps=abc"], r"BCConfig.steps must be an integer, got 'abc'", str(out / "good.zarr")),
        ("set-float", [*train("good.zarr"), "--set", "steps=8.5"], r"BCConfig.steps must be an integer, got 8.5", None),
        ("set-number", ["train", "lwd", "--data", data, "--out", str(out / "k"), "--set", "kl_weight=abc"],
         r"LWDConfig.kl_weight must be a number", str(out / "k")),
        ("vae-steps-0", ["train", "lwd", "--data", data, "--out", str(out / "v0"), "--set", "vae_steps=0"], r"vae_steps must be > 0", str(out / "v0")),
        ("vae-steps-neg", ["train", "lwd", "--data", data, "--out", str(out / "v5"), "--set", "vae_steps=-5"], r"vae_steps must be > 0", None),
        ("unknown-setting", [*train("good.zarr"), "--set", "stepz=3"], r"unknown setting 'stepz'", None),
        ("no-equals", [*train("good.zarr"), "--set", "steps"], r"must look like key=value", None),
        ("negative-lr", [*train("good.zarr"), "--train-set", "lr=-1"], r"TrainConfig.lr must be > 0", None),
        ("short-episodes", [*train("good.zarr"), "--train-set", "short_episodes=maybe"], r"short_episodes must be pad, drop or error", None),
        ("unknown-preset", [*train("good.zarr"), "--preset", "huge"], r"unknown preset 'huge' for bc", None),
        ("hidden-not-list", [*train("good.zarr"), "--set", "hidden=64"], r"BCConfig.hidden must be a list", None),
        ("unknown-method", ["train", "gan", "--data", data, "--out", str(out / "g")], r"invalid choice: 'gan'", str(out / "g")),
        ("resume-missing", [*train("good.zarr"), "--resume"], r"holds no interrupted run", str(out / "good.zarr")),
        ("train-over-run", ["train", "bc", "--data", data, "--out", bc], r"already holds a trained model; pass --overwrite", None),
        ("train-resume-and-overwrite", [*train("good.zarr"), "--resume", "--overwrite"], r"drop one of them", str(out / "good.zarr")),
        ("task-preset-without-task-ids", ["train", "lwd", "--data", data, "--out", str(out / "mt"), "--preset", "mt10-quick"],
         r"good.zarr has no task ids \(data/task\), but lwd preset 'mt10-quick' conditions on the task.*condition=state", str(out / "mt")),
        # existing targets: refused unless --overwrite, left unchanged (see _unchanged)
        ("demos-over-dataset", ["demos", "pusht/state", "--episodes", "1", "--out", str(w / "keep.zarr")],
         r"--out .*keep.zarr already exists; pass --overwrite to replace it", None),
        ("import-over-dataset", ["import", "dp-pusht", str(w / "dp-layout.zarr"), "--out", str(w / "keep.zarr")],
         r"--out .*keep.zarr already exists; pass --overwrite", None),
        ("export-lerobot-over-folder", ["export-data", "lerobot", data, "--out", str(w / "existing-folder")],
         r"--out .*existing-folder already exists; pass --overwrite", None),
        ("export-npz-over-files", ["export", lwd, "--format", "npz", "--out", str(w / "ctl-existing")],
         r"ctl-existing already holds controller.json, controller.npz, lwd_controller.py; pass --overwrite", None),
        ("eval-out-exists", ["eval", bc, "--episodes", "1", "--out", str(w / "results.json")],
         r"--out .*results.json already exists; pass --overwrite", None),
        # exported files: checked before any episode runs
        ("exported-unknown-activation", ["eval", lwd, "--exported", str(w / "exported-bad-activation")],
         r"controller.json: activation must be one of relu, tanh, mish, got 'gelu'", None),
        # study specs and flags
        ("study-folder", ["study", str(w / "spec-folder")], r"spec-folder is a folder; give a spec file", None),
        ("study-n-envs-0", ["study", str(w / "spec-n-envs-0.toml")], r"spec-n-envs-0.toml: n_envs must be a positive integer, got 0", None),
        ("study-seeds-string", ["study", str(w / "spec-seeds-string.toml")], r"seeds must be a non-empty list of integers.*'12'", None),
        ("study-horizons-string", ["study", str(w / "spec-horizons-string.toml")], r"horizons\[1\] must be a positive integer, got 'abc'", None),
        ("study-data-list", ["study", str(w / "spec-data-list.toml")], r"data must be a table of named entries", None),
        ("study-name-escapes", ["study", str(w / "spec-escape.toml")], r"name must be a plain name .*'../../../escaped-study'",
         str(w / "escaped-study.json")),
        ("study-label-escapes", ["study", str(w / "spec-method-escape.toml")], r"methods.../bc must be a plain name", None),
        ("study-seeds-flag", ["study", str(w / "spec-good.toml"), "--seeds", "abc"], r"--seeds takes comma-separated integers.*'abc' is not one", None),
        ("study-horizons-flag", ["study", str(w / "spec-good.toml"), "--horizons", "8,abc"], r"--horizons takes comma-separated integers.*'abc'", None),
        ("bench-horizons-flag", ["bench", "pusht/state", "--data", data, "--out", str(out / "bh"), "--horizons", "8,abc"],
         r"--horizons takes comma-separated integers.*'abc'", str(out / "bh")),
        # run directories
        ("no-run-dir", ["eval", str(w / "nowhere")], r"is not a run directory", None),
        ("config-str", ["eval", str(runs / "steps-str")], r"BCConfig.steps must be an integer, got '32'", None),
        ("config-float", ["eval", str(runs / "steps-float")], r"BCConfig.steps must be an integer, got 32.5", None),
        ("config-nested-list", ["info", str(runs / "hidden-list")], r"BCConfig.hidden must be an integer", None),
        ("config-null", ["eval", str(runs / "config-null")], r"BCConfig must be a JSON object", None),
        ("config-unknown-method", ["eval", str(runs / "unknown-method")], r"unknown method 'gan'", None),
        ("config-not-json", ["info", str(runs / "bad-json")], r"is not valid JSON", None),
        ("corrupt-weights", ["eval", str(runs / "corrupt-weights")], r"corrupt", None),
        # command-line arguments
        ("horizon-0", ["eval", lwd, "--action-horizon", "0"], r"--action-horizon must be positive \(or 'episode'\)", None),
        ("inference-steps-0", ["eval", lwd, "--inference-steps", "0"], r"expected a positive integer, got 0", None),
        ("episodes-0", ["eval", lwd, "--episodes", "0"], r"expected a positive integer, got 0", None),
        ("ddpm-steps", ["eval", lwd, "--sampler", "ddpm", "--inference-steps", "5"], r"ddpm sampler runs all 100 diffusion steps", None),
        ("ddim-too-many", ["eval", lwd, "--inference-steps", "500"], r"inference_steps=500 exceeds the model's 100", None),
        ("bc-sampler", ["eval", bc, "--sampler", "ddim"], r"bc takes no run-time option sampler", None),
        ("bc-horizon", ["eval", bc, "--action-horizon", "8"], r"bc takes no run-time option action_horizon", None),
        ("bc-delay", ["eval", bc, "--generation-delay", "2"], r"bc takes no run-time option generation_delay", None),
        ("delay-too-long", ["eval", lwd, "--generation-delay", "4"], r"generation_delay=4 must be below the action horizon H=4", None),
        ("push-unit", ["eval", bc, "--episodes", "1", "--perturb", "object-push:3"], r"object-push does not apply to PushTEnv: its push is block-push.*pixels", None),
        ("unknown-perturbation", ["eval", bc, "--episodes", "1", "--perturb", "wobble:1"], r"unknown perturbation 'wobble'", None),
        ("wrong-obs-dim", ["eval", bc, "--env", "pusht"], r"expects 5-d observations but pusht gives 20-d", None),
        ("wrong-action-dim", ["eval", str(runs / "bc-wide")], r"outputs 3-d actions but pusht/state takes 2-d", None),
        ("unknown-suite", ["demos", "mujoco/ant", "--out", str(out / "ant.zarr")], r"unknown environment 'mujoco/ant'", str(out / "ant.zarr")),
        ("dims-zero", ["info", "dp:cpu", "--preset-only", "--dims", "0,2"], r"--dims takes OBS_DIM,ACTION_DIM", None),
        ("preset-only-config", ["info", "dp:cpu", "--preset-only", "--config"], r"drop one of them", None),
        ("info-episode-no-env", ["info", "lwd:pusht", "--preset-only", "--action-horizon", "episode", "--latency-steps", "0"],
         r"once per episode.*episode length", None),
        ("bench-unknown", ["bench", "pusht/state", "--data", data, "--out", str(out / "b"), "--methods", "lwd-fast"],
         r"unknown bench method\(s\) \['lwd-fast'\]", None),
        # outputs: refused before the work, nothing left behind
        ("eval-out-unwritable", ["eval", bc, "--episodes", "1", "--out", "/proc/lwd-results.json"], r"cannot be written", None),
        ("eval-out-under-file", ["eval", bc, "--episodes", "1", "--out", str(w / "a-file" / "r.json")], r"a-file is a file, not a folder", None),
        ("train-out-under-file", ["train", "bc", "--data", data, "--out", str(w / "a-file" / "run")], r"is a file, not a folder", None),
        ("demos-out-unwritable", ["demos", "pusht/state", "--episodes", "1", "--out", "/proc/lwd-demos.zarr"], r"cannot be written", None),
        ("import-out-unwritable", ["import", "dp-pusht", data, "--out", "/sys/lwd.zarr"], r"cannot be written", None),
        ("bench-out-under-file", ["bench", "pusht/state", "--data", data, "--out", str(w / "a-file" / "b")], r"is a file, not a folder", None),
        ("export-bc-controller", ["export", bc, "--format", "npz", "--out", str(out / "ctl")],
         r"bc does not generate policy weights; export, latents and reconstruct need lcmlp, lwd or warpd", None),
        ("export-no-format", ["export", lwd, "--out", str(out / "ctl2")], r"export a run with: lwd export RUN --format npz\|onnx", str(out / "ctl2")),
        ("export-steps-not-onnx", ["export", lwd, "--format", "npz", "--inference-steps", "2", "--out", str(out / "ctl3")],
         r"--inference-steps sets the steps of the ONNX generator; it applies to --format onnx, not npz", str(out / "ctl3")),
        ("export-no-data", ["export-data", "lerobot", "--out", str(out / "lr")], r"required: data", str(out / "lr")),
        # importers
        ("robomimic-not-hdf5", ["import", "robomimic", str(w / "notes.txt"), "--out", str(out / "rm.zarr")], r"HDF5", str(out / "rm.zarr")),
        ("dp-pusht-missing", ["import", "dp-pusht", str(w / "nowhere.zarr"), "--out", str(out / "dp.zarr")], r"does not exist", str(out / "dp.zarr")),
        ("dp-pusht-missing-key", ["import", "dp-pusht", data, "--out", str(out / "dp2.zarr")], r"has no data key\(s\) \['state', 'keypoint'\]", str(out / "dp2.zarr")),
        ("dp-pusht-keypoints", ["import", "dp-pusht", str(w / "dp-layout.zarr"), "--out", str(out / "dp3.zarr")],
         r"does not match the keypoints .* --obs-type state .* --no-keypoint-check", str(out / "dp3.zarr")),
    ]
    return cases


@pytest.fixture(scope="module")
def outcomes(work, tmp_path_factory):
    cases = _cases(work)
    before = {name: _tree_hash(path) for name, path in _unchanged(work).items()}
    servers = [_ForkServer(tmp_path_factory.mktemp(f"forkserver-{i}")) for i in range(2)]
    free = queue.Queue()
    for server in servers:
        free.put(server)

    def run(case):
        server = free.get()
        try:
            return server.run(*case[1])
        finally:
            free.put(server)

    try:
        with ThreadPoolExecutor(2) as pool:  # two at a time, each case its own process
            results = list(pool.map(run, cases))
    finally:
        for server in servers:
            server.close()
    after = {name: _tree_hash(path) for name, path in _unchanged(work).items()}
    return {case[0]: (case, result, before.get(case[0]) == after.get(case[0])) for case, result in zip(cases, results)}


def test_there_are_at_least_forty_distinct_cases():
    assert len(set(CASE_NAMES)) == len(CASE_NAMES) >= 40


CASE_NAMES = [case[0] for case in _cases(Path("/placeholder"))]  # the names only depend on the case list


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_gives_one_clear_line(outcomes, name):
    (_, args, pattern, absent), result, unchanged = outcomes[name]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, f"{name}: exit {result.returncode}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, f"{name}:\n{result.stderr[-3000:]}"
    assert len(lines) == 1, f"{name}: expected one line, got:\n{result.stderr}"
    assert lines[0].startswith("lwd"), lines[0]
    assert re.search(pattern, lines[0]), f"{name}: {lines[0]!r} does not match {pattern!r}"
    if absent is not None:
        assert not Path(absent).exists(), f"{name}: left {absent} behind"
    assert unchanged, f"{name}: changed its existing target"


def test_the_old_spelling_of_export_data_still_works_and_says_it_is_deprecated(work, tmp_path, capsys):
    from lwd.cli import main

    assert main(["export", "lerobot", str(work / "good.zarr"), "--out", str(tmp_path / "lerobot")]) == 0
    assert "`lwd export lerobot DATA` is deprecated; use `lwd export-data lerobot DATA`" in capsys.readouterr().err
    assert (tmp_path / "lerobot" / "meta" / "info.json").is_file()
    assert main(["export", "lerobot", "--out", str(tmp_path / "lr")]) == 2
    assert "lwd export-data lerobot needs the episode store" in capsys.readouterr().err


def test_eval_refuses_an_unwritable_out_before_evaluating(work):
    started = time.perf_counter()
    result = _lwd("eval", str(work / "runs" / "bc"), "--episodes", "50", "--out", "/proc/lwd.json")
    assert result.returncode == 2 and "cannot be written" in result.stderr
    assert "eval pusht" not in result.stderr  # no progress bar: no episode ran
    assert time.perf_counter() - started < 60


def test_ctrl_c_during_training_saves_a_state_and_says_how_to_resume(work, tmp_path):
    args = ["train", "bc", "--data", str(work / "good.zarr"), "--out", str(tmp_path / "run"), "--set", "steps=1000000",
            "--train-set", "checkpoint_every=1000000"]
    proc = subprocess.Popen([*LWD, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, preexec_fn=_default_sigint)
    deadline = time.time() + 90
    seen = ""
    while time.time() < deadline and "train bc:bc" not in seen and proc.poll() is None:  # the progress bar: training has started
        seen += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
    assert "train bc:bc" in seen, seen
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, rest_bytes = proc.communicate(timeout=60)
    rest = rest_bytes.decode(errors="replace")
    assert proc.returncode == 130, seen + rest
    last = [line for line in (seen + rest).replace("\r", "\n").splitlines() if line.startswith("lwd train")]
    assert len(last) == 1 and "interrupted; training state saved at bc step" in last[0] and "--resume" in last[0], last
    latest = json.loads((tmp_path / "run" / "train_state" / "latest.json").read_text())
    assert latest["step"] > 0
    resumed = subprocess.run([*LWD, *args, "--resume", "--set", f"steps={latest['step'] + 2}"], capture_output=True, text=True, env=ENV)
    assert resumed.returncode == 2 and "settings differ" in resumed.stderr  # resume checks the settings it continues


def test_two_trainings_into_one_folder_started_together_one_trains_the_other_refuses(work, tmp_path):
    args = [*LWD, "train", "bc", "--data", str(work / "good.zarr"), "--out", str(tmp_path / "run"), "--set", "steps=200"]
    procs = [subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    refused = next(err for rc, err in results if rc == 2)
    lines = [line for line in refused.splitlines() if line.strip()]
    assert len(lines) == 1 and ("is being trained into by process" in lines[0] or "already holds a trained model" in lines[0]), lines
    assert not (tmp_path / "run" / ".lock").exists()  # released by the one that trained


def test_a_live_lock_refuses_and_a_stale_one_is_taken_over(work, tmp_path):
    from lwd.training.runlock import RunLock

    args = ["train", "bc", "--data", str(work / "good.zarr"), "--out", str(tmp_path / "run"), "--set", "steps=3"]
    with RunLock(tmp_path / "run"):  # this test process trains into it, as far as lwd can tell
        held = _lwd(*args)
    assert held.returncode == 2 and f"being trained into by process {os.getpid()}" in held.stderr, held.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()
    (tmp_path / "run").mkdir(exist_ok=True)  # (the refused training removed the folder it found missing)
    (tmp_path / "run" / ".lock").write_text('{"pid": 999999, "host": "gone", "since": "yesterday"}')  # its process died
    taken = _lwd(*args)
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_overwrite_replaces_a_run_and_eval_keeps_every_result_and_warns_when_the_data_changed(work, tmp_path, capsys):
    """Demos made, a run trained, the demos regenerated with --overwrite: eval (and info) say the data changed."""
    from lwd.cli import main

    data, run = tmp_path / "demos.zarr", tmp_path / "run"
    assert main(["demos", "pusht/state", "--episodes", "1", "--out", str(data)]) == 0
    assert main(["train", "bc", "--data", str(data), "--out", str(run), "--set", "steps=3"]) == 0
    provenance = json.loads((run / "provenance.json").read_text())
    assert len(provenance["data"]["sha256"]) == 64 and provenance["threads"] >= 1 and provenance["device"] == "cpu"
    assert provenance["command"].startswith("lwd") and provenance["git_commit"] and provenance["lwd_version"]
    assert oct((run / "config.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # the user's umask, not 0600
    first_model = (run / "model.safetensors").read_bytes()
    assert main(["train", "bc", "--data", str(data), "--out", str(run), "--set", "steps=4", "--overwrite"]) == 0
    assert (run / "model.safetensors").read_bytes() != first_model
    assert json.loads((run / "config.json").read_text())["method_config"]["steps"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.zarr", "run"]  # no temporary sibling left
    capsys.readouterr()
    for _ in range(2):
        assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert sorted(p.name for p in (run / "evals").glob("*.json")) == ["pusht_state-none-1ep-2.json", "pusht_state-none-1ep.json"]
    assert main(["demos", "pusht/state", "--episodes", "1", "--seed-start", "5", "--out", str(data), "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warned) == 1 and "has changed since training" in warned[0] and str(data) in warned[0], warned
    assert main(["info", str(run), "--latency-steps", "0"]) == 0
    assert "has changed since training" in capsys.readouterr().err


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_a_full_disk_ends_in_one_line_and_leaves_the_old_state_or_a_fresh_start(work, tmp_path):
    """A real full disk: small tmpfs mounts in a private mount namespace (skipped where unshare cannot mount)."""
    import shutil

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare to mount a small tmpfs")
    full, tight, report = tmp_path / "full", tmp_path / "tight", tmp_path / "report"
    for folder in (full, tight, report):
        folder.mkdir()
    good = work / "good.zarr"
    python = f"{sys.executable} -m lwd.cli"
    script = f"""
    mount -t tmpfs -o size=1m tmpfs {full} && mount -t tmpfs -o size=1m tmpfs {tight} || exit 99
    cp -r {good} {full}/keep.zarr
    dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null
    {python} demos pusht/state --episodes 2 --out {full}/keep.zarr --overwrite 2> {report}/demos.err; echo $? > {report}/demos.rc
    (cd {full}/keep.zarr && find . -type f | sort | xargs sha256sum) > {report}/keep.sha
    ls -A {full} > {report}/full.ls
    dd if=/dev/zero of={tight}/filler bs=4k count=246 2>/dev/null
    {python} train bc --data {good} --out {tight}/run --set steps=3 2> {report}/train.err; echo $? > {report}/train.rc
    find {tight} -name '.*' > {report}/hidden.ls
    rm {tight}/filler
    {python} train bc --data {good} --out {tight}/run --set steps=3 2> {report}/again.err; echo $? > {report}/again.rc
    """
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    if done.returncode == 99:
        pytest.skip("tmpfs cannot be mounted here")
    expected = subprocess.run(f"cd {good} && find . -type f | sort | xargs sha256sum", shell=True, capture_output=True, text=True).stdout
    for name in ("demos", "train"):
        err = (report / f"{name}.err").read_text()
        lines = [line for line in err.splitlines() if line.startswith("lwd")]  # (progress bars share stderr)
        assert (report / f"{name}.rc").read_text().strip() == "2", err[-3000:]
        assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in err, err[-3000:]
    assert (report / "keep.sha").read_text() == expected  # the old dataset, byte for byte
    assert (report / "full.ls").read_text().split() == ["filler", "keep.zarr"]  # no temporary copy left
    assert (report / "hidden.ls").read_text().split() == [], "temporary files left behind"
    assert (report / "again.rc").read_text().strip() == "0", (report / "again.err").read_text()[-3000:]  # no --resume dead end


def test_ctrl_c_during_start_up_is_one_line_and_exit_130(work):
    proc = subprocess.Popen([*LWD, "info", str(work / "runs" / "bc")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=_default_sigint)
    time.sleep(0.7)  # torch and the simulators are still importing
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and "Traceback" not in err and len(lines) == 1 and "interrupted" in lines[0], err[-3000:]
