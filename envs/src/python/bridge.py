"""The Python half of `envs::python`: makes a Gymnasium env and converts what crosses over.

Rust calls these functions with the GIL held. Problems with the env as fbrl sees it (a space
it cannot map, an observation outside its space, an old-Gym `step`) raise `BridgeError` with
a message in words; exceptions of the env itself propagate unchanged, and Rust reports them
with `describe`.

What crosses over:
- observations: a flat, C-contiguous float32 array (row-major), checked against the space;
- actions: an int (Discrete), a list of ints (MultiDiscrete, MultiBinary) or a list of floats
  (Box), converted here to what the env's action space holds;
- the action mask: `info["action_mask"]` as a list of bools, or None;
- success: `info["success"]` or `info["is_success"]` when it is a bool or a 0/1 number, else None.
"""

import importlib
import json
import os
import traceback

import gymnasium
import numpy as np
from gymnasium import spaces


class BridgeError(Exception):
    """A problem with the env as fbrl sees it; the message says what."""


def describe(exc, tb):
    """The last line of the exception's traceback `tb` (`Type: message`), with where it was
    raised."""
    if isinstance(exc, BridgeError):
        return str(exc)
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    frames = traceback.extract_tb(tb or exc.__traceback__)
    if frames:
        f = frames[-1]
        last += f" (raised at {f.filename}:{f.lineno}, in {f.name})"
    return last


def _resolve(path, flag):
    """The object named `module:name` (`name` may be dotted)."""
    module, sep, name = path.partition(":")
    if not sep or not module or not name:
        raise BridgeError(f"{flag} {path!r}: expected module:name, e.g. minigrid.wrappers:ImgObsWrapper")
    obj = importlib.import_module(module)
    for part in name.split("."):
        if not hasattr(obj, part):
            raise BridgeError(f"{flag} {path!r}: module {module!r} has no attribute {name!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BridgeError(f"{flag} {path!r}: {name!r} is a {type(obj).__name__}, not a callable")
    return obj


def _factory(env_id):
    """The callable of a `module:name` id whose name is a callable of the module, else None
    (the id is then one for `gymnasium.make`, which itself reads `module:EnvName-v0`)."""
    module, sep, name = env_id.partition(":")
    if not sep or not module or not name.isidentifier():
        return None
    obj = getattr(importlib.import_module(module), name, None)
    return obj if callable(obj) else None


def make(env_id, kwargs_json, wrapper, render):
    """The env of `env_id` (a factory `module:name`, else `gymnasium.make(env_id)`) called with
    the keyword arguments, wrapped by `wrapper` (`module:fn`) when given; with
    `render_mode="rgb_array"` when `render`."""
    kwargs = json.loads(kwargs_json)
    if render:
        kwargs["render_mode"] = "rgb_array"
        # rgb_array frames are drawn off screen, but pygame-based renderers (`pygame.init()`)
        # still start SDL's video system, which on a machine without a display session prints
        # "error: XDG_RUNTIME_DIR is invalid". SDL's `dummy` driver draws the same frames
        # without one; a driver the user chose is kept.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    # The wrapper's module is imported first: its package may be what registers the env
    # (`minigrid.wrappers` imports `minigrid`, which registers the MiniGrid ids).
    wrap = _resolve(wrapper, "--wrapper") if wrapper else None
    factory = _factory(env_id)
    if factory is not None:
        env = factory(**kwargs)
    else:
        try:
            env = gymnasium.make(env_id, **kwargs)
        except gymnasium.error.UnregisteredEnv as e:
            if ":" in env_id:
                raise
            raise BridgeError(
                f"cannot make it: {describe(e, e.__traceback__)}; an env that a package "
                f"registers needs that package imported first: name it gym:PACKAGE:{env_id} "
                f"(e.g. gym:minigrid:MiniGrid-MemoryS9-v0)"
            ) from None
    if wrap is not None:
        env = wrap(env)
    for attr in ("reset", "step", "observation_space", "action_space"):
        if not hasattr(env, attr):
            raise BridgeError(f"{type(env).__name__} has no `{attr}`: not a Gymnasium env")
    if render:
        modes = (getattr(env, "metadata", None) or {}).get("render_modes", [])
        if "rgb_array" not in modes:
            raise BridgeError(
                f"the env does not draw rgb_array frames, which rendering needs (its render "
                f"modes: {list(modes)})"
            )
    return Adapter(env)


def _bounds(space):
    """`low`, `high` of a Box as flat float32 lists, row-major."""
    low = np.broadcast_to(space.low, space.shape).astype(np.float32).reshape(-1)
    high = np.broadcast_to(space.high, space.shape).astype(np.float32).reshape(-1)
    return low.tolist(), high.tolist()


class Observations:
    """Maps the env's observations to flat float32 arrays.

    Box: the values, row-major. Discrete(n, start): one-hot of `obs - start`. MultiBinary:
    the bits. MultiDiscrete(nvec, start): the values. Dict, Tuple and the rest are refused.
    """

    def __init__(self, space):
        self.space = space
        if isinstance(space, spaces.Box):
            self.kind = "box"
            self.shape = tuple(space.shape)
            self.low, self.high = _bounds(space)
        elif isinstance(space, spaces.Discrete):
            self.kind = "discrete"
            self.shape = (int(space.n),)
            self.start = int(space.start)
            self.low, self.high = [0.0] * space.n, [1.0] * space.n
        elif isinstance(space, spaces.MultiBinary):
            self.kind = "multi_binary"
            self.shape = tuple(space.shape)
            size = int(np.prod(self.shape))
            self.low, self.high = [0.0] * size, [1.0] * size
        elif isinstance(space, spaces.MultiDiscrete):
            self.kind = "multi_discrete"
            self.shape = tuple(space.nvec.shape)
            start = np.asarray(space.start).reshape(-1)
            self.low = start.astype(np.float32).tolist()
            self.high = (start + space.nvec.reshape(-1) - 1).astype(np.float32).tolist()
        elif isinstance(space, (spaces.Dict, spaces.Tuple)):
            raise BridgeError(
                f"the observation space is {space}: fbrl takes one array, not a "
                f"{type(space).__name__}; flatten it (--wrapper "
                f"gymnasium.wrappers:FlattenObservation) or keep one part (e.g. --wrapper "
                f"minigrid.wrappers:ImgObsWrapper)"
            )
        else:
            raise BridgeError(
                f"the observation space {space} ({type(space).__name__}) is not supported: "
                f"fbrl maps Box, Discrete, MultiBinary and MultiDiscrete observations"
            )

    def describe(self):
        return list(self.shape), self.low, self.high

    def flat(self, obs, where):
        """`obs` as a flat float32 array, or BridgeError saying how it leaves the space."""
        if self.kind == "discrete":
            if not isinstance(obs, (int, np.integer)) or not (
                self.start <= obs < self.start + self.shape[0]
            ):
                raise BridgeError(f"{where} gave the observation {obs!r}, not in {self.space}")
            out = np.zeros(self.shape, dtype=np.float32)
            out[int(obs) - self.start] = 1.0
            return out
        dtype = self.space.dtype
        if not isinstance(obs, np.ndarray):
            try:
                obs = np.asarray(obs, dtype=dtype)
            except (TypeError, ValueError) as e:
                raise BridgeError(
                    f"{where} gave an observation of type {type(obs).__name__} that is not an "
                    f"array of {dtype} ({e})"
                ) from None
        elif not np.can_cast(obs.dtype, dtype):
            raise BridgeError(
                f"{where} gave an observation of dtype {obs.dtype}; the observation space "
                f"{self.space} holds {dtype} (a {obs.dtype} does not cast to it safely)"
            )
        if obs.shape != self.shape:
            raise BridgeError(
                f"{where} gave an observation of shape {obs.shape}; the observation space "
                f"{self.space} has shape {self.shape}"
            )
        return np.ascontiguousarray(obs, dtype=np.float32).reshape(-1)


class Actions:
    """Maps fbrl's actions to the env's.

    Discrete(n, start): action `a` in 0..n is `start + a`. MultiDiscrete(nvec, start): each
    value plus its start, in the shape of `nvec`. MultiBinary(shape): a MultiDiscrete of 2s.
    Box: the values in the space's shape and dtype.
    """

    def __init__(self, space):
        self.space = space
        if isinstance(space, spaces.Discrete):
            self.kind = "discrete"
            self.start = int(space.start)
            self.nvec = [int(space.n)]
        elif isinstance(space, spaces.MultiBinary):
            self.kind = "multi_binary"
            self.shape = tuple(space.shape)
            self.nvec = [2] * int(np.prod(self.shape))
        elif isinstance(space, spaces.MultiDiscrete):
            self.kind = "multi_discrete"
            self.shape = tuple(space.nvec.shape)
            self.start = np.asarray(space.start).reshape(-1)
            self.nvec = [int(n) for n in space.nvec.reshape(-1)]
        elif isinstance(space, spaces.Box):
            self.kind = "box"
            self.shape = tuple(space.shape)
            self.low, self.high = _bounds(space)
        else:
            raise BridgeError(
                f"the action space {space} ({type(space).__name__}) is not supported: fbrl "
                f"maps Discrete, MultiDiscrete, MultiBinary and Box actions"
            )

    def describe(self):
        if self.kind == "box":
            return "box", list(self.shape), self.low, self.high
        return self.kind, self.nvec, None, None

    def to_env(self, action):
        if self.kind == "discrete":
            return self.start + action
        if self.kind == "multi_binary":
            return np.asarray(action, dtype=self.space.dtype).reshape(self.shape)
        if self.kind == "multi_discrete":
            values = np.asarray(action, dtype=np.int64) + self.start
            return values.astype(self.space.dtype).reshape(self.shape)
        return np.asarray(action, dtype=self.space.dtype).reshape(self.shape)

    def mask(self, info):
        """`info["action_mask"]` as a flat list of bools (a MultiDiscrete's per-dimension
        masks one after the other), or None when the info has none."""
        if not isinstance(info, dict) or info.get("action_mask") is None:
            return None
        m = info["action_mask"]
        if isinstance(m, (tuple, list)) and len(m) > 0 and not np.isscalar(m[0]):
            m = np.concatenate([np.asarray(part).reshape(-1) for part in m])
        m = np.asarray(m)
        if m.dtype.kind not in "biu":
            raise BridgeError(f"info['action_mask'] has dtype {m.dtype}; it must hold 0/1 flags")
        return m.reshape(-1).astype(bool).tolist()


def _success(info):
    """`info["success"]` (or `info["is_success"]`) as a flag: a bool, or a number (or
    one-element array) that is 0 or 1, as gymnasium-robotics reports `is_success` (a float32);
    None otherwise."""
    if not isinstance(info, dict):
        return None
    for key in ("success", "is_success"):
        value = info.get(key)
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(-1)[0]
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
            return bool(value)
    return None


class Adapter:
    """One env with its observation and action mappings."""

    def __init__(self, env):
        self.env = env
        self.observations = Observations(env.observation_space)
        self.actions = Actions(env.action_space)

    def reset(self, seed):
        """`(obs, mask)` of a new episode seeded by `seed`."""
        out = self.env.reset(seed=seed)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise BridgeError(
                f"reset returned {type(out).__name__} {_length(out)}; a Gymnasium env returns "
                f"(observation, info)"
            )
        obs, info = out
        return self.observations.flat(obs, "reset"), self.actions.mask(info)

    def step(self, action):
        """`(obs, reward, terminated, truncated, mask, success)` of one step."""
        out = self.env.step(self.actions.to_env(action))
        if not (isinstance(out, tuple) and len(out) == 5):
            old = " (the old Gym API: obs, reward, done, info)" if _length(out) == "of 4" else ""
            raise BridgeError(
                f"step returned {type(out).__name__} {_length(out)}{old}; a Gymnasium env "
                f"returns (observation, reward, terminated, truncated, info)"
            )
        obs, reward, terminated, truncated, info = out
        try:
            reward = float(reward)
        except (TypeError, ValueError):
            raise BridgeError(
                f"step gave a reward of type {type(reward).__name__}, not a number"
            ) from None
        return (
            self.observations.flat(obs, "step"),
            reward,
            bool(terminated),
            bool(truncated),
            self.actions.mask(info),
            _success(info),
        )

    def render(self):
        """`(height, width, rgb bytes)` of the env's rgb_array frame, or None."""
        frame = self.env.render()
        if frame is None:
            return None
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise BridgeError(f"render gave an array of shape {frame.shape}, not an RGB image")
        rgb = np.ascontiguousarray(frame[:, :, :3], dtype=np.uint8)
        return frame.shape[0], frame.shape[1], rgb.tobytes()

    def close(self):
        self.env.close()


def _length(value):
    try:
        return f"of {len(value)}"
    except TypeError:
        return ""
