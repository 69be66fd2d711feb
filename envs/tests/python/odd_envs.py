"""Envs for the tests of `envs::python` that exercise space mappings and failures.

`make(kind)` gives an env that behaves well except for the one thing `kind` names.
"""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class OddEnv(gym.Env):
    """Box(-1, 1, (2, 3)) observations with value `t / 10` at the flat index `t % 6`,
    Discrete(3, start=-1) actions (the action is added to the observation's first value),
    terminated after 5 steps; the `kind` argument breaks one thing."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, kind="fine", render_mode=None):
        self.kind = kind
        self.render_mode = render_mode
        self.t = 0
        self.last_action = 0
        if kind == "dict_obs":
            self.observation_space = spaces.Dict(
                {"a": spaces.Discrete(2), "b": spaces.Box(0, 1, (2,), np.float32)}
            )
        elif kind == "discrete_obs":
            self.observation_space = spaces.Discrete(4, start=10)
        else:
            self.observation_space = spaces.Box(-1.0, 1.0, (2, 3), np.float32)
        if kind == "multi_binary":
            self.action_space = spaces.MultiBinary(3)
        elif kind == "multi_discrete":
            self.action_space = spaces.MultiDiscrete([2, 3], start=[1, -1])
        elif kind == "text_action":
            self.action_space = spaces.Text(5)
        else:
            self.action_space = spaces.Discrete(3, start=-1)

    def _obs(self):
        if self.kind == "discrete_obs":
            return 10 + self.t % 4
        obs = np.zeros((2, 3), dtype=np.float32)
        obs.flat[self.t % 6] = self.t / 10
        obs.flat[0] = 0.1 * np.sum(self.last_action)
        if self.kind == "wrong_shape" and self.t == 2:
            return obs.reshape(-1)
        if self.kind == "wrong_dtype" and self.t == 2:
            return obs.astype(np.float64)
        if self.kind == "list_obs":
            return obs.tolist()
        return obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.last_action = 0
        return self._obs(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        self.t += 1
        self.last_action = action
        if self.kind == "raise_in_step" and self.t == 3:
            raise RuntimeError("the simulator exploded at step 3")
        reward = float("nan") if self.kind == "nan_reward" and self.t == 2 else 1.0
        if self.kind == "old_api":
            return self._obs(), reward, self.t >= 5, {}
        return self._obs(), reward, self.t >= 5, False, self._info()

    def _info(self):
        """The success flag, in the form `kind` names."""
        done = self.t >= 5
        if self.kind == "float_success":
            return {"is_success": np.float32(done)}
        if self.kind == "int_success":
            return {"success": int(done)}
        if self.kind == "array_success":
            return {"is_success": np.array([done], dtype=np.float64)}
        if self.kind == "fractional_success":
            return {"is_success": 0.5}
        return {}

    def render(self):
        frame = np.zeros((4, 6, 3), dtype=np.uint8)
        frame[:, : self.t + 1, 0] = 255
        return frame


def make(kind="fine", render_mode=None):
    """The factory the tests name as `odd_envs:make`."""
    return OddEnv(kind, render_mode)
