//! Whether the embedded Python can run the Gymnasium envs of the tests built with
//! `--features python`: those of `envs`, of `fbrl` (`tests/python_cli.rs`) and of
//! `experiments` (`experiments/tests/python_memory_e2e.rs`), which include this file.
#![allow(dead_code)]

use std::io::Write;

/// Whether the embedded Python is ready, given what keeps it from running the envs of `test`
/// (`None`: nothing does). When it is not: a panic with `FBRL_REQUIRE_PYTHON_ENVS=1`, else a
/// loud message that `test` is skipped and `false`.
pub fn ready(test: &str, problem: Option<String>) -> bool {
    let Some(problem) = problem else {
        return true;
    };
    if std::env::var("FBRL_REQUIRE_PYTHON_ENVS").as_deref() == Ok("1") {
        panic!("FBRL_REQUIRE_PYTHON_ENVS=1 but the embedded Python is not ready: {problem}");
    }
    // Written to the process's stderr directly, so the test harness does not capture it.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!!\n!!! SKIPPED {test}: the embedded Python cannot run Gymnasium envs: {problem}\n\
         !!! python3 -m venv ~/gym-venv && ~/gym-venv/bin/pip install gymnasium minigrid numpy,\n\
         !!! then set FBRL_PYTHON=~/gym-venv/bin/python\n!!!!!!!!\n"
    );
    false
}

/// Whether the embedded Python makes MiniGrid's memory task (it has gymnasium and minigrid);
/// see [`ready`].
pub fn minigrid_ready(test: &str) -> bool {
    let minigrid = envs::PyEnvSpec::new("MiniGrid-MemoryS9-v0")
        .with_wrapper("minigrid.wrappers:ImgObsWrapper");
    ready(
        test,
        envs::PyGymEnv::new(&minigrid).err().map(|e| e.to_string()),
    )
}
