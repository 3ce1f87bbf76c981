//! Child processes (killed on drop) and what `/proc` says about them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// A child process that is killed (SIGKILL) and reaped when dropped, so an
/// error or an early return never leaves an Envoy or a wrk behind.
#[derive(Debug)]
pub(crate) struct Guard {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Guard {
    /// Starts `program args` pinned to `cpu` (`taskset -c <cpu>`, which execs
    /// the program, so the child's pid is the program's), stdout and stderr
    /// appended to `log`.
    pub(crate) fn spawn_pinned(
        name: &str,
        cpu: &str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<Self, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{name}: create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{name}: clone the log handle: {e}"))?;
        let child = Command::new("taskset")
            .arg("-c")
            .arg(cpu)
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{name}: start `taskset -c {cpu} {}`: {e}", program.display()))?;
        Ok(Self {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
        })
    }

    /// The process id (the program's: taskset execs it).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What the process was called in messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The last `lines` lines of its log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        all.get(start..).unwrap_or_default().join("\n")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User plus system CPU time of `pid` (all its threads) in clock ticks:
/// fields 14 `utime` and 15 `stime` of `/proc/<pid>/stat` (proc(5)).
pub(crate) fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    parse_stat_ticks(&stat).ok_or_else(|| format!("{path}: unexpected format: {stat}"))
}

/// `utime + stime` from the text of `/proc/<pid>/stat`. The second field,
/// `(comm)`, may contain spaces and parentheses, so fields are counted from
/// the last `)`: the field after it is field 3 (`state`).
pub(crate) fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of `pid` in kB (`VmRSS` in `/proc/<pid>/status`).
pub(crate) fn rss_kb(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    parse_vmrss_kb(&status).ok_or_else(|| format!("{path}: no VmRSS line"))
}

/// The `VmRSS:   1234 kB` line of `/proc/<pid>/status`.
pub(crate) fn parse_vmrss_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second (`getconf CLK_TCK`); 100 with a warning if
/// `getconf` is unavailable (Linux has used 100 on every common
/// architecture for decades).
pub(crate) fn clk_tck() -> u64 {
    let got = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().ok())
        .filter(|&t| t > 0);
    got.unwrap_or_else(|| {
        eprintln!("warning: `getconf CLK_TCK` failed; assuming 100 clock ticks per second");
        100
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a parenthesis, as proc(5) warns.
        let stat = "4242 (envoy (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 269 0 0 20 0 14 0 123 456 789";
        assert_eq!(parse_stat_ticks(stat), Some(731 + 269));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn own_stat_parses() {
        assert!(cpu_ticks(std::process::id()).is_ok());
        assert!(rss_kb(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn vmrss() {
        let status = "Name:\tenvoy\nVmPeak:\t  999 kB\nVmRSS:\t   54321 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vmrss_kb(status), Some(54321));
        assert_eq!(parse_vmrss_kb("Name: x\n"), None);
    }
}
