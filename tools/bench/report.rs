//! The report: durations as the table prints them, the machine description,
//! the table itself, and its section of docs/BENCHMARKS.md.
use crate::measure::{median, Row};
use crate::shell::sh_out;
use crate::{Res, REPO};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

pub fn fmt_d(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

pub fn machine() -> Vec<String> {
    let cpu = sh_out("lscpu | sed -n 's/^Model name: *//p' | head -1");
    let flags: Vec<&str> = ["sha_ni", "avx2", "avx512f"]
        .into_iter()
        .filter(|f| {
            fs::read_to_string("/proc/cpuinfo")
                .unwrap_or_default()
                .contains(f)
        })
        .collect();
    vec![
        format!(
            "CPU: {cpu}, {} cores ({})",
            sh_out("nproc"),
            flags.join(", ")
        ),
        format!(
            "memory: {}",
            sh_out("free -h | awk '/Mem:/{print $2\" total, \"$7\" available\"}'")
        ),
        format!("kernel: {}", sh_out("uname -sr")),
        format!(
            "tools: {}; {}; {}; {}",
            sh_out("tar --version | head -1"),
            sh_out("zstd --version"),
            sh_out("openssl version"),
            sh_out("cp --version | head -1")
        ),
    ]
}

/// The table of `rows`, then the `extra` lines as a list.
pub fn table(rows: &[Row], extra: &[String]) -> String {
    let mut out = String::new();
    out.push_str("| operation | fixture | ours (median) | peer (same run) | peer (median) | ours/peer | target | result | notes |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.3} | {} | {} | {} |\n",
            r.operation,
            r.fixture,
            fmt_d(median(&r.ours)),
            r.peer,
            fmt_d(median(&r.theirs)),
            r.ratio(),
            r.target,
            r.verdict(),
            r.note
        ));
    }
    out.push('\n');
    for e in extra {
        out.push_str(&format!("- {e}\n"));
    }
    out
}

const BEGIN: &str = "<!-- bench:begin (written by `make bench`) -->";
const END: &str = "<!-- bench:end -->";

/// Replace the generated section of docs/BENCHMARKS.md, keeping the prose.
pub fn write_doc(table: &str) -> Res<()> {
    let path = Path::new(REPO).join("docs/BENCHMARKS.md");
    let old = fs::read_to_string(&path).unwrap_or_default();
    let generated = format!("{BEGIN}\n{table}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(z)) if a < z => format!("{}{generated}{}", &old[..a], &old[z + END.len()..]),
        _ => format!("# Benchmarks\n\n{generated}\n"),
    };
    let mut f = File::create(&path)?;
    f.write_all(new.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
