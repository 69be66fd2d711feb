"""A small memory task for the tests of `envs::python`: remember a cue over a delay.

At the first step the observation shows one of `num_cues` cues (one-hot); for the next
`delay` steps it shows only the time left, and only action 0 ("wait") is allowed (the
action mask in `info`). Then the query flag is raised and any action is allowed: choosing
the cue's index gives +1 and success, any other -1; the episode terminates there. It is
truncated after `max_steps` steps when `max_steps` is shorter than the episode.
"""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CueDelayEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, num_cues=3, delay=4, max_steps=None, render_mode=None):
        if num_cues < 2:
            raise ValueError(f"num_cues must be at least 2, got {num_cues}")
        self.num_cues = num_cues
        self.delay = delay
        self.max_steps = max_steps
        self.render_mode = render_mode
        # [cue one-hot..., time left / delay, query flag]
        self.observation_space = spaces.Box(0.0, 1.0, (num_cues + 2,), np.float32)
        self.action_space = spaces.Discrete(num_cues)
        self.cue = 0
        self.t = 0

    def _obs(self):
        obs = np.zeros(self.num_cues + 2, dtype=np.float32)
        if self.t == 0:
            obs[self.cue] = 1.0
        obs[self.num_cues] = max(self.delay - self.t, 0) / max(self.delay, 1)
        obs[self.num_cues + 1] = 1.0 if self.t >= self.delay else 0.0
        return obs

    def _info(self):
        mask = np.ones(self.num_cues, dtype=np.int8)
        if self.t < self.delay:
            mask[1:] = 0
        return {"action_mask": mask}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(self.num_cues))
        self.t = 0
        return self._obs(), self._info()

    def step(self, action):
        if self.t >= self.delay:
            right = int(action) == self.cue
            self.t += 1
            info = self._info()
            info["success"] = right
            return self._obs(), 1.0 if right else -1.0, True, False, info
        self.t += 1
        truncated = self.max_steps is not None and self.t >= self.max_steps
        return self._obs(), 0.0, False, truncated, self._info()


def make(**kwargs):
    """The factory the tests name as `pom_env:make`."""
    return CueDelayEnv(**kwargs)
