//! CPU TIME of this process and of the local PostgreSQL server's processes, read from Linux's
//! `/proc` (`utime + stime + cutime + cstime` of `/proc/<pid>/stat`, in clock ticks of
//! [`TICK_US`]). `calibrate` and `validate --profile-from-run` take a snapshot before and
//! after their measured bookings: with this process's statement round trips and its own
//! modelled CPU, the difference says how much of a statement's round trip is CPU
//! (`[cpu] statement_core_fraction`, issue #17).
//!
//! PostgreSQL's processes are those whose `comm` is `postgres` (the postmaster and every
//! backend; a backend that exits is reaped by the postmaster and its time lands in the
//! postmaster's `cutime`). That is the local server only: with PostgreSQL on another machine
//! none are found and nothing is measured. Elsewhere than Linux: `None`.
//!
//! THE WHOLE MACHINE ([`MachineTimes`], `/proc/stat`'s `cpu` line, summed over cores): what
//! every process and the kernel's interrupt handling used, and what the hypervisor took
//! (steal). Validate subtracts this process and PostgreSQL from it: what is left is the work
//! of OTHER processes and interrupts, which the simulation does not model and which a real
//! side measured beside a build or another load carries in its latencies.

use std::path::Path;

/// µs per clock tick: Linux's USER_HZ, 100 on every architecture it exports to user space.
pub const TICK_US: u64 = 10_000;

/// CPU time so far, µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuSnapshot {
    /// This process.
    pub own_us: u64,
    /// Every process named `postgres`.
    pub postgres_us: u64,
    /// How many there were.
    pub postgres_processes: usize,
    /// The whole machine; `None` where `/proc/stat` cannot be read.
    pub machine: Option<MachineTimes>,
}

/// The whole machine's CPU time so far, µs summed over its cores (`/proc/stat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineTimes {
    /// Running anything: user, nice, system, irq and softirq (a guest's time is inside user).
    pub busy_us: u64,
    /// Wanted to run while the hypervisor ran something else (steal).
    pub steal_us: u64,
    /// Idle, waiting for I/O included.
    pub idle_us: u64,
}

impl MachineTimes {
    /// Now; `None` where `/proc/stat` cannot be read or parsed.
    pub fn now() -> Option<MachineTimes> {
        parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
    }
}

impl CpuSnapshot {
    /// Now; `None` where `/proc/self/stat` cannot be read.
    pub fn now() -> Option<CpuSnapshot> {
        let own_us = process_cpu_us(Path::new("/proc/self"))?;
        let (mut postgres_us, mut postgres_processes) = (0, 0);
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let dir = entry.path();
            let numeric = dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
            if !numeric {
                continue;
            }
            let is_postgres = std::fs::read_to_string(dir.join("comm"))
                .is_ok_and(|comm| comm.trim_end() == "postgres");
            if let Some(us) = is_postgres.then(|| process_cpu_us(&dir)).flatten() {
                postgres_us += us;
                postgres_processes += 1;
            }
        }
        let machine = MachineTimes::now();
        Some(CpuSnapshot { own_us, postgres_us, postgres_processes, machine })
    }

    /// (own µs, PostgreSQL µs) spent since `earlier` (never negative: a process that exited
    /// unreaped takes its time with it).
    pub fn since(&self, earlier: &CpuSnapshot) -> (u64, u64) {
        (
            self.own_us.saturating_sub(earlier.own_us),
            self.postgres_us.saturating_sub(earlier.postgres_us),
        )
    }
}

/// `utime + stime + cutime + cstime` of the process at `dir`, µs.
fn process_cpu_us(dir: &Path) -> Option<u64> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    parse_stat_cpu_ticks(&stat).map(|ticks| ticks * TICK_US)
}

/// The four CPU fields (14-17) of a `/proc/<pid>/stat` line, in ticks. The command name
/// (field 2) is in parentheses and may hold spaces and parentheses: fields are counted from
/// the last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): fields 14..=17 are at 11..=14.
    let mut ticks = 0u64;
    for field in fields.get(11..=14)? {
        ticks += field.parse::<i64>().ok()?.max(0) as u64;
    }
    Some(ticks)
}

/// `busy_us` of CPU time over `span_us` of wall time, in cores kept busy on average.
pub fn cores_busy(busy_us: u64, span_us: u64) -> f64 {
    busy_us as f64 / span_us.max(1) as f64
}

/// The aggregate `cpu` line of `/proc/stat`: `cpu user nice system idle iowait irq softirq
/// steal ...` in clock ticks. Kernels before 2.6.11 have no steal field: none is read as 0.
fn parse_proc_stat(text: &str) -> Option<MachineTimes> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let ticks: Vec<u64> =
        line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let field = |i: usize| ticks.get(i).copied();
    let (user, nice, system) = (field(0)?, field(1)?, field(2)?);
    let (idle, iowait) = (field(3)?, field(4).unwrap_or(0));
    let (irq, softirq) = (field(5).unwrap_or(0), field(6).unwrap_or(0));
    let steal = field(7).unwrap_or(0);
    Some(MachineTimes {
        busy_us: (user + nice + system + irq + softirq) * TICK_US,
        steal_us: steal * TICK_US,
        idle_us: (idle + iowait) * TICK_US,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (post (gres) x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17";
        // Fields 14-17 are 11, 12, 13, 14 here.
        assert_eq!(parse_stat_cpu_ticks(line), Some(11 + 12 + 13 + 14));
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None, "too short");
        assert_eq!(parse_stat_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn the_machine_line_sums_busy_fields_and_reads_steal() {
        let text = "cpu  100 2 30 900 7 4 5 6 0 0\ncpu0 50 1 15 450 3 2 2 3 0 0\nintr 1\n";
        let times = parse_proc_stat(text).expect("a cpu line");
        assert_eq!(times.busy_us, (100 + 2 + 30 + 4 + 5) * TICK_US, "idle and iowait left out");
        assert_eq!(times.steal_us, 6 * TICK_US);
        assert_eq!(times.idle_us, (900 + 7) * TICK_US, "idle with iowait");
        let old = parse_proc_stat("cpu 1 2 3 4\n").expect("four fields");
        assert_eq!((old.busy_us, old.steal_us), (6 * TICK_US, 0), "no irq, softirq or steal");
        assert_eq!(old.idle_us, 4 * TICK_US);
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4\n"), None, "no aggregate line");
        assert_eq!(parse_proc_stat("cpu 1 x 3 4\n"), None, "a field that is not a number");
        assert_eq!(parse_proc_stat("cpu 1 2\n"), None, "too short");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn burning_cpu_shows_in_this_process_time() {
        let before = CpuSnapshot::now().expect("/proc on Linux");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        // Spin until 100 ms of CPU show, however busy the machine (a fixed 200 ms of wall
        // time got less than half a core once while CI built beside it); a reading that
        // never grows fails at the deadline.
        let mut own_us = 0;
        while own_us < 100_000 && started.elapsed() < std::time::Duration::from_secs(30) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            own_us = CpuSnapshot::now().unwrap().since(&before).0;
        }
        assert!(own_us >= 100_000, "{own_us} µs of CPU after {:?} of spinning", started.elapsed());
        // The whole machine's busy time holds this process's (both counted in ticks, by
        // different books: half of it is a bound no reading error crosses).
        let (before, after) = (before.machine.unwrap(), CpuSnapshot::now().unwrap().machine);
        let machine_us = after.expect("/proc/stat on Linux").busy_us - before.busy_us;
        assert!(machine_us >= own_us / 2, "machine {machine_us} µs busy, this process {own_us}");
    }
}
