//! Builds the kernel programs (`sensor-ebpf`) for `bpfel-unknown-none` with Debian's
//! toolchain and leaves the object in `OUT_DIR/sensor-ebpf`, where `src/capture` embeds it.
//!
//! The rustup toolchain `debian` is `rustup toolchain link debian /usr` (rustc-web with a
//! prebuilt BPF `libcore`); `cargo xtask setup` creates it. `SENSOR_EBPF_TOOLCHAIN`
//! overrides the name. `AYA_BUILD_SKIP=1` skips the kernel build (for `cargo check` and
//! clippy on a machine without the toolchain): the binary then carries an empty object and
//! refuses to capture.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
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
