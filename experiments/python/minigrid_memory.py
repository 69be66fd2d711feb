"""MiniGrid-MemoryS9-v0 as CleanRL's `ppo_trxl` sets it up, for the `python-memory` benchmark
suite (`benchmarks --suites python-memory`): a 3×3 view (`agent_view_size=3`) and a time limit
of 96 steps on top of the env's own (405 steps, which its reward is computed with:
1 - 0.9 × steps / 405 on success, 0 otherwise).

CleanRL renders the 3×3 view as an 84×84 RGB image (28-pixel tiles) for a CNN; here the
observation is the same view as MiniGrid's symbolic grid (`ImgObsWrapper`: object, colour and
state of each of the 9 cells, 27 integers), which carries the same information for a policy
without a convolutional encoder.

`info["success"]` is true on the step that ends the episode at the matching object.
Made by `make()` (`gym:minigrid_memory:make`, with this folder on `PYTHONPATH`).
"""

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid ids)
from minigrid.wrappers import ImgObsWrapper

MAX_EPISODE_STEPS = 96


class Success(gym.Wrapper):
    """Adds `info["success"]`: the episode terminated with a positive reward."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["success"] = bool(terminated and reward > 0)
        return obs, reward, terminated, truncated, info


def make(
    env_id="MiniGrid-MemoryS9-v0",
    agent_view_size=3,
    max_episode_steps=MAX_EPISODE_STEPS,
    render_mode=None,
):
    """The env with CleanRL's view size and time limit, symbolic observations."""
    env = gym.make(env_id, agent_view_size=agent_view_size, render_mode=render_mode)
    env = ImgObsWrapper(env)
    env = gym.wrappers.TimeLimit(env, max_episode_steps)
    return Success(env)
