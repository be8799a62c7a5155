//! Running the host under test and reading its footprint.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};

/// A running `host serve`, killed when dropped.
pub struct RunningHost {
    child: Child,
    pub address: SocketAddr,
    /// The admin endpoints, when started with them.
    pub admin: Option<SocketAddr>,
    _config: tempfile::TempDir,
}

/// How many cores the machine has online (not only the ones this process
/// may use, which pinning narrows).
pub fn cores() -> usize {
    // SAFETY: sysconf only reads a system setting.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).unwrap_or(1).max(1)
}

/// Keeps the load generator on core 0 when the host gets core 1.
pub fn pin_this_process_to_first_core() {
    if cores() < 2 {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only read and write that set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

impl RunningHost {
    /// Starts `host serve` with `config` (TOML) on a free port, on core 1
    /// when there is one, and waits for it to listen.
    pub fn start(binary: &Path, config: &str, extra: &[&str]) -> anyhow::Result<RunningHost> {
        RunningHost::launch(binary, config, extra, false)
    }

    /// [`RunningHost::start`] with the admin endpoints on a free loopback
    /// port ([`RunningHost::admin`]).
    pub fn start_with_admin(
        binary: &Path,
        config: &str,
        extra: &[&str],
    ) -> anyhow::Result<RunningHost> {
        RunningHost::launch(binary, config, extra, true)
    }

    fn launch(
        binary: &Path,
        config: &str,
        extra: &[&str],
        admin: bool,
    ) -> anyhow::Result<RunningHost> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("serverless.toml");
        std::fs::write(&path, config)?;
        // A small site for configurations that mount `site`.
        std::fs::create_dir(dir.path().join("site"))?;
        std::fs::write(dir.path().join("site/index.html"), "<h1>soak</h1>\n")?;
        let mut command = if cores() >= 2 && Path::new("/usr/bin/taskset").exists() {
            let mut command = Command::new("taskset");
            command.args(["-c", "1"]).arg(binary);
            command
        } else {
            Command::new(binary)
        };
        command
            .arg("serve")
            .arg(&path)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                if admin { "127.0.0.1:0" } else { "off" },
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            // As for every server the benchmarks run (see servers.rs): no
            // backtrace capture on every error.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut admin = None;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(rest) = line.strip_prefix("admin on http://") {
                admin = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            }
            if let Some(address) = line.strip_prefix("listening on http://") {
                return Ok(RunningHost {
                    address: address.trim().parse()?,
                    admin,
                    child,
                    _config: dir,
                });
            }
        }
        bail!("the host exited before listening")
    }

    /// Resident memory now, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// The body of `GET path` on the admin endpoints.
    pub fn admin_get(&self, path: &str) -> anyhow::Result<String> {
        use std::io::{Read as _, Write as _};
        let admin = self
            .admin
            .context("the host runs without admin endpoints")?;
        let mut stream = std::net::TcpStream::connect(admin)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {admin}\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .context("the admin endpoint sent no HTTP answer")?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            bail!(
                "GET {path} answered {:?}",
                head.lines().next().unwrap_or("")
            );
        }
        Ok(body.to_owned())
    }

    /// The CPU time (user and system) the host's threads named `name` have
    /// used so far, from `/proc/PID/task/*/stat`.
    pub fn thread_cpu(&self, name: &str) -> std::time::Duration {
        // SAFETY: sysconf only reads a system setting.
        let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.child.id())) else {
            return std::time::Duration::ZERO;
        };
        let ticks: u64 = tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
            .filter_map(|stat| {
                // `pid (comm) state ...`: the name is between the parentheses.
                let (head, rest) = stat.rsplit_once(") ")?;
                let comm = head.split_once(" (")?.1;
                (comm == name).then_some(rest.to_owned())
            })
            .filter_map(|rest| {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                // utime and stime are fields 14 and 15 of the line, 12 and
                // 13 after the state.
                let user: u64 = fields.get(11)?.parse().ok()?;
                let system: u64 = fields.get(12)?.parse().ok()?;
                Some(user + system)
            })
            .sum();
        std::time::Duration::from_secs_f64(ticks as f64 / ticks_per_second)
    }

    /// Open file descriptors now.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
