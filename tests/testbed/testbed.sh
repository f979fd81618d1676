#!/usr/bin/env bash
# testbed.sh — real container runtimes for the sensor's container tests, on one machine, as root,
# without systemd and without an image registry.
#
#   testbed.sh start      start what is not running (idempotent); prints the time each step took
#   testbed.sh stop       remove every test container and pod, stop the daemons, clean mounts/cgroups
#   testbed.sh status     exit 0 when containerd (CRI), dockerd and the podman service all answer
#   testbed.sh env        print KEY=VALUE lines: sockets, the image name, podman's config files
#   testbed.sh up PID     for tests: start if needed and hold a lease for process PID
#   testbed.sh down PID   for tests: drop PID's lease; stop the bed when no live lease remains
#                         and a lease holder started it (a bed started by hand stays up)
# Tests use up/down so that concurrent test runs (several engineers, one machine) share one
# bed and the last one out stops it; leases of dead processes do not count.
#
# What runs (all state under $SENSOR_TESTBED, default /tmp/sensor-testbed-ct):
#   containerd + its CRI plugin  $BASE/containerd.sock   own config, root and state dirs; CNI bridge
#                                                         ctbr0 10.252.0.0/24 for pods (no route out)
#   dockerd on that containerd   $BASE/docker.sock       cgroupfs driver, --bridge=none --iptables=false
#   podman system service        $BASE/podman.sock       Docker-compatible API; runc; cgroupfs
#   image localhost/sensor-testbed:1   busybox-static root filesystem, built here from /bin/busybox,
#                                      loaded into containerd (namespaces k8s.io and default),
#                                      dockerd and podman
#   image localhost/sensor-testbed-pause:1   catatonit as the pod sandbox ("pause") image
#
# It installs nothing: `cargo xtask setup` installs the Debian packages (containerd runc
# containernetworking-plugins iptables catatonit docker.io podman conmon busybox-static).
#
# CRI pods are NOT created here: the tests create them through the sensor's own CRI client
# (sensor::enrich::cri, the generated runtime.v1 client) with exactly kubelet's labels
# (io.kubernetes.pod.name/namespace/uid, io.kubernetes.container.name) and kubelet's cgroupfs
# parent /kubepods/besteffort/pod<uid>. That needs no crictl (not packaged) and no python/pip
# download, and it exercises the same gRPC code the sensor uses. Docker and podman containers
# are created with their CLIs.
#
# Pitfalls handled (see shared/notes/container-testbed.md): root lacks CAP_SYS_RESOURCE here, so
# containerd runs with restrict_oom_score_adj and podman with explicit ulimits; crun rejects this
# hybrid cgroup layout, so podman uses runc; `ctr` waits ~10 s on a missing socket, so it is only
# called once the socket answers.
set -euo pipefail

BASE=${SENSOR_TESTBED:-/tmp/sensor-testbed-ct}
CTRD_SOCK=$BASE/containerd.sock
DOCKER_SOCK=$BASE/docker.sock
PODMAN_SOCK=$BASE/podman.sock
IMAGE=localhost/sensor-testbed:1
PAUSE_IMAGE=localhost/sensor-testbed-pause:1
POD_SUBNET=10.252.0.0/24
BRIDGE=ctbr0
DOCKER=/usr/bin/docker # Debian's CLI, matching its dockerd (another may be first on PATH)

log() { printf '[testbed] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# retry SECONDS CMD...: runs CMD every 50 ms until it succeeds or SECONDS pass.
retry() {
  local until=$(( $(now_ms) + $1 * 1000 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$until" ] || return 1
    sleep 0.05
  done
}

# daemon NAME CMD...: starts CMD in its own session, detached; its pid goes to $BASE/NAME.pid.
daemon() {
  local name=$1; shift
  setsid "$@" </dev/null >>"$BASE/$name.log" 2>&1 9>&- &
  echo $! >"$BASE/$name.pid"
}

podman_env() {
  export CONTAINERS_CONF=$BASE/podman/containers.conf CONTAINERS_STORAGE_CONF=$BASE/podman/storage.conf
}

containerd_up() { [ -S "$CTRD_SOCK" ] && timeout 3 ctr -a "$CTRD_SOCK" version; }
docker_up() { curl -sf --max-time 3 --unix-socket "$DOCKER_SOCK" http://localhost/_ping; }
podman_up() { curl -sf --max-time 3 --unix-socket "$PODMAN_SOCK" http://localhost/_ping; }

# ------------------------------------------------------------------------------------------ images
# tar_dir DIR OUT: a reproducible tarball of DIR (same bytes every time, so the same image id).
tar_dir() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2" .; }

# oci_image LAYER_TAR REF CMD_JSON OUT: writes OUT.oci.tar (OCI layout) and OUT.docker.tar
# (docker-archive) holding one image: LAYER_TAR as its single layer, CMD_JSON as its command.
oci_image() {
  local layer=$1 ref=$2 cmd=$3 out=$4 w
  w=$(mktemp -d)
  mkdir -p "$w/oci/blobs/sha256" "$w/docker"
  local layer_sha layer_size cfg_sha cfg_size man_sha man_size
  layer_sha=$(sha256sum "$layer" | cut -d' ' -f1); layer_size=$(stat -c %s "$layer")
  jq -cn --arg diff "sha256:$layer_sha" --argjson cmd "$cmd" '{
      architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z",
      config: {Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: $cmd},
      rootfs: {type: "layers", diff_ids: [$diff]},
      history: [{created: "1970-01-01T00:00:00Z", created_by: "tests/testbed/testbed.sh"}]}' >"$w/config.json"
  cfg_sha=$(sha256sum "$w/config.json" | cut -d' ' -f1); cfg_size=$(stat -c %s "$w/config.json")
  jq -cn --arg c "sha256:$cfg_sha" --argjson cs "$cfg_size" --arg l "sha256:$layer_sha" --argjson ls "$layer_size" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]}' >"$w/manifest.json"
  man_sha=$(sha256sum "$w/manifest.json" | cut -d' ' -f1); man_size=$(stat -c %s "$w/manifest.json")
  cp "$layer" "$w/oci/blobs/sha256/$layer_sha"
  cp "$w/config.json" "$w/oci/blobs/sha256/$cfg_sha"
  cp "$w/manifest.json" "$w/oci/blobs/sha256/$man_sha"
  jq -cn --arg m "sha256:$man_sha" --argjson ms "$man_size" --arg ref "$ref" --arg tag "${ref##*:}" '{
      schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m,
      size: $ms, annotations: {"io.containerd.image.name": $ref, "org.opencontainers.image.ref.name": $tag}}]}' \
      >"$w/oci/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$w/oci/oci-layout"
  tar -C "$w/oci" -cf "$out.oci.tar" oci-layout index.json blobs
  mkdir "$w/docker/$layer_sha"
  cp "$layer" "$w/docker/$layer_sha/layer.tar"
  cp "$w/config.json" "$w/docker/$cfg_sha.json"
  jq -cn --arg c "$cfg_sha.json" --arg ref "$ref" --arg l "$layer_sha/layer.tar" \
      '[{Config: $c, RepoTags: [$ref], Layers: [$l]}]' >"$w/docker/manifest.json"
  tar -C "$w/docker" -cf "$out.docker.tar" manifest.json "$cfg_sha.json" "$layer_sha"
  rm -rf "$w"
}

build_images() {
  [ -s "$BASE/images/app.oci.tar" ] && [ -s "$BASE/images/app.docker.tar" ] && [ -s "$BASE/images/pause.oci.tar" ] \
    && return 0
  [ -x /bin/busybox ] || die "/bin/busybox missing: run \`cargo xtask setup\` (Debian busybox-static)"
  [ -x /usr/bin/catatonit ] || die "/usr/bin/catatonit missing: run \`cargo xtask setup\` (Debian catatonit)"
  rm -rf "$BASE/images"; mkdir -p "$BASE/images"
  local w; w=$(mktemp -d)
  local r=$w/app
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,run,var/tmp}
  chmod 1777 "$r/tmp" "$r/var/tmp"
  cp /bin/busybox "$r/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$r/bin/$applet"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf '127.0.0.1 localhost\n' >"$r/etc/hosts"
  : >"$r/etc/resolv.conf"
  local p=$w/pause
  mkdir -p "$p"/{dev,proc,sys,etc}
  cp /usr/bin/catatonit "$p/pause"
  tar_dir "$r" "$w/app.tar"
  tar_dir "$p" "$w/pause.tar"
  oci_image "$w/app.tar" "$IMAGE" '["/bin/sh"]' "$BASE/images/app"
  oci_image "$w/pause.tar" "$PAUSE_IMAGE" '["/pause","-P"]' "$BASE/images/pause"
  rm -rf "$w"
}

# -------------------------------------------------------------------------------------- containerd
start_containerd() {
  mkdir -p "$BASE/containerd/cni" "$BASE/pod-logs"
  if [ ! -s "$BASE/containerd/config.toml" ]; then
    containerd config default | sed \
      -e "s#^root = .*#root = \"$BASE/containerd/root\"#" \
      -e "s#^state = .*#state = \"$BASE/containerd/state\"#" \
      -e "s#address = \"/run/containerd/containerd.sock\"#address = \"$CTRD_SOCK\"#" \
      -e "s#sandbox_image = .*#sandbox_image = \"$PAUSE_IMAGE\"#" \
      -e "s#conf_dir = \"/etc/cni/net.d\"#conf_dir = \"$BASE/containerd/cni\"#" \
      -e "s#bin_dir = \"/opt/cni/bin\"#bin_dir = \"/usr/lib/cni\"#" \
      -e "s#path = \"/opt/containerd\"#path = \"$BASE/containerd/opt\"#" \
      -e "s#restrict_oom_score_adj = false#restrict_oom_score_adj = true#" \
      >"$BASE/containerd/config.toml.new"
    grep -q "address = \"$CTRD_SOCK\"" "$BASE/containerd/config.toml.new" || die "containerd config: socket not rewritten"
    grep -q "sandbox_image = \"$PAUSE_IMAGE\"" "$BASE/containerd/config.toml.new" || die "containerd config: sandbox image not rewritten"
    mv "$BASE/containerd/config.toml.new" "$BASE/containerd/config.toml"
  fi
  # Pod network: a bridge with host-local addresses and no route beyond it.
  cat >"$BASE/containerd/cni/10-testbed.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "sensor-testbed", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]],
            "routes": [{"dst": "$POD_SUBNET"}], "dataDir": "$BASE/containerd/ipam"}}]}
EOF
  if ! containerd_up >/dev/null 2>&1; then
    daemon containerd containerd --config "$BASE/containerd/config.toml"
    retry 20 containerd_up || die "containerd did not answer on $CTRD_SOCK; see $BASE/containerd.log"
  fi
  # CRI pods use namespace k8s.io; `ctr` containers of the tests use namespace default.
  local ns ref file
  for ns in k8s.io default; do
    for ref in "$IMAGE" "$PAUSE_IMAGE"; do
      file=app; [ "$ref" = "$PAUSE_IMAGE" ] && file=pause
      [ "$ns/$file" = default/pause ] && continue
      ctr -a "$CTRD_SOCK" -n "$ns" images ls -q | grep -qxF "$ref" \
        || ctr -a "$CTRD_SOCK" -n "$ns" images import "$BASE/images/$file.oci.tar" >/dev/null
    done
  done
}

# ------------------------------------------------------------------------------------------ dockerd
start_dockerd() {
  if ! docker_up >/dev/null 2>&1; then
    mkdir -p "$BASE/docker"
    daemon dockerd dockerd --data-root "$BASE/docker/root" --exec-root "$BASE/docker/exec" \
      --pidfile "$BASE/docker/dockerd.pid" -H "unix://$DOCKER_SOCK" --containerd "$CTRD_SOCK" \
      --exec-opt native.cgroupdriver=cgroupfs --bridge=none --iptables=false --ip-masq=false \
      --storage-driver=overlay2
    retry 30 docker_up || die "dockerd did not answer on $DOCKER_SOCK; see $BASE/dockerd.log"
  fi
  DOCKER_HOST=unix://$DOCKER_SOCK $DOCKER image inspect "$IMAGE" >/dev/null 2>&1 \
    || DOCKER_HOST=unix://$DOCKER_SOCK $DOCKER load -q -i "$BASE/images/app.docker.tar" >/dev/null
}

# ------------------------------------------------------------------------------------------- podman
start_podman() {
  mkdir -p "$BASE/podman/tmp"
  cat >"$BASE/podman/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$BASE/podman/root"
runroot = "$BASE/podman/run"
EOF
  # root has no CAP_SYS_RESOURCE here: podman's default nofile limit would make runc fail.
  local nofile; nofile=$(ulimit -Hn)
  cat >"$BASE/podman/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$BASE/podman/events.log"
tmp_dir = "$BASE/podman/tmp"
[network]
network_config_dir = "$BASE/podman/networks"
EOF
  podman_env
  if ! podman_up >/dev/null 2>&1; then
    daemon podman podman system service --time=0 "unix://$PODMAN_SOCK"
    retry 20 podman_up || die "the podman service did not answer on $PODMAN_SOCK; see $BASE/podman.log"
  fi
  podman image exists "$IMAGE" || podman load -q -i "$BASE/images/app.oci.tar" >/dev/null
}

# --------------------------------------------------------------------------------------------- stop
stop_all() {
  set +e
  podman_env
  if docker_up >/dev/null 2>&1; then
    local ids; ids=$(DOCKER_HOST=unix://$DOCKER_SOCK $DOCKER ps -aq)
    [ -n "$ids" ] && DOCKER_HOST=unix://$DOCKER_SOCK $DOCKER rm -f $ids >/dev/null
  fi
  if [ -S "$PODMAN_SOCK" ] || [ -d "$BASE/podman/root" ]; then podman rm -af -t 0 >/dev/null 2>&1; fi
  # CRI pods and anything else in containerd: kill every task, then delete the containers.
  if containerd_up >/dev/null 2>&1; then
    local ns task c
    for ns in $(ctr -a "$CTRD_SOCK" namespaces ls -q); do
      for task in $(ctr -a "$CTRD_SOCK" -n "$ns" tasks ls -q); do
        ctr -a "$CTRD_SOCK" -n "$ns" tasks kill -s KILL "$task" >/dev/null 2>&1
      done
      sleep 0.2
      for c in $(ctr -a "$CTRD_SOCK" -n "$ns" containers ls -q); do
        ctr -a "$CTRD_SOCK" -n "$ns" tasks rm -f "$c" >/dev/null 2>&1
        ctr -a "$CTRD_SOCK" -n "$ns" containers rm "$c" >/dev/null 2>&1
      done
    done
  fi
  local d p
  for d in podman dockerd containerd; do
    [ -f "$BASE/$d.pid" ] || continue
    p=$(cat "$BASE/$d.pid")
    kill "$p" 2>/dev/null
    retry 10 sh -c "! kill -0 $p" || { log "$d ($p) ignored SIGTERM; sending SIGKILL"; kill -KILL "$p" 2>/dev/null; }
    rm -f "$BASE/$d.pid"
  done
  # Mounts the runtimes left under $BASE (overlays, shm, netns), deepest first.
  awk -v b="$BASE/" 'index($2, b) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
  # Empty cgroups the runtimes (and kubelet's pod parents) created; rmdir only removes empty ones.
  local h top
  for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    for top in kubepods docker libpod_parent k8s.io moby default; do
      [ -d "$h$top" ] && find "$h$top" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  ip link del "$BRIDGE" 2>/dev/null
  # Runtime state goes (a fresh start re-imports the images); the image archives stay.
  rm -rf --one-file-system "$BASE/containerd/root" "$BASE/containerd/state" "$BASE/containerd/ipam" \
    "$BASE/docker" "$BASE/podman" "$BASE/pod-logs" "$BASE"/*.sock "$BASE"/*.sock.ttrpc
  log "stopped"
  return 0
}

# ------------------------------------------------------------------------------------------- main
[ "$(id -u)" = 0 ] || die "run as root: it starts container runtimes"
cmd=${1:-}
# One start, stop, up or down at a time (tests of several engineers may share the bed).
if [ "$cmd" != status ] && [ "$cmd" != env ]; then
  mkdir -p "$(dirname "$BASE")"
  exec 9>"$BASE.lock"
  flock -w 120 9 || die "another testbed.sh start/stop holds $BASE.lock"
fi
start_bed() {
    for tool in containerd ctr runc dockerd podman conmon jq curl; do
      command -v "$tool" >/dev/null || die "$tool missing: run \`cargo xtask setup\`"
    done
    [ -x "$DOCKER" ] || die "$DOCKER missing: run \`cargo xtask setup\` (Debian docker.io)"
    [ -x /usr/lib/cni/bridge ] || die "CNI plugins missing: run \`cargo xtask setup\` (containernetworking-plugins)"
    mkdir -p "$BASE"
    t0=$(now_ms); t=$t0
    step() { local n; n=$(now_ms); log "$(printf '%-28s %6d ms' "$1" $(( n - t )))"; t=$n; }
    build_images; step "images"
    start_containerd; step "containerd + CRI"
    start_dockerd; step "dockerd"
    start_podman; step "podman service"
    log "ready in $(( $(now_ms) - t0 )) ms ($BASE)"
}

bed_up() { containerd_up >/dev/null 2>&1 && docker_up >/dev/null 2>&1 && podman_up >/dev/null 2>&1; }

# live_leases: removes the leases of processes that are gone; prints how many remain.
live_leases() {
  local lease n=0
  for lease in "$BASE/leases"/*; do
    [ -e "$lease" ] || continue
    if kill -0 "${lease##*/}" 2>/dev/null; then n=$((n + 1)); else rm -f "$lease"; fi
  done
  echo "$n"
}

owner_pid() { [[ "${1:-}" =~ ^[0-9]+$ ]] || die "usage: $0 $cmd PID"; echo "$1"; }

case "$cmd" in
  start) start_bed ;;
  stop) stop_all; rm -f "$BASE/leases/.started" ;;
  up)
    owner=$(owner_pid "${2:-}")
    mkdir -p "$BASE/leases"
    if ! bed_up; then
      start_bed
      touch "$BASE/leases/.started"
    fi
    touch "$BASE/leases/$owner"
    ;;
  down)
    owner=$(owner_pid "${2:-}")
    rm -f "$BASE/leases/$owner"
    if [ "$(live_leases)" = 0 ] && [ -f "$BASE/leases/.started" ]; then
      stop_all
      rm -f "$BASE/leases/.started"
    else
      log "left running ($(live_leases) other lease(s), or started by hand)"
    fi
    ;;
  status) bed_up ;;
  env)
    cat <<EOF
TESTBED_DIR=$BASE
CRI_SOCK=$CTRD_SOCK
DOCKER_SOCK=$DOCKER_SOCK
PODMAN_SOCK=$PODMAN_SOCK
IMAGE=$IMAGE
PAUSE_IMAGE=$PAUSE_IMAGE
DOCKER=$DOCKER
CONTAINERS_CONF=$BASE/podman/containers.conf
CONTAINERS_STORAGE_CONF=$BASE/podman/storage.conf
POD_LOG_DIR=$BASE/pod-logs
EOF
    ;;
  *) die "usage: $0 start|stop|status|env|up PID|down PID" ;;
esac
