"""A planning expert for PushT: simulate candidate pushes in a mirror of the env's physics, pick one.

Why a planner and not a pure script: the block only moves while pushed (gym-pusht's space damping
is 0) and contacts are frictionless, so where and in which direction the disc touches the T fully
decides the motion; simulating a push is cheaper and more reliable than reasoning about it.

One cycle (repeated until the env reports success):
1. plan: from the privileged state (`info["state"]`), list contact points every ~10 px along the
   T's outline that the disc can reach (outward offset 15 px radius + 2 px gap, clear of the T),
   rank them by a first-order estimate of the pose cost after a short push there, and simulate
   the best few in a mirror pymunk space, for each of 3 push directions (the inward normal and
   +/-0.5 rad) and 2 speeds, for up to 10 control steps. A candidate's cost is the
   best pose cost reached along its push plus a small cost per approach pixel and per push step;
   pushes that improve nothing are dropped (if none improves, every contact is tried, then a
   random push breaks the tie). The pose cost is the block's centre-of-mass distance to the
   goal's plus ANGLE_WEIGHT = 120 px x the wrapped angle error. Why not ~44 px/rad (which matches
   the success tolerances of ~2 px and ~2.5 deg): one frictionless push at lever arm r turns the
   block by at most r / 3000 rad per px it translates it (inertia 3000, r <= 76 px), so below a
   weight of ~3000 / r every rotation of a well-placed T looks like a loss, and the one-push
   lookahead stalls with the T on the goal but turned (seen at 44 and 80 px/rad). Near the goal
   (pose cost < 12) pushes start from rest and are scored after the retreat that ends them, with
   a bonus when the mirror's coverage already counts as success. If the disc touches the T when
   planning (~8% of resets start so), it first steps 20 px straight away from it.
2. approach: go to the pre-contact point around the T (straight if clear, otherwise out to a
   circle around the T, along it, and in along the contact normal).
3. push: the PD target leads the disc by a fixed distance along the push direction (steady speed
   ~0.41 x lead px/step). Near the planned length, every step compares "retreat now" with "push
   one or two more steps, then retreat" in the mirror and stops when retreating is best: the PD
   lag otherwise overshoots by 2-4 px, and success needs ~2 px / ~2.5 deg precision.
4. retreat two steps along the push direction, then plan again.

Diversity: each plan draws the contacts to simulate from a random subset and samples the push
among the best few by a softmax over cost (temperature `diversity`, in cost px), so the same start
with a different expert seed or salt gives a different push sequence. `diversity=0` is the
deterministic greedy planner.

Styles (`STYLES`, chosen per episode by `lwd demos --styles`): the planner above is "planner";
two more solve the task in a visibly different order by changing only what the planner
minimises during a first phase, then hand over to the planner's own cost for the rest of the
episode (the hand-over is sticky, so the fine endgame is the planner's, and so is its success):
- "rotate-first": the angle error weighs ROTATE_FIRST_WEIGHT = 600 px/rad (5x the planner's)
  until the block is within PHASE_ANGLE (0.15 rad, ~9 deg) of the goal angle: the T is turned
  into place first, wherever that leaves it;
- "translate-first": the angle error weighs TRANSLATE_FIRST_WEIGHT = 10 px/rad until the centre
  of mass is within PHASE_DISTANCE (15 px) of the goal's: the T is brought over the goal first
  and turned there.
Why phases and not just other weights throughout: a low weight alone stalls with the T on the
goal but turned (see ANGLE_WEIGHT), and a high one near the goal makes the fine pushes chase
fractions of a degree; switching to the planner's cost keeps each style as competent as it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# gym-pusht's task as the expert mirrors it, like the physics below (tests/test_pusht.py checks
# these against lwd.envs.pusht, which the expert does not import).
ARENA_SIZE = 512.0
GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])
SUCCESS_COVERAGE = 0.95

AGENT_RADIUS = 15.0
TEE_BOXES = np.array([[-60.0, 0.0, 60.0, 30.0], [-15.0, 30.0, 15.0, 120.0]])  # x0, y0, x1, y1 (local px)
COG_LOCAL = np.array([0.0, 45.0])
ANGLE_WEIGHT = 120.0  # px of pose cost per radian of angle error (see the module docstring)
STYLES = ("planner", "rotate-first", "translate-first")
"""The expert's styles, in a fixed order (a dataset's integer `style` ids index this)."""
ROTATE_FIRST_WEIGHT = 600.0  # px/rad while "rotate-first" is in its first phase
TRANSLATE_FIRST_WEIGHT = 10.0  # px/rad while "translate-first" is in its first phase
PHASE_ANGLE = 0.15  # rad: "rotate-first" hands over to the planner's cost below this angle error
PHASE_DISTANCE = 15.0  # px: "translate-first" hands over below this centre-of-mass distance
TEE_REACH = float(np.hypot(15.0, 120.0 - 45.0))  # farthest point of the T from its centre of mass
CIRCLE_RADIUS = TEE_REACH + AGENT_RADIUS + 8.0  # detour circle: the disc there cannot touch the T
GAP = 2.0  # disc-to-T gap at the pre-contact point
CLEARANCE = AGENT_RADIUS + 1.0  # minimum disc-centre distance to the T along approach legs
_OUTLINE = (  # edges of the T (start, end, outward normal), local frame
    ((-60.0, 0.0), (60.0, 0.0), (0.0, -1.0)),
    ((60.0, 0.0), (60.0, 30.0), (1.0, 0.0)),
    ((60.0, 30.0), (15.0, 30.0), (0.0, 1.0)),
    ((15.0, 30.0), (15.0, 120.0), (1.0, 0.0)),
    ((15.0, 120.0), (-15.0, 120.0), (0.0, 1.0)),
    ((-15.0, 120.0), (-15.0, 30.0), (-1.0, 0.0)),
    ((-15.0, 30.0), (-60.0, 30.0), (0.0, 1.0)),
    ((-60.0, 30.0), (-60.0, 0.0), (-1.0, 0.0)),
)


# --- geometry ----------------------------------------------------------------------------------
def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def dist_to_tee_local(points: np.ndarray) -> np.ndarray:
    """Euclidean distance from local-frame points (N, 2) to the T (0 inside)."""
    q = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
    lo, hi = TEE_BOXES[None, :, :2], TEE_BOXES[None, :, 2:]
    d = np.maximum(np.maximum(lo - q, q - hi), 0.0)
    return np.sqrt((d**2).sum(-1)).min(axis=1)


def _goal_cog() -> np.ndarray:
    return GOAL_POSE[:2] + _rot(GOAL_POSE[2]) @ COG_LOCAL


_GOAL_COG = _goal_cog()


def pose_cost(x: float, y: float, angle: float, angle_weight: float = ANGLE_WEIGHT) -> float:
    """Centre-of-mass distance to the goal's (px) + angle_weight x |wrapped angle error| (rad)."""
    c, s = math.cos(angle), math.sin(angle)
    cx, cy = x - s * COG_LOCAL[1], y + c * COG_LOCAL[1]
    return math.hypot(cx - _GOAL_COG[0], cy - _GOAL_COG[1]) + angle_weight * abs(_wrap(angle - GOAL_POSE[2]))


def pose_errors(x: float, y: float, angle: float) -> tuple[float, float]:
    """(centre-of-mass distance to the goal's in px, |wrapped angle error| in rad) of a block pose."""
    c, s = math.cos(angle), math.sin(angle)
    cx, cy = x - s * COG_LOCAL[1], y + c * COG_LOCAL[1]
    return math.hypot(cx - _GOAL_COG[0], cy - _GOAL_COG[1]), abs(_wrap(angle - GOAL_POSE[2]))


def _contacts(spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Reachable contact points on the T outline (local) and their outward normals."""
    points, normals = [], []
    for a, b, n in _OUTLINE:
        a, b, n = np.array(a), np.array(b), np.array(n)
        count = max(1, int(round(np.linalg.norm(b - a) / spacing)))
        for i in range(count):
            p = a + (b - a) * (i + 0.5) / count
            if dist_to_tee_local(p + n * (AGENT_RADIUS + GAP))[0] >= AGENT_RADIUS + GAP - 1e-6:
                points.append(p)
                normals.append(n)
    return np.array(points), np.array(normals)


class _Mirror:
    """A pymunk space built like gym-pusht's, to simulate pushes from a given state.

    `copy.deepcopy` of the env fails (pymunk cffi), so the bodies are rebuilt once and set from the
    privileged state (angle before position, then velocities); only the contact cache is lost.
    """

    def __init__(self) -> None:
        import pymunk
        from gym_pusht.envs.pusht import PushTEnv as RawPushT

        self.space = pymunk.Space()
        self.space.gravity = (0.0, 0.0)
        self.space.damping = 0.0
        for a, b in (((5, 506), (5, 5)), ((5, 5), (506, 5)), ((506, 5), (506, 506)), ((5, 506), (506, 506))):
            self.space.add(pymunk.Segment(self.space.static_body, a, b, 2))
        self.agent = RawPushT.add_circle(self.space, (256, 400), 15)
        self.block, shapes = RawPushT.add_tee(self.space, (256, 300), 0)
        self._goal = self._geom(*GOAL_POSE)

    def set(self, state: np.ndarray) -> None:
        block, agent = self.block, self.agent
        block.angle = float(state[6])
        block.position = (float(state[4]), float(state[5]))
        block.velocity = (float(state[7]), float(state[8]))
        block.angular_velocity = float(state[9])
        agent.position = (float(state[0]), float(state[1]))
        agent.velocity = (float(state[2]), float(state[3]))

    def get(self) -> np.ndarray:
        """The mirror's state in the layout of info["state"]."""
        agent, block = self.agent, self.block
        return np.array([*agent.position, *agent.velocity, *block.position, block.angle, *block.velocity,
                         block.angular_velocity])

    def step(self, tx: float, ty: float) -> None:
        """One control step exactly as gym-pusht (PD k_p 100, k_v 20, 10 substeps of 0.01 s)."""
        tx = float(np.float32(min(max(tx, 0.0), ARENA_SIZE)))  # the env receives a float32 action
        ty = float(np.float32(min(max(ty, 0.0), ARENA_SIZE)))
        agent, space = self.agent, self.space
        for _ in range(10):
            px, py = agent.position
            vx, vy = agent.velocity
            agent.velocity = (vx + (100.0 * (tx - px) - 20.0 * vx) * 0.01, vy + (100.0 * (ty - py) - 20.0 * vy) * 0.01)
            space.step(0.01)

    def pose(self) -> tuple[float, float, float]:
        x, y = self.block.position
        return x, y, self.block.angle

    def agent_xy(self) -> tuple[float, float]:
        return tuple(self.agent.position)

    @staticmethod
    def _geom(x: float, y: float, angle: float) -> Any:
        import shapely.geometry as sg

        rot, origin = _rot(angle), np.array([x, y])
        boxes = [np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]) @ rot.T + origin for b in TEE_BOXES]
        return sg.MultiPolygon([sg.Polygon(b) for b in boxes])

    def coverage(self) -> float:
        return float(self._goal.intersection(self._geom(*self.pose())).area / self._goal.area)


# --- the expert --------------------------------------------------------------------------------
class PushTExpert:
    """Plans pushes on the privileged state; see the module docstring. Implements `Expert`.

    `diversity`: softmax temperature for choosing among the best `top_k` pushes, in cost px near
    the goal and relative (x 5% of the current pose cost) far from it, and whether contacts are
    subsampled; 0 makes the expert deterministic. `salt` separates experts
    that share a reset seed (the expert's RNG is seeded from [seed, salt]). `style`: one of
    `STYLES` ("planner", the default, is the planner exactly as it was before styles existed).
    """

    COARSE_LEADS = (12.0, 36.0)  # PD lead (px) -> ~5 and ~15 px/step
    FINE_LEADS = (5.0, 12.0)  # ~2 and ~5 px/step, once the pose cost is below FINE_COST
    FINE_COST = 12.0
    DIRECTIONS = (0.0, 0.5, -0.5)  # push direction relative to the inward normal (rad)
    HORIZON = 10  # longest simulated push (control steps)
    APPROACH_LEAD = 60.0  # ~24 px/step
    RETREAT_LEAD = 12.0
    RETREAT_STEPS = 2
    W_PATH = 0.02  # cost per approach px
    W_STEP = 0.2  # cost per push step
    SUCCESS_BONUS = 50.0

    def __init__(self, diversity: float = 1.0, salt: int = 0, contact_spacing: float = 10.0,
                 simulated_contacts: int = 14, top_k: int = 5, style: str = "planner") -> None:
        if style not in STYLES:
            raise ValueError(f"unknown PushT expert style {style!r}; known: {', '.join(STYLES)}")
        self.style = style
        self.diversity = float(diversity)
        self.salt = int(salt)
        self.simulated_contacts = simulated_contacts
        self.top_k = top_k
        self._points, self._normals = _contacts(contact_spacing)
        self._mirror: _Mirror | None = None
        self.reset(0)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng([int(seed), self.salt])
        self._mode = "plan"
        self._plan: dict[str, Any] = {}
        self._t = 0
        self._retreat_left = 0
        self._waypoint = 0
        self._approach_steps = 0
        self._first_phase = self.style != "planner"  # styles start in their own phase

    def _angle_weight(self) -> float:
        """The angle weight of the pose cost the planner minimises now (see the module docstring)."""
        if not self._first_phase:
            return ANGLE_WEIGHT
        return ROTATE_FIRST_WEIGHT if self.style == "rotate-first" else TRANSLATE_FIRST_WEIGHT

    def _update_phase(self, x: float, y: float, angle: float) -> None:
        """Hand over to the planner's cost (for good) once the style's first goal is reached."""
        if not self._first_phase:
            return
        distance, angle_error = pose_errors(x, y, angle)
        if (angle_error < PHASE_ANGLE) if self.style == "rotate-first" else (distance < PHASE_DISTANCE):
            self._first_phase = False

    # --- acting ---------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        del obs  # the expert reads the privileged simulator state
        state = np.asarray(info["state"], dtype=np.float64)
        if self._mirror is None:
            self._mirror = _Mirror()
        agent = state[:2]
        for _ in range(4):
            if self._mode == "plan":
                target = self._make_plan(state)
                if target is not None:  # escaping from contact first
                    return self._out(target)
            if self._mode == "approach":
                target = self._approach(state)
                if target is not None:
                    return self._out(target)
            if self._mode == "push":
                if self._keep_pushing(state):
                    self._t += 1
                    return self._out(agent + self._plan["dir"] * self._plan["lead"])
                self._mode, self._retreat_left = "retreat", self.RETREAT_STEPS
            if self._mode == "retreat":
                if self._retreat_left > 0:
                    self._retreat_left -= 1
                    return self._out(agent - self._plan["dir"] * self.RETREAT_LEAD)
                self._mode = "plan"
        return self._out(agent)  # pragma: no cover - the state machine always resolves above

    @staticmethod
    def _out(target: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(target, dtype=np.float64), 0.0, ARENA_SIZE).astype(np.float32)

    def _approach(self, state: np.ndarray) -> np.ndarray | None:
        plan, agent = self._plan, state[:2]
        moved = np.abs(state[4:7] - plan["block"]).max() > 0.3
        to_contact = float(np.linalg.norm(agent - plan["contact"]))
        arrived = to_contact < 5.0 if not plan["fine"] else (to_contact < 1.0 and np.linalg.norm(state[2:4]) < 10.0)
        if arrived or (moved and to_contact < 12.0):
            self._mode, self._t = "push", 0
            return None
        if moved:  # bumped the block on the way: its pose is not the planned one any more
            self._mode = "plan"
            return self._make_plan(state)
        self._approach_steps += 1
        if self._approach_steps > 40:  # the route is not working out (e.g. a target off the arena)
            self._mode = "plan"
            return self._make_plan(state)
        route = plan["route"]
        while self._waypoint < len(route) - 1 and np.linalg.norm(route[self._waypoint] - agent) < 14.0:
            self._waypoint += 1
        step = route[self._waypoint] - agent
        dist = float(np.linalg.norm(step))
        if plan["fine"] and self._waypoint == len(route) - 1 and dist < 40.0:
            return route[-1]  # come to rest at the contact: fine pushes are planned from rest
        return agent + step * min(1.0, self.APPROACH_LEAD / max(dist, 1e-9))

    # --- pushing ----------------------------------------------------------------------------
    def _rollout(self, state: np.ndarray, push_steps: int, retreat_steps: int) -> tuple[float, float, float]:
        mirror, d, lead = self._mirror, self._plan["dir"], self._plan["lead"]
        mirror.set(state)
        for i in range(push_steps + retreat_steps):
            ax, ay = mirror.agent_xy()
            sign = lead if i < push_steps else -self.RETREAT_LEAD
            mirror.step(ax + d[0] * sign, ay + d[1] * sign)
        return mirror.pose()

    def _keep_pushing(self, state: np.ndarray) -> bool:
        plan, t = self._plan, self._t
        if t < plan["k"] - 2:
            return True
        if t >= plan["k"] + 6:
            return False
        cost_now = self._outcome(self._rollout(state, 0, self.RETREAT_STEPS + 1))
        if cost_now < -self.SUCCESS_BONUS / 2:
            return False  # retreating now already succeeds
        later = min(self._outcome(self._rollout(state, j, self.RETREAT_STEPS + 1)) for j in (1, 2))
        return later < cost_now - 0.02

    # --- planning ---------------------------------------------------------------------------
    def _make_plan(self, state: np.ndarray) -> np.ndarray | None:
        """Choose the next push and set mode to approach; returns an escape target if in contact."""
        agent, (bx, by, angle) = state[:2], state[4:7]
        rot, origin = _rot(angle), np.array([bx, by])
        agent_local = rot.T @ (agent - origin)
        gap = dist_to_tee_local(agent_local)[0]
        if gap < AGENT_RADIUS + 1.0:  # touching or inside the T: step away from it first
            nearest = np.clip(agent_local[None, :], TEE_BOXES[:, :2], TEE_BOXES[:, 2:])
            nearest = nearest[np.argmin(np.linalg.norm(nearest - agent_local, axis=1))]
            away = agent_local - nearest if gap > 1e-6 else agent_local - COG_LOCAL
            away = away / max(np.linalg.norm(away), 1e-9)
            return agent + rot @ away * 20.0

        self._update_phase(bx, by, angle)
        cost0 = pose_cost(bx, by, angle, self._angle_weight())
        fine = cost0 < self.FINE_COST
        leads = self.FINE_LEADS if fine else self.COARSE_LEADS
        points_w = self._points @ rot.T + origin
        normals_w = self._normals @ rot.T
        contacts_w = points_w + normals_w * (AGENT_RADIUS + GAP)
        inside = np.all((contacts_w > 1.0) & (contacts_w < ARENA_SIZE - 1.0), axis=1)
        gain = self._push_gains(points_w, normals_w, bx, by, angle, 3.0 if fine else 20.0)
        order = [int(i) for i in np.argsort(gain) if inside[i]]
        chosen = order[: self.simulated_contacts]
        if self.diversity > 0:  # explore: drop a few of the best-ranked, add a few others
            keep = self._rng.random(len(chosen)) < 0.85
            rest = order[self.simulated_contacts:]
            extra = list(self._rng.choice(rest, size=min(3, len(rest)), replace=False)) if rest else []
            chosen = [c for c, k in zip(chosen, keep) if k] + [int(c) for c in extra]
        candidates = self._candidates(state, chosen, contacts_w, normals_w, leads, fine, origin, angle, rot)
        useful = [c for c in candidates if c[4] > 0]  # pushes that improve on the current pose at all
        if not useful:  # try every contact
            others = [i for i in order if i not in chosen]
            candidates += self._candidates(state, others, contacts_w, normals_w, leads, fine, origin, angle, rot)
            useful = [c for c in candidates if c[4] > 0]
        if not candidates:  # pragma: no cover - the block is inside the arena, so some contact is too
            return agent
        if not useful:  # a local minimum of the one-push lookahead: a random push shakes it loose
            useful = [candidates[int(self._rng.integers(len(candidates)))]]
        candidates = sorted(useful, key=lambda c: c[0])
        top = candidates[: self.top_k]
        if self.diversity > 0:
            costs = np.array([c[0] for c in top])
            # the temperature grows with the remaining error: far from the goal, many pushes are
            # about as good; near it, only the precise ones are
            temperature = self.diversity * max(1.0, 0.05 * cost0)
            weights = np.exp(-(costs - costs.min()) / temperature)
            pick = top[self._rng.choice(len(top), p=weights / weights.sum())]
        else:
            pick = top[0]
        _, i, phi, lead, k, route, _ = pick
        self._plan = {
            "block": state[4:7].copy(), "contact": contacts_w[i], "route": route,
            "dir": _rot(phi) @ (-normals_w[i]), "lead": lead, "k": max(k, 1), "fine": fine,
        }
        self._mode, self._waypoint, self._approach_steps = "approach", 0, 0
        return None

    def _candidates(self, state: np.ndarray, chosen: list[int], contacts_w: np.ndarray, normals_w: np.ndarray,
                    leads: tuple[float, ...], fine: bool, origin: np.ndarray, angle: float,
                    rot: np.ndarray) -> list[tuple]:
        """(total cost, contact, direction, lead, push steps, route, route length) per simulated push."""
        agent, out = state[:2], []
        for i in chosen:
            route, length = self._route(agent, contacts_w[i], normals_w[i], origin, angle, rot)
            for phi in self.DIRECTIONS:
                d = _rot(phi) @ (-normals_w[i])
                for lead in leads:
                    best, k = self._simulate_push(state, contacts_w[i], d, lead, with_retreat=fine)
                    out.append((best + self.W_STEP * k + self.W_PATH * length, i, phi, lead, k, route, length))
        return out

    def _push_gains(self, points_w: np.ndarray, normals_w: np.ndarray, bx: float, by: float, angle: float,
                    distance: float) -> np.ndarray:
        """First-order estimate of the pose-cost change after pushing `distance` px at each contact.

        A frictionless push along the inward normal n at r (from the centre of mass) gives the block
        (unit mass, inertia 3000) the twist v = j n, w = j (r x n) / 3000 with j = 1 / (1 + (r x n)^2
        / 3000), per unit of disc travel. Evaluating the cost at the moved pose (not its slope)
        keeps the kink of |angle error| at 0 honest: there every rotation costs.
        """
        cog = np.array([bx, by]) + _rot(angle) @ COG_LOCAL
        r = points_w - cog
        n = -normals_w
        arm = r[:, 0] * n[:, 1] - r[:, 1] * n[:, 0]
        inertia = 3000.0  # block mass 1, moment of inertia 3000 (gym-pusht's add_tee)
        impulse = distance / (1.0 + arm**2 / inertia)
        new_cog = cog + n * impulse[:, None]
        new_angle = angle + impulse * arm / inertia
        dtheta = np.abs((new_angle - GOAL_POSE[2] + np.pi) % (2 * np.pi) - np.pi)
        weight = self._angle_weight()
        return np.linalg.norm(new_cog - _GOAL_COG, axis=1) + weight * dtheta - pose_cost(bx, by, angle, weight)

    def _outcome(self, pose: tuple[float, float, float]) -> float:
        """Pose cost, minus SUCCESS_BONUS when the mirror's block pose already counts as success."""
        cost = pose_cost(*pose, self._angle_weight())
        if cost < self.FINE_COST and self._mirror.coverage() > SUCCESS_COVERAGE + 0.005:
            cost -= self.SUCCESS_BONUS
        return cost

    def _simulate_push(self, state: np.ndarray, contact: np.ndarray, d: np.ndarray, lead: float,
                       with_retreat: bool) -> tuple[float, int]:
        """Best cost along a push from rest at `contact`, and after how many push steps.

        With `with_retreat`, each push length k is scored by the pose after k push steps and the
        retreat that follows (what execution does; the PD lag moves the block on a little more),
        branching from a snapshot of the mirror; otherwise by the pose right after step k.
        """
        mirror = self._mirror
        start = state.copy()
        start[0:2], start[2:4] = contact, 0.0
        mirror.set(start)
        pose0 = state[4:7]
        weight = self._angle_weight()
        best, best_k = (self._outcome(tuple(pose0)) if with_retreat else pose_cost(*pose0, weight)), 0
        for k in range(1, self.HORIZON + 1):
            ax, ay = mirror.agent_xy()
            mirror.step(ax + d[0] * lead, ay + d[1] * lead)
            pose = mirror.pose()
            if with_retreat:
                snapshot = mirror.get()
                for _ in range(self.RETREAT_STEPS + 1):
                    ax, ay = mirror.agent_xy()
                    mirror.step(ax - d[0] * self.RETREAT_LEAD, ay - d[1] * self.RETREAT_LEAD)
                cost = self._outcome(mirror.pose())
                mirror.set(snapshot)
            else:
                cost = pose_cost(*pose, weight)
            if cost < best:
                best, best_k = cost, k
            elif cost > best + 10.0:
                break
            if k == 3 and abs(pose[0] - pose0[0]) + abs(pose[1] - pose0[1]) + abs(pose[2] - pose0[2]) < 1e-3:
                break  # never touched the block
        return best, best_k

    def _route(self, agent: np.ndarray, contact: np.ndarray, normal: np.ndarray, origin: np.ndarray,
               angle: float, rot: np.ndarray) -> tuple[np.ndarray, float]:
        """Waypoints from the agent to the pre-contact point that keep the disc off the T, and length."""
        def clear(*legs: tuple[np.ndarray, np.ndarray]) -> bool:
            pts = []
            for a, b in legs:
                n = max(2, int(np.linalg.norm(b - a) / 4.0) + 1)
                pts.append(a + (b - a) * np.linspace(0.0, 1.0, n)[:, None])
            local = (np.concatenate(pts) - origin) @ rot
            return bool(dist_to_tee_local(local).min() >= CLEARANCE)

        if clear((agent, contact)):
            return contact[None, :], float(np.linalg.norm(contact - agent))
        cog = origin + rot @ COG_LOCAL
        # entry point: on the detour circle, along the contact's outward normal
        rel = contact - cog
        b = float(rel @ normal)
        t = -b + math.sqrt(max(b * b - (rel @ rel - CIRCLE_RADIUS**2), 0.0))
        entry = contact + normal * max(t, 0.0)
        if clear((agent, entry), (entry, contact)):
            route = np.stack([entry, contact])
            return route, float(np.linalg.norm(entry - agent) + np.linalg.norm(contact - entry))
        a_rel = agent - cog
        exit_ = cog + CIRCLE_RADIUS * a_rel / max(np.linalg.norm(a_rel), 1e-9)
        phi_a = math.atan2(a_rel[1], a_rel[0])
        phi_e = math.atan2(entry[1] - cog[1], entry[0] - cog[0])
        best: tuple[float, np.ndarray] | None = None
        fallback: tuple[float, np.ndarray] | None = None
        for sign in (1.0, -1.0):
            sweep = (sign * (phi_e - phi_a)) % (2 * math.pi)
            n = max(1, int(math.ceil(sweep / math.radians(20.0))))
            arc_angles = phi_a + sign * sweep * np.arange(1, n) / n
            arc = cog + CIRCLE_RADIUS * np.stack([np.cos(arc_angles), np.sin(arc_angles)], axis=1)
            arc = np.clip(arc, 2.0, ARENA_SIZE - 2.0).reshape(-1, 2)
            route = np.concatenate([exit_[None], arc, entry[None], contact[None]])
            path = np.concatenate([agent[None], route])
            length = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
            if fallback is None or length < fallback[0]:
                fallback = (length, route)
            if clear(*zip(path[:-1], path[1:])) and (best is None or length < best[0]):
                best = (length, route)
        length, route = best if best is not None else (fallback[0] + 100.0, fallback[1])
        return np.clip(route, 1.0, ARENA_SIZE - 1.0), length
