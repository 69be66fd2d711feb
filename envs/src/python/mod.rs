//! Gymnasium environments written in Python, run in an embedded interpreter (cargo feature
//! `python`): [`PyGymEnv`] is our [`Env`] for an env made by `gymnasium.make(id, **kwargs)` or
//! by a factory of your own.
//!
//! # Which env
//! [`PyEnvSpec::id`] is either
//! - `module:name`, where `name` is a callable of the module `module` (importable from
//!   `sys.path`, e.g. through `PYTHONPATH`): `module.name(**kwargs)` makes the env;
//! - any other id: `gymnasium.make(id, **kwargs)` makes it (so `CartPole-v1`,
//!   `MiniGrid-MemoryS9-v0` once `minigrid` is installed, and Gymnasium's own
//!   `module:EnvName-v0`, which imports `module` to register the env).
//!
//! [`PyEnvSpec::wrapper`] (`module:fn`) is then applied to the env, e.g.
//! `minigrid.wrappers:ImgObsWrapper` or `gymnasium.wrappers:FlattenObservation`.
//!
//! # Spaces
//! | Gymnasium space | observation (flat `f32`, row-major) | action |
//! |---|---|---|
//! | `Box(low, high, shape)` | the values; the [`BoxSpace`] keeps the shape and the bounds | `Box` of the same shape |
//! | `Discrete(n, start)` | one-hot of `obs − start` (`n` values in `[0, 1]`) | `Discrete(n)`: our `a` is the env's `start + a` |
//! | `MultiBinary(shape)` | the bits | `MultiDiscrete` of 2s |
//! | `MultiDiscrete(nvec, start)` | the values, within `[start, start + nvec − 1]` | `MultiDiscrete(nvec)`, each value offset by its `start` |
//! | `Dict`, `Tuple`, others | refused: the error names the space and suggests a wrapper | refused |
//!
//! An observation must be what its space holds: an array of the space's shape whose dtype
//! casts safely to the space's dtype (as Gymnasium's `Box.contains` has it; a list is converted
//! to the space's dtype), else the step is an error saying so.
//!
//! # Episodes
//! - Seeds: our `u64` reset seed is passed as `reset(seed=`[`python_seed`]`(seed))`, a value
//!   in `0..2^32` (the range every Python seeding API accepts, `random`, `numpy.random.seed`
//!   and Gymnasium's `np_random` alike).
//! - `terminated` and `truncated` are Gymnasium's, as the env returns them (both may be set);
//!   the observation written on the last step is the one `step` returned.
//! - `info["action_mask"]` after `reset` and `step`, when present, is the
//!   [`Env::action_mask`] (a `MultiDiscrete` mask as one flat array or a tuple of per-dimension
//!   arrays); actions it forbids are refused before they reach Python.
//! - `info["success"]` (or `info["is_success"]`), when it is a bool or a number that is 0 or 1
//!   (gymnasium-robotics' `is_success` is a float32) on the last step of an episode, is
//!   [`crate::Info::success`]. Other info entries are not passed on: a Python env
//!   reports no counts ([`crate::Info::counts`]; its [`Env::episode_counts`] is empty), so
//!   its runs' `metrics.csv` has no count columns.
//! - Rewards must be finite; a NaN or infinite reward is an error.
//!
//! # Errors
//! Nothing here panics on the env's account: an unknown id, a keyword argument the env
//! refuses, an exception in `reset` or `step`, an observation of the wrong shape or dtype, a
//! non-finite reward or an unsupported space is an [`EnvError`] that names the env and gives
//! the last line of the Python traceback (`Type: message`) with where it was raised. After an
//! error inside the env, the env needs a `reset`.
//!
//! # Threads and resume
//! The env is held as a `Py<PyAny>` and each call takes the GIL, so the env is `Send` and runs
//! in a [`crate::VecEnv`] on rayon threads; the GIL lets one Python call run at a time, so
//! more threads do not step faster. Step from the main thread, or inside
//! [`with_thread_state`] on another thread.
//! A Python env's state cannot be saved, and fbrl cannot vouch that it replays exactly, so
//! [`Env::resumes_by_replay`] is `false`: a resumed run starts each env's next episode
//! instead of replaying the one in progress (see [`crate::VecEnv::restart`]).
//!
//! # Which Python
//! The interpreter is the libpython that pyo3 found when fbrl was built (the `python3` on
//! `PATH`, or `$PYO3_PYTHON`). Its packages come from the interpreter named by
//! `$FBRL_PYTHON` (e.g. a virtual environment's `bin/python`), else from the active virtual
//! environment (`$VIRTUAL_ENV/bin/python`): that interpreter is asked once for its
//! site-packages folders, which are added to the embedded `sys.path` (`.pth` files included).
//! It must be the same Python version (major.minor) as the embedded one. Without either
//! variable, the embedded interpreter's own site-packages are used. `$PYTHONPATH` is read as
//! usual.

use std::path::PathBuf;
use std::sync::OnceLock;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyModule;
use serde_json::{Map, Value};

use crate::env::{Action, ActionSpace, BoxSpace, Env, EnvError, Info, Step};
use crate::render::Frame;

/// The environment variable naming the Python interpreter whose packages the embedded
/// interpreter imports (e.g. `~/gym-venv/bin/python`).
pub const PYTHON_VAR: &str = "FBRL_PYTHON";

/// The Python half of the bridge: makes the env and converts observations and actions.
const BRIDGE_SOURCE: &str = include_str!("bridge.py");

/// Maps our `u64` reset seed into `0..2^32` by folding the high half into the low half:
/// deterministic, and nearby seeds stay distinct (distinct far-apart seeds may collide, which
/// only repeats an episode's start).
pub fn python_seed(seed: u64) -> u32 {
    (seed ^ (seed >> 32)) as u32
}

/// What Python env to make ([`PyGymEnv::new`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PyEnvSpec {
    /// A `gymnasium.make` id (`CartPole-v1`) or a factory `module:name` (see the [module
    /// docs](self)).
    pub id: String,
    /// Keyword arguments of `gymnasium.make` or of the factory.
    pub kwargs: Map<String, Value>,
    /// A callable `module:fn` applied to the made env (e.g.
    /// `minigrid.wrappers:ImgObsWrapper`).
    pub wrapper: Option<String>,
    /// Make the env with `render_mode="rgb_array"`, so that [`Env::render_rgb`] draws frames;
    /// an env without that render mode is then refused.
    pub render: bool,
}

impl PyEnvSpec {
    /// The env `id`, without keyword arguments, wrapper or rendering.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// With the keyword argument `key = value`.
    pub fn with_kwarg(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.kwargs.insert(key.into(), value.into());
        self
    }

    /// With the wrapper `module:fn`.
    pub fn with_wrapper(mut self, wrapper: impl Into<String>) -> Self {
        self.wrapper = Some(wrapper.into());
        self
    }

    /// With `render_mode="rgb_array"`.
    pub fn with_render(mut self) -> Self {
        self.render = true;
        self
    }
}

/// The embedded interpreter with the bridge module loaded, or why it could not be started.
static BRIDGE: OnceLock<Result<Py<PyModule>, String>> = OnceLock::new();

/// Starts the embedded interpreter (once per process), adds the packages of `$FBRL_PYTHON`
/// or the active virtual environment to its `sys.path`, and imports what the bridge needs
/// (`gymnasium`, `numpy`). [`PyGymEnv::new`] calls it; call it yourself to report a missing
/// package before anything else. The error says which interpreter was searched and how to
/// install the packages.
pub fn start() -> Result<(), EnvError> {
    bridge().map(|_| ())
}

/// Runs `f` on this thread with a Python thread state kept for all of it (and the GIL
/// released), so that each [`PyGymEnv`] call inside takes the GIL without making and
/// deleting a thread state. The thread that started the interpreter (usually the main
/// thread) keeps its thread state anyway; any other thread (a rayon worker) otherwise makes a
/// new one at every `reset` and `step`, which measured 13–23 µs of CPU per env step on CartPole
/// (`results/python_throughput`). Before the interpreter is started (by [`start`] or the
/// first [`PyGymEnv`]) it just runs `f`.
pub fn with_thread_state<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match BRIDGE.get() {
        Some(Ok(_)) => Python::with_gil(|py| py.allow_threads(f)),
        _ => f(),
    }
}

/// The bridge module (see [`start`]).
fn bridge() -> Result<&'static Py<PyModule>, EnvError> {
    BRIDGE
        .get_or_init(start_python)
        .as_ref()
        .map_err(|e| EnvError::Other(e.clone()))
}

/// The interpreter whose packages to use, and the variable that named it.
fn packages_interpreter() -> Option<(String, PathBuf)> {
    let set = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    if let Some(python) = set(PYTHON_VAR) {
        return Some((PYTHON_VAR.into(), PathBuf::from(python)));
    }
    set("VIRTUAL_ENV").map(|venv| {
        (
            "VIRTUAL_ENV".into(),
            PathBuf::from(venv).join("bin").join("python"),
        )
    })
}

/// The site-packages folders of `python` and its `(major, minor)` version, asked from it.
fn site_dirs(var: &str, python: &std::path::Path) -> Result<(Vec<String>, (u8, u8)), String> {
    const ASK: &str = "import json, site, sys; \
        print(json.dumps({'site': site.getsitepackages(), 'version': list(sys.version_info[:2])}))";
    let named = format!("{var}={}", python.display());
    let out = std::process::Command::new(python)
        .args(["-c", ASK])
        .output()
        .map_err(|e| format!("cannot run the Python of {named}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the Python of {named} failed to list its packages ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let answer: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!("the Python of {named} gave an unreadable list of its packages: {e}")
    })?;
    let dirs = answer["site"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let part = |i: usize| answer["version"][i].as_u64().unwrap_or(0) as u8;
    Ok((dirs, (part(0), part(1))))
}

/// [`start`]'s work: the bridge module, or the error in words.
fn start_python() -> Result<Py<PyModule>, String> {
    let packages = packages_interpreter();
    let site = match &packages {
        Some((var, python)) => Some(site_dirs(var, python)?),
        None => None,
    };
    pyo3::prepare_freethreaded_python();
    Python::with_gil(|py| {
        let v = py.version_info();
        let embedded = format!("{}.{}", v.major, v.minor);
        let searched = match (&packages, &site) {
            (Some((var, python)), Some((dirs, (major, minor)))) => {
                if (*major, *minor) != (v.major, v.minor) {
                    return Err(format!(
                        "{var}={} is Python {major}.{minor}, but fbrl embeds Python {embedded} \
                         (the one found when it was built): use a virtual environment made \
                         with Python {embedded}, or rebuild fbrl with \
                         PYO3_PYTHON={} to embed that Python",
                        python.display(),
                        python.display()
                    ));
                }
                let site = py.import("site").map_err(|e| e.to_string())?;
                for dir in dirs {
                    site.call_method1("addsitedir", (dir,))
                        .map_err(|e| format!("cannot add {dir} to sys.path: {e}"))?;
                }
                format!(
                    "it searched the packages of {var}={} ({})",
                    python.display(),
                    dirs.join(", ")
                )
            }
            _ => format!(
                "neither {PYTHON_VAR} nor VIRTUAL_ENV is set, so it searched only its own \
                 packages"
            ),
        };
        PyModule::from_code(py, BRIDGE_SOURCE, "fbrl_bridge.py", "fbrl_bridge")
            .map(|m| m.into())
            .map_err(|e| {
                format!(
                    "the embedded Python {embedded} cannot load what Python environments need \
                     ({}); {searched}. Install gymnasium into a virtual environment of Python \
                     {embedded} (`python3 -m venv ~/gym-venv && ~/gym-venv/bin/pip install \
                     gymnasium`) and set {PYTHON_VAR}=~/gym-venv/bin/python",
                    e.value(py)
                )
            })
    })
}

/// What the bridge's `Actions.describe()` gives: the kind (`discrete`, `multi_discrete`,
/// `multi_binary`, `box`), the `nvec` (a Box's shape) and a Box's flat bounds.
type ActionDescription = (String, Vec<usize>, Option<Vec<f32>>, Option<Vec<f32>>);

/// What the bridge's `Adapter.step` gives: the flat observation array, the reward,
/// `terminated`, `truncated`, the action mask and the success flag.
type StepOutcome<'py> = (&'py PyAny, f64, bool, bool, Option<Vec<bool>>, Option<bool>);

/// Where a wrapped episode stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotReset,
    Running,
    Done,
}

/// A Gymnasium env in the embedded Python as our [`Env`] (see the [module docs](self) for
/// spaces, seeds, masks, errors and resume).
pub struct PyGymEnv {
    /// The bridge's `Adapter` around the env.
    adapter: Py<PyAny>,
    id: String,
    space: BoxSpace,
    action_space: ActionSpace,
    mask: Option<Vec<bool>>,
    phase: Phase,
    render: bool,
}

impl PyGymEnv {
    /// `gymnasium.make(id)` (or the factory `module:name`), without keyword arguments.
    pub fn make(id: &str) -> Result<Self, EnvError> {
        Self::new(&PyEnvSpec::new(id))
    }

    /// Makes the env of `spec` and reads its spaces. Errors: the interpreter or its packages
    /// are missing ([`start`]), the env cannot be made (an unknown id, a refused keyword
    /// argument: the Python error), or a space cannot be mapped.
    pub fn new(spec: &PyEnvSpec) -> Result<Self, EnvError> {
        let bridge = bridge()?;
        let id = spec.id.clone();
        let kwargs = serde_json::to_string(&spec.kwargs)
            .map_err(|e| EnvError::Other(format!("python env `{id}`: keyword arguments: {e}")))?;
        Python::with_gil(|py| {
            let fail = |e: PyErr| python_error(py, &id, "cannot make it", &e);
            let adapter = bridge
                .as_ref(py)
                .getattr("make")
                .and_then(|make| {
                    make.call1((id.as_str(), kwargs, spec.wrapper.as_deref(), spec.render))
                })
                .map_err(fail)?;
            let (shape, low, high): (Vec<usize>, Vec<f32>, Vec<f32>) = adapter
                .getattr("observations")
                .and_then(|o| o.call_method0("describe"))
                .and_then(|d| d.extract())
                .map_err(fail)?;
            let (kind, dims, action_low, action_high): ActionDescription = adapter
                .getattr("actions")
                .and_then(|a| a.call_method0("describe"))
                .and_then(|d| d.extract())
                .map_err(fail)?;
            let action_space = match (kind.as_str(), action_low, action_high) {
                ("discrete", ..) => ActionSpace::discrete(dims.first().copied().unwrap_or(0)),
                ("box", Some(low), Some(high)) => ActionSpace::Box(BoxSpace {
                    shape: dims,
                    low,
                    high,
                }),
                _ => ActionSpace::multi_discrete(dims),
            };
            if let Err(reason) = action_space.validate() {
                return Err(EnvError::Other(format!(
                    "python env `{id}`: its action space maps to {action_space}: {reason}"
                )));
            }
            Ok(Self {
                adapter: adapter.into(),
                space: BoxSpace { shape, low, high },
                action_space,
                mask: None,
                phase: Phase::NotReset,
                render: spec.render,
                id: id.clone(),
            })
        })
    }

    /// The env's id (as given in its [`PyEnvSpec`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Keeps the action mask of the last `reset` or `step`, checked against the space.
    fn set_mask(&mut self, mask: Option<Vec<bool>>, after: &str) -> Result<(), EnvError> {
        if let Some(m) = &mask
            && let Some(problem) = self.action_space.mask_problem(m)
        {
            self.phase = Phase::NotReset;
            return Err(EnvError::Other(format!(
                "python env `{}`: info[\"action_mask\"] after {after}: {problem}",
                self.id
            )));
        }
        self.mask = mask;
        Ok(())
    }
}

/// Copies the bridge's flat `float32` array into `obs`.
fn copy_obs(py: Python<'_>, array: &PyAny, obs: &mut [f32]) -> PyResult<()> {
    PyBuffer::<f32>::get(array)?.copy_to_slice(py, obs)
}

/// A Python error as an [`EnvError`] naming the env and what failed, with the last line of
/// the traceback and where it was raised (the bridge's own errors: their message alone).
fn python_error(py: Python<'_>, id: &str, what: &str, e: &PyErr) -> EnvError {
    let described = bridge().ok().and_then(|b| {
        let d = b
            .as_ref(py)
            .getattr("describe")
            .and_then(|f| f.call1((e.value(py), e.traceback(py))))
            .and_then(|d| d.extract::<String>());
        d.ok()
    });
    let is_bridge_error = bridge()
        .ok()
        .and_then(|b| b.as_ref(py).getattr("BridgeError").ok())
        .is_some_and(|t| e.is_instance(py, t));
    let text = described.unwrap_or_else(|| e.to_string());
    if is_bridge_error {
        EnvError::Other(format!("python env `{id}`: {text}"))
    } else {
        EnvError::Other(format!("python env `{id}`: {what}: {text}"))
    }
}

impl Env for PyGymEnv {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }

    fn action_space(&self) -> ActionSpace {
        self.action_space.clone()
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.space.check_buffer(obs)?;
        self.phase = Phase::NotReset;
        let mask = Python::with_gil(|py| {
            let fail = |e: PyErr| python_error(py, &self.id, "reset failed", &e);
            let out = self
                .adapter
                .call_method1(py, "reset", (python_seed(seed),))
                .map_err(fail)?;
            let (array, mask): (&PyAny, Option<Vec<bool>>) = out.extract(py).map_err(fail)?;
            copy_obs(py, array, obs).map_err(fail)?;
            Ok::<_, EnvError>(mask)
        })?;
        self.set_mask(mask, "reset")?;
        self.phase = Phase::Running;
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        self.space.check_buffer(obs)?;
        self.action_space.check(action)?;
        match self.phase {
            Phase::NotReset => return Err(EnvError::NotReset),
            Phase::Done => return Err(EnvError::StepAfterDone),
            Phase::Running => {}
        }
        if let Some(mask) = &self.mask
            && let Some(dim) = self.action_space.forbidden_dim(mask, action)
        {
            return Err(EnvError::ActionOutsideSpace(format!(
                "{action} is forbidden by the current action mask (dimension {dim})"
            )));
        }
        // Any failure below leaves the env in a state we do not know: it needs a reset.
        self.phase = Phase::NotReset;
        let (reward, terminated, truncated, mask, success) = Python::with_gil(|py| {
            let fail = |e: PyErr| python_error(py, &self.id, "step failed", &e);
            let py_action = match action {
                Action::Discrete(a) => a.into_py(py),
                Action::MultiDiscrete(a) => a.to_vec().into_py(py),
                Action::Continuous(x) => x.to_vec().into_py(py),
            };
            let out = self
                .adapter
                .call_method1(py, "step", (py_action,))
                .map_err(fail)?;
            let (array, reward, terminated, truncated, mask, success): StepOutcome<'_> =
                out.extract(py).map_err(fail)?;
            copy_obs(py, array, obs).map_err(fail)?;
            Ok::<_, EnvError>((reward, terminated, truncated, mask, success))
        })?;
        let reward_f32 = reward as f32;
        if !reward_f32.is_finite() {
            return Err(EnvError::Other(format!(
                "python env `{}`: step gave the reward {reward}; rewards must be finite{}",
                self.id,
                if reward.is_finite() { " (as f32)" } else { "" }
            )));
        }
        self.set_mask(mask, "step")?;
        let done = terminated || truncated;
        self.phase = if done { Phase::Done } else { Phase::Running };
        Ok(Step {
            reward: reward_f32,
            terminated,
            truncated,
            info: Info {
                success: if done { success } else { None },
                ..Info::default()
            },
        })
    }

    fn action_mask(&self) -> Option<&[bool]> {
        self.mask.as_deref()
    }

    /// The env's `render()` frame, when it was made with `render_mode="rgb_array"`
    /// ([`PyEnvSpec::render`]); a render error is printed to stderr and gives `None`.
    fn render_rgb(&self) -> Option<Frame> {
        if !self.render {
            return None;
        }
        let frame = Python::with_gil(|py| {
            let read = || -> PyResult<Option<Frame>> {
                let out = self.adapter.call_method0(py, "render")?;
                let frame: Option<(usize, usize, &[u8])> = out.extract(py)?;
                Ok(frame.map(|(height, width, rgb)| Frame {
                    width,
                    height,
                    rgb: rgb.to_vec(),
                }))
            };
            read().map_err(|e| python_error(py, &self.id, "render failed", &e))
        });
        frame.unwrap_or_else(|e| {
            eprintln!("{e}");
            None
        })
    }

    fn resumes_by_replay(&self) -> bool {
        false
    }

    fn name(&self) -> String {
        self.id.clone()
    }
}

impl Drop for PyGymEnv {
    fn drop(&mut self) {
        // `close` frees what the env holds (windows, simulators); its errors do not matter
        // any more.
        Python::with_gil(|py| {
            let _ = self.adapter.call_method0(py, "close");
        });
    }
}
