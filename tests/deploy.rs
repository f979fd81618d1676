//! Offline checks of `deploy/`: the Kubernetes manifests, the Helm chart, the systemd unit
//! and the Containerfile, with the tools operators use on them, and without a cluster.
//!
//! - Every YAML file parses, and yamllint accepts the manifests, the chart's values and its
//!   renders (`deploy/.yamllint.yaml`).
//! - The pod is what the sensor needs and no more: host PID namespace, read-only root, the
//!   five capabilities and not `privileged`, the host mounts, probes on the metrics port,
//!   requests and limits, every taint tolerated, no API-server access. The same checks run on
//!   the manifests, the chart's renders and the privileged fallback.
//! - The chart renders the manifests' pod, configuration and Service (release `sensor` with
//!   `ci/manifests-values.yaml`), and its privileged toggle equals the manifests' patch.
//! - The local rules shipped in the ConfigMap load beside the built-in ones.
//! - `kubernetes-validate --strict` against the oldest and newest bundled Kubernetes schemas;
//!   `kubectl apply --dry-run=client` and `helm install --dry-run=client` against a loopback
//!   stub that serves only API discovery (both need one even when they change nothing);
//!   `helm lint --strict`; `systemd-analyze verify` and `security`; hadolint.
//!
//! The tools come from `cargo xtask setup`: helm and kubectl in `<target>/k8s-tools/bin`,
//! kubernetes-validate, yamllint and hadolint in the `<target>/test-peers` venv.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde_json::{Value, json};

/// The capabilities the sensor holds, in Kubernetes' spelling (no `CAP_` prefix).
const CAPABILITIES: [&str; 5] = ["BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE", "DAC_READ_SEARCH"];

/// Host paths the pod mounts, all read-only: BTF, tracefs, the cgroup tree, and /run for
/// the container runtimes' sockets.
const HOST_PATHS: [&str; 4] = ["/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/cgroup", "/run"];

/// The oldest and newest Kubernetes schemas kubernetes-validate bundles.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];

/// The rules-list entry for the built-in rules (embedded in the binary).
const BUILTIN_RULES: &str = sensor::pipeline::BUILTIN_RULES;

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// `deploy/` and a path in it.
fn deploy(path: &str) -> PathBuf {
    root().join("deploy").join(path)
}

/// A tool `cargo xtask setup` installs under the target directory.
fn tool(relative: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // <target>/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).expect("target dir");
    let path = target.join(relative);
    assert!(path.is_file(), "{} is missing: run `cargo xtask setup`", path.display());
    path
}

fn helm() -> Command {
    Command::new(tool("k8s-tools/bin/helm"))
}

fn kubectl() -> Command {
    Command::new(tool("k8s-tools/bin/kubectl"))
}

fn python_tool(name: &str) -> Command {
    Command::new(tool(&format!("test-peers/bin/{name}")))
}

/// A scratch directory for one test: removed when the test passes, kept for a look when
/// it fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sensor-deploy-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Keeps helm and kubectl away from the user's configuration and caches.
fn isolate(cmd: &mut Command, dir: &Path) {
    cmd.env("HOME", dir)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("HELM_CACHE_HOME", dir.join("helm/cache"))
        .env("HELM_CONFIG_HOME", dir.join("helm/config"))
        .env("HELM_DATA_HOME", dir.join("helm/data"));
}

/// Runs `cmd` and returns its stdout, failing the test with its output if it fails.
fn run(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{cmd:?} failed ({}):\n{stdout}\n{stderr}", output.status);
    stdout
}

/// Runs `cmd`, expecting it to fail, and returns its stderr.
fn run_failing(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(!output.status.success(), "{cmd:?} succeeded but should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The documents of a YAML stream (empty ones, as between helm's `---`, left out).
fn parse_docs(text: &str, origin: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{origin}: {e}"));
    docs.into_iter().filter(|doc| !doc.is_null()).collect()
}

/// The YAML files directly in `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml"))
        .collect();
    files.sort();
    files
}

/// The objects of `kubectl apply -f deploy/kubernetes/`, in apply order.
fn manifests() -> Vec<Value> {
    yaml_files(&deploy("kubernetes"))
        .iter()
        .flat_map(|file| parse_docs(&fs::read_to_string(file).expect("manifest"), &file.display().to_string()))
        .collect()
}

/// `helm template sensor deploy/helm/sensor -n sensor ARGS`.
fn render(dir: &Path, args: &[&str]) -> String {
    run(&mut render_command(dir, args))
}

/// The command of [`render`].
fn render_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = helm();
    isolate(&mut cmd, dir);
    cmd.args(["template", "sensor"]).arg(deploy("helm/sensor")).args(["--namespace", "sensor"]).args(args);
    cmd
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write scratch file");
    path
}

/// The object of `kind` named `name`.
fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among {:?}", kinds(docs)))
}

/// `kind/name` of every object.
fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter().map(|doc| format!("{}/{}", str_of(&doc["kind"]), str_of(&doc["metadata"]["name"]))).collect()
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The only DaemonSet.
fn daemonset(docs: &[Value]) -> &Value {
    let sets: Vec<&Value> = docs.iter().filter(|doc| doc["kind"] == "DaemonSet").collect();
    assert_eq!(sets.len(), 1, "one DaemonSet expected: {:?}", kinds(docs));
    sets[0]
}

/// The sensor container of a DaemonSet.
fn sensor_container(ds: &Value) -> &Value {
    let containers = ds["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    containers.iter().find(|c| c["name"] == "sensor").expect("a container named sensor")
}

/// A ConfigMap's `sensor.yaml`, parsed.
fn sensor_config(config_map: &Value) -> Value {
    let text = config_map["data"]["sensor.yaml"].as_str().expect("sensor.yaml in the ConfigMap");
    let mut docs = parse_docs(text, "sensor.yaml");
    assert_eq!(docs.len(), 1, "sensor.yaml is one document");
    docs.remove(0)
}

/// Whether `value` holds `key: true` anywhere.
fn has_true(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| (k == key && v == &json!(true)) || has_true(v, key)),
        Value::Array(items) => items.iter().any(|v| has_true(v, key)),
        _ => false,
    }
}

/// The checks every rendering of the sensor (manifests, chart, fallback) must pass.
/// `privileged`: the fallback, which trades the capability set for `privileged: true`.
fn check_sensor_objects(docs: &[Value], privileged: bool) {
    let ds = daemonset(docs);
    let pod = &ds["spec"]["template"]["spec"];
    let container = sensor_container(ds);

    // No API-server access: no RBAC objects, no token.
    for doc in docs {
        let kind = str_of(&doc["kind"]);
        assert!(!kind.contains("Role"), "the sensor needs no RBAC, found {kind}");
    }
    let account = find(docs, "ServiceAccount", str_of(&pod["serviceAccountName"]));
    assert_eq!(account["automountServiceAccountToken"], false);
    assert_eq!(pod["automountServiceAccountToken"], false);

    // Every node, first in line.
    assert_eq!(pod["hostPID"], true, "the sensor reads the host's /proc");
    assert_ne!(pod["hostNetwork"], true, "metrics need no host network");
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    let tolerations = pod["tolerations"].as_array().expect("tolerations");
    assert!(
        tolerations.iter().any(|t| t["operator"] == "Exists" && t.get("key").is_none() && t.get("effect").is_none()),
        "a toleration of every taint: {tolerations:?}"
    );
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(
        ds["spec"]["template"]["metadata"]["annotations"]["container.apparmor.security.beta.kubernetes.io/sensor"],
        "unconfined"
    );

    // The container.
    assert_eq!(container["args"], json!(["run", "--config", "/etc/sensor/sensor.yaml"]));
    for (bound, resource) in [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")] {
        assert!(container["resources"][bound][resource].is_string(), "resources.{bound}.{resource} missing");
    }
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsUser"], 0, "capabilities are effective for uid 0 only");
    if privileged {
        assert_eq!(security["privileged"], true);
        assert_ne!(security["allowPrivilegeEscalation"], false, "the API rejects privileged without escalation");
    } else {
        assert!(!has_true(ds, "privileged"), "privileged: true in the default pod");
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
        let added: BTreeSet<&str> = security["capabilities"]["add"]
            .as_array()
            .expect("capabilities.add")
            .iter()
            .map(|cap| cap.as_str().expect("capability name"))
            .collect();
        assert_eq!(added, BTreeSet::from(CAPABILITIES));
        // Default seccomp profiles may refuse bpf(2) without CAP_SYS_ADMIN.
        assert_eq!(security["seccompProfile"]["type"], "Unconfined");
    }

    // Probes on the metrics port, which the configuration listens on.
    let port = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics")["containerPort"]
        .as_u64()
        .expect("metrics containerPort");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")] {
        assert_eq!(container[probe]["httpGet"], json!({"path": path, "port": "metrics", "scheme": "HTTP"}), "{probe}");
    }
    let volumes = pod["volumes"].as_array().expect("volumes");
    let config_source = volumes
        .iter()
        .find(|v| v["name"] == "config")
        .and_then(|v| v["projected"]["sources"].as_array())
        .expect("a projected volume `config`");
    let config_map_name = config_source
        .iter()
        .find_map(|s| s["configMap"]["name"].as_str())
        .expect("the configuration's ConfigMap in the `config` volume");
    let config_map = find(docs, "ConfigMap", config_map_name);
    let config = sensor_config(config_map);
    // Metrics listen on the pod's IP alone (not 0.0.0.0), from the downward API; the file
    // leaves the address to the environment, which wins over it anyway.
    assert!(config["metrics"]["address"].is_null(), "metrics.address belongs to the environment: {config}");
    let env = container["env"].as_array().expect("env");
    let var = |name: &str| env.iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("no env {name}"));
    assert_eq!(var("POD_IP")["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP");
    assert_eq!(var("SENSOR_CONFIG__METRICS__ADDRESS")["value"], format!("$(POD_IP):{port}"));
    let pod_ip_first = env.iter().position(|e| e["name"] == "POD_IP")
        < env.iter().position(|e| e["name"] == "SENSOR_CONFIG__METRICS__ADDRESS");
    assert!(pod_ip_first, "$(POD_IP) expands only from a variable defined before it");

    // Only the scrapers may reach the metrics port (the node, for probes, always may).
    if let Some(policy) = docs.iter().find(|doc| doc["kind"] == "NetworkPolicy") {
        assert_eq!(policy["spec"]["podSelector"]["matchLabels"], ds["spec"]["selector"]["matchLabels"]);
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]), "egress stays open for the outputs");
        let rules = policy["spec"]["ingress"].as_array().expect("ingress rules");
        for rule in rules {
            assert_eq!(rule["ports"], json!([{"port": "metrics", "protocol": "TCP"}]), "{rule}");
            assert!(rule["from"].as_array().is_some_and(|f| !f.is_empty()), "an ingress rule admits everyone: {rule}");
        }
    }

    // Mounts: each names a volume, host paths are read-only, only /run/sensor (the gRPC
    // socket) and alert-file directories are writable.
    let by_name: BTreeMap<&str, &Value> = volumes.iter().map(|v| (str_of(&v["name"]), v)).collect();
    let mounts = container["volumeMounts"].as_array().expect("volumeMounts");
    let alert_dirs: BTreeSet<String> = config["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .filter_map(|o| o["file"]["path"].as_str())
        .map(|path| Path::new(path).parent().expect("alert file directory").display().to_string())
        .collect();
    let mut host_paths = BTreeSet::new();
    for mount in mounts {
        let name = str_of(&mount["name"]);
        let target = str_of(&mount["mountPath"]);
        let volume = by_name.get(name).unwrap_or_else(|| panic!("mount {name} has no volume"));
        let writable = mount["readOnly"] != true;
        if let Some(host) = volume["hostPath"]["path"].as_str() {
            host_paths.insert(host.to_owned());
            assert!(!writable || alert_dirs.contains(host), "host path {host} mounted writable");
        }
        if writable {
            assert!(target == "/run/sensor" || alert_dirs.contains(target), "{target} mounted writable");
        }
    }
    for host in HOST_PATHS {
        assert!(host_paths.contains(host), "no mount of the host's {host}");
    }
    let run = mounts.iter().find(|m| m["mountPath"] == "/run/sensor").expect("/run/sensor mounted");
    assert!(by_name[str_of(&run["name"])]["emptyDir"].is_object(), "/run/sensor is an emptyDir");
    let config_mount = mounts.iter().find(|m| m["mountPath"] == "/etc/sensor").expect("/etc/sensor mounted");
    assert_eq!(config_mount["name"], "config");
    assert_eq!(config_mount["readOnly"], true);

    check_config(&config, config_map, config_source);

    // Prometheus finds the metrics through the Service, if there is one.
    if let Some(service) = docs.iter().find(|doc| doc["kind"] == "Service") {
        assert_eq!(service["spec"]["clusterIP"], "None", "headless: one endpoint per node");
        assert_eq!(service["metadata"]["annotations"]["prometheus.io/scrape"], "true");
        assert_eq!(service["metadata"]["annotations"]["prometheus.io/port"], port.to_string());
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
        assert_eq!(service["spec"]["selector"], ds["spec"]["selector"]["matchLabels"]);
    }
}

/// The configuration and the files it names: rules directories and secret files are in the
/// projected `config` volume, secrets are references, runtime sockets are under /host/run.
fn check_config(config: &Value, config_map: &Value, sources: &[Value]) {
    if let Err(e) = serde_json::from_value::<sensor::config::SensorConfig>(config.clone()) {
        panic!("the sensor rejects this sensor.yaml: {e}\n{config:#}");
    }
    let projected: BTreeSet<String> = sources
        .iter()
        .flat_map(|source| {
            let items = source["configMap"]["items"].as_array().or(source["secret"]["items"].as_array());
            items.into_iter().flatten().map(|item| format!("/etc/sensor/{}", str_of(&item["path"])))
        })
        .collect();
    for source in sources {
        for item in source["configMap"]["items"].as_array().into_iter().flatten() {
            let key = str_of(&item["key"]);
            assert!(config_map["data"][key].is_string(), "the config volume projects {key}, not in the ConfigMap");
        }
    }
    assert!(projected.contains("/etc/sensor/sensor.yaml"), "sensor.yaml is not projected: {projected:?}");
    for rules in config["rules"].as_array().expect("rules") {
        let rules = str_of(rules);
        if rules != BUILTIN_RULES {
            let prefix = format!("{rules}/");
            assert!(projected.iter().any(|p| p.starts_with(&prefix)), "no rules file projected into {rules}");
        }
    }
    for output in config["outputs"].as_array().expect("outputs") {
        for (kind, secret) in [("telegram", "token"), ("smtp", "password")] {
            let Some(settings) = output.get(kind) else { continue };
            let source = &settings[secret];
            assert!(source.is_object(), "{kind}.{secret} must be {{file: ..}} or {{env: ..}}, not inline");
            if let Some(file) = source["file"].as_str() {
                assert!(projected.contains(file), "{kind}.{secret} reads {file}, which is not projected");
            }
        }
    }
    for (key, sockets) in config["containers"].as_object().expect("containers") {
        for socket in sockets.as_array().expect("socket list") {
            assert!(str_of(socket).starts_with("/host/run/"), "containers.{key}: {socket} is not under /host/run");
        }
    }
}

/// What must agree between two renderings: every object but the Namespace, without labels
/// (Helm adds its own), with `sensor.yaml` parsed and rules files compared as text.
fn essentials(docs: &[Value]) -> BTreeMap<String, Value> {
    docs.iter()
        .filter(|doc| doc["kind"] != "Namespace")
        .map(|doc| {
            let mut doc = doc.clone();
            doc["metadata"].as_object_mut().expect("metadata").remove("labels");
            if doc["kind"] == "DaemonSet" {
                // Order carries no meaning in these lists, and a strategic merge patch
                // puts its items first.
                let pod = &mut doc["spec"]["template"]["spec"];
                sort_by_key(&mut pod["volumes"], "name");
                for container in pod["containers"].as_array_mut().expect("containers") {
                    sort_by_key(&mut container["volumeMounts"], "mountPath");
                }
            }
            if doc["kind"] == "ConfigMap" {
                let data = doc["data"].as_object_mut().expect("ConfigMap data");
                for (key, value) in data.iter_mut() {
                    let text = value.as_str().expect("ConfigMap value").trim_end().to_owned();
                    *value = if key == "sensor.yaml" { parse_docs(&text, key).remove(0) } else { Value::String(text) };
                }
            }
            (format!("{}/{}", str_of(&doc["kind"]), str_of(&doc["metadata"]["name"])), doc)
        })
        .collect()
}

/// Sorts an array of objects by the string at `key`.
fn sort_by_key(list: &mut Value, key: &str) {
    if let Some(items) = list.as_array_mut() {
        items.sort_by(|a, b| str_of(&a[key]).cmp(str_of(&b[key])));
    }
}

/// Asserts two renderings agree in [`essentials`], naming the first value that differs.
fn assert_same_essentials(left: &[Value], right: &[Value], what: &str) {
    let (left, right) = (essentials(left), essentials(right));
    assert_eq!(left.keys().collect::<Vec<_>>(), right.keys().collect::<Vec<_>>(), "{what}: objects differ");
    for (key, value) in &left {
        if let Some(difference) = first_difference(value, &right[key], key) {
            panic!("{what}: {difference}");
        }
    }
}

/// Where `left` and `right` first differ, as `path: left != right`.
fn first_difference(left: &Value, right: &Value, path: &str) -> Option<String> {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            let keys: BTreeSet<&String> = l.keys().chain(r.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    l.get(k).unwrap_or(&Value::Null),
                    r.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                )
            })
        }
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => {
            l.iter().zip(r).enumerate().find_map(|(i, (l, r))| first_difference(l, r, &format!("{path}[{i}]")))
        }
        _ => (left != right).then(|| format!("{path}: {left} != {right}")),
    }
}

/// The manifests' DaemonSet with the privileged fallback patch applied (`kubectl patch
/// --local`, a strategic merge, as on a cluster), as YAML.
fn patched_daemonset_text(dir: &Path) -> String {
    let mut cmd = kubectl();
    isolate(&mut cmd, dir);
    run(cmd
        .args(["patch", "--local", "-o", "yaml", "-f"])
        .arg(deploy("kubernetes/30-daemonset.yaml"))
        .arg("--patch-file")
        .arg(deploy("kubernetes/optional/privileged-patch.yaml")))
}

/// [`patched_daemonset_text`], parsed.
fn patched_daemonset(dir: &Path) -> Vec<Value> {
    parse_docs(&patched_daemonset_text(dir), "patched DaemonSet")
}

/// The manifests' local rules file, written to `dir` for `--set-file`.
fn local_rules_file(dir: &Path) -> PathBuf {
    let config_map = manifests().into_iter().find(|doc| doc["kind"] == "ConfigMap").expect("a ConfigMap");
    write(dir, "local-rules.yaml", str_of(&config_map["data"]["local-rules.yaml"]))
}

/// The chart rendered as the manifests are written.
fn render_like_manifests(dir: &Path, extra: &[&str]) -> Vec<Value> {
    let rules = local_rules_file(dir);
    let set_file = format!("rules.files.local-rules\\.yaml={}", rules.display());
    let values = deploy("helm/sensor/ci/manifests-values.yaml");
    let mut args = vec!["-f", values.to_str().unwrap(), "--set-file", &set_file];
    args.extend_from_slice(extra);
    parse_docs(&render(dir, &args), "chart render")
}

/// Values that turn everything on: every output, rules, a created Secret, an env secret.
const FULL_VALUES: &str = r#"
rules:
  files:
    extra.yaml: |
      - macro: extra_in_container
        condition: container.id != host
outputs:
  - stdout: {format: json}
  - telegram: {chat_id: "-100", token: {file: /etc/sensor/secrets/telegram-token}}
    min_priority: warning
  - smtp:
      host: smtp.gmail.com
      port: 587
      username: alerts@example.com
      password: {file: /etc/sensor/secrets/smtp-password}
      from: alerts@example.com
      to: [oncall@example.com]
    batch: {window: 5m}
  - webhook: {url: "https://hooks.example.com/sensor", headers: {Authorization: {env: HOOK_AUTH}}}
  - file: {path: /var/log/sensor/alerts.jsonl}
  - grpc: {unix_socket: /run/sensor/grpc.sock}
secret:
  data: {telegram-token: "1:abc", smtp-password: app-password}
env:
  - name: HOOK_AUTH
    valueFrom: {secretKeyRef: {name: hooks, key: authorization}}
"#;

/// Every YAML file of deploy/ parses (the chart's templates are Go templates: their
/// renders are parsed instead).
#[test]
fn every_yaml_file_parses() {
    let mut files = yaml_files(&deploy("kubernetes"));
    files.extend(yaml_files(&deploy("kubernetes/optional")));
    files.extend(yaml_files(&deploy("helm/sensor")));
    files.extend(yaml_files(&deploy("helm/sensor/ci")));
    files.extend(yaml_files(&deploy("systemd")));
    files.extend(yaml_files(&deploy("k8s-audit")));
    files.push(deploy(".yamllint.yaml"));
    for file in &files {
        let docs = parse_docs(&fs::read_to_string(file).expect("read"), &file.display().to_string());
        assert!(!docs.is_empty(), "{} is empty", file.display());
    }
    assert!(files.len() >= 11, "fewer YAML files than expected: {files:?}");
}

/// The manifests hold what the sensor needs, in the order `kubectl apply -f` creates them.
#[test]
fn manifests_hold_the_essentials() {
    let docs = manifests();
    assert_eq!(docs[0]["kind"], "Namespace", "the namespace comes first: {:?}", kinds(&docs));
    let namespace = str_of(&docs[0]["metadata"]["name"]);
    assert_eq!(docs[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged");
    for doc in &docs[1..] {
        assert_eq!(doc["metadata"]["namespace"], namespace, "{} outside the namespace", doc["kind"]);
    }
    check_sensor_objects(&docs, false);
    assert!(docs.iter().any(|doc| doc["kind"] == "NetworkPolicy"), "a NetworkPolicy guards the metrics port");

    // The example Secret holds the keys the DaemonSet projects.
    let secret = &parse_docs(&fs::read_to_string(deploy("kubernetes/optional/secret.yaml")).unwrap(), "secret")[0];
    let pod = &daemonset(&docs)["spec"]["template"]["spec"];
    let config = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "config").expect("config volume");
    let items = config["projected"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["secret"]["name"] == secret["metadata"]["name"])
        .expect("the example Secret is projected")["secret"]["items"]
        .as_array()
        .unwrap()
        .clone();
    for item in items {
        assert!(secret["stringData"][str_of(&item["key"])].is_string(), "the example Secret lacks {}", item["key"]);
    }
}

/// The privileged fallback patch gives a privileged pod that keeps everything else.
#[test]
fn privileged_fallback_patch() {
    let dir = Scratch::new("privileged");
    let patched = patched_daemonset(&dir);
    let mut docs: Vec<Value> = manifests().into_iter().filter(|doc| doc["kind"] != "DaemonSet").collect();
    docs.extend(patched);
    check_sensor_objects(&docs, true);
    let mounts = &sensor_container(daemonset(&docs))["volumeMounts"];
    assert!(mounts.as_array().unwrap().iter().any(|m| m["mountPath"] == "/sys/kernel/debug"), "debugfs mounted");
}

/// The local rules of the ConfigMap load after the built-in ones without errors or warnings.
#[test]
fn configmap_rules_load() {
    let dir = Scratch::new("rules");
    let rules = local_rules_file(&dir);
    let (engine, diagnostics) = sensor::pipeline::load_rules(&[BUILTIN_RULES.into(), rules], Default::default())
        .unwrap_or_else(|report| panic!("{report}"));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert!(engine.rule_count() > 0);
}

/// The example configurations load as the sensor reads them.
#[test]
fn example_configurations_load() {
    for file in ["sensor.yaml", "systemd/sensor.yaml"] {
        if let Err(e) = sensor::config::SensorConfig::load(&deploy(file)) {
            panic!("{e:#}");
        }
    }
}

/// yamllint accepts the manifests, the chart's values, the example configuration and the
/// audit policy and webhook kubeconfig.
#[test]
fn yamllint_passes() {
    run(python_tool("yamllint")
        .args(["--strict", "-f", "parsable", "-c"])
        .arg(deploy(".yamllint.yaml"))
        .arg(deploy("kubernetes"))
        .arg(deploy("helm/sensor/values.yaml"))
        .arg(deploy("helm/sensor/Chart.yaml"))
        .arg(deploy("helm/sensor/ci"))
        .arg(deploy("systemd/sensor.yaml"))
        .arg(deploy("k8s-audit")));
}

/// Validates `files` against the oldest and newest schemas, rejecting unknown fields.
fn kubernetes_validate(files: &[PathBuf]) {
    for version in KUBERNETES_VERSIONS {
        run(python_tool("kubernetes-validate").args(["--strict", "--quiet", "-k", version]).args(files));
    }
}

/// The manifests, the example Secret and the patched DaemonSet match Kubernetes' schemas.
#[test]
fn manifests_match_kubernetes_schemas() {
    let dir = Scratch::new("schemas");
    let patched = patched_daemonset_text(&dir);
    let mut files = yaml_files(&deploy("kubernetes"));
    files.push(deploy("kubernetes/optional/secret.yaml"));
    files.push(write(&dir, "privileged.yaml", &patched));
    kubernetes_validate(&files);
}

/// The chart lints, renders the manifests' objects, and every variant passes the same
/// checks, the schemas and yamllint.
#[test]
fn chart_lints_and_renders_the_manifests() {
    let dir = Scratch::new("chart");
    let full = write(&dir, "full-values.yaml", FULL_VALUES);
    let chart = deploy("helm/sensor");
    let ci_values = deploy("helm/sensor/ci/manifests-values.yaml");
    for values in [None, Some(&ci_values), Some(&full)] {
        let mut cmd = helm();
        isolate(&mut cmd, &dir);
        cmd.args(["lint", "--strict"]).arg(&chart);
        if let Some(values) = values {
            cmd.arg("-f").arg(values);
        }
        run(&mut cmd);
    }

    // Defaults: the built-in rules, stdout JSON only, no Secret.
    let default_text = render(&dir, &[]);
    let default = parse_docs(&default_text, "default render");
    check_sensor_objects(&default, false);
    let config = sensor_config(find(&default, "ConfigMap", "sensor-config"));
    assert_eq!(config["outputs"], json!([{"stdout": {"format": "json"}}]));
    assert_eq!(config["rules"], json!([BUILTIN_RULES]));
    assert!(!default.iter().any(|doc| doc["kind"] == "Secret"), "no Secret by default");

    // As the manifests are written, the chart renders the same objects.
    let like = render_like_manifests(&dir, &[]);
    assert_same_essentials(&manifests(), &like, "chart (ci/manifests-values.yaml) vs deploy/kubernetes");

    // The privileged toggle equals the manifests' fallback patch.
    let privileged = render_like_manifests(&dir, &["--set", "privileged=true"]);
    check_sensor_objects(&privileged, true);
    assert_same_essentials(
        &patched_daemonset(&dir),
        &privileged.iter().filter(|doc| doc["kind"] == "DaemonSet").cloned().collect::<Vec<_>>(),
        "chart privileged=true vs the privileged patch",
    );

    // Everything on: secrets projected, the alert file's directory mounted from the node.
    let full_text = render(&dir, &["-f", full.to_str().unwrap()]);
    let everything = parse_docs(&full_text, "full render");
    check_sensor_objects(&everything, false);
    let secret = find(&everything, "Secret", "sensor-secrets");
    assert_eq!(secret["data"]["telegram-token"], "MTphYmM=", "base64 of the value");
    let pod = &daemonset(&everything)["spec"]["template"]["spec"];
    let alerts = pod["volumes"].as_array().unwrap().iter().find(|v| v["hostPath"]["path"] == "/var/log/sensor");
    assert_eq!(alerts.expect("the alert file's directory")["hostPath"]["type"], "DirectoryOrCreate");

    let rendered = [write(&dir, "default.yaml", &default_text), write(&dir, "full.yaml", &full_text)];
    kubernetes_validate(&rendered);
    run(python_tool("yamllint")
        .args(["--strict", "-f", "parsable", "-c"])
        .arg(deploy(".yamllint.yaml"))
        .args(&rendered));

    // values.schema.json refuses a secret written into the values, and a misspelled key.
    let inline = write(&dir, "inline.yaml", "outputs:\n  - telegram: {chat_id: \"1\", token: \"1:abc\"}\n");
    for (args, expected) in [
        (["-f", inline.to_str().unwrap()], "outputs.0.telegram.token: Invalid type"),
        (["--set", "privilged=true"], "Additional property privilged is not allowed"),
    ] {
        let mut cmd = helm();
        isolate(&mut cmd, &dir);
        let error = run_failing(cmd.args(["template", "sensor"]).arg(&chart).args(args));
        assert!(error.contains(expected), "{error}");
    }
}

/// With `config.metrics.tls` the endpoint speaks HTTPS only: the probes and the Service's
/// scrape scheme follow it; without, plain HTTP.
#[test]
fn chart_probes_speak_https_when_metrics_use_tls() {
    let dir = Scratch::new("tls");
    let tls =
        r#"config={"metrics":{"tls":{"cert_file":"/etc/sensor/tls/tls.crt","key_file":"/etc/sensor/tls/tls.key"}}}"#;
    for (args, scheme) in [(vec![], "HTTP"), (vec!["--set-json", tls], "HTTPS")] {
        let docs = parse_docs(&render(&dir, &args), "render");
        let container = sensor_container(daemonset(&docs));
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            assert_eq!(container[probe]["httpGet"]["scheme"], scheme, "{probe} with {args:?}");
        }
        let service = find(&docs, "Service", "sensor-metrics");
        let annotated = &service["metadata"]["annotations"]["prometheus.io/scheme"];
        assert_eq!(annotated.as_str(), (scheme == "HTTPS").then_some("https"), "{args:?}");
        let config = sensor_config(find(&docs, "ConfigMap", "sensor-config"));
        assert_eq!(config["metrics"]["tls"].is_null(), scheme == "HTTP");
    }
}

/// With `store.enabled`, every node keeps its alerts in a SQLite store on a volume: the
/// node's directory, or an emptyDir of the size limit.
#[test]
fn chart_keeps_alerts_on_the_node_when_the_store_is_enabled() {
    let dir = Scratch::new("store");
    for (extra, host) in [(vec![], true), (vec!["--set", "store.hostPath="], false)] {
        let args = [vec!["--set", "store.enabled=true", "--set", "store.maxSize=512MiB"], extra].concat();
        let docs = parse_docs(&render(&dir, &args), "render");
        let config = sensor_config(find(&docs, "ConfigMap", "sensor-config"));
        let store = config["outputs"].as_array().unwrap().iter().find_map(|o| o.get("store")).expect("a store output");
        assert_eq!(store["path"], "/var/lib/sensor/alerts.db");
        assert_eq!(store["max_size"], "512MiB");
        serde_json::from_value::<sensor::config::SensorConfig>(config).expect("the configuration loads");
        let pod = &daemonset(&docs)["spec"]["template"]["spec"];
        let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "store").expect("its volume");
        let mount = sensor_container(daemonset(&docs))["volumeMounts"].as_array().unwrap().iter().any(|m| {
            m["name"] == "store" && m["mountPath"] == "/var/lib/sensor" && m.get("readOnly").is_none_or(|r| r == false)
        });
        assert!(mount, "the store's directory is mounted writable");
        if host {
            assert_eq!(volume["hostPath"], json!({"path": "/var/lib/sensor", "type": "DirectoryOrCreate"}));
        } else {
            assert_eq!(volume["emptyDir"], json!({"sizeLimit": "2Gi"}));
        }
    }
}

/// With `console.enabled`, the chart runs the cluster's console: a Deployment of replicas
/// over PostgreSQL behind a Service, whose pods the DaemonSet's and the metrics Service's
/// selectors miss; every node's configuration gains a `console` output to that Service with
/// the ingest token mounted from the console's Secret; both configurations load.
#[test]
fn chart_runs_the_cluster_console_the_nodes_send_to() {
    let dir = Scratch::new("console");
    let args = [
        "--set",
        "console.enabled=true",
        "--set",
        "console.basePath=/sensor",
        "--set-string",
        "console.secret.data.ingest-token=t",
        "--set-string",
        "console.secret.data.admin-password-hash=h",
        "--set-string",
        "console.secret.data.postgres-password=p",
    ];
    let docs = parse_docs(&render(&dir, &args), "render");
    let deployment = find(&docs, "Deployment", "sensor-console");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let console_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selects = |selector: &Value| {
        selector.as_object().expect("a selector").iter().all(|(k, v)| &console_labels[k.as_str()] == v)
    };
    assert!(selects(&deployment["spec"]["selector"]["matchLabels"]));
    assert!(selects(&find(&docs, "Service", "sensor-console")["spec"]["selector"]));
    assert!(!selects(&daemonset(&docs)["spec"]["selector"]["matchLabels"]), "the DaemonSet would own the console");
    assert!(!selects(&find(&docs, "Service", "sensor-metrics")["spec"]["selector"]), "console pods scraped as nodes");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"], json!(["console", "--config", "/etc/sensor/sensor.yaml"]));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/sensor/login");
    let env = container["env"].as_array().unwrap();
    let metrics_at = env.iter().find(|e| e["name"] == "SENSOR_CONFIG__METRICS__ADDRESS").expect("its metrics address");
    assert_eq!(metrics_at["value"], "$(POD_IP):8765", "the console's /metrics on the pod's IP");
    // It runs as a user that can read its Secret's files, and no one else can.
    let pod = &deployment["spec"]["template"]["spec"];
    let secrets = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "secrets").unwrap();
    assert_eq!(secrets["secret"]["defaultMode"], 0o440);
    assert_eq!(pod["securityContext"]["fsGroup"], pod["securityContext"]["runAsGroup"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);

    let console = sensor_config(find(&docs, "ConfigMap", "sensor-console"));
    let console: sensor::config::SensorConfig =
        serde_json::from_value(console).expect("the console's configuration loads");
    let store = console.ui.store.as_ref().expect("ui.store");
    assert_eq!(store.describe(), "postgresql://postgresql:5432/sensor");
    assert_eq!(console.ui.ingest_tokens.len(), 1);
    assert_eq!(console.ui.base().unwrap(), "/sensor");

    let nodes = sensor_config(find(&docs, "ConfigMap", "sensor-config"));
    let outputs = nodes["outputs"].as_array().unwrap();
    let output = outputs.iter().find(|o| o.get("console").is_some()).expect("a console output on the nodes");
    assert_eq!(output["console"]["url"], "http://sensor-console.sensor.svc:8484/sensor");
    let token = output["console"]["token"]["file"].as_str().unwrap();
    let mounted = daemonset(&docs)["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| v["projected"]["sources"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["secret"]["name"] == "sensor-console")
        .flat_map(|s| s["secret"]["items"].as_array().cloned().unwrap_or_default())
        .any(|item| format!("/etc/sensor/{}", str_of(&item["path"])) == token && item["key"] == "ingest-token");
    assert!(mounted, "the nodes' token file {token} is the console Secret's ingest-token");
    serde_json::from_value::<sensor::config::SensorConfig>(nodes).expect("the nodes' configuration loads");
}

/// With `console.k8sAudit.enabled`, the console takes kube-apiserver's audit webhook: the
/// Service's `audit` port, the TLS Secret mounted where its configuration names the files
/// (the client CA too unless told otherwise), and its alerts into the console's own store;
/// the render passes kubernetes-validate, and without a TLS Secret the chart refuses.
#[test]
fn chart_serves_the_audit_webhook_on_the_console() {
    let dir = Scratch::new("console-audit");
    let mut args = vec!["--set", "console.enabled=true", "--set", "console.k8sAudit.enabled=true"];
    let refused = run_failing(&mut render_command(&dir, &args));
    assert!(refused.contains("console.k8sAudit.tlsSecret names the audit webhook's TLS Secret"), "{refused}");
    args.extend([
        "--set",
        "console.k8sAudit.tlsSecret=apiserver-audit-tls",
        "--set",
        "console.k8sAudit.clusterName=prod-eu",
    ]);
    let text = render(&dir, &args);
    let docs = parse_docs(&text, "render");
    let ports = &find(&docs, "Service", "sensor-console")["spec"]["ports"];
    let audit = ports.as_array().unwrap().iter().find(|p| p["name"] == "audit").expect("an audit port");
    assert_eq!((&audit["port"], &audit["targetPort"]), (&json!(9765), &json!("audit")));
    let pod = &find(&docs, "Deployment", "sensor-console")["spec"]["template"]["spec"];
    let tls = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "audit-tls").expect("the TLS volume");
    assert_eq!(tls["secret"]["secretName"], "apiserver-audit-tls");
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    let mount = mounts.iter().find(|m| m["name"] == "audit-tls").expect("the TLS mount");
    let console: sensor::config::SensorConfig =
        serde_json::from_value(sensor_config(find(&docs, "ConfigMap", "sensor-console")))
            .expect("the console's configuration loads");
    let webhook = console.k8s_audit.webhook.as_ref().expect("k8s_audit.webhook");
    assert_eq!(webhook.address.port(), 9765);
    let files = webhook.tls.as_ref().expect("TLS");
    for file in [Some(&files.cert_file), Some(&files.key_file), files.client_ca_file.as_ref()] {
        let file = file.expect("the client CA too").display().to_string();
        assert!(file.starts_with(str_of(&mount["mountPath"])), "{file} is not in the mounted Secret");
    }
    assert_eq!(console.k8s_audit.cluster_name.as_deref(), Some("prod-eu"));
    let store = console.outputs.outputs.iter().find_map(|o| match &o.kind {
        sensor::outputs::OutputKind::Store(store) => Some(store),
        _ => None,
    });
    let (ui, output) = (console.ui.store.as_ref().expect("ui.store"), store.expect("a store output"));
    assert_eq!(ui, output, "the alerts go to the store the page shows");
    // Every audit event kept for 7 days in the same database, beside the alerts.
    let log = console.k8s_audit.store.as_ref().expect("k8s_audit.store: the audit log");
    assert_eq!((&log.engine, log.max_age), (&ui.engine, std::time::Duration::from_secs(7 * 86_400)));
    assert_eq!(console.k8s_audit.keep, sensor::store::audit::Keep::default(), "every level and verb");
    let file = write(&dir, "audit-render.yaml", &text);
    kubernetes_validate(&[file]);
}

/// `kubectl apply --dry-run=client` accepts the manifests and the chart's render, and
/// `helm install --dry-run=client` renders the chart's notes.
#[test]
fn kubectl_and_helm_dry_runs() {
    let dir = Scratch::new("dry-run");
    let server = api_stub();
    let kubectl_apply = |path: &Path| {
        let mut cmd = kubectl();
        isolate(&mut cmd, &dir);
        run(cmd
            .args(["--server", server, "--cache-dir"])
            .arg(dir.join("kube-cache"))
            .args(["apply", "--dry-run=client", "--validate=false", "-f"])
            .arg(path))
    };
    let out = kubectl_apply(&deploy("kubernetes"));
    assert_eq!(out.matches("created (dry run)").count(), manifests().len(), "{out}");
    let out = kubectl_apply(&deploy("kubernetes/optional/secret.yaml"));
    assert!(out.contains("secret/sensor-secrets created (dry run)"), "{out}");
    let full = write(&dir, "full.yaml", &render(&dir, &["-f", write(&dir, "v.yaml", FULL_VALUES).to_str().unwrap()]));
    let out = kubectl_apply(&full);
    assert!(out.contains("daemonset.apps/sensor created (dry run)"), "{out}");

    let mut cmd = helm();
    isolate(&mut cmd, &dir);
    let out = run(cmd
        .args(["install", "sensor"])
        .arg(deploy("helm/sensor"))
        .args(["--namespace", "sensor", "--dry-run=client", "--disable-openapi-validation", "--kube-apiserver", server])
        .arg("-f")
        .arg(dir.join("v.yaml")));
    let notes = out.split_once("NOTES:").map(|(_, notes)| notes).unwrap_or_else(|| panic!("no NOTES in:\n{out}"));
    for expected in [
        "DaemonSet sensor/sensor",
        "pod-security.kubernetes.io/enforce=privileged",
        "  - telegram",
        "smtp-password, telegram-token",
    ] {
        assert!(notes.contains(expected), "NOTES lack `{expected}`:\n{notes}");
    }
}

/// The systemd unit verifies without warnings, its exposure stays at "OK", and it grants
/// exactly the DaemonSet's capabilities.
#[test]
fn systemd_unit_verifies() {
    let dir = Scratch::new("systemd");
    let unit = fs::read_to_string(deploy("systemd/sensor.service")).expect("unit");
    // verify checks that ExecStart's program exists: point it at one that does.
    let stand_in = dir.join("sensor");
    fs::copy("/bin/true", &stand_in).expect("stand-in binary");
    let exec = "ExecStart=/usr/local/bin/sensor ";
    assert!(unit.contains(exec), "the unit runs /usr/local/bin/sensor");
    let copy = write(&dir, "sensor.service", &unit.replace(exec, &format!("ExecStart={} ", stand_in.display())));

    let output = Command::new("systemd-analyze").arg("verify").arg(&copy).output().expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.trim().is_empty(), "systemd-analyze verify:\n{stderr}");
    // The overall exposure, in tenths: at most 3.5 ("OK").
    run(Command::new("systemd-analyze").args(["security", "--offline=true", "--threshold=35"]).arg(&copy));

    let caps = |key: &str| -> BTreeSet<String> {
        let line = unit.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("no {key}"));
        line.split_whitespace().map(|cap| cap.trim_start_matches("CAP_").to_owned()).collect()
    };
    let expected: BTreeSet<String> = CAPABILITIES.iter().map(|cap| cap.to_string()).collect();
    assert_eq!(caps("CapabilityBoundingSet="), expected);
    assert_eq!(caps("AmbientCapabilities="), expected);
    for setting in ["ProtectSystem=strict", "NoNewPrivileges=yes", "LimitMEMLOCK=infinity", "Restart=on-failure"] {
        assert!(unit.lines().any(|l| l == setting), "the unit lacks {setting}");
    }
}

/// hadolint accepts the Containerfile, which copies only what its ignore file lets in.
#[test]
fn containerfile_lints() {
    let containerfile = deploy("Containerfile");
    run(python_tool("hadolint").arg("--no-color").arg(&containerfile));
    let text = fs::read_to_string(&containerfile).unwrap();
    let ignore = fs::read_to_string(deploy("Containerfile.dockerignore")).unwrap();
    let allowed: Vec<&str> = ignore.lines().filter_map(|l| l.strip_prefix('!')).collect();
    for source in text.lines().filter_map(|l| l.strip_prefix("COPY ")).filter(|args| !args.starts_with("--from")) {
        let source = source.split_whitespace().next().unwrap();
        if source != "." {
            assert!(
                allowed.iter().any(|a| source.starts_with(a.trim_end_matches('/'))),
                "COPY {source}: excluded by Containerfile.dockerignore"
            );
        }
    }
}

/// A loopback HTTP server that answers Kubernetes API discovery for the kinds deploy/ uses,
/// and 404 for every object: enough for client-side dry runs, which look kinds up and
/// objects up before printing what they would create. Returns its URL.
fn api_stub() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the API stub");
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve_discovery(stream));
            }
        });
        url
    })
}

/// Answers the requests of one connection until the client closes it.
fn serve_discovery(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let mut body_length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            match header.split_once(':') {
                Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                    body_length = value.trim().parse().unwrap_or(0);
                }
                _ => {}
            }
        }
        let mut body = vec![0; body_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/");
        let (status, reply) = match discovery(path) {
            Some(document) => ("200 OK", document),
            None => (
                "404 Not Found",
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            ),
        };
        let reply = reply.to_string();
        let head =
            format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", reply.len());
        if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(reply.as_bytes())).is_err() {
            return;
        }
    }
}

/// The discovery document at `path`: the server version, the groups, and the resources of
/// the kinds deploy/ creates. A kind missing here fails the dry run, so an object kind
/// added to deploy/ must be added here knowingly.
fn discovery(path: &str) -> Option<Value> {
    let resources = |group_version: &str, kinds: &[(&str, &str, bool)]| {
        let list: Vec<Value> = kinds
            .iter()
            .map(|(plural, kind, namespaced)| {
                json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                       "verbs": ["create", "delete", "get", "list", "patch", "update"]})
            })
            .collect();
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list})
    };
    Some(match path {
        "/version" => json!({"major": "1", "minor": "29", "gitVersion": "v1.29.4", "platform": "linux/amd64"}),
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
            "name": "apps",
            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}, {
            "name": "networking.k8s.io",
            "versions": [{"groupVersion": "networking.k8s.io/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "networking.k8s.io/v1", "version": "v1"}}]}),
        "/api/v1" => resources(
            "v1",
            &[
                ("namespaces", "Namespace", false),
                ("serviceaccounts", "ServiceAccount", true),
                ("configmaps", "ConfigMap", true),
                ("secrets", "Secret", true),
                ("services", "Service", true),
            ],
        ),
        "/apis/apps/v1" => resources("apps/v1", &[("daemonsets", "DaemonSet", true)]),
        "/apis/networking.k8s.io/v1" => {
            resources("networking.k8s.io/v1", &[("networkpolicies", "NetworkPolicy", true)])
        }
        _ => return None,
    })
}

/// What a request acts on: API group ("" for the core group), resource, subresource,
/// namespace.
type Target<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);

/// One request as kube-apiserver's audit policy sees it.
struct Request<'a> {
    user: &'a str,
    groups: &'a [&'a str],
    verb: &'a str,
    /// What it acts on; or a URL.
    resource: Option<Target<'a>>,
    url: Option<&'a str>,
}

/// The level the first matching rule of `policy` gives `r` (kube-apiserver's policy checker:
/// `users`, `userGroups`, `verbs`, `namespaces`, `resources` with `group/resource/subresource`
/// and `*`, `nonResourceURLs` with a trailing `*`; an absent list matches everything).
fn audit_level(policy: &Value, r: &Request) -> String {
    fn list<'v>(rule: &'v Value, key: &str) -> Option<Vec<&'v str>> {
        rule.get(key).and_then(Value::as_array).map(|a| a.iter().map(str_of).collect())
    }
    let allows = |rule: &Value, key: &str, value: &str| list(rule, key).is_none_or(|l| l.contains(&value));
    for rule in policy["rules"].as_array().expect("rules") {
        if !allows(rule, "users", r.user) || !allows(rule, "verbs", r.verb) {
            continue;
        }
        if let Some(groups) = list(rule, "userGroups")
            && !r.groups.iter().any(|g| groups.contains(g))
        {
            continue;
        }
        let matched = match (r.resource, r.url) {
            (Some((group, resource, sub, ns)), _) => {
                rule.get("nonResourceURLs").is_none()
                    && list(rule, "namespaces").is_none_or(|l| ns.is_some_and(|ns| l.contains(&ns)))
                    && rule.get("resources").and_then(Value::as_array).is_none_or(|kinds| {
                        kinds.iter().any(|k| {
                            str_of(&k["group"]) == group
                                && k.get("resources").and_then(Value::as_array).is_none_or(|names| {
                                    names.iter().map(str_of).any(|n| match (n.split_once('/'), sub) {
                                        (None, None) => n == resource || n == "*",
                                        (Some((res, subname)), Some(sub)) => {
                                            (res == resource || res == "*") && (subname == sub || subname == "*")
                                        }
                                        _ => false,
                                    })
                                })
                        })
                    })
            }
            (None, Some(url)) => {
                rule.get("resources").is_none()
                    && rule.get("namespaces").is_none()
                    && list(rule, "nonResourceURLs").is_none_or(|urls| {
                        urls.iter().any(|u| match u.strip_suffix('*') {
                            Some(prefix) => url.starts_with(prefix),
                            None => url == *u,
                        })
                    })
            }
            (None, None) => false,
        };
        if matched {
            return str_of(&rule["level"]).to_owned();
        }
    }
    "None".into()
}

/// The audit policy in deploy/ logs what the audit rules read: request bodies for what they
/// inspect (pods, ephemeral containers, bindings, webhooks), the request of streams into
/// pods at their start, never the contents of secrets; and drops the cluster's own chatter.
/// The webhook kubeconfig is one kubectl reads.
#[test]
fn the_audit_policy_logs_what_the_audit_rules_read() {
    let policy = &parse_docs(&fs::read_to_string(deploy("k8s-audit/audit-policy.yaml")).unwrap(), "audit policy")[0];
    assert_eq!((str_of(&policy["apiVersion"]), str_of(&policy["kind"])), ("audit.k8s.io/v1", "Policy"));
    let omitted: Vec<&str> = policy["omitStages"].as_array().unwrap().iter().map(str_of).collect();
    assert_eq!(omitted, ["RequestReceived"], "exec is alerted at ResponseStarted, the rest at ResponseComplete");
    let by = |user, groups, verb, resource, url| Request { user, groups, verb, resource, url };
    let person = |verb, target| by("alice", &["developers", "system:authenticated"], verb, Some(target), None);
    let anonymous: &[&str] = &["system:unauthenticated"];
    let node: &[&str] = &["system:nodes", "system:authenticated"];
    let component: &[&str] = &["system:authenticated"];
    let cases = [
        ("RequestResponse", person("create", ("", "pods", None, Some("shop")))),
        ("RequestResponse", person("patch", ("", "pods", Some("ephemeralcontainers"), Some("shop")))),
        ("Request", person("create", ("", "pods", Some("exec"), Some("shop")))),
        ("Request", person("get", ("", "pods", Some("attach"), Some("shop")))),
        ("Metadata", person("get", ("", "secrets", None, Some("shop")))),
        ("Metadata", person("create", ("", "secrets", None, Some("shop")))),
        ("Metadata", person("update", ("", "configmaps", None, Some("shop")))),
        ("RequestResponse", person("create", ("rbac.authorization.k8s.io", "clusterrolebindings", None, None))),
        (
            "RequestResponse",
            person("delete", ("admissionregistration.k8s.io", "validatingwebhookconfigurations", None, None)),
        ),
        ("RequestResponse", person("create", ("", "serviceaccounts", None, Some("kube-system")))),
        ("Metadata", person("get", ("", "pods", None, Some("shop")))),
        ("Metadata", by("system:anonymous", anonymous, "get", None, Some("/readyz"))),
        ("Metadata", by("system:anonymous", anonymous, "list", Some(("", "secrets", None, None)), None)),
        ("None", by("kubelet", node, "get", None, Some("/healthz"))),
        ("None", by("system:kube-proxy", component, "watch", Some(("", "endpoints", None, None)), None)),
        ("None", by("system:node:n1", node, "watch", Some(("", "nodes", None, None)), None)),
        (
            "None",
            by(
                "system:kube-scheduler",
                component,
                "update",
                Some(("coordination.k8s.io", "leases", None, Some("kube-system"))),
                None,
            ),
        ),
    ];
    for (want, r) in &cases {
        assert_eq!(audit_level(policy, r), *want, "{} {} {:?} {:?}", r.user, r.verb, r.resource, r.url);
    }
    let shown =
        run(kubectl().args(["config", "view", "--kubeconfig"]).arg(deploy("k8s-audit/webhook-kubeconfig.yaml")));
    assert!(shown.contains("server: https://SENSOR_AUDIT_ADDRESS:9765/k8s-audit"), "{shown}");
}
