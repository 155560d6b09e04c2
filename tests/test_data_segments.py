"""Specification of the window dataset (lwd.data.segments)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwd.data import DatasetError, Episodes, MinMaxNormalizer, SegmentDataset, WindowSpec
from lwd.data.keys import ACTIONS, MASK, OBS_HISTORY, STATES, TASK


def counting_episodes(lengths, with_task=False) -> Episodes:
    """obs = [global step, 100 * episode]; action = -[global step]: every value says where it came from."""
    parts = []
    step = 0
    for i, length in enumerate(lengths):
        steps = np.arange(step, step + length, dtype=np.float32)
        part = {
            "obs": np.stack([steps, np.full(length, 100.0 * i, np.float32)], axis=1),
            "action": -steps[:, None],
        }
        if with_task:
            part["task"] = np.full(length, i % 2, np.int64)
        parts.append(part)
        step += length
    return Episodes.from_list(parts)


def random_episodes(lengths, seed=0, with_task=True) -> Episodes:
    rng = np.random.default_rng(seed)
    return Episodes.from_list(
        [
            {
                "obs": rng.normal(size=(length, 4)).astype(np.float32),
                "action": rng.normal(size=(length, 3)).astype(np.float32),
                **({"task": np.full(length, rng.integers(0, 3), np.int64)} if with_task else {}),
            }
            for length in lengths
        ]
    )


def reference_windows(episodes: Episodes, spec: WindowSpec) -> list[dict[str, np.ndarray]]:
    """Slow, obviously-correct python loop: one window per step, edge-value padding."""
    obs, action = episodes.data["obs"], episodes.data["action"]
    windows = []
    for start, end in zip(episodes.episode_starts, episodes.episode_ends):
        for t in range(start, end):
            history = [obs[min(max(t - spec.obs_steps + 1 + k, start), end - 1)] for k in range(spec.obs_steps)]
            actions, states, mask = [], [], []
            for j in range(spec.action_steps):
                u = t + spec.action_offset + j
                inside = start <= u < end
                u_clipped = min(max(u, start), end - 1)
                actions.append(action[u_clipped])
                states.append(obs[u_clipped])
                mask.append(1.0 if inside else 0.0)
            window = {
                OBS_HISTORY: np.stack(history),
                ACTIONS: np.stack(actions),
                STATES: np.stack(states),
                MASK: np.array(mask, np.float32),
            }
            if "task" in episodes.data:
                window[TASK] = np.asarray(episodes.data["task"][t])
            windows.append(window)
    return windows


def test_every_step_is_an_anchor_exactly_once():
    dataset = SegmentDataset(counting_episodes([4, 6]), WindowSpec(obs_steps=2, action_steps=3))
    assert len(dataset) == 10
    anchors = [int(dataset[i][OBS_HISTORY][-1, 0]) for i in range(len(dataset))]
    assert anchors == list(range(10))
    np.testing.assert_array_equal(dataset.anchor_episodes, [0] * 4 + [1] * 6)


def test_window_near_episode_end_repeats_last_action_and_state_and_masks_them():
    dataset = SegmentDataset(counting_episodes([5, 5]), WindowSpec(obs_steps=2, action_steps=4))
    window = dataset[3]  # anchor = step 3 of episode 0, whose last step is 4
    np.testing.assert_array_equal(window[OBS_HISTORY][:, 0], [2, 3])
    np.testing.assert_array_equal(window[ACTIONS][:, 0], [-3, -4, -4, -4])
    np.testing.assert_array_equal(window[STATES][:, 0], [3, 4, 4, 4])
    np.testing.assert_array_equal(window[MASK], [1, 1, 0, 0])
    assert (window[STATES][:, 1] == 0).all()  # never leaks into episode 1


def test_window_at_episode_start_repeats_first_obs_and_first_action_with_dp_offset():
    spec = WindowSpec(obs_steps=3, action_steps=4, action_offset=-2)
    dataset = SegmentDataset(counting_episodes([4, 6]), spec)
    window = dataset[5]  # anchor = step 1 of episode 1 (global step 5, first step is 4)
    np.testing.assert_array_equal(window[OBS_HISTORY][:, 0], [4, 4, 5])
    np.testing.assert_array_equal(window[ACTIONS][:, 0], [-4, -4, -5, -6])
    np.testing.assert_array_equal(window[MASK], [0, 1, 1, 1])
    assert (window[OBS_HISTORY][:, 1] == 100).all()  # all from episode 1


def test_window_tensors_have_documented_shapes_and_dtypes():
    dataset = SegmentDataset(random_episodes([6, 7]), WindowSpec(obs_steps=2, action_steps=5))
    window = dataset[0]
    assert window[OBS_HISTORY].shape == (2, 4) and window[OBS_HISTORY].dtype == torch.float32
    assert window[ACTIONS].shape == (5, 3) and window[ACTIONS].dtype == torch.float32
    assert window[STATES].shape == (5, 4) and window[STATES].dtype == torch.float32
    assert window[MASK].shape == (5,) and window[MASK].dtype == torch.float32
    assert window[TASK].shape == () and window[TASK].dtype == torch.int64


def test_without_states_and_without_task_those_keys_are_absent():
    spec = WindowSpec(obs_steps=2, action_steps=3, with_states=False)
    window = SegmentDataset(random_episodes([5], with_task=False), spec)[0]
    assert set(window) == {OBS_HISTORY, ACTIONS, MASK}


@pytest.mark.parametrize(
    "spec",
    [
        WindowSpec(obs_steps=1, action_steps=1),
        WindowSpec(obs_steps=2, action_steps=8),
        WindowSpec(obs_steps=3, action_steps=5, action_offset=-2),  # Diffusion Policy: -(To-1)
        WindowSpec.diffusion_policy(obs_steps=2, horizon=16),
        WindowSpec(obs_steps=4, action_steps=3, action_offset=2),
    ],
    ids=lambda spec: f"To{spec.obs_steps}-H{spec.action_steps}-off{spec.action_offset}",
)
def test_windows_equal_slow_reference_loop(spec: WindowSpec):
    episodes = random_episodes([16, 20, 17, 30], seed=spec.action_steps)
    dataset = SegmentDataset(episodes, spec)
    expected = reference_windows(episodes, spec)
    assert len(dataset) == len(expected)
    for index, reference in enumerate(expected):
        window = dataset[index]
        assert set(window) == set(reference) - ({STATES} if not spec.with_states else set())
        for key, value in window.items():
            np.testing.assert_array_equal(value.numpy(), reference[key], err_msg=f"{key} at window {index}")


def test_sample_batch_equals_stacking_getitem():
    dataset = SegmentDataset(random_episodes([9, 12, 10]), WindowSpec(obs_steps=2, action_steps=6, action_offset=-1))
    indices = np.random.default_rng(1).integers(0, len(dataset), size=17)
    batch = dataset.sample_batch(indices)
    for key in batch:
        stacked = torch.stack([dataset[int(i)][key] for i in indices])
        assert batch[key].shape[0] == 17
        torch.testing.assert_close(batch[key], stacked, rtol=0, atol=0)


def test_sample_batch_rejects_out_of_range_indices():
    dataset = SegmentDataset(random_episodes([5]), WindowSpec(obs_steps=1, action_steps=2))
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        dataset.sample_batch(np.array([0, 5]))
    with pytest.raises(IndexError):
        dataset[5]


def test_normaliser_is_applied_to_obs_history_states_and_actions():
    episodes = random_episodes([8, 9])
    normalizer = MinMaxNormalizer.fit(episodes.data)
    spec = WindowSpec(obs_steps=2, action_steps=3)
    plain, scaled = SegmentDataset(episodes, spec), SegmentDataset(episodes, spec, normalizer=normalizer)
    indices = np.arange(len(plain))
    raw_batch, norm_batch = plain.sample_batch(indices), scaled.sample_batch(indices)
    torch.testing.assert_close(norm_batch[OBS_HISTORY], normalizer.normalize("obs", raw_batch[OBS_HISTORY]))
    torch.testing.assert_close(norm_batch[STATES], normalizer.normalize("obs", raw_batch[STATES]))
    torch.testing.assert_close(norm_batch[ACTIONS], normalizer.normalize("action", raw_batch[ACTIONS]))
    assert norm_batch[ACTIONS].min() == -1 and norm_batch[ACTIONS].max() == 1


def test_episodes_shorter_than_action_horizon_raise_a_clear_error():
    episodes = random_episodes([10, 9, 12, 5])
    with pytest.raises(DatasetError, match=r"episode 3 has 5 steps, but the action horizon H=8 needs at least 8"):
        SegmentDataset(episodes, WindowSpec(obs_steps=2, action_steps=8))
    with pytest.raises(DatasetError, match=r"drop_shorter_than\(8\)"):
        SegmentDataset(episodes, WindowSpec(obs_steps=2, action_steps=8))


def test_min_episode_length_overrides_the_horizon_requirement():
    episodes = random_episodes([10, 5])
    dataset = SegmentDataset(episodes, WindowSpec(obs_steps=2, action_steps=8), min_episode_length=1)
    assert len(dataset) == 15
    with pytest.raises(DatasetError, match=r"min_episode_length=6 needs at least 6"):
        SegmentDataset(episodes, WindowSpec(obs_steps=2, action_steps=2), min_episode_length=6)


def test_anchor_tasks_give_the_task_of_every_anchor():
    dataset = SegmentDataset(counting_episodes([3, 2, 2], with_task=True), WindowSpec(obs_steps=1, action_steps=1))
    np.testing.assert_array_equal(dataset.anchor_tasks, [0, 0, 0, 1, 1, 0, 0])
    no_task = SegmentDataset(counting_episodes([3]), WindowSpec(obs_steps=1, action_steps=1))
    assert no_task.anchor_tasks is None


def test_empty_validation_split_gives_an_empty_dataset():
    _, val = random_episodes([6, 7]).split(0.0, seed=0)
    dataset = SegmentDataset(val, WindowSpec(obs_steps=2, action_steps=4))
    assert len(dataset) == 0
    assert dataset.sample_batch(np.zeros(0, np.int64))[ACTIONS].shape == (0, 4, 3)


def test_window_spec_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match=r"action_steps \(H\) must be >= 1"):
        WindowSpec(obs_steps=2, action_steps=0)
    with pytest.raises(ValueError, match=r"obs_steps \(To\) must be >= 1"):
        WindowSpec(obs_steps=0, action_steps=4)


def test_short_episodes_can_be_padded_or_dropped_instead_of_refused():
    episodes = random_episodes([10, 5, 12])
    spec = WindowSpec(obs_steps=2, action_steps=8)
    padded = SegmentDataset(episodes, spec, short_episodes="pad")
    assert len(padded) == 27 and padded.dropped_episodes == 0
    batch = padded.sample_batch(np.array([10]))  # first step of the 5-step episode
    assert batch[MASK][0].tolist() == [1, 1, 1, 1, 1, 0, 0, 0], "steps past its end are masked"
    dropped = SegmentDataset(episodes, spec, short_episodes="drop")
    assert len(dropped) == 22 and dropped.dropped_episodes == 1
    with pytest.raises(ValueError, match="short_episodes"):
        SegmentDataset(episodes, spec, short_episodes="ignore")


def test_dynamics_windows_carry_the_executed_actions_and_the_push_flags():
    """With DART noise the label is not what moved the state; a push moved it without any action.
    `with_dynamics` windows say both, aligned with the action steps and zero on padding."""
    episodes = counting_episodes([4, 5])
    executed = episodes.data["action"] + 0.5
    pushed = np.zeros(episodes.num_steps, np.bool_)
    pushed[[1, 6]] = True
    episodes = Episodes(data={**episodes.data, "executed_action": executed, "pushed": pushed},
                        episode_ends=episodes.episode_ends, attrs={"dart_noise": 0.1, "perturbation": "object-push:3:0.05"})
    dataset = SegmentDataset(episodes, WindowSpec(obs_steps=1, action_steps=3, with_dynamics=True))
    batch = dataset.sample_batch(np.array([0, 3, 5]))
    np.testing.assert_array_equal(batch["driving_actions"][0, :, 0].numpy(), [0.5, -0.5, -1.5])
    np.testing.assert_array_equal(batch["actions"][0, :, 0].numpy(), [0.0, -1.0, -2.0])  # labels unchanged
    np.testing.assert_array_equal(batch["unpushed"].numpy(), [[1, 0, 1], [1, 0, 0], [1, 0, 1]])
    assert "driving_actions" not in SegmentDataset(episodes, WindowSpec(obs_steps=1, action_steps=3)).sample_batch(np.array([0]))

    normalizer = MinMaxNormalizer.fit(episodes.data)
    normed = SegmentDataset(episodes, WindowSpec(obs_steps=1, action_steps=3, with_dynamics=True), normalizer)
    expected = normalizer.normalize("action", executed[:3])
    np.testing.assert_allclose(normed.sample_batch(np.array([0]))["driving_actions"][0].numpy(), expected)


def test_dynamics_windows_fall_back_to_labels_on_clean_demos_and_refuse_old_noisy_ones():
    clean = counting_episodes([4, 5])
    batch = SegmentDataset(clean, WindowSpec(obs_steps=1, action_steps=3, with_dynamics=True)).sample_batch(np.arange(9))
    torch.testing.assert_close(batch["driving_actions"], batch["actions"])
    torch.testing.assert_close(batch["unpushed"], batch["mask"])
    for attrs, missing in (({"dart_noise": 0.1, "perturbation": "none"}, "executed_action"),
                           ({"dart_noise": 0.0, "perturbation": "object-push:3:0.05"}, "pushed")):
        old = Episodes(data=dict(clean.data), episode_ends=clean.episode_ends, attrs=attrs)
        with pytest.raises(DatasetError, match=missing):
            SegmentDataset(old, WindowSpec(obs_steps=1, action_steps=3, with_dynamics=True))
        SegmentDataset(old, WindowSpec(obs_steps=1, action_steps=3))  # policies train on labels: fine
    wrong = Episodes(data={**clean.data, "executed_action": np.zeros((clean.num_steps, 2), np.float32)},
                     episode_ends=clean.episode_ends)
    with pytest.raises(DatasetError, match="same steps"):
        SegmentDataset(wrong, WindowSpec(obs_steps=1, action_steps=3, with_dynamics=True))
