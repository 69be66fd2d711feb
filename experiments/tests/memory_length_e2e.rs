//! End to end: the memory-length binary on its tiny preset writes the success-vs-delay PNG
//! (with the span τ marked) and one CSV row per (policy, delay).

use std::process::Command;

#[test]
fn memory_length_tiny_end_to_end() {
    let root = std::env::temp_dir().join(format!("fbrl-e2e-memlen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let out = root.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_memory_length"))
        .args(["--preset", "tiny", "--quiet", "--jobs", "2"])
        .arg("--out")
        .arg(&out)
        .arg("--runs-dir")
        .arg(root.join("runs"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "memory_length failed:\n{stderr}");

    let file = std::fs::File::open(out.join("success_vs_delay.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), fbrl::plot::DEFAULT_SIZE);
    let svg = std::fs::read_to_string(out.join("success_vs_delay.svg")).unwrap();
    assert!(svg.contains("attention span τ (4)") && svg.contains("chance (0.5)"));

    let (_, rows) = experiments::report::read_csv(&out.join("success_vs_delay.csv")).unwrap();
    assert_eq!(rows.len(), 4 * 2, "{rows:?}");
    for r in &rows {
        assert!(["feedback", "transformer", "gru", "mlp"].contains(&r[0].as_str()));
        assert!(["2", "6"].contains(&r[1].as_str()));
        let s: f64 = r[3].parse().unwrap();
        assert!((0.0..=1.0).contains(&s), "success {s}");
    }
    std::fs::remove_dir_all(root).unwrap();
}
