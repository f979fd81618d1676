//! Pure pieces of the overhead benchmark (`tests/benches/overhead`, run by `cargo xtask
//! bench`): statistics, reading the sensor's metrics, matching alerts to syscalls, and the
//! markdown table. The bench itself starts the processes and measures.

pub mod latency;
pub mod markdown;
pub mod prom;
pub mod stats;
