//! The gRPC peer: `tests/peers/grpc_client.py`, a Falco client from another stack (Python
//! grpcio) with stubs generated from Falco's own .proto files, not the sensor's.

use std::{
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{OnceLock, mpsc},
};

use serde_json::Value as Json;

use super::pki::Pki;

/// The Python stubs of Falco's `../shared/falco/*.proto`, generated once into the peers'
/// virtual environment (which `cargo xtask setup` clears when it reinstalls the packages).
fn stubs() -> &'static Path {
    static STUBS: OnceLock<PathBuf> = OnceLock::new();
    STUBS.get_or_init(|| {
        let python = super::python();
        let dir = python.ancestors().nth(2).expect("the venv").join("falco-stubs");
        if dir.join("outputs_pb2_grpc.py").exists() {
            return dir;
        }
        let falco = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco");
        let partial = dir.with_extension(std::process::id().to_string());
        std::fs::create_dir_all(&partial).expect("stubs dir");
        let out = Command::new(python)
            .args(["-m", "grpc_tools.protoc", "-I"])
            .arg(&falco)
            .arg(format!("--python_out={}", partial.display()))
            .arg(format!("--grpc_python_out={}", partial.display()))
            .args(["outputs.proto", "schema.proto", "version.proto"])
            .output()
            .expect("grpc_tools.protoc runs");
        assert!(out.status.success(), "protoc on {}: {}", falco.display(), String::from_utf8_lossy(&out.stderr));
        // Test binaries running at once may race here: the first rename wins, and the others'
        // stubs are the same.
        if std::fs::rename(&partial, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&partial);
        }
        dir
    })
}

/// How the client reaches the server.
pub enum Target {
    /// A unix socket, without TLS.
    Unix(PathBuf),
    /// TCP `host:port` with TLS: the server trusted through `pki`'s CA, and the client
    /// presenting `pki`'s client certificate when `identify` is set.
    Tls { address: String, pki: Pki, identify: bool },
}

/// `grpc_client.py` with its connection options, ready for a command.
pub fn client(target: &Target) -> Command {
    let mut cmd = Command::new(super::python());
    cmd.arg(super::script("grpc_client.py")).arg("--stubs").arg(stubs());
    // Longer than any test waits, so only the test decides when a call took too long.
    cmd.args(["--timeout", &super::PATIENCE.as_secs().to_string()]);
    match target {
        Target::Unix(socket) => cmd.arg("--target").arg(format!("unix://{}", socket.display())),
        Target::Tls { address, pki, identify } => {
            cmd.args(["--target", address]).arg("--ca").arg(&pki.ca);
            if *identify {
                cmd.arg("--cert").arg(&pki.client_cert).arg("--key").arg(&pki.client_key);
            }
            &mut cmd
        }
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Runs a client command (`version`, `get`) to its end; its JSON lines. Fails if it fails.
pub fn call(target: &Target, args: &[&str]) -> Vec<Json> {
    let out = client(target).args(args).output().expect("python starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// A running `grpc_client.py sub`, subscribed.
pub struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Subscriber {
    /// Subscribes until the alert of rule `until` arrives; `stalled` keeps it from reading
    /// anything until [`Subscriber::release`]. Returns once the server has subscribed it.
    pub fn start(target: &Target, until: &str, stalled: bool) -> Subscriber {
        let mut command = client(target);
        command.args(["sub", "--until", until]).stdin(Stdio::piped());
        if stalled {
            command.arg("--wait-stdin");
        }
        let mut child = command.spawn().expect("python starts");
        let lines = super::line_channel(child.stdout.take().unwrap());
        match lines.recv_timeout(super::PATIENCE) {
            Ok(line) if line == r#"{"subscribed": true}"# => Subscriber { child, lines },
            other => {
                let _ = child.kill();
                panic!("the subscriber did not subscribe ({other:?}): {:?}", child.wait_with_output().unwrap());
            }
        }
    }

    /// Lets a stalled subscriber read.
    pub fn release(&mut self) {
        self.child.stdin.take().expect("stalled").write_all(b"go\n").unwrap();
    }

    /// Waits for the subscriber to get its last alert; every alert it got, in order.
    pub fn alerts(mut self) -> Vec<Json> {
        let status = super::wait_for_exit(&mut self.child, "the subscriber");
        let mut stderr = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(status.success(), "the subscriber failed ({status}): {stderr}");
        self.lines.iter().map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
