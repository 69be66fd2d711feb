"""ProofofMemory-v0: the memory check of CleanRL's `ppo_trxl` (its `pom_env.py`), as documented
there, written for the `python-memory` benchmark suite (`benchmarks --suites python-memory`).

A one-dimensional track of cells 0.2 apart from -1 to 1. The agent starts on one of -0.4, -0.2,
0, 0.2, 0.4 (uniformly) and moves left (action 0) or right (action 1). One end of the track is
the rewarding goal, the other the punishing one, drawn at random each episode. The observation
is `[left goal, position, right goal]` (float32 in [-1, 1]): the goals read +1 / -1 in the first
observation and in those after the first two steps, during which the agent cannot move; from
then on both read 0 and the agent has to remember which side was +1.

Rewards: -0.1 per move that does not end the episode; reaching an end gives +1.6 (the good
goal: 1 plus the time penalty of the 6-step shortest path) or -1.6 and terminates. The episode
is truncated after 16 steps. The best possible mean return is 1.2 (5 moves on average); a
policy without memory can do no better than -0.4 (walking to one side always: right half the
time).

`info["success"]` is true on the step that reaches the good goal (the success rate fbrl logs).
Unlike CleanRL's version, the start position and the goals are drawn from the env's own
generator (`reset(seed=...)` makes the episode reproducible); there is no rendering.

Made by `make()` (`gym:proof_of_memory:make`, with this folder on `PYTHONPATH`), or by
`gymnasium.make("ProofofMemory-v0")` once this module is imported.
"""

import gymnasium as gym
import numpy as np
from gymnasium import spaces

STEP = 0.2
STARTS = (-0.4, -0.2, 0.0, 0.2, 0.4)
SHOW_STEPS = 2
TIME_PENALTY = 0.1
# Cells from the centre to an end, plus one: the shortest path's penalty paid back at the goal.
GOAL_BONUS = 1.0 + (round(1.0 / STEP) + 1) * TIME_PENALTY
MAX_EPISODE_STEPS = 16


class ProofOfMemory(gym.Env):
    """The env without its time limit (`make` adds it)."""

    metadata = {"render_modes": []}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self._cell = 0  # position in cells of STEP: -5 (left end) .. 5 (right end)
        self._goals = (1.0, -1.0)
        self._t = 0

    def _obs(self):
        shown = self._t <= SHOW_STEPS
        left, right = self._goals if shown else (0.0, 0.0)
        return np.array([left, round(self._cell * STEP, 2), right], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._cell = int(self.np_random.integers(-2, 3))
        self._goals = (1.0, -1.0) if self.np_random.integers(2) == 0 else (-1.0, 1.0)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        if self._t < SHOW_STEPS:
            # The goals are still shown: the agent is held in place.
            self._t += 1
            return self._obs(), 0.0, False, False, {"success": False}
        self._cell += 1 if int(action) == 1 else -1
        self._t += 1
        end = round(1.0 / STEP)
        if abs(self._cell) == end:
            good = self._goals[0] if self._cell < 0 else self._goals[1]
            won = good > 0
            reward = GOAL_BONUS if won else -GOAL_BONUS
            return self._obs(), reward, True, False, {"success": won}
        return self._obs(), -TIME_PENALTY, False, False, {"success": False}


def make(max_episode_steps=MAX_EPISODE_STEPS, render_mode=None):
    """ProofofMemory-v0 with its time limit: the factory `gym:proof_of_memory:make`."""
    return gym.wrappers.TimeLimit(ProofOfMemory(render_mode), max_episode_steps)


if "ProofofMemory-v0" not in gym.registry:
    gym.register(
        id="ProofofMemory-v0",
        entry_point=ProofOfMemory,
        max_episode_steps=MAX_EPISODE_STEPS,
    )
