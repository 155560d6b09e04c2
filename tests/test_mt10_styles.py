"""Metaworld expert styles: the scripted policy, an approach from straight above, a slow operator."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("metaworld")

from lwd.demos import collect_demos, draw_style, parse_styles, rollout_expert  # noqa: E402
from lwd.envs.metaworld import MetaworldTaskEnv  # noqa: E402
from lwd.experts.metaworld import STYLES, MetaworldExpert  # noqa: E402
from lwd.suites import make_suite  # noqa: E402

TASK = "window-open-v3"  # its hand starts 20 cm below the scripted hover point and 30 cm away: every style shows


@pytest.fixture(scope="module")
def env():
    env = MetaworldTaskEnv(TASK)
    yield env
    env.close()


def _hand_path(env, style: str, seed: int, steps: int = 500) -> tuple[bool, np.ndarray, np.ndarray]:
    run = rollout_expert(env, MetaworldExpert(TASK, style=style), seed, steps)
    return run.success, np.asarray(run.obs, np.float64)[:, :3], np.asarray(run.actions)


@pytest.mark.parametrize("style", STYLES)
def test_each_metaworld_style_is_deterministic_per_seed(env, style):
    _, first, actions = _hand_path(env, style, seed=4, steps=40)
    _, again, actions_again = _hand_path(env, style, seed=4, steps=40)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(actions, actions_again)


def test_lift_first_climbs_straight_up_slow_creeps_and_scripted_goes_diagonally_all_succeeding(env):
    """From the same start: lift-first rises 6+ cm with the hand moving < 5 mm sideways; the scripted
    policy has moved 3+ cm sideways by the time it has risen 3 cm; slow's hand never moves faster
    than 0.8 cm/step on its way (at most half the scripted speed). The first actions already differ."""
    paths, first_actions = {}, {}
    for style in STYLES:
        success, hand, actions = _hand_path(env, style, seed=4)
        assert success, style
        paths[style], first_actions[style] = hand, actions[0]
    rise = {s: hand[:, 2] - hand[0, 2] for s, hand in paths.items()}
    sideways = {s: np.linalg.norm(hand[:, :2] - hand[0, :2], axis=1) for s, hand in paths.items()}
    risen = int(np.argmax(rise["lift-first"] > 0.06))
    assert risen > 0 and sideways["lift-first"][: risen + 1].max() < 0.005
    assert sideways["scripted"][int(np.argmax(rise["scripted"] > 0.03))] > 0.03
    speed = {s: np.linalg.norm(np.diff(hand, axis=0), axis=1) for s, hand in paths.items()}
    assert speed["slow"][:60].max() < min(0.008, 0.5 * speed["scripted"][:60].max())
    assert np.abs(first_actions["lift-first"][:2]).max() < 0.05 < np.abs(first_actions["scripted"][:2]).max()


@pytest.mark.filterwarnings("ignore:Constant")  # Metaworld's own "Constant(s) may be too high"
def test_scripted_style_is_metaworlds_policy_exactly(env):
    from metaworld.policies import ENV_POLICY_MAP

    policy = ENV_POLICY_MAP[TASK]()
    obs, _ = env.reset(seed=2)
    expert = MetaworldExpert(TASK)
    expert.reset(2)
    for _ in range(30):
        expected = np.clip(policy.get_action(obs.astype(np.float64)), -1, 1).astype(np.float32)
        action = expert.act(obs, {})
        np.testing.assert_array_equal(action, expected)
        obs, *_ = env.step(action)


def test_metaworld_suites_offer_styles_on_mt10_tasks_only():
    assert make_suite("metaworld/mt10").styles == STYLES
    assert make_suite("metaworld/reach-v3").styles == STYLES
    assert make_suite("metaworld/assembly-v3").styles == ()
    with pytest.raises(ValueError, match="--styles: the metaworld/assembly-v3 expert has one way only"):
        parse_styles("all", make_suite("metaworld/assembly-v3"))
    with pytest.raises(ValueError, match="unknown Metaworld expert style 'slow' for assembly-v3; known: scripted"):
        MetaworldExpert("assembly-v3", style="slow")


def test_styled_metaworld_demos_record_each_episodes_style_and_replay_exactly():
    suite = make_suite("metaworld/reach-v3")
    mix = parse_styles("all", suite)
    episodes = collect_demos(suite, 3, styles=mix, progress=False)
    assert episodes.attrs["styles"] == list(STYLES) and sum(episodes.attrs["style_counts"].values()) == 3
    env = suite.make_env("reach-v3", terminate_on_success=True)
    for i, seed in enumerate(episodes.attrs["seeds"]):
        style = episodes.episode(i)["style"]
        assert (style == draw_style(seed, mix, STYLES)).all()
        run = rollout_expert(env, MetaworldExpert("reach-v3", style=STYLES[style[0]]), seed, suite.max_episode_steps)
        np.testing.assert_array_equal(episodes.episode(i)["action"], np.asarray(run.actions, np.float32))
