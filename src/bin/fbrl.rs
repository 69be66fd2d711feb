//! `fbrl`: train, evaluate, render and plot memory-based RL policies.
//!
//! See `fbrl --help` and `fbrl <command> --help`; the commands live in [`fbrl::cli`].

fn main() -> anyhow::Result<()> {
    fbrl::cli::run(fbrl::cli::parse())
}
