//! Report files: CSV tables, a description of the machine, and the generated block of a
//! results README (the human-written reading around it is kept when the block is rewritten).

use std::path::Path;

use anyhow::{Context, Result};

/// Start marker of the generated block of a results README.
pub const BEGIN: &str = "<!-- BEGIN GENERATED (rewritten by the experiment binary) -->";
/// End marker of the generated block of a results README.
pub const END: &str = "<!-- END GENERATED -->";

/// Writes a CSV file: a header and rows of already formatted cells.
pub fn write_csv<R: AsRef<[String]>>(path: &Path, header: &[&str], rows: &[R]) -> Result<()> {
    let write = || -> csv::Result<()> {
        let mut w = csv::Writer::from_path(path)?;
        w.write_record(header)?;
        for r in rows {
            w.write_record(r.as_ref())?;
        }
        w.flush()?;
        Ok(())
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a CSV file written by [`write_csv`]: its header and its rows of cells.
pub fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let read = || -> csv::Result<(Vec<String>, Vec<Vec<String>>)> {
        let mut reader = csv::Reader::from_path(path)?;
        let header = reader.headers()?.iter().map(str::to_string).collect();
        let rows = reader
            .records()
            .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
            .collect::<csv::Result<_>>()?;
        Ok((header, rows))
    };
    read().with_context(|| format!("cannot read {}", path.display()))
}

/// Formats an optional number for a CSV cell (empty when absent or not finite).
pub fn cell(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        _ => String::new(),
    }
}

/// A one-line description of this machine: CPU model, logical cores, memory, OS.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = fbrl::resources::meminfo_bytes("MemTotal")
        .map(|b| format!("{:.0} GiB RAM", b as f64 / (1u64 << 30) as f64))
        .unwrap_or_else(|| "unknown RAM".into());
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_string());
    format!(
        "{model}, {} logical cores, {mem_gib}, {os}",
        crate::runner::cores()
    )
}

/// The command line this process was started with, shell-quoted where needed.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What goes before a command in a README so that it reproduces this process's kernel path:
/// `FBRL_KERNELS=reference ` when the process runs the reference path, else nothing.
pub fn env_prefix() -> String {
    if agents::kernels::fused_enabled() {
        String::new()
    } else {
        format!("{}=reference ", agents::kernels::KERNELS_ENV)
    }
}

/// Writes `generated` between the [`BEGIN`] and [`END`] markers of the README at `path`,
/// keeping everything outside them. A missing README is created with `title` and the block
/// only: the reading below it is written by a person, after looking at the results.
pub fn update_readme(path: &Path, title: &str, generated: &str) -> Result<()> {
    let block = format!("{BEGIN}\n{}\n{END}", generated.trim_end());
    let text = match std::fs::read_to_string(path) {
        Ok(old) => match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if e > b => {
                format!("{}{block}{}", &old[..b], &old[e + END.len()..])
            }
            _ => format!("{}\n\n{block}\n", old.trim_end()),
        },
        Err(_) => format!("# {title}\n\n{block}\n"),
    };
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `p` relative to the current directory where it lies below it (for READMEs), else as is.
pub fn rel_path(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_block_is_replaced_and_the_rest_kept() {
        let dir = std::env::temp_dir().join(format!("fbrl-readme-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("README.md");
        let _ = std::fs::remove_file(&p);
        update_readme(&p, "Maze", "first").unwrap();
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.starts_with("# Maze") && t.contains("first"));
        assert!(!t.contains("## Reading"), "no placeholder text: {t}");
        let edited = format!("{t}\n## Reading\n\nFeedback wins by 0.5.\n");
        std::fs::write(&p, edited).unwrap();
        update_readme(&p, "Maze", "second").unwrap();
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains("second") && !t.contains("first"));
        assert!(t.contains("Feedback wins by 0.5."));
        assert_eq!(t.matches(BEGIN).count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cells_and_machine() {
        assert_eq!(cell(Some(1.5)), "1.5000");
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(f64::NAN)), "");
        assert!(machine().contains("logical cores"));
    }
}
