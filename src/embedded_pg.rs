//! The private PostgreSQL of the default run, and of `cargo test`.
//!
//! `serve` without `DATABASE_URL` starts a cluster from the server binaries installed on the
//! machine, keeps its data in a directory (so a second start reuses it), listens only on a
//! free loopback port (never the system server's 5432, and no unix socket), and stops it on
//! shutdown. `initdb` and `postgres` refuse to run as root, so as root they run as the
//! `postgres` OS user.

use std::{
    fs,
    io::Write,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

#[derive(Debug)]
pub struct EmbeddedPg {
    data_dir: PathBuf,
    bindir: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
}

const NOT_FOUND: &str = "no PostgreSQL server binaries found (looked for initdb, pg_ctl and postgres in PATH, \
`pg_config --bindir` and /usr/lib/postgresql/*/bin). Install them (Debian/Ubuntu: `apt-get install postgresql`; \
Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql@15`) or set DATABASE_URL to a server you run.";

impl EmbeddedPg {
    /// Starts (or adopts, when it is already running) the persistent cluster in `data_dir`.
    pub fn start(data_dir: &Path) -> Result<EmbeddedPg, String> {
        let bindir = find_bindir().ok_or_else(|| NOT_FOUND.to_string())?;
        let run_as = run_as()?;
        fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let data_dir = fs::canonicalize(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
        let pg = EmbeddedPg { data_dir, bindir, port: 0, run_as };
        pg.prepare_dir()?;
        if !pg.data_dir.join("PG_VERSION").exists() {
            pg.initdb(false)?;
        }
        if let Some(port) = pg.running_port() {
            tracing::info!(port, dir = %pg.data_dir.display(), "adopting the private PostgreSQL that is already running");
            return Ok(EmbeddedPg { port, ..pg });
        }
        let port = free_port()?;
        let pg = EmbeddedPg { port, ..pg };
        let log = pg.data_dir.join("server.log");
        let status = pg
            .command("pg_ctl")
            .arg("-D")
            .arg(&pg.data_dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"))
            .arg("start")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if !status.success() {
            return Err(format!("the private PostgreSQL did not start; see {}", log.display()));
        }
        Ok(pg)
    }

    /// A throwaway cluster in a directory under `parent` that stops and deletes itself when
    /// this process exits, however it exits: a watchdog shell holds the read end of a pipe
    /// whose write end only this process has. The `postgres` user must be able to write to
    /// `parent` when the cluster runs as that user. Used by the tests.
    pub fn start_ephemeral_in(parent: &Path) -> Result<(EmbeddedPg, std::process::Child), String> {
        // The port is free when `free_port` looks and may be taken before postgres binds it
        // (a client socket's ephemeral port, another test's listener): postgres then exits at
        // once, and the next attempt takes another port instead of waiting out the timeout.
        let mut attempt = 1;
        loop {
            match Self::try_start_ephemeral_in(parent) {
                Err(Start::Exited(log)) if attempt < 3 => {
                    tracing::warn!(attempt, %log, "the throwaway PostgreSQL exited at start; trying another port");
                    attempt += 1;
                }
                Err(Start::Exited(log)) => return Err(format!("the throwaway PostgreSQL exited at start: {log}")),
                Err(Start::Failed(e)) => return Err(e),
                Ok(started) => return Ok(started),
            }
        }
    }

    fn try_start_ephemeral_in(parent: &Path) -> Result<(EmbeddedPg, std::process::Child), Start> {
        let bindir = find_bindir().ok_or_else(|| NOT_FOUND.to_string())?;
        let run_as = run_as()?;
        let data_dir = parent.join(format!("stockcart-pg-{}-{}", std::process::id(), free_port()?));
        fs::create_dir_all(&data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let port = free_port()?;
        let pg = EmbeddedPg { data_dir, bindir, port, run_as };
        pg.prepare_dir()?;
        pg.initdb(true)?;
        // The shell waits for postgres, which a subshell stops once our end of stdin closes
        // (this process exited). When postgres exits by itself (it did not start), the shell
        // ends at once, printing the log's last lines to stderr: the only clue left.
        let script = format!(
            "exec 3<&0; '{postgres}' -D '{dir}' -p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 \
             -c shared_buffers=128MB >'{dir}.log' 2>&1 & pid=$!; (read _ <&3; kill -INT $pid) 2>/dev/null & \
             wait $pid; tail -n 3 '{dir}.log' >&2; rm -rf '{dir}' '{dir}.log'",
            postgres = pg.bindir.join("postgres").display(),
            dir = pg.data_dir.display(),
        );
        let mut child = pg
            .command_at("/bin/sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        if pg.wait_ready(&mut child)? {
            return Ok((pg, child));
        }
        let mut log = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
        }
        Err(Start::Exited(log.trim().replace('\n', " / ")))
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Fast shutdown: in-flight transactions roll back, committed data is already durable.
    pub fn stop(&self) {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => tracing::info!("private PostgreSQL stopped"),
            other => tracing::warn!(?other, "pg_ctl stop failed"),
        }
    }

    fn prepare_dir(&self) -> Result<(), String> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&self.data_dir, Some(uid), Some(gid))
                .map_err(|e| format!("cannot hand {} to the postgres user: {e}", self.data_dir.display()))?;
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&self.data_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot set permissions of {}: {e}", self.data_dir.display()))
    }

    fn initdb(&self, no_sync: bool) -> Result<(), String> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(&self.data_dir).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]);
        if no_sync {
            cmd.arg("--no-sync");
        }
        let out = cmd.output().map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// The port of a postmaster already serving this data directory, if any.
    fn running_port(&self) -> Option<u16> {
        let running = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        if !running {
            return None;
        }
        let pid_file = fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    /// Waits until postgres accepts connections (true), or until the shell around it exits
    /// (false: postgres did not start, e.g. its port was taken). Readiness is read from this
    /// cluster's own `postmaster.pid` (its status line says `ready`), not probed on the port,
    /// where another server could be the one answering.
    fn wait_ready(&self, child: &mut std::process::Child) -> Result<bool, String> {
        let pid_file = self.data_dir.join("postmaster.pid");
        for _ in 0..1500 {
            let status = fs::read_to_string(&pid_file).ok();
            if status.as_deref().and_then(|s| s.lines().nth(7)).is_some_and(|l| l.trim() == "ready") {
                return Ok(true);
            }
            if !matches!(child.try_wait(), Ok(None)) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("the throwaway PostgreSQL did not accept connections; see {}.log", self.data_dir.display()))
    }

    fn command(&self, program: &str) -> Command {
        self.command_at(self.bindir.join(program))
    }

    fn command_at(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir("/");
        if let Some((uid, gid)) = self.run_as {
            // std also drops root's supplementary groups when it sets the uid.
            cmd.uid(uid).gid(gid).env("HOME", "/tmp");
        }
        cmd
    }
}

/// Sends EOF to an ephemeral cluster's watchdog; it also fires when this process exits.
pub fn stop_ephemeral(mut child: std::process::Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

fn run_as() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "postgres")
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .map(Some)
        .ok_or_else(|| {
            "running as root, but there is no `postgres` OS user to run PostgreSQL as (initdb refuses root)".into()
        })
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file())
}

/// Looks in PATH, then `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin.
pub fn find_bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STOCKCART_PG_BINDIR").map(PathBuf::from).filter(|d| has_server(d)) {
        return Some(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server(&dir) {
                // Resolve symlinks so that pg_ctl finds `postgres` beside itself.
                let real = fs::canonicalize(dir.join("postgres")).ok().and_then(|p| p.parent().map(Path::to_path_buf));
                return Some(real.filter(|d| has_server(d)).unwrap_or(dir));
            }
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// Why a throwaway cluster did not start: postgres exited (with its log's last lines), which
/// another port may cure, or anything else.
enum Start {
    Exited(String),
    Failed(String),
}

impl From<String> for Start {
    fn from(e: String) -> Start {
        Start::Failed(e)
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}
