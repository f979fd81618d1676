//! For tests and benchmarks only: a real PostgreSQL server (Debian's `postgresql`, which
//! `cargo xtask setup` installs), started once per process on a Unix socket in a temporary
//! directory, one database per caller, stopped and removed when the process ends.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use super::PostgresConfig;

/// The server's socket directory.
static SERVER: OnceLock<PathBuf> = OnceLock::new();

/// Debian's PostgreSQL programs (`/usr/lib/postgresql/<version>/bin`), the newest.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql): `cargo xtask setup` installs it")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no PostgreSQL server under /usr/lib/postgresql")
}

/// Runs `program` as the `postgres` user when the tests run as root (the server refuses
/// root), else as the current user.
fn command(program: &Path) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start() -> PathBuf {
    let bin = bin_dir();
    let dir = std::env::temp_dir().join(format!("sensor-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        let status = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status().unwrap();
        assert!(status.success(), "chown {}", dir.display());
    }
    let data = dir.join("data");
    let out = command(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "-D"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
    pg_ctl(&dir, "start");
    // The server ends with this test process: a watcher stops it and removes its files.
    let stop = format!(
        "{} {} -D {} -m immediate stop >/dev/null 2>&1",
        if unsafe { libc::geteuid() } == 0 { "runuser -u postgres --" } else { "" },
        bin.join("pg_ctl").display(),
        data.display()
    );
    let watcher = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop}; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    // Not waited for: it outlives this process on purpose.
    #[allow(clippy::zombie_processes)]
    Command::new("setsid")
        .args(["sh", "-c", &watcher])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    dir
}

/// `pg_ctl start` or `stop` (fast) of the server in `dir`, waiting for it.
fn pg_ctl(dir: &Path, action: &str) {
    let options = format!("-k {} -c listen_addresses= -c fsync=off -c max_connections=200", dir.display());
    let out = command(&bin_dir().join("pg_ctl"))
        .args(["-w", "-m", "fast", "-D"])
        .arg(dir.join("data"))
        .args(["-o", &options, "-l"])
        .arg(dir.join("log"))
        .arg(action)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_ctl {action}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Stops the process's server (its clients' connections break), as a database going away.
pub fn stop() {
    pg_ctl(SERVER.get().expect("a server was started"), "stop");
}

/// Starts the process's server again after [`stop`].
pub fn start_again() {
    pg_ctl(SERVER.get().expect("a server was started"), "start");
}

/// A new, empty database on the process's server (started at the first call).
pub fn database(name: &str) -> PostgresConfig {
    make_database(name, None)
}

/// A new, empty database whose files are in `dir` (a tablespace), while the server's own
/// files and write-ahead log stay where they were: a database on a volume of its own,
/// which a test can fill. [`drop_database_in`] removes it, so that `dir` can be unmounted.
pub fn database_in(name: &str, dir: &Path) -> PostgresConfig {
    if unsafe { libc::geteuid() } == 0 {
        let status = Command::new("chown").args(["postgres:postgres"]).arg(dir).status().unwrap();
        assert!(status.success(), "chown {}", dir.display());
    }
    make_database(name, Some(dir))
}

/// Removes a database made by [`database_in`] and its tablespace, ending its connections.
pub fn drop_database_in(name: &str) {
    let name = database_name(name);
    let mut client = admin();
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    client.batch_execute(&format!("DROP TABLESPACE IF EXISTS {name}")).unwrap();
}

fn database_name(name: &str) -> String {
    format!("t_{name}").replace(|c: char| !c.is_ascii_alphanumeric(), "_")
}

/// A connection to the server's `postgres` database as its superuser.
fn admin() -> postgres::Client {
    let socket = SERVER.get_or_init(start);
    let admin = format!("host={} user=postgres dbname=postgres sslmode=disable", socket.display());
    postgres::Client::connect(&admin, postgres::NoTls).unwrap()
}

fn make_database(name: &str, dir: Option<&Path>) -> PostgresConfig {
    let name = database_name(name);
    let mut client = admin();
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    match dir {
        Some(dir) => {
            client.batch_execute(&format!("DROP TABLESPACE IF EXISTS {name}")).unwrap();
            let location = dir.display().to_string().replace('\'', "''");
            client.batch_execute(&format!("CREATE TABLESPACE {name} LOCATION '{location}'")).unwrap();
            client.batch_execute(&format!("CREATE DATABASE {name} TABLESPACE {name}")).unwrap();
        }
        None => client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap(),
    }
    let socket = SERVER.get().expect("started by admin()");
    PostgresConfig {
        url: format!("host={} user=postgres dbname={name} sslmode=disable", socket.display()),
        password: None,
        ca_file: None,
        pool: std::num::NonZeroUsize::new(4).unwrap(),
    }
}
