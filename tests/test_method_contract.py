"""A method defined in this file alone runs through train -> eval -> info -> bench: the top floors
(pipeline, train, evaluate, bench) know methods only through the registered contract."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lwd.data import SegmentDataset, WindowSpec
from lwd.data.keys import ACTIONS, OBS, ACTION, OBS_HISTORY
from lwd.flops import count_flops, num_params
from lwd.methods import base
from lwd.methods.base import BenchCell, Cost, Method, Policy, Preset, RuntimeOptions, Stage, register_method

pytest.importorskip("metaworld")


@dataclass(frozen=True)
class ToyConfig:
    steps: int = 20
    hidden: int = 8


@dataclass(frozen=True)
class ToyRuntime(RuntimeOptions):
    action_repeat: int | None = None
    """Hold each action for this many steps (1: act every step)."""


class ToyPolicy(Policy):
    def __init__(self, model: "Toy", repeat: int) -> None:
        super().__init__()
        self.model, self.repeat = model, repeat
        self._held: np.ndarray | None = None

    def reset(self, seed: int, task: int | None = None) -> None:
        self._held = None
        self._t = 0

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        if self._t % self.repeat == 0:
            x = torch.from_numpy(self.model.normalizer.normalize(OBS, np.asarray(obs, np.float32)).astype(np.float32))
            self._held = self.model.normalizer.unnormalize(ACTION, self.model.net(x[None])[0].numpy()).astype(np.float32)
            self.generations += 1
        self._t += 1
        self.steps += 1
        return self._held


class Toy(Method):
    name = "toy"
    config_class = ToyConfig
    runtime_class = ToyRuntime
    presets = {"default": Preset(train={"batch_size": 16}), "longer": Preset(method={"steps": 30}, extends="default")}

    def __init__(self, cfg: ToyConfig, info, normalizer) -> None:
        super().__init__(cfg, info, normalizer)
        self.net = nn.Sequential(nn.Linear(info.obs_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, info.action_dim))

    def stages(self, train_cfg, episodes) -> list[Stage]:
        data = SegmentDataset(episodes, WindowSpec(obs_steps=1, action_steps=1), self.normalizer)

        def sample(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return data.sample_batch(rng.integers(len(data), size=train_cfg.batch_size))

        def loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
            value = F.mse_loss(self.net(batch[OBS_HISTORY][:, -1]), batch[ACTIONS][:, 0])
            return value, {"mse": value.item()}

        return [Stage("fit", self.cfg.steps, self.net, sample, loss, lr=1e-2)]

    def make_policy(self, runtime: ToyRuntime | None = None) -> ToyPolicy:
        return ToyPolicy(self, (runtime or ToyRuntime()).action_repeat or 1)

    def cost(self, runtime: ToyRuntime | None = None, episode_steps: int | None = None) -> Cost:
        flops = count_flops(lambda: self.net(torch.zeros(1, self.info.obs_dim)))
        every = (runtime or ToyRuntime()).action_repeat or 1
        return Cost(num_params(self), num_params(self), flops_policy_step=0, flops_generation=flops, generation_every=every)

    @classmethod
    def bench_cell(cls, variant: str, horizon: int, cfg: ToyConfig, ddim_steps: int) -> BenchCell:
        return BenchCell((), ToyRuntime(action_repeat=horizon))


@pytest.fixture
def toy_registered(monkeypatch):
    base.method_names()  # the built-in methods register themselves first
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # the toy is registered for this test only
    register_method(Toy)
    yield Toy


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    from lwd.demos import collect_demos
    from lwd.suites import make_suite

    path = tmp_path_factory.mktemp("toy") / "reach.zarr"
    collect_demos(make_suite("metaworld/reach-v3"), 2, progress=False).save(path)
    return path


def test_a_method_registered_in_a_test_runs_train_eval_info_and_bench(toy_registered, reach_demos, tmp_path):
    from lwd.bench import bench_labels, run_bench
    from lwd.checkpoint import load_model, read_run_config
    from lwd.pipeline import evaluate_run, run_info, train_run

    assert "toy" in bench_labels()
    train_run("toy", reach_demos, tmp_path / "run", preset="longer", progress=False)
    run = read_run_config(tmp_path / "run")
    assert (run.method, run.method_config, run.train.batch_size) == ("toy", ToyConfig(steps=30), 16)
    assert isinstance(load_model(tmp_path / "run"), Toy)

    result = evaluate_run(tmp_path / "run", episodes=2, progress=False, action_repeat=4)
    assert result["method"] == "toy" and result["policy_kwargs"] == {"action_repeat": 4}
    assert len(result["episodes"]) == 2
    steps = result["cost"]["policy_steps"]
    assert result["cost"]["generations"] == sum(-(-e["steps"] // 4) for e in result["episodes"])  # ceil(steps / 4) each
    assert steps == sum(e["steps"] for e in result["episodes"])
    with pytest.raises(ValueError, match="takes no run-time option action_horizon"):
        evaluate_run(tmp_path / "run", episodes=1, progress=False, action_horizon=8)

    info = run_info(tmp_path / "run", action_repeat=2)
    assert info["method"] == "toy" and info["generation_every"] == 2 and info["flops_per_step"] == info["flops_generation"] / 2

    grid = run_bench("metaworld/reach-v3", reach_demos, tmp_path / "bench", ["toy"], [1, 3], ["none"], 1, {}, {},
                     progress=False, latency_steps=5)
    assert [(c["method"], c["horizon"]) for c in grid["cells"]] == [("toy", 1), ("toy", 3)]
    assert [c["cost"]["generation_every"] for c in grid["cells"]] == [1, 3]
    assert len({c["run_dir"] for c in grid["cells"]}) == 1  # one trained run serves both horizons
    assert (tmp_path / "bench" / "grid.md").read_text().count("| toy |") == 2


def test_an_unknown_method_lists_the_registered_ones():
    from lwd.methods import get_method

    with pytest.raises(ValueError, match="known: bc, dp, lcmlp, lwd, warpd"):
        get_method("gan")


def test_registration_refuses_an_incomplete_method(monkeypatch):
    base.method_names()
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    class NoConfig(Method):
        name = "noconfig"

    with pytest.raises(ValueError, match="config_class"):
        register_method(NoConfig)

    class Dashed(Toy):
        name = "my-method"

    with pytest.raises(ValueError, match="without '-'"):
        register_method(Dashed)
