"""Style labels of episodes and the generation measures built on them (lwd.analysis.styles, lwd.evaluation.rollouts)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from lwd.data import Episodes
from lwd.analysis.styles import (
    UNDECIDED, EpisodeStyle, PushTRule, chance_total_variation, confusion_matrix, label_episodes, pusht_block_poses, style_report,
    style_rule, style_shares, style_summary, total_variation,
)

# --- hand-made PushT trajectories -------------------------------------------------------------------
GOAL_XY, GOAL_ANGLE, COG = np.array([256.0, 256.0]), math.pi / 4, np.array([0.0, 45.0])


def _state(offset: np.ndarray, angle_error_deg: float) -> np.ndarray:
    """A 5-d PushT state whose block's centre of mass is `offset` px from the goal's and whose angle
    is `angle_error_deg` from the goal angle (the agent parked in a corner)."""
    def rot(a: float) -> np.ndarray:
        return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])

    angle = GOAL_ANGLE + math.radians(angle_error_deg)
    com = GOAL_XY + rot(GOAL_ANGLE) @ COG + offset
    return np.array([30.0, 30.0, *(com - rot(angle) @ COG), angle])


def _episode(legs: list[tuple[int, float, float]], start: tuple[float, float] = (100.0, 90.0)) -> np.ndarray:
    """State observations (T, 5) along straight legs (steps, distance to reach px, angle error to reach deg)."""
    distance, angle = start
    rows = [_state(np.array([distance, 0.0]), angle)]
    for steps, to_distance, to_angle in legs:
        for k in range(1, steps + 1):
            rows.append(_state(np.array([distance + (to_distance - distance) * k / steps, 0.0]),
                               angle + (to_angle - angle) * k / steps))
        distance, angle = to_distance, to_angle
    return np.array(rows)


@pytest.mark.parametrize("legs, expected", [
    ([(30, 100.0, 0.0), (30, 0.0, 0.0)], "rotate-first"),      # turn in place, then slide
    ([(30, 0.0, 90.0), (30, 0.0, 0.0)], "translate-first"),    # slide, then turn
    ([(30, 0.0, 0.0)], "planner"),                              # both errors shrink together
])
def test_pusht_rule_names_the_order_in_which_a_hand_made_block_trajectory_removes_its_errors(legs, expected):
    style = PushTRule().label(_episode(legs))
    assert style.label == expected
    assert style.halves == (expected, expected) and style.consistent


def test_pusht_rule_leaves_a_start_that_already_meets_a_sub_goal_undecided():
    assert PushTRule().label(_episode([(30, 0.0, 0.0)], start=(100.0, 10.0))).label == UNDECIDED
    assert PushTRule().label(_episode([(30, 90.0, 80.0)])).label == UNDECIDED  # neither error halved


def test_a_style_switch_in_the_middle_of_the_phase_shows_as_halves_that_disagree():
    """Half the turn first, then the whole slide: overall the position is ahead (translate-first), but
    the first half of the progress was all turning."""
    style = PushTRule().label(_episode([(15, 100.0, 45.0), (30, 0.0, 45.0)]))
    assert style.label == "translate-first"
    assert style.halves == ("rotate-first", "translate-first") and style.consistent is False


def test_keypoint_observations_give_the_block_pose_and_the_labels_of_the_state():
    from lwd.envs.pusht import keypoint_obs

    states = _episode([(30, 0.0, 90.0), (30, 0.0, 0.0)])
    keypoints = np.array([keypoint_obs(s) for s in states])
    np.testing.assert_allclose(pusht_block_poses(keypoints), states[:, 2:5], atol=1e-9)
    assert PushTRule().label(keypoints) == PushTRule().label(states)
    with pytest.raises(ValueError, match="PushT style labels need the block pose"):
        pusht_block_poses(states[:, :2])


# --- the measures -----------------------------------------------------------------------------------
def test_total_variation_and_shares_of_the_decided_labels():
    assert total_variation({"a": 0.5, "b": 0.5}, {"a": 1.0}) == pytest.approx(0.5)
    assert total_variation({"a": 0.2, "b": 0.8}, {"b": 0.8, "a": 0.2}) == 0.0
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    assert style_shares(["a", UNDECIDED, "b", "a"], ["a", "b", "c"]) == pytest.approx({"a": 2 / 3, "b": 1 / 3, "c": 0.0})
    assert style_shares([UNDECIDED], ["a"]) == {"a": 0.0}


def test_chance_tv_is_what_sampling_the_datas_own_mix_gives():
    """Two styles: TV = |k/n - p| with k ~ Binomial(n, p), whose mean is known exactly; more episodes, less TV."""
    n, p = 50, 0.51
    exact = sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) * abs(k / n - p) for k in range(n + 1))
    mean, high = chance_total_variation({"left": p, "right": 1 - p}, n)
    assert mean == pytest.approx(exact, abs=0.002) and exact < high < 0.2
    assert chance_total_variation({"left": p, "right": 1 - p}, 4 * n)[0] == pytest.approx(mean / 2, rel=0.1)
    assert chance_total_variation({"a": 1.0, "b": 0.0}, n) == (0.0, 0.0)  # one style: a perfect generator never misses


def test_summary_counts_success_by_style_and_consistency_over_decided_halves():
    labels = [EpisodeStyle("a", ("a", "a")), EpisodeStyle("a", ("a", "b")), EpisodeStyle("b", ("b", UNDECIDED)),
              EpisodeStyle(UNDECIDED, (UNDECIDED, UNDECIDED))]
    summary = style_summary(labels, ["a", "b"], successes=[True, False, True, False])
    assert summary["counts"] == {"a": 2, "b": 1, UNDECIDED: 1}
    assert summary["shares"] == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    assert summary["undecided_share"] == 0.25
    assert summary["success_by_style"] == {"a": 0.5, "b": 1.0, UNDECIDED: 0.0}
    assert summary["consistency"] == 0.5 and summary["consistency_episodes"] == 2
    assert confusion_matrix(["a", "a", "b"], ["a", UNDECIDED, "a"], ["a", "b"]) == {
        "a": {"a": 1, "b": 0, UNDECIDED: 1}, "b": {"a": 1, "b": 0, UNDECIDED: 0}}


def _store(episodes: list[np.ndarray], styles: list[int] | None = None, successes: list[bool] | None = None) -> Episodes:
    rows = [{"obs": obs.astype(np.float32), "action": np.zeros((len(obs), 2), np.float32), "task": np.zeros(len(obs), np.int64),
             **({"style": np.full(len(obs), styles[i], np.int64)} if styles else {})} for i, obs in enumerate(episodes)]
    attrs = {"suite": "pusht/state", "tasks": ["pusht"]}
    if styles:
        attrs["styles"] = list(PushTRule.styles)
    if successes:
        attrs["successes"] = successes
    return Episodes.from_list(rows, attrs=attrs)


def test_report_gives_the_rules_accuracy_on_recorded_styles_and_the_tv_of_rollouts_to_the_data():
    rotate, translate, both = (_episode([(30, 100.0, 0.0), (30, 0.0, 0.0)]), _episode([(30, 0.0, 90.0), (30, 0.0, 0.0)]),
                               _episode([(30, 0.0, 0.0)]))
    data = _store([both, rotate, translate, rotate], styles=[0, 1, 2, 0])  # the last one recorded as planner: a miss
    rollouts = _store([rotate, rotate, rotate, translate], successes=[True, True, False, True])
    report = style_report(data, {"gen": rollouts})
    assert report["data"]["rule_accuracy"] == 0.75
    assert report["data"]["confusion"]["planner"] == {"planner": 1, "rotate-first": 1, "translate-first": 0, UNDECIDED: 0}
    assert report["data"]["shares"] == pytest.approx({"planner": 0.25, "rotate-first": 0.5, "translate-first": 0.25})
    gen = report["rollouts"]["gen"]
    assert gen["shares"] == pytest.approx({"planner": 0.0, "rotate-first": 0.75, "translate-first": 0.25})
    assert gen["tv_to_data"] == pytest.approx(0.25)
    assert gen["success_by_style"]["rotate-first"] == pytest.approx(2 / 3)


def test_suites_without_style_labels_are_refused_in_one_line():
    with pytest.raises(ValueError, match="no style labels for 'robomimic/square'"):
        style_rule("robomimic/square")
    with pytest.raises(ValueError, match="no style labels for 'pusht/image'"):
        style_rule("pusht/image")


# --- real expert episodes of known style ------------------------------------------------------------
def test_pusht_rule_names_the_style_of_expert_episodes_from_a_contested_start():
    pytest.importorskip("gym_pusht")
    from lwd.demos import rollout_expert
    from lwd.envs.pusht import MAX_EPISODE_STEPS, PushTEnv
    from lwd.experts.pusht import STYLES, PushTExpert

    env = PushTEnv()  # DP's keypoint observations, as the default pusht suite's data and rollouts
    for style in STYLES:  # seed 8 starts 162 px and 110 deg from the goal
        run = rollout_expert(env, PushTExpert(style=style), 8, MAX_EPISODE_STEPS)
        assert PushTRule().label(np.asarray(run.obs)).label == style


def test_lift_rule_names_the_style_of_expert_episodes(lift_env):
    from lwd.demos import rollout_expert
    from lwd.experts.robomimic import LIFT_STYLES, RobomimicExpert

    for style in LIFT_STYLES:
        run = rollout_expert(lift_env, RobomimicExpert("lift", style=style), 100000, 400)
        assert run.success and style_rule("robomimic/lift").label(np.asarray(run.obs)).label == style


def test_can_rule_names_the_style_of_expert_episodes(can_env):
    from lwd.demos import rollout_expert
    from lwd.experts.robomimic import CAN_STYLES, RobomimicExpert

    for style in CAN_STYLES:
        run = rollout_expert(can_env, RobomimicExpert("can", style=style), 100001, 400)
        assert run.success and style_rule("robomimic/can").label(np.asarray(run.obs)).label == style
    with pytest.raises(ValueError, match="need robomimic Can's 23-d observations"):
        style_rule("robomimic/can").label(np.zeros((5, 19)))


# --- rollouts of any method, recorded through the evaluator -----------------------------------------
class _ExpertPolicy:
    """A 'policy' that plays the Metaworld expert of the style its seed maps to, regenerating every 8 steps."""

    batches_acting = False

    def __init__(self, task: str, style_of_seed: dict[int, str]) -> None:
        self.task, self.style_of_seed, self.steps, self.generations = task, style_of_seed, 0, 0

    def reset(self, seed: int, task: int | None = None) -> None:
        from lwd.experts.metaworld import MetaworldExpert

        self.expert = MetaworldExpert(self.task, style=self.style_of_seed[seed])
        self.expert.reset(seed)
        self.t = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.t % 8 == 0:
            self.generations += 1
        self.t += 1
        self.steps += 1
        return self.expert.act(obs)


def test_recorded_rollouts_of_any_policy_are_the_evaluated_episodes_and_carry_their_styles():
    pytest.importorskip("metaworld")
    from lwd.evaluation.rollouts import record_rollouts
    from lwd.methods.base import Cost, RuntimeOptions
    from lwd.suites import make_suite

    suite = make_suite("metaworld/window-open-v3")
    style_of_seed = {100000: "scripted", 100001: "lift-first", 100002: "slow"}
    method = SimpleNamespace(
        name="expert", info=SimpleNamespace(tasks=list(suite.tasks), obs_dim=suite.obs_dim, action_dim=suite.action_dim, images=()),
        runtime_options=lambda **kw: RuntimeOptions(), make_policy=lambda runtime=None: _ExpertPolicy(suite.tasks[0], style_of_seed),
        cost=lambda runtime=None, episode_steps=None: Cost(0, 0, 0, 1, 8))
    result, rollouts = record_rollouts(method, suite, episodes_per_task=3, progress=False)
    assert list(rollouts.lengths) == [e["steps"] for e in result["episodes"]]
    assert rollouts.attrs["successes"] == [e["success"] for e in result["episodes"]] == [True, True, True]
    assert int(rollouts.data["generated"].sum()) == result["cost"]["generations"]
    assert rollouts.data["generated"][rollouts.episode_starts].all()
    first_obs, _ = suite.make_env(suite.tasks[0]).reset(seed=100001)
    np.testing.assert_array_equal(rollouts.episode(1)["obs"][0], first_obs)
    assert [s.label for s in label_episodes(rollouts)] == ["scripted", "lift-first", "slow"]
    report = style_report(rollouts, {"same": rollouts})
    assert report["rollouts"]["same"]["tv_to_data"] == 0.0
    assert report["rollouts"]["same"]["success_by_style"]["slow"] == 1.0


def test_lwd_eval_rollouts_saves_the_evaluated_trajectories_and_refuses_batch_plans(tmp_path, capsys):
    pytest.importorskip("metaworld")
    import json

    from lwd.cli import main

    rng = np.random.default_rng(0)  # a few random steps are enough data for a run to evaluate
    demos = Episodes.from_list([{"obs": rng.normal(size=(20, 39)).astype(np.float32), "action": rng.uniform(-1, 1, (20, 4)).astype(np.float32),
                                 "task": np.zeros(20, np.int64)} for _ in range(2)],
                               attrs={"suite": "metaworld/window-open-v3", "tasks": ["window-open-v3"]})
    demos.save(tmp_path / "demos.zarr")
    run = tmp_path / "bc"
    assert main(["train", "bc", "--data", str(tmp_path / "demos.zarr"), "--out", str(run), "--set", "steps=5"]) == 0
    out, store = tmp_path / "eval.json", tmp_path / "rollouts.zarr"
    assert main(["eval", str(run), "--episodes", "1", "--out", str(out), "--rollouts", str(store)]) == 0
    result, rollouts = json.loads(out.read_text()), Episodes.load(store)
    assert result["rollouts"] == str(store)
    assert list(rollouts.lengths) == [e["steps"] for e in result["episodes"]]
    assert rollouts.attrs["successes"] == [e["success"] for e in result["episodes"]]
    assert rollouts.attrs["seeds"] == [100000] and rollouts.attrs["method"] == "bc"
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--batch-plans", "--out", str(tmp_path / "e2.json"),
                 "--rollouts", str(tmp_path / "r2.zarr")]) == 2
    assert "drop --batch-plans" in capsys.readouterr().err and not (tmp_path / "r2.zarr").exists()


# --- reach-wall-low (the averaging task) ------------------------------------------------------------
def _reach_path(xs: list[float], ys: list[float]) -> np.ndarray:
    """A 39-d observation per step whose fingertips follow the given x and y at height 0.1 m."""
    obs = np.zeros((len(xs), 39))
    obs[:, 0], obs[:, 1], obs[:, 2] = xs, ys, 0.1
    return obs


@pytest.mark.parametrize("xs, expected, halves", [
    ([0.10, 0.05, 0.02, -0.05, -0.06], "left", ("left", "left")),
    ([0.10, 0.15, 0.20, 0.25, 0.26], "right", ("right", "right")),
    ([0.10, 0.12, 0.10, -0.05, -0.06], "left", (UNDECIDED, "left")),  # drifts 2 cm right, then rounds left
    ([0.10, 0.18, 0.20, 0.05, -0.05], "left", ("right", "left")),  # heads right, turns back: halves disagree
])
def test_reach_wall_rule_names_the_side_a_hand_made_path_crosses_the_wall_on(xs, expected, halves):
    path = _reach_path(xs, [0.55, 0.62, 0.70, 0.73, 0.80])  # crosses the wall's face (y 0.74) at the last step
    style = style_rule("metaworld/reach-wall-low").label(path)
    assert (style.label, style.halves) == (expected, halves)


def test_reach_wall_rule_leaves_a_hand_pressed_against_the_wall_or_over_it_undecided():
    rule = style_rule("metaworld/reach-wall-low/spread-5")
    pressed = rule.label(_reach_path([0.10, 0.10, 0.10, 0.10], [0.55, 0.65, 0.71, 0.71]))
    over = rule.label(_reach_path([0.10, 0.10, 0.10, 0.10], [0.55, 0.65, 0.75, 0.80]))
    assert pressed.label == over.label == UNDECIDED and pressed.features["crossed"] == 0.0


def test_reach_wall_rule_names_the_style_of_expert_episodes():
    pytest.importorskip("metaworld")
    from lwd.demos import rollout_expert
    from lwd.experts.reach_wall import STYLES, DetourExpert
    from lwd.suites import make_suite

    suite = make_suite("metaworld/reach-wall-low")
    env = suite.make_env(suite.tasks[0])
    for style in STYLES:
        for seed in (0, 1):
            run = rollout_expert(env, DetourExpert(style), seed, suite.max_episode_steps)
            labelled = style_rule(suite.name).label(np.asarray(run.obs))
            assert (labelled.label, labelled.halves) == (style, (style, style))
    env.close()
