"""The Python half of the `python_throughput` benchmark.

- `Loop`: N Gymnasium envs stepped by a plain Python loop, random actions, each ended episode
  reset with a seed (as fbrl's VecEnv does): the env's speed with no Rust around it. Run as a
  script (`python -c SOURCE ID WRAPPER N SEED`) it makes the envs, prints `ready`, then reads
  a number of seconds per line from stdin and answers with the env steps and the seconds of a
  run that long.
  The benchmark also calls it in its embedded interpreter.
- `Async`: `gymnasium.vector.AsyncVectorEnv` (one subprocess per env), stepped from Rust with
  one list of actions per step; `step` returns what fbrl's VecEnv gives: the flat float32
  observations, the observations that followed the actions (the last one of an ended episode),
  float32 rewards and the done flags.
"""

import importlib
import sys
import time

import gymnasium
import numpy as np


def make_fn(env_id, wrapper):
    """A callable making the env `env_id` (`gymnasium.make`), wrapped by `module:fn`."""
    wrap = None
    if wrapper:
        module, _, name = wrapper.partition(":")
        wrap = getattr(importlib.import_module(module), name)

    def make():
        env = gymnasium.make(env_id)
        return wrap(env) if wrap is not None else env

    return make


class Loop:
    """N envs stepped one after the other in Python, random actions."""

    def __init__(self, env_id, wrapper, n, seed):
        make = make_fn(env_id, wrapper)
        self.envs = [make() for _ in range(n)]
        self.n_actions = int(self.envs[0].action_space.n)
        self.rng = np.random.default_rng(seed)
        self.next_seed = seed
        for env in self.envs:
            env.reset(seed=self._seed())

    def _seed(self):
        self.next_seed = (self.next_seed + 1) % 2**32
        return self.next_seed

    def run(self, seconds):
        """`(env steps, seconds taken)` of a run of at least `seconds`."""
        envs = self.envs
        n = len(envs)
        steps = 0
        start = time.perf_counter()
        end = start + seconds
        while True:
            for row in self.rng.integers(0, self.n_actions, size=(64, n)).tolist():
                for env, action in zip(envs, row):
                    _, _, terminated, truncated, _ = env.step(action)
                    if terminated or truncated:
                        env.reset(seed=self._seed())
                steps += n
                now = time.perf_counter()
                if now >= end:
                    return steps, now - start

    def close(self):
        for env in self.envs:
            env.close()


class Async:
    """`gymnasium.vector.AsyncVectorEnv` of N envs (subprocesses, forked), reset in the same
    step as an episode ends."""

    def __init__(self, env_id, wrapper, n, seed):
        from gymnasium.vector import AsyncVectorEnv, AutoresetMode

        self.venv = AsyncVectorEnv(
            [make_fn(env_id, wrapper)] * n,
            context="fork",
            autoreset_mode=AutoresetMode.SAME_STEP,
        )
        self.n = n
        obs, _ = self.venv.reset(seed=seed)
        self.obs_dim = int(np.prod(obs.shape[1:]))
        self.pids = [p.pid for p in self.venv.processes]

    def step(self, actions):
        """`(obs, final_obs, rewards, dones)`: flat float32 arrays and a list of bools."""
        obs, rewards, terminated, truncated, info = self.venv.step(
            np.asarray(actions, dtype=np.int64)
        )
        flat = np.ascontiguousarray(obs, dtype=np.float32).reshape(self.n, self.obs_dim)
        done = terminated | truncated
        final = flat
        if done.any():
            final = flat.copy()
            for i in np.flatnonzero(done):
                final[i] = np.asarray(info["final_obs"][i], dtype=np.float32).reshape(-1)
        return (
            flat.reshape(-1),
            final.reshape(-1),
            np.ascontiguousarray(rewards, dtype=np.float32),
            done.tolist(),
        )

    def close(self):
        self.venv.close()


if __name__ == "__main__":
    env_id, wrapper, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    loop = Loop(env_id, wrapper or None, n, seed)
    print("ready", flush=True)
    for line in sys.stdin:
        steps, elapsed = loop.run(float(line))
        print(steps, elapsed, flush=True)
    loop.close()
