"""Style labels of episodes, and how the styles of generated rollouts compare with the data's.

A rule reads one episode's observations (demonstrations from `lwd demos`, or rollouts of any
method from `lwd.evaluation.rollouts.record_rollouts`: the same `Episodes` layout) and names the expert
style it shows, or "undecided". The rules follow the experts' own definitions
(`lwd.experts.pusht`, `lwd.experts.robomimic`, `lwd.experts.metaworld`); each looks only at the
episode's *style phase*, the part where the styles differ by construction (after it every style
hands over to the same behaviour, so labels there would read nothing):

- PushT (`pusht`, `pusht/state`; block pose from the keypoints or the state): the style phase ends
  at the first step where either sub-goal is met, the block's angle error below 15 deg or its
  centre-of-mass distance below 20 px (those of `benchmarks/pusht_styles.py`). LEAD = the share of
  the start angle error removed by then minus the share of the start distance removed.
  "rotate-first" if LEAD > 0.25, "translate-first" if LEAD < -0.25, else "planner" (neither error
  ahead: the planner trades both at ANGLE_WEIGHT px/rad). "undecided" when the start already meets
  a sub-goal (then every style turns or places first alike), or when the episode meets neither
  sub-goal and halves neither error.
  Why this and not "which error is halved first" (the first idea): on demonstrations of known
  style it separates the planner better (0.75 vs 0.71 on the 84 contested starts of demo seeds
  0-29); it cannot exceed ~0.8, since on about one start in five rotate-first and the planner
  take the very same path (BENCHMARKS.md, expert styles).
- robomimic Lift (19-d obs): the style phase runs until the cube is 1 cm above its resting height
  (the lift; the whole episode if it never is). "slow" if the 90th percentile of the hand's per-step
  travel in it (steps under 1 mm, the hand holding still while the gripper closes, left out) is
  below 0.85 cm (slow: 0.50-0.70, the others 0.96-1.43 on demo seeds 0-29);
  otherwise the hand's yaw at the lift names the grasp: "other-grasp" if it is nearer (modulo the
  gripper's 180 deg symmetry) to the yaw that closes across the cube's other pair of faces than
  to the one nearest the hand's start yaw ("waypoint"); "undecided" if the cube is never lifted.
- robomimic Can (23-d obs): the same style phase and "slow" test as Lift's; otherwise "side-grasp"
  if the hand's yaw at the lift is more than 0.7 rad from 0 (modulo 180 deg; the expert keeps
  within 0.4 rad, side-grasp turns to 1.0-1.3 either way), else "waypoint".
- Metaworld MT10 tasks: the style phase runs until the hand is within 2 cm (horizontally) of the
  scripted policy's first waypoint (`lwd.experts.metaworld.APPROACH`) and starts down (at least 10
  steps). "lift-first" if the hand climbs at least 4 cm above the higher of its start and that
  waypoint (lift-first: 6.5-9 cm, the others at most 2.4 cm); "slow" if its fastest step along any
  axis is below 0.6 cm and it travels less than 0.6 of the distance Metaworld's scripted policy
  commands from the same observations (slow: at most 0.54 cm and 0.56 on demo seeds 0-9; the
  scripted policy travels 0.23-0.90 of its commands, and its fastest step is 0.76 cm or more on
  every task but push and pick-place, whose approaches are short: 0.12-0.73 cm); else "scripted".
- metaworld/reach-wall-low (the averaging task): the side of the wall the fingertips first cross
  its front face on; `ReachWallRule`.

Measures (`style_summary`, `style_report`):
- the style mix: shares of the decided labels (undecided ones reported apart, since their share
  depends mostly on the start states, which differ between demo and test seeds), and the total
  variation distance between two mixes, TV = 1/2 sum |p - q|. Generated rollouts are compared with
  the data *as the same rule labels it*, so a rule's confusions affect both sides alike;
- per-style success: the success rate of the episodes labelled with each style;
- consistency within an episode: each half of the style phase is labelled by the same rule on its
  own stretch (PushT: LEAD of the half's own progress against +-0.125; Lift and MT10: the same
  thresholds on the half's speed, and the yaw or climb reached by the half's end); consistency is
  the share of episodes with both halves decided whose halves agree. Why halves of the style phase
  and not one label per regeneration (every H steps): an 8-32 step stretch rarely shows a style
  (a PushT segment is often an approach with the block still; a grasp yaw exists only at the
  grasp), while a policy that re-draws its style at a regeneration in the phase shows halves that
  disagree. Switching much faster than the phase averages out within each half and shows instead
  as a mix that leans to the in-between label (PushT: "planner"), which the TV distance catches.
  Compare a method's consistency with the data's own (the experts' halves do not always agree).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lwd.data import Episodes

UNDECIDED = "undecided"


@dataclass(frozen=True)
class EpisodeStyle:
    """The label of one episode, the labels of its style phase's halves, and the figures they came from."""

    label: str
    halves: tuple[str, str]
    features: dict[str, float] = field(default_factory=dict)

    @property
    def consistent(self) -> bool | None:
        """Whether both halves name the same style; None when either half is undecided."""
        if UNDECIDED in self.halves:
            return None
        return self.halves[0] == self.halves[1]


# --- PushT ---------------------------------------------------------------------------------------
PUSHT_ANGLE_DONE = math.radians(15.0)
PUSHT_DISTANCE_DONE = 20.0  # px
PUSHT_LEAD = 0.25
PUSHT_MIN_PROGRESS = 0.5  # an episode that meets neither sub-goal shows no style unless it halved an error


def pusht_block_poses(obs: np.ndarray) -> np.ndarray:
    """Block poses (T, 3): x, y of the block's frame origin (px) and its angle, from PushT observations:
    the 5-d state (agent x, y, block x, y, angle) or the 20-d keypoints (9 block keypoints, then the
    agent), by a least-squares rigid fit of the block's local keypoints (2-D Kabsch)."""
    from lwd.envs.pusht import BLOCK_KEYPOINTS_LOCAL

    obs = np.asarray(obs, np.float64)
    if obs.ndim != 2 or obs.shape[1] not in (5, 20):
        raise ValueError(f"PushT style labels need the block pose: 5-d state or 20-d keypoint observations, got shape {obs.shape}")
    if obs.shape[1] == 5:
        return obs[:, 2:5].copy()
    world = obs[:, :18].reshape(-1, 9, 2)  # (T, 9, 2)
    local = BLOCK_KEYPOINTS_LOCAL
    local_mean, world_mean = local.mean(0), world.mean(1)  # (2,), (T, 2)
    lc, wc = local - local_mean, world - world_mean[:, None]
    sin = (lc[None, :, 0] * wc[..., 1] - lc[None, :, 1] * wc[..., 0]).sum(1)
    cos = (lc[None, :, 0] * wc[..., 0] + lc[None, :, 1] * wc[..., 1]).sum(1)
    angle = np.arctan2(sin, cos)
    c, s = np.cos(angle), np.sin(angle)
    origin = world_mean - np.stack([c * local_mean[0] - s * local_mean[1], s * local_mean[0] + c * local_mean[1]], 1)
    return np.concatenate([origin, angle[:, None]], 1)


def _first(mask: np.ndarray) -> int:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else len(mask) - 1


class PushTRule:
    styles = ("planner", "rotate-first", "translate-first")

    def label(self, obs: np.ndarray, task: str | None = None) -> EpisodeStyle:
        from lwd.experts.pusht import pose_errors

        errors = np.array([pose_errors(*pose) for pose in pusht_block_poses(obs)])  # (T, 2): px, rad
        distance, angle = errors[:, 0], errors[:, 1]
        d0, a0 = float(distance[0]), float(angle[0])
        features = {"start_distance_px": d0, "start_angle_deg": math.degrees(a0)}
        if a0 < PUSHT_ANGLE_DONE or d0 < PUSHT_DISTANCE_DONE:
            return EpisodeStyle(UNDECIDED, (UNDECIDED, UNDECIDED), features)
        end = min(_first(angle < PUSHT_ANGLE_DONE), _first(distance < PUSHT_DISTANCE_DONE))
        angle_done, distance_done = 1.0 - angle / a0, 1.0 - distance / d0  # shares of the start errors removed
        progress = angle_done + distance_done  # the halves split the phase's progress, not its time:
        mid = _first(progress[: end + 1] >= progress[end] / 2)  # the approach before the first push moves nothing
        features.update(phase_end=end, angle_done=float(angle_done[end]), distance_done=float(distance_done[end]))
        met = angle[end] < PUSHT_ANGLE_DONE or distance[end] < PUSHT_DISTANCE_DONE  # else the phase never ended
        label = self._judge(angle_done[end], distance_done[end], PUSHT_LEAD, 0.0 if met else PUSHT_MIN_PROGRESS)
        halves = (self._judge(angle_done[mid], distance_done[mid], PUSHT_LEAD / 2, 0.1),
                  self._judge(angle_done[end] - angle_done[mid], distance_done[end] - distance_done[mid], PUSHT_LEAD / 2, 0.1))
        return EpisodeStyle(label, halves, features)

    @staticmethod
    def _judge(angle_done: float, distance_done: float, lead: float, min_progress: float) -> str:
        if max(angle_done, distance_done) < min_progress:
            return UNDECIDED
        if angle_done - distance_done > lead:
            return "rotate-first"
        if distance_done - angle_done > lead:
            return "translate-first"
        return "planner"


# --- robomimic Lift ------------------------------------------------------------------------------
LIFT_LIFTED = 0.01  # m above the cube's start height
LIFT_SLOW_P90 = 0.0085  # m per step
LIFT_STILL = 0.001  # m per step: slower steps are the hand holding still
CAN_SIDE_YAW = 0.7  # rad: Can's hand yaw at the lift beyond which the grasp is side-grasp's
CAN_SETTLE_STEPS = 20  # the can rests on the table by then, and no expert reaches it sooner


def _fold(angle: float) -> float:
    """Distance of an angle from 0 modulo pi (a two-finger gripper is symmetric under a half turn)."""
    return abs((angle + math.pi / 2) % math.pi - math.pi / 2)


def _lift_phase(object_z: np.ndarray, settle_steps: int | None = None) -> tuple[int, bool]:
    """Last step of a pick's style phase: the first step the object is LIFT_LIFTED above its resting
    height (it spawns in the air and settles in a few steps: counted from then), else the last step;
    and whether it was lifted at all. The resting height is the lowest over the first `settle_steps`
    (all steps when None: Lift's cube is never put lower; Can's can ends in a bin below the table)."""
    rest = object_z[:settle_steps].min()
    settled = int(np.argmax(object_z < rest + 0.002))
    lifted = settled + np.flatnonzero(object_z[settled:] > rest + LIFT_LIFTED)
    return (int(lifted[0]), True) if len(lifted) else (len(object_z) - 1, False)


def _slow(hand: np.ndarray, lo: int, hi: int) -> bool:
    """Whether the hand's per-step travel over [lo, hi] has its 90th percentile below LIFT_SLOW_P90
    (steps under LIFT_STILL, the hand holding still while the gripper closes, left out)."""
    steps = np.linalg.norm(np.diff(hand[lo:hi + 1], axis=0), axis=1)
    steps = steps[steps > LIFT_STILL]
    return bool(len(steps)) and float(np.percentile(steps, 90)) < LIFT_SLOW_P90


def _speed_p90_cm(hand: np.ndarray, end: int) -> float:
    return float(100 * np.percentile(np.linalg.norm(np.diff(hand[:end + 1], axis=0), axis=1), 90)) if end else 0.0


class LiftRule:
    styles = ("waypoint", "other-grasp", "slow")

    def label(self, obs: np.ndarray, task: str | None = None) -> EpisodeStyle:
        from lwd.experts.robomimic import _hand_yaw, _wrap, _yaw_of

        obs = np.asarray(obs, np.float64)
        if obs.ndim != 2 or obs.shape[1] != 19:
            raise ValueError(f"Lift style labels need robomimic Lift's 19-d observations, got shape {obs.shape}")
        cube, cube_quat, hand, hand_quat = obs[:, 0:3], obs[:, 3:7], obs[:, 10:13], obs[:, 13:17]
        end, lifted = _lift_phase(cube[:, 2])
        start_yaw = _hand_yaw(hand_quat[0])
        turn = _wrap(_yaw_of(cube_quat[0]) - start_yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4  # as the expert
        grasps = {"waypoint": start_yaw + turn, "other-grasp": start_yaw + turn + (math.pi / 2 if turn < 0 else -math.pi / 2)}

        def judge(lo: int, hi: int, decide_grasp: bool) -> str:
            if _slow(hand, lo, hi):
                return "slow"
            if not decide_grasp:
                return UNDECIDED
            yaw = _hand_yaw(hand_quat[hi])
            return min(grasps, key=lambda name: _fold(yaw - grasps[name]))

        mid = end // 2
        label = judge(0, end, lifted)
        features = {"lifted_at": end if lifted else -1, "speed_p90_cm": _speed_p90_cm(hand, end),
                    "grasp_yaw_from_waypoint_deg": math.degrees(_fold(_hand_yaw(hand_quat[end]) - grasps["waypoint"]))}
        return EpisodeStyle(label, (judge(0, mid, True), judge(mid, end, True)), features)


class CanRule:
    """Can: "slow" as Lift's; else the hand's yaw when the can leaves the table names the grasp,
    "side-grasp" if it is more than CAN_SIDE_YAW from 0 (modulo the gripper's half-turn symmetry;
    the expert's waypoint yaw is drawn in +-0.4 rad, side-grasp's in +-(1.0-1.3) rad)."""

    styles = ("waypoint", "side-grasp", "slow")

    def label(self, obs: np.ndarray, task: str | None = None) -> EpisodeStyle:
        from lwd.experts.robomimic import _hand_yaw

        obs = np.asarray(obs, np.float64)
        if obs.ndim != 2 or obs.shape[1] != 23:
            raise ValueError(f"Can style labels need robomimic Can's 23-d observations, got shape {obs.shape}")
        can, hand, hand_quat = obs[:, 7:10], obs[:, 14:17], obs[:, 17:21]  # object-state: to-eef pos, quat, then can pos
        end, lifted = _lift_phase(can[:, 2], CAN_SETTLE_STEPS)

        def judge(lo: int, hi: int, decide_grasp: bool) -> str:
            if _slow(hand, lo, hi):
                return "slow"
            if not decide_grasp:
                return UNDECIDED
            return "side-grasp" if _fold(_hand_yaw(hand_quat[hi])) > CAN_SIDE_YAW else "waypoint"

        mid = end // 2
        features = {"lifted_at": end if lifted else -1, "speed_p90_cm": _speed_p90_cm(hand, end),
                    "grasp_yaw_deg": math.degrees(_fold(_hand_yaw(hand_quat[end])))}
        return EpisodeStyle(judge(0, end, lifted), (judge(0, mid, True), judge(mid, end, True)), features)


# --- Metaworld MT10 ------------------------------------------------------------------------------
MW_NEAR = 0.02  # m: the style phase ends this close (horizontally) to the first waypoint ...
MW_MIN_PHASE = 10  # ... and not before this many steps
MW_CLIMB = 0.04  # m above max(start height, waypoint height): lift-first
MW_SLOW_AXIS = 0.006  # m per step: slow's fastest step along any axis is below this ...
MW_SLOW_RATIO = 0.6  # ... and it travels less than this share of what the scripted policy commands


class MetaworldRule:
    styles = ("scripted", "lift-first", "slow")

    def __init__(self) -> None:
        self._experts: dict[str, Any] = {}

    def label(self, obs: np.ndarray, task: str | None = None) -> EpisodeStyle:
        from lwd.experts.metaworld import APPROACH, MetaworldExpert

        if task not in APPROACH:
            raise ValueError(f"Metaworld style labels cover the MT10 tasks ({', '.join(APPROACH)}), not {task!r}")
        obs = np.asarray(obs, np.float64)
        hand = obs[:, :3]
        waypoints = np.array([APPROACH[task](o) for o in obs])
        near = np.linalg.norm(hand[:, :2] - waypoints[:, :2], axis=1) < MW_NEAR
        down = np.append(np.diff(hand[:, 2]) < -0.0005, False)
        end = _first(near & down) if (near & down).any() else _first(near)
        end = min(max(end, MW_MIN_PHASE), len(obs) - 1)
        floor = max(hand[0, 2], waypoints[0, 2])
        expert = self._experts.setdefault(task, MetaworldExpert(task))  # stateless: its command at each obs
        commanded = 0.01 * np.linalg.norm(np.array([expert.act(o)[:3] for o in obs[:end]]), axis=1)  # m per step

        def judge(lo: int, hi: int) -> str:
            if hi <= lo:
                return UNDECIDED
            if hand[lo:hi + 1, 2].max() - floor >= MW_CLIMB:
                return "lift-first"
            steps = np.diff(hand[lo:hi + 1], axis=0)
            ratio = np.linalg.norm(steps, axis=1).sum() / max(commanded[lo:hi].sum(), 1e-9)
            return "slow" if np.abs(steps).max() < MW_SLOW_AXIS and ratio < MW_SLOW_RATIO else "scripted"

        mid = end // 2
        steps = np.diff(hand[:end + 1], axis=0)
        features = {"phase_end": end, "climb_cm": float(100 * (hand[:end + 1, 2].max() - floor)),
                    "fastest_axis_cm": float(100 * np.abs(steps).max()) if len(steps) else 0.0,
                    "travel_per_command": float(np.linalg.norm(steps, axis=1).sum() / max(commanded.sum(), 1e-9))}
        return EpisodeStyle(judge(0, end), (judge(0, mid), judge(mid, end)), features)


# --- Metaworld reach-wall-low (the averaging task) -----------------------------------------------
RW_ASIDE = 0.03  # m: a half of the style phase names a side once the hand is this far aside of its start


def wall_crossing(hand: np.ndarray) -> tuple[str, int | None]:
    """Where fingertips (T, 3) first cross reach-wall's front face: ("left" | "right" | "over", step),
    or ("never", None). Left is below the wall's left end (smaller x), right beyond its right end."""
    from lwd.experts.reach_wall import WALL_HIGH, WALL_LOW

    crossed = np.flatnonzero(hand[:, 1] >= WALL_LOW[1])
    if not len(crossed):
        return "never", None
    x = hand[crossed[0], 0]
    return ("left" if x < WALL_LOW[0] else "right" if x > WALL_HIGH[0] else "over"), int(crossed[0])


class ReachWallRule:
    """`metaworld/reach-wall-low` (and its /spread-<cm> controls): which end of the wall the hand
    rounds. The style phase runs until the fingertips (obs[:3]) first cross the wall's front face
    (the whole episode if they never do); the label is the side they cross on: "left" below the
    wall's left end (smaller x), "right" beyond its right end, "undecided" over the wall or never
    (a hand pressed against the wall, the averaging failure). Each half of the phase names the side
    the hand has moved to by the half's end, if at least RW_ASIDE from where the half started
    (the experts are 13-14 cm aside halfway to the wall)."""

    styles = ("left", "right")

    def label(self, obs: np.ndarray, task: str | None = None) -> EpisodeStyle:
        hand = np.asarray(obs, np.float64)[:, :3]
        side, step = wall_crossing(hand)
        end = len(hand) - 1 if step is None else step
        label = side if side in self.styles else UNDECIDED

        def judge(lo: int, hi: int) -> str:
            aside = hand[hi, 0] - hand[lo, 0]
            return UNDECIDED if hi <= lo or abs(aside) < RW_ASIDE else "left" if aside < 0 else "right"

        mid = end // 2
        features = {"phase_end": end, "crossed": float(step is not None),
                    "aside_at_phase_end_cm": float(100 * (hand[end, 0] - hand[0, 0]))}
        return EpisodeStyle(label, (judge(0, mid), judge(mid, end)), features)


# --- which rule, and the measures ----------------------------------------------------------------
def style_rule(suite_name: str) -> PushTRule | LiftRule | CanRule | MetaworldRule | ReachWallRule:
    """The labelling rule of a suite; suites whose experts have no styles (or whose observations
    cannot show them) are refused in one line."""
    key = suite_name.strip().lower()
    if key == "metaworld/reach-wall-low" or key.startswith("metaworld/reach-wall-low/"):
        return ReachWallRule()
    if key in ("pusht", "pusht/keypoints", "pusht/state"):
        return PushTRule()
    if key == "robomimic/lift":
        return LiftRule()
    if key == "robomimic/can":
        return CanRule()
    if key in ("mt10", "metaworld/mt10") or key.startswith("metaworld/"):
        return MetaworldRule()
    raise ValueError(f"no style labels for {suite_name!r}: they exist for pusht, pusht/state, robomimic/lift and can, "
                     "metaworld/reach-wall-low and the Metaworld MT10 tasks (pusht/image's low-dim observation lacks the block pose)")


def label_episodes(episodes: Episodes, suite_name: str | None = None) -> list[EpisodeStyle]:
    """The style of every episode of a store (demonstrations or recorded rollouts)."""
    suite_name = suite_name or episodes.attrs.get("suite")
    if not suite_name:
        raise ValueError("the episodes do not record their suite (attrs['suite']); name it")
    rule = style_rule(suite_name)
    tasks = list(episodes.attrs.get("tasks") or [])
    out = []
    for i in range(episodes.num_episodes):
        episode = episodes.episode(i)
        task = tasks[int(episode["task"][0])] if "task" in episode and tasks else (tasks[0] if tasks else None)
        out.append(rule.label(episode["obs"], task))
    return out


def style_shares(labels: Sequence[str], styles: Sequence[str]) -> dict[str, float]:
    """Shares of each style among the decided labels (all 0 when none is decided)."""
    decided = [label for label in labels if label != UNDECIDED]
    return {style: (decided.count(style) / len(decided) if decided else 0.0) for style in styles}


def consistency(labels: Sequence[str], consistent: Sequence[bool | None]) -> tuple[float | None, int]:
    """The share of episodes whose style holds over their style phase (both halves alike), among the
    decided episodes whose halves are both decided, and how many episodes that is (None, 0 if none)."""
    judged = [bool(c) for label, c in zip(labels, consistent) if label != UNDECIDED and c is not None]
    return (float(np.mean(judged)) if judged else None), len(judged)


def path_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between two paths (T, D), step by step, the shorter padded with its last point:
    how far apart two styles' trajectories from the same start run (hand or agent positions)."""
    n = max(len(a), len(b))
    a = np.concatenate([a, np.repeat(a[-1:], n - len(a), axis=0)])
    b = np.concatenate([b, np.repeat(b[-1:], n - len(b), axis=0)])
    return float(np.linalg.norm(a - b, axis=1).mean())


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """TV distance between two distributions over the same names: 1/2 sum |p - q| (0 equal, 1 disjoint)."""
    keys = set(p) | set(q)
    return 0.5 * float(sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys))


def chance_total_variation(shares: Mapping[str, float], episodes: int, draws: int = 20000, seed: int = 0) -> tuple[float, float]:
    """The TV distance to `shares` of a perfect generator's mix over `episodes` decided episodes (each
    style drawn with exactly the data's share): its mean and 95th percentile over `draws` simulated
    evaluations. A measured TV at or below these is what sampling alone gives; e.g. two even styles
    over 50 episodes: mean 0.056, 95th percentile 0.14, so one 50-episode cell cannot tell 0.10 from 0."""
    p = np.asarray(list(shares.values()), np.float64)
    if episodes < 1 or p.sum() <= 0:
        return float("nan"), float("nan")
    p = p / p.sum()
    counts = np.random.default_rng(seed).multinomial(episodes, p, size=draws)
    tv = 0.5 * np.abs(counts / episodes - p).sum(axis=1)
    return float(tv.mean()), float(np.quantile(tv, 0.95))


def confusion_matrix(true: Sequence[str], predicted: Sequence[str], styles: Sequence[str]) -> dict[str, dict[str, int]]:
    """{true style: {predicted label: count}}, the predicted labels including "undecided"."""
    matrix = {t: {p: 0 for p in (*styles, UNDECIDED)} for t in styles}
    for t, p in zip(true, predicted):
        matrix[t][p] += 1
    return matrix


def style_summary(labels: Sequence[EpisodeStyle], styles: Sequence[str], successes: Sequence[bool] | None = None) -> dict[str, Any]:
    """Counts, shares of the decided labels, undecided share, per-style success, and consistency."""
    names = [s.label for s in labels]
    held, judged = consistency(names, [s.consistent for s in labels])
    out: dict[str, Any] = {
        "episodes": len(labels),
        "counts": {name: names.count(name) for name in (*styles, UNDECIDED)},
        "shares": style_shares(names, styles),
        "undecided_share": names.count(UNDECIDED) / max(len(names), 1),
        "consistency": held,
        "consistency_episodes": judged,
    }
    if successes is not None:
        out["success_rate"] = float(np.mean(successes)) if len(successes) else None
        out["success_by_style"] = {name: (float(np.mean([ok for ok, n in zip(successes, names) if n == name]))
                                          if name in names else None) for name in (*styles, UNDECIDED)}
    return out


def style_report(data: Episodes, rollouts: Mapping[str, Episodes], suite_name: str | None = None) -> dict[str, Any]:
    """The data's style mix (recorded and as the rule labels it, with the rule's confusion matrix
    when the data records its styles) and, per set of rollouts, its mix, TV distance to the data's,
    per-style success and consistency."""
    suite_name = suite_name or data.attrs.get("suite")
    rule = style_rule(suite_name)
    styles = rule.styles
    data_labels = label_episodes(data, suite_name)
    report: dict[str, Any] = {"suite": suite_name, "styles": list(styles), "rule": type(rule).__name__,
                              "data": style_summary(data_labels, styles)}
    if "style" in data.data:
        names = list(data.attrs.get("styles") or styles)
        true = [names[int(data.episode(i)["style"][0])] for i in range(data.num_episodes)]
        predicted = [s.label for s in data_labels]
        report["data"]["recorded_shares"] = {s: true.count(s) / len(true) for s in styles}
        report["data"]["confusion"] = confusion_matrix(true, predicted, styles)
        report["data"]["rule_accuracy"] = float(np.mean([t == p for t, p in zip(true, predicted)]))
    report["rollouts"] = {}
    for name, episodes in rollouts.items():
        labels = label_episodes(episodes, suite_name)
        summary = style_summary(labels, styles, episodes.attrs.get("successes"))
        summary["tv_to_data"] = total_variation(summary["shares"], report["data"]["shares"])
        summary["policy_kwargs"] = episodes.attrs.get("policy_kwargs")
        summary["method"] = episodes.attrs.get("method")
        report["rollouts"][name] = summary
    return report


def plot_report(report: Mapping[str, Any], path: str) -> None:
    """Bars of the style shares: the data (recorded, if known, and as labelled) and each set of rollouts, TV in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = report["styles"]
    rows = []
    if "recorded_shares" in report["data"]:
        rows.append(("data (recorded)", report["data"]["recorded_shares"]))
    rows.append(("data (labelled)", report["data"]["shares"]))
    for name, summary in report["rollouts"].items():
        rows.append((f"{name} (TV {summary['tv_to_data']:.2f})", summary["shares"]))
    x = np.arange(len(styles))
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(styles) + 1.5), 3.4))
    for k, (name, shares) in enumerate(rows):
        ax.bar(x + (k - (len(rows) - 1) / 2) * width, [shares[s] for s in styles], width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(styles)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of decided episodes")
    ax.set_title(f"style mix on {report['suite']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
