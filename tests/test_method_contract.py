"""A method defined in this file alone runs through train -> eval -> info -> bench (and, when it generates
policy weights, export -> latents -> reconstruct): the top floors
(pipeline, train, evaluate, bench) know methods only through the registered contract."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lwd.data import SegmentDataset, WindowSpec
from lwd.data.keys import ACTION, ACTIONS, OBS, OBS_HISTORY, STATES
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
    from lwd.checkpoint import load_model, read_run_config
    from lwd.experiments.bench import bench_labels, run_bench
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


# ------------------------------------------------------------------ a toy method that generates policy weights
@dataclass(frozen=True)
class ToyGenConfig:
    steps: int = 10
    horizon: int = 4
    latent_dim: int = 2
    hidden: int = 8


class ToyGenPolicy(Policy):
    """A fresh z ~ N(0, I) per episode (seeded by it), decoded once; the MLP runs every step."""

    def __init__(self, model: "ToyGen") -> None:
        super().__init__()
        self.model = model
        self._layers: list = []

    def reset(self, seed: int, task: int | None = None) -> None:
        theta = self.model.decoder(torch.randn(1, self.model.cfg.latent_dim, generator=torch.Generator().manual_seed(seed)))
        self._layers = [(w[0].detach().numpy(), b[0, 0].detach().numpy()) for w, b in self.model.target.unflatten(theta)]
        self.generations += 1

    def act(self, obs: np.ndarray) -> np.ndarray:
        from lwd.methods.target_mlp import numpy_mlp_forward

        self.steps += 1
        x = self.model.normalizer.normalize(OBS, np.asarray(obs, np.float32)).astype(np.float32)
        return self.model.normalizer.unnormalize(ACTION, numpy_mlp_forward(self.model.target, self._layers, x)).astype(np.float32)


class ToyGenerator(base.WeightGenerator):
    def segments(self, episodes):
        spec = WindowSpec(obs_steps=1, action_steps=self.horizon, with_states=True)
        return SegmentDataset(episodes, spec, self.method.normalizer, short_episodes="pad")

    def encode(self, batch):
        with torch.no_grad():
            return self.method.encoder(torch.cat([batch[STATES], batch[ACTIONS]], -1).flatten(1))

    def sample(self, task, obs_history, generator=None, sampler=None, steps=None):
        count = 1 if obs_history is None else obs_history.shape[0]
        return torch.randn(count, self.latent_dim, generator=generator)

    def decode(self, z):
        with torch.no_grad():
            return self.method.decoder(z)


class ToyGen(Method):
    """z = a linear map of the flattened segment; theta = a linear map of z: the smallest weight generator."""

    name = "toygen"
    config_class = ToyGenConfig
    presets = {"default": Preset(train={"batch_size": 8})}

    def __init__(self, cfg: ToyGenConfig, info, normalizer) -> None:
        from lwd.methods.target_mlp import TargetMLPSpec

        super().__init__(cfg, info, normalizer)
        self.target = TargetMLPSpec(info.obs_dim, info.action_dim, (cfg.hidden,))
        self.encoder = nn.Linear(cfg.horizon * (info.obs_dim + info.action_dim), cfg.latent_dim)
        self.decoder = nn.Linear(cfg.latent_dim, self.target.num_params)

    def stages(self, train_cfg, episodes) -> list[Stage]:
        from lwd.methods.target_mlp import batched_mlp_forward

        data = self.weight_generator().segments(episodes)

        def sample(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return data.sample_batch(rng.integers(len(data), size=train_cfg.batch_size))

        def loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
            z = self.encoder(torch.cat([batch[STATES], batch[ACTIONS]], -1).flatten(1))
            value = F.mse_loss(batched_mlp_forward(self.target, self.decoder(z), batch[STATES]), batch[ACTIONS])
            return value, {"mse": value.item()}

        return [Stage("vae", self.cfg.steps, self, sample, loss, lr=1e-2)]

    def make_policy(self, runtime: RuntimeOptions | None = None) -> ToyGenPolicy:
        return ToyGenPolicy(self)

    def cost(self, runtime: RuntimeOptions | None = None, episode_steps: int | None = None) -> Cost:
        return Cost(num_params(self), self.target.num_params, flops_policy_step=2 * self.target.num_params)

    def weight_generator(self) -> ToyGenerator:
        return ToyGenerator(self, self.target, policy_obs_steps=1, horizon=self.cfg.horizon, latent_dim=self.cfg.latent_dim)


def test_a_generating_method_registered_in_a_test_exports_draws_its_latent_map_and_reconstructs(
        toy_registered, reach_demos, tmp_path):
    """The deployment and analysis tools reach a generating method only through its WeightGenerator."""
    from lwd.analysis.latents import latent_map
    from lwd.analysis.reconstruct import reconstruct
    from lwd.checkpoint import load_model
    from lwd.deploy.export import export_run
    from lwd.deploy.export_c import compiler
    from lwd.deploy.numpy_controller import Controller
    from lwd.methods.target_mlp import numpy_mlp_forward
    from lwd.pipeline import train_run

    register_method(ToyGen)
    assert "toygen" in base.generating_method_names() and "toy" not in base.generating_method_names()
    run = tmp_path / "run"
    train_run("toygen", reach_demos, run, progress=False)
    model = load_model(run)

    figures, line = export_run(run, "npz", tmp_path / "exported")
    assert "controller.json" in line
    controller = Controller.load(tmp_path / "exported")
    theta = model.decoder(torch.zeros(1, 2)).detach()
    controller.set_weights(theta.numpy().reshape(-1))
    obs = np.linspace(-1, 1, model.info.obs_dim).astype(np.float32)
    layers = [(w[0].numpy(), b[0, 0].numpy()) for w, b in model.target.unflatten(theta)]
    expected = model.normalizer.unnormalize(ACTION, numpy_mlp_forward(model.target, layers, model.normalizer.normalize(OBS, obs)))
    np.testing.assert_allclose(controller.act(obs), expected, rtol=1e-4, atol=1e-4)
    if compiler() is not None:
        export_run(run, "c", tmp_path / "exported")
        assert (tmp_path / "exported" / "c.json").is_file()
    with pytest.raises(ValueError, match=r"--format npz\|c .*toygen has no format 'onnx'"):
        export_run(run, "onnx", tmp_path / "exported")

    info = latent_map(run, reach_demos, tmp_path / "map.png")
    assert info["points"] > 0 and (tmp_path / "map.png").is_file()
    result = reconstruct(run, reach_demos, episodes_per_task=1, progress=False)
    assert result["starts_matched"] and len(result["episodes"]) == 1
    assert result["episodes"][0]["segments"] == -(-result["episodes"][0]["demo_steps"] // 4)  # one policy per H steps


def test_a_method_that_generates_no_weights_is_refused_by_the_contract(toy_registered, reach_demos, tmp_path):
    from lwd.analysis.latents import latent_map
    from lwd.deploy.export import export_run
    from lwd.pipeline import train_run

    train_run("toy", reach_demos, tmp_path / "run", progress=False)
    refusal = r"toy does not generate policy weights; export, latents and reconstruct need lcmlp, lwd or warpd"
    with pytest.raises(ValueError, match=refusal):
        export_run(tmp_path / "run", "npz", tmp_path / "exported")
    with pytest.raises(ValueError, match=refusal):
        latent_map(tmp_path / "run", reach_demos, tmp_path / "map.png")
    assert not (tmp_path / "exported").exists()


def test_a_registered_methods_run_time_option_is_a_flag_of_lwd_eval_and_info(toy_registered, reach_demos, tmp_path, capsys):
    """ToyRuntime.action_repeat becomes --action-repeat (type and help from the dataclass) with no edit to lwd.cli."""
    import json

    from lwd.cli import build_parser, main
    from lwd.pipeline import train_run

    help_text = build_parser()._subparsers._group_actions[0].choices["eval"].format_help()
    assert "--action-repeat ACTION_REPEAT" in help_text and "Hold each action for this many steps" in " ".join(help_text.split())
    train_run("toy", reach_demos, tmp_path / "run", progress=False)
    out = tmp_path / "result.json"
    assert main(["eval", str(tmp_path / "run"), "--episodes", "1", "--action-repeat", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["policy_kwargs"] == {"action_repeat": 3}
    assert result["cost"]["generations"] == -(-result["episodes"][0]["steps"] // 3)
    assert main(["info", str(tmp_path / "run"), "--action-repeat", "2", "--latency-steps", "0"]) == 0
    with pytest.raises(SystemExit, match="2"):  # typed from the field: an int
        main(["eval", str(tmp_path / "run"), "--action-repeat", "two"])
    assert "--action-repeat: invalid int value: 'two'" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "run"), "--episodes", "1", "--sampler", "ddim"]) == 2  # another method's option
    assert "toy takes no run-time option sampler" in capsys.readouterr().err


def test_lwd_train_help_lists_a_registered_methods_presets_and_info_prints_what_one_sets(toy_registered, capsys):
    from lwd import __version__
    from lwd.cli import main

    with pytest.raises(SystemExit, match="0"):
        main(["train", "--help"])
    assert "  toy: default, longer" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="0"):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"lwd {__version__}"
    assert main(["info", "toy:longer", "--preset-only", "--dims", "3,2", "--latency-steps", "0"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("sets ")]
    assert rows == [["sets", "steps", "30"], ["sets", "train.batch_size", "16"]]  # `longer` and the preset it extends
