//! Container metadata lookup latency: a cache hit (by cgroup id, by container id, by pid
//! through `/proc/PID/cgroup`) and a miss (one Docker-API round trip to an in-process server
//! on a unix socket). Needs no root and no runtime; the real runtimes' miss latency is printed
//! by `tests/containers.rs` (`metadata_lookup_latency`).
//! Run: `AYA_BUILD_SKIP=1 cargo bench -p sensor --bench enrich`.

use std::{hint::black_box, os::unix::fs::MetadataExt, path::PathBuf, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use sensor::enrich::{ContainerCache, ContainerId, EnrichConfig, MetaStatus, RuntimeApi, RuntimeEndpoint, RuntimeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The fake process's pid in the fake procfs.
const PID: u32 = 2;

/// A fake procfs and cgroup2 tree: process [`PID`] in Docker container [`ID`]. Returns
/// (proc root, cgroup2 root, the container's cgroup id).
fn fake_tree() -> (PathBuf, PathBuf, u64) {
    let dir = std::env::temp_dir().join(format!("enrich-bench-{}", std::process::id()));
    let proc_root = dir.join("proc");
    let cgroup2 = dir.join("cgroup2");
    std::fs::create_dir_all(proc_root.join(PID.to_string())).unwrap();
    std::fs::create_dir_all(cgroup2.join("docker").join(ID)).unwrap();
    std::fs::write(proc_root.join(PID.to_string()).join("cgroup"), format!("4:memory:/docker/{ID}\n0::/docker/{ID}\n"))
        .unwrap();
    let cgroup_id = std::fs::metadata(cgroup2.join("docker").join(ID)).unwrap().ino();
    (proc_root, cgroup2, cgroup_id)
}

/// A minimal Docker Engine API answering `GET /containers/ID/json`, on a unix socket.
fn fake_docker(rt: &tokio::runtime::Runtime) -> PathBuf {
    let path = std::env::temp_dir().join(format!("enrich-bench-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = rt.block_on(async { tokio::net::UnixListener::bind(&path) }).unwrap();
    let body = serde_json::json!({
        "Id": ID, "Name": "/web", "Image": "sha256:ff",
        "Config": {"Image": "localhost/app:1", "Labels": {"app": "web"}},
        "State": {"StartedAt": "2026-11-22T16:44:04Z"}, "HostConfig": {"Privileged": false}
    })
    .to_string();
    rt.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let _ = stream.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    path
}

fn lookups(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (proc_root, cgroup2, cgroup_id) = fake_tree();
    let socket = fake_docker(&rt);
    let config = EnrichConfig {
        endpoints: vec![RuntimeEndpoint::new(RuntimeApi::Docker, socket)],
        max_wait: Duration::from_secs(1),
        follow_events: false,
        proc_root,
        cgroup2_root: Some(cgroup2),
        ..EnrichConfig::default()
    };
    let cache = ContainerCache::new(config.clone(), rt.handle().clone());
    assert_eq!(rt.block_on(cache.lookup(PID, Some(cgroup_id))).status, MetaStatus::Known);
    let id = ContainerId::Container { id: ID.into(), kind: RuntimeKind::Docker };

    let mut group = c.benchmark_group("container_lookup");
    group.bench_function("hit_by_cgroup_id", |b| b.iter(|| black_box(cache.lookup_now(PID, Some(cgroup_id)))));
    group.bench_function("hit_by_container_id", |b| b.iter(|| black_box(cache.lookup_container_now(id.clone()))));
    group.bench_function("hit_by_pid_procfs", |b| b.iter(|| black_box(cache.lookup_now(PID, None))));
    group.bench_function("hit_async_by_cgroup_id", |b| {
        b.iter(|| rt.block_on(async { black_box(cache.lookup(PID, Some(cgroup_id)).await) }))
    });
    group.sample_size(30);
    group.bench_function("miss_docker_api_round_trip", |b| {
        b.iter(|| {
            let fresh = ContainerCache::new(config.clone(), rt.handle().clone());
            let view = rt.block_on(fresh.lookup(PID, None));
            assert_eq!(view.status, MetaStatus::Known);
            black_box(view)
        })
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
