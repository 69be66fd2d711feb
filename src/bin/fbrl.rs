//! `fbrl`: train, evaluate, render and plot memory-based RL policies.
//!
//! See `fbrl --help` and `fbrl <command> --help`; the commands live in [`fbrl::cli`].

use clap::Parser;

fn main() -> anyhow::Result<()> {
    fbrl::cli::run(fbrl::cli::Cli::parse())
}
