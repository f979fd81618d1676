//! Builds the kernel programs (`sensor-ebpf`) for `bpfel-unknown-none` with Debian's
//! toolchain and leaves the object in `OUT_DIR/sensor-ebpf`, where `src/capture` embeds it.
//! Also generates the gRPC server code of the Falco-compatible output API from `proto/`
//! (see [`compile_protos`]).
//!
//! The rustup toolchain `debian` is `rustup toolchain link debian /usr` (rustc-web with a
//! prebuilt BPF `libcore`); `cargo xtask setup` creates it. `SENSOR_EBPF_TOOLCHAIN`
//! overrides the name. `AYA_BUILD_SKIP=1` skips the kernel build (for `cargo check` and
//! clippy on a machine without the toolchain): the binary then carries an empty object and
//! refuses to capture.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    compile_protos()?;
    println!("cargo:rerun-if-env-changed=SENSOR_EBPF_TOOLCHAIN");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out = PathBuf::from(env::var("OUT_DIR")?).join("sensor-ebpf");
    if matches!(env::var("AYA_BUILD_SKIP").as_deref(), Ok("1" | "true")) {
        fs::write(&out, [])?;
        return Ok(());
    }
    let toolchain = env::var("SENSOR_EBPF_TOOLCHAIN").unwrap_or_else(|_| "debian".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../sensor-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package { name: "sensor-ebpf", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::Custom(&toolchain),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "building the eBPF programs failed ({e:#}); run `cargo xtask setup` first, \
             or set AYA_BUILD_SKIP=1 to build without them"
        )
    })
}

/// Generates the server side of Falco's `falco.outputs`, `falco.schema` and `falco.version`
/// packages into `OUT_DIR`, where `src/outputs/grpc.rs` includes them. protox parses the
/// files in Rust, so no `protoc` is needed.
fn compile_protos() -> anyhow::Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    println!("cargo:rerun-if-changed={dir}");
    // Falco's gRPC API, served (schema.proto comes in as an import of outputs.proto).
    generate(dir, &["outputs.proto", "version.proto"], true)?;
    // The container runtimes' APIs, asked: CRI `runtime.v1` and containerd's own services,
    // vendored with their import paths (sensor/proto/README.md).
    generate(&format!("{dir}/cri"), &["api.proto"], false)?;
    generate(
        &format!("{dir}/containerd"),
        &[
            "github.com/containerd/containerd/api/services/containers/v1/containers.proto",
            "github.com/containerd/containerd/api/services/events/v1/events.proto",
        ],
        false,
    )
}

/// Compiles `files` below `dir` with protox (no `protoc`) into Rust in `OUT_DIR`: the
/// server side of their services, or the client side (transport left to the caller).
fn generate(dir: &str, files: &[&str], server: bool) -> anyhow::Result<()> {
    let descriptors = protox::compile(files, [dir]).map_err(|e| anyhow::anyhow!("{dir}: {e}"))?;
    tonic_prost_build::configure()
        .build_server(server)
        .build_client(!server)
        .build_transport(false)
        .compile_fds(descriptors)
        .map_err(|e| anyhow::anyhow!("generating gRPC code from {dir}: {e}"))
}
