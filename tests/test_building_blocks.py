"""The pieces the top floors are built from, each on its own: slot scheduling, per-episode accounting,
costs, bench cell planning, presets, typed configs, observation history, optional imports, and the
import structure of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from lwd.config import DataInfo, RunConfig, TrainConfig, apply_overrides, from_dict
from lwd.evaluation.evaluate import EpisodeTally, SlotSchedule, measured_cost
from lwd.methods import Cost, GenerationRuntime, Policy, Preset, get_method, resolve_preset
from lwd.methods.history import ObsHistory


# ------------------------------------------------------------------ evaluation pieces
def test_slot_schedule_hands_out_episodes_in_plan_order_as_slots_free_up():
    plan = [("a", 0, 10), ("a", 0, 11), ("b", 1, 10)]
    schedule = SlotSchedule(plan, n_slots=2)
    assert schedule.assign([0, 1]) == [(0, "a", 0, 10), (1, "a", 0, 11)]
    assert schedule.active() == [0, 1]
    assert schedule.assign([1]) == [(1, "b", 1, 10)]  # slot 1 finished first: it gets the next episode
    assert schedule.assign([0]) == []  # the plan is used up: slot 0 goes idle
    assert schedule.active() == [1] and schedule.busy
    schedule.assign([1])
    assert not schedule.busy


def test_episode_tally_keeps_success_once_reached_and_both_scores():
    tally = EpisodeTally("pusht", 3)
    for reward, success, score in [(0.1, False, 0.2), (0.5, True, 0.9), (0.2, False, 0.4)]:
        tally.record(reward, success, score)
    result = tally.result()
    assert (result.steps, result.success, result.max_score, result.final_score) == (3, True, 0.9, 0.4)
    assert result.total_reward == pytest.approx(0.8)
    unscored = EpisodeTally("reach", 0)
    unscored.record(1.0, False, float("nan"))
    assert unscored.result().max_score is None and unscored.result().final_score is None


class _Counted(Policy):
    def __init__(self, steps: int, generations: int) -> None:
        super().__init__()
        self.steps, self.generations = steps, generations


def test_measured_cost_divides_what_the_policies_actually_ran():
    cost = Cost(params_total=10, params_per_step=5, flops_policy_step=100, flops_generation=8000, generation_every=16)
    assert cost.flops_per_step == 8000 / 16 + 100
    # One generation per 300-step episode (e.g. --action-horizon episode) costs far less per step.
    out = measured_cost(cost, [_Counted(300, 1), _Counted(300, 1)])
    assert out["flops_per_step_measured"] == (2 * 8000 + 600 * 100) / 600
    assert (out["generations"], out["policy_steps"]) == (2, 600)
    plain = Cost(params_total=10, params_per_step=10, flops_policy_step=46)
    assert measured_cost(plain, [_Counted(7, 0)])["flops_per_step_measured"] == 46


def test_cost_dict_lists_method_details_after_the_parameter_counts():
    cost = Cost(1, 2, flops_policy_step=3, flops_generation=40, generation_every=4, details={"sampler": "ddim"})
    assert list(cost.to_dict()) == ["params_total", "params_per_step", "sampler", "flops_generation",
                                    "flops_policy_step", "generation_every", "flops_per_step"]


def test_default_batched_acting_steps_each_policy_alone():
    class Echo(Policy):
        def act(self, obs: np.ndarray) -> np.ndarray:
            self.steps += 1
            return obs * 2

    policies = [Echo(), Echo()]
    out = Echo.act_batch(policies, np.array([[1.0], [3.0]]))
    np.testing.assert_array_equal(out, [[2.0], [6.0]])
    assert [p.steps for p in policies] == [1, 1] and not Echo.batches_acting


# ------------------------------------------------------------------ bench planning
def test_bench_plans_cells_through_each_methods_hook():
    from lwd.experiments.bench import plan_cells

    cells = plan_cells(["lwd", "dp-ddim", "bc"], [8, 16], ["none", "action-noise:0.1"], {"dp": "cpu"}, {"dp": ["steps=7"]},
                       seed=2, ddim_steps=5)
    lwd = [c for c in cells if c.label == "lwd"]
    assert [(c.horizon, c.perturbation) for c in lwd] == [(8, "none"), (16, "none"), (8, "action-noise:0.1"), (16, "action-noise:0.1")]
    assert {c.run_name for c in lwd} == {"lwd--s2"} and lwd[0].runtime == GenerationRuntime(action_horizon=8)
    dp = [c for c in cells if c.label == "dp-ddim" and c.perturbation == "none"]
    # To-1+H actions must fit the prediction horizon, rounded up to the U-Net's multiple of 4.
    assert [(c.run_name, c.overrides) for c in dp] == [("dp-T16-s2", ("steps=7", "horizon=16")), ("dp-T20-s2", ("steps=7", "horizon=20"))]
    assert dp[1].runtime == GenerationRuntime(action_horizon=16, sampler="ddim", inference_steps=5)
    assert dp[0].preset == "cpu"
    bc = [c for c in cells if c.label == "bc"]
    assert [(c.horizon, c.run_name) for c in bc] == [(None, "bc--s2"), (None, "bc--s2")]  # H does not apply: once per perturbation


def test_bench_refuses_unknown_methods_and_variants():
    from lwd.experiments.bench import plan_cells

    with pytest.raises(ValueError, match="unknown bench method.*known: bc, dp, dp-ddim, lcmlp, lwd, warpd"):
        plan_cells(["lwd-ddim"], [8], ["none"], {}, {}, 0, 10)
    with pytest.raises(ValueError, match="positive"):
        plan_cells(["lwd"], [0], ["none"], {}, {}, 0, 10)


# ------------------------------------------------------------------ presets and configs
def test_presets_compose_along_their_extends_chain():
    class Fake:
        name = "fake"
        presets = {"a": Preset(method={"x": 1, "y": 1}, train={"lr": 1.0}), "b": Preset(method={"y": 2}, extends="a"),
                   "c": Preset(train={"lr": 3.0}, extends="b"), "loop": Preset(extends="loop2"), "loop2": Preset(extends="loop")}

    assert resolve_preset(Fake, "c") == ({"x": 1, "y": 2}, {"lr": 3.0})
    with pytest.raises(ValueError, match="extends itself"):
        resolve_preset(Fake, "loop")
    with pytest.raises(ValueError, match="unknown preset 'd' for fake; known: a, b, c"):
        resolve_preset(Fake, "d")


def test_settings_are_type_checked_where_they_are_parsed():
    lwd_config = get_method("lwd").config_class
    for bad, message in [("horizon=abc", "LWDConfig.horizon must be an integer"), ("horizon=8.5", "must be an integer"),
                         ("kl_weight=abc", "LWDConfig.kl_weight must be a number"), ("policy_hidden=64", "must be a list"),
                         ("horizon=true", "must be an integer")]:
        with pytest.raises(ValueError, match=message):
            apply_overrides(lwd_config(), [bad])
    assert apply_overrides(lwd_config(), ["policy_hidden=[64, 32]"]).policy_hidden == (64, 32)
    with pytest.raises(ValueError, match="TrainConfig.betas must hold 2 values"):
        from_dict(TrainConfig, {"betas": [0.9]})


def test_run_config_round_trips_and_accepts_runs_written_before_the_method_folders():
    cfg = get_method("bc").config_class(hidden=(32,))
    run = RunConfig("bc", cfg, TrainConfig(seed=3), DataInfo(5, 2, ("a", "b")), preset="default")
    resolve = lambda name: get_method(name).config_class  # noqa: E731
    assert RunConfig.from_json(run.to_json(), resolve) == run
    legacy = {**run.to_json(), "extra": {}}  # config.json of runs trained before the redesign
    assert RunConfig.from_json(legacy, resolve) == run
    with pytest.raises(ValueError, match="extra"):
        RunConfig.from_json({**run.to_json(), "extra": {"x": 1}}, resolve)
    with pytest.raises(ValueError, match="BCConfig.hidden"):
        RunConfig.from_json({**run.to_json(), "method_config": {"hidden": "big"}}, resolve)


def test_runtime_options_are_typed_and_refuse_what_the_method_does_not_take():
    lwd = get_method("lwd")
    assert lwd.runtime_options(action_horizon=8, sampler=None) == lwd.runtime_class(action_horizon=8)
    assert issubclass(lwd.runtime_class, GenerationRuntime)
    assert lwd.runtime_options(action_horizon=8).given() == {"action_horizon": 8}
    with pytest.raises(ValueError, match="bc takes no run-time option action_horizon"):
        get_method("bc").runtime_options(action_horizon=8)
    with pytest.raises(ValueError, match="action_horizon must be an integer"):
        lwd.runtime_options(action_horizon="soon")


# ------------------------------------------------------------------ shared helpers
def test_observation_history_pads_with_the_first_observation_and_slides():
    history = ObsHistory(3)
    first, second = np.array([1.0]), np.array([2.0])
    history.push(first)
    np.testing.assert_array_equal(history.stacked(), [[1.0], [1.0], [1.0]])
    history.push(second)
    np.testing.assert_array_equal(history.stacked(), [[1.0], [1.0], [2.0]])
    assert [x[0] for x in history.last(2)] == [1.0, 2.0]
    history.clear()
    history.push(second)
    np.testing.assert_array_equal(history.stacked(), [[2.0], [2.0], [2.0]])


def test_require_names_the_extra_that_installs_a_missing_module():
    from lwd.optional import require

    with pytest.raises(ImportError, match=r"pip install -e '\.\[pusht\]'"):
        require("no_such_module_lwd", "pusht", "gym-pusht")
    assert require("json", "none").dumps([1]) == "[1]"


# ------------------------------------------------------------------ package structure
SRC = Path(__file__).resolve().parents[1] / "src" / "lwd"


def _node(module: str) -> str:
    """Import-graph node of a module: its folder, or the module itself for files at the top of lwd/."""
    parts = module.split(".")
    path = SRC.joinpath(*parts[1:])
    if path.is_dir():
        return "/".join(parts)
    return "/".join(parts[:-1]) if len(parts) > 2 else module


def _import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for file in SRC.rglob("*.py"):
        rel = file.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        source = _node(module) if rel.name != "__init__" else "/".join(rel.parts[:-1])
        for node in ast.walk(ast.parse(file.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lwd"):
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("lwd")]
            for target in targets:
                if _node(target) != source:
                    graph.setdefault(source, set()).add(_node(target))
    return graph


def test_envs_and_experts_do_not_import_each_other():
    graph = _import_graph()
    assert "lwd/experts" not in graph.get("lwd/envs", set())
    assert "lwd/envs" not in graph.get("lwd/experts", set())


def test_no_import_cycle_between_folders():
    graph = _import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_top_floors_name_no_method():
    files = [SRC / f"{name}.py" for name in ("evaluation/evaluate", "pipeline", "experiments/bench", "training/train",
                                             "deploy/export", "deploy/exported", "analysis/latents", "analysis/reconstruct")]
    files += sorted((SRC / "cli").glob("*.py"))  # the CLI: one module per command
    assert SRC / "cli" / "__init__.py" in files
    for file in files:
        name = file.relative_to(SRC).with_suffix("")
        tree = ast.parse(file.read_text())
        program_name = {id(k.value) for k in ast.walk(tree) if isinstance(k, ast.keyword) and k.arg == "prog"}  # `lwd` the command
        literals = {n.value for n in ast.walk(tree)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in program_name}
        assert not literals & {"lwd", "warpd", "lcmlp", "dp", "bc", "dp-ddim"}, f"{name}.py names a method"
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in imported if m.startswith("lwd.methods.") and m.count(".") >= 3 and not m.endswith(
            ("methods.base", "methods.target_mlp", "methods.history", "methods.diffusion"))}, f"{name}.py imports a method's folder"


def test_eval_plot_shows_the_score_beside_success_where_the_suite_scores_episodes():
    import matplotlib.pyplot as plt

    from lwd.evaluation.evaluate import success_figure

    result = {"method": "lwd", "suite": "pusht", "episodes_per_task": 50, "mean_success": 0.0,
              "per_task": {"pusht": {"success_rate": 0.0}}}
    plain = success_figure(result)
    scored = success_figure({**result, "mean_score": 0.72, "per_task": {"pusht": {"success_rate": 0.0, "mean_score": 0.72}}})
    assert len(plain.axes[0].containers) == 1
    heights = [bar.get_height() for container in scored.axes[0].containers for bar in container]
    assert len(scored.axes[0].containers) == 2 and heights == [0.0, 0.72]
    plt.close("all")
