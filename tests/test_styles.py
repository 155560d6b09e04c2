"""Expert styles: distinct ways to solve a task, chosen per episode and recorded in the dataset."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from lwd.cli import main  # noqa: E402
from lwd.data import Episodes  # noqa: E402
from lwd.demos import collect_demos, draw_style, parse_styles, rollout_expert  # noqa: E402
from lwd.envs.pusht import MAX_EPISODE_STEPS, PushTEnv  # noqa: E402
from lwd.experts.pusht import STYLES, PushTExpert, pose_errors  # noqa: E402
from lwd.suites import make_suite  # noqa: E402

SEED = 8  # a demo seed whose start is far from the goal in both angle (110 deg) and position (162 px)


def _episode(style: str, seed: int, steps: int = MAX_EPISODE_STEPS) -> tuple[bool, np.ndarray, np.ndarray]:
    """(success, actions (T, 2), block pose errors (T + 1, 2): distance px, angle rad) of one episode."""
    env = PushTEnv(obs_type="state")
    run = rollout_expert(env, PushTExpert(style=style), seed, steps)
    poses = [o[2:5] for o in run.obs] + [run.last_info["state"][4:7]]  # state obs: agent x, y, block x, y, angle
    return run.success, np.asarray(run.actions), np.array([pose_errors(*p) for p in poses])


@pytest.mark.parametrize("style", STYLES)
def test_each_style_is_deterministic_per_seed(style):
    _, first, _ = _episode(style, seed=3, steps=60)
    _, again, _ = _episode(style, seed=3, steps=60)
    np.testing.assert_array_equal(first, again)


def test_rotate_first_turns_the_block_before_placing_it_and_translate_first_the_other_way_round():
    """From the same start, rotate-first gets the angle within 15 deg while the block is still far
    (> 20 px) from the goal, translate-first gets the block within 20 px while still turned; both succeed."""
    first_step = {}
    for style in ("rotate-first", "translate-first"):
        success, _, errors = _episode(style, SEED)
        assert success, style
        assert errors[0, 0] > 20.0 and errors[0, 1] > np.radians(15.0)  # the start decides nothing
        angle_done = int(np.argmax(errors[:, 1] < np.radians(15.0)))
        distance_done = int(np.argmax(errors[:, 0] < 20.0))
        first_step[style] = (angle_done, distance_done)
    assert first_step["rotate-first"][0] < first_step["rotate-first"][1]
    assert first_step["translate-first"][1] < first_step["translate-first"][0]


def test_parse_styles_normalises_weights_and_accepts_all_or_a_list():
    suite = make_suite("pusht/state")
    assert parse_styles("all", suite) == pytest.approx({s: 1 / 3 for s in STYLES})
    assert parse_styles("planner,rotate-first", suite) == pytest.approx({"planner": 0.5, "rotate-first": 0.5})
    assert parse_styles("rotate-first:3, translate-first:1", suite) == pytest.approx(
        {"rotate-first": 0.75, "translate-first": 0.25})


@pytest.mark.parametrize("spec, message", [
    ("sideways", r"--styles: unknown style 'sideways' for pusht/state; known: planner, rotate-first, translate-first"),
    ("planner:0", r"--styles: the weight of 'planner' must be a positive number, got '0'"),
    ("planner:-0.5,rotate-first", r"--styles: the weight of 'planner' must be a positive number"),
    ("planner:lots", r"--styles: the weight of 'planner' must be a positive number, got 'lots'"),
    ("planner:inf", r"--styles: the weight of 'planner' must be a positive number"),
    ("planner,planner", r"--styles: style 'planner' is listed twice"),
    ("", r"--styles: unknown style ''"),
])
def test_bad_styles_are_refused_with_a_message_naming_the_flag(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_styles(spec, make_suite("pusht/state"))


def test_lwd_demos_reports_bad_styles_in_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "demos.zarr"
    assert main(["demos", "pusht/state", "--episodes", "1", "--out", str(out), "--styles", "planner:0.5,spin:0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--styles: unknown style 'spin'" in err
    assert not out.exists()


def test_style_draw_depends_on_the_seed_only_and_follows_the_mix():
    mix = {"rotate-first": 0.7, "translate-first": 0.3}
    draws = np.array([draw_style(seed, mix, STYLES) for seed in range(4000)])
    assert set(draws) == {1, 2}
    assert abs(np.mean(draws == 1) - 0.7) < 0.03
    assert [draw_style(seed, mix, STYLES) for seed in range(50)] == list(draws[:50])
    assert {draw_style(seed, {"planner": 1.0}, STYLES) for seed in range(50)} == {0}


def test_style_key_and_attributes_round_trip_through_the_zarr_store(tmp_path):
    suite = make_suite("pusht/state")
    mix = parse_styles("rotate-first,translate-first", suite)
    episodes = collect_demos(suite, 2, styles=mix, progress=False)
    loaded = Episodes.load(episodes.save(tmp_path / "styled.zarr"))
    np.testing.assert_array_equal(loaded.data["style"], episodes.data["style"])
    assert loaded.data["style"].dtype == np.int64
    assert loaded.attrs["styles"] == list(STYLES)
    assert loaded.attrs["style_mix"] == pytest.approx({"rotate-first": 0.5, "translate-first": 0.5})
    assert sum(loaded.attrs["style_counts"].values()) == 2
    for i, seed in enumerate(loaded.attrs["seeds"]):
        style = loaded.episode(i)["style"]
        assert (style == draw_style(seed, mix, STYLES)).all()  # one style per episode, the seed's
        run = rollout_expert(suite.make_env("pusht", terminate_on_success=True),
                             PushTExpert(style=STYLES[style[0]]), seed, MAX_EPISODE_STEPS)
        np.testing.assert_array_equal(loaded.episode(i)["action"], np.asarray(run.actions, np.float32))


def test_without_styles_the_data_is_the_default_experts_and_nothing_about_styles_is_recorded():
    suite = make_suite("pusht/state")
    plain = collect_demos(suite, 1, progress=False)
    assert "style" not in plain.data
    assert not {"styles", "style_mix", "style_counts"} & set(plain.attrs)
    env = suite.make_env("pusht", terminate_on_success=True)
    for i, seed in enumerate(plain.attrs["seeds"]):
        run = rollout_expert(env, PushTExpert(), seed, MAX_EPISODE_STEPS)  # the expert as it was before styles
        np.testing.assert_array_equal(plain.episode(i)["action"], np.asarray(run.actions, np.float32))
        np.testing.assert_array_equal(plain.episode(i)["obs"], np.asarray(run.obs, np.float32))
    # the "planner" style is that same expert: asking for it alone changes nothing but the labels
    only_planner = collect_demos(suite, 1, styles={"planner": 1.0}, progress=False)
    np.testing.assert_array_equal(only_planner.data["action"], plain.data["action"])
    assert (only_planner.data["style"] == 0).all()


def test_unknown_style_of_a_suite_and_styles_on_a_suite_without_them_are_refused():
    with pytest.raises(ValueError, match="has no expert style 'sideways'"):
        make_suite("pusht").make_expert("pusht", "sideways")
    with pytest.raises(ValueError, match="unknown PushT expert style"):
        PushTExpert(style="sideways")


# --- robomimic Lift ---------------------------------------------------------------------------------
LIFT_SEED = 100000


def _lift_episode(env, style: str, seed: int, steps: int = 400) -> tuple[bool, np.ndarray]:
    from lwd.envs.robomimic import MAX_EPISODE_STEPS
    from lwd.experts.robomimic import RobomimicExpert

    run = rollout_expert(env, RobomimicExpert("lift", style=style), seed, min(steps, MAX_EPISODE_STEPS))
    return run.success, np.asarray(run.obs, np.float64)


@pytest.mark.parametrize("style", ["waypoint", "other-grasp", "slow"])
def test_each_lift_style_is_deterministic_per_seed(lift_env, style):
    _, first = _lift_episode(lift_env, style, LIFT_SEED, steps=40)
    _, again = _lift_episode(lift_env, style, LIFT_SEED, steps=40)
    np.testing.assert_array_equal(first, again)


def test_lift_styles_grasp_across_other_faces_or_move_slower_and_all_succeed(lift_env):
    """From the same start: other-grasp ends with the hand turned 90 deg from waypoint's grasp
    (45-90 deg from its start instead of 0-45), slow moves the hand at most 2/3 as fast."""
    from lwd.experts.robomimic import _hand_yaw, _wrap

    turn, speed = {}, {}
    for style in ("waypoint", "other-grasp", "slow"):
        success, obs = _lift_episode(lift_env, style, LIFT_SEED)
        assert success, style
        turn[style] = _wrap(_hand_yaw(obs[-1, -6:-2]) - _hand_yaw(obs[0, -6:-2]))  # eef quat: obs[-6:-2]
        speed[style] = np.linalg.norm(np.diff(obs[:, -9:-6], axis=0), axis=1).mean()  # eef pos: obs[-9:-6]
    assert abs(turn["waypoint"]) < np.radians(47) < abs(turn["other-grasp"]) < np.radians(92)
    assert abs(abs(_wrap(turn["other-grasp"] - turn["waypoint"])) - np.pi / 2) < np.radians(8)
    assert speed["slow"] < 2 / 3 * speed["waypoint"]


def test_lift_and_can_suites_offer_their_styles_and_square_has_none():
    assert make_suite("robomimic/lift").styles == ("waypoint", "other-grasp", "slow")
    assert make_suite("robomimic/can").styles == ("waypoint", "side-grasp", "slow")
    with pytest.raises(ValueError, match="--styles: the robomimic/square expert has one way only"):
        parse_styles("all", make_suite("robomimic/square"))


# --- robomimic Can ----------------------------------------------------------------------------------
def test_can_styles_are_deterministic_grasp_from_another_side_or_move_slower_and_all_succeed(can_env):
    """From the same start: side-grasp's hand is turned 1.0-1.3 rad when the can leaves the table
    (waypoint's within 0.4 rad plus tracking), slow moves the hand at most 2/3 as fast."""
    from lwd.envs.robomimic import MAX_EPISODE_STEPS
    from lwd.experts.robomimic import RobomimicExpert, _hand_yaw

    yaw, speed = {}, {}
    for style in ("waypoint", "side-grasp", "slow"):
        run = rollout_expert(can_env, RobomimicExpert("can", style=style), LIFT_SEED, MAX_EPISODE_STEPS)
        obs = np.asarray(run.obs, np.float64)
        assert run.success, style
        again = rollout_expert(can_env, RobomimicExpert("can", style=style), LIFT_SEED, 30)
        np.testing.assert_array_equal(np.asarray(again.obs, np.float64), obs[:len(again.obs)])
        lifted = int(np.argmax(obs[:, 9] > obs[:20, 9].min() + 0.01))  # the can's height: obs[9]
        yaw[style] = abs(_hand_yaw(obs[lifted, 17:21]))  # eef quat: obs[17:21]
        speed[style] = np.linalg.norm(np.diff(obs[:lifted, 14:17], axis=0), axis=1).mean()  # eef pos: obs[14:17]
    assert yaw["waypoint"] < 0.5 and 0.9 < yaw["side-grasp"] < 1.4
    assert speed["slow"] < 2 / 3 * speed["waypoint"]
