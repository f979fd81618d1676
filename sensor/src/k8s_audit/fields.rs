//! The `ka.*` and `jevt.*` fields of an audit event, as Falco's k8saudit plugin extracts
//! them: every value is text (a JSON string as it is; numbers, booleans, objects and arrays
//! as their JSON), a list field yields one value per element (with `[n]`, the n-th
//! element's alone), and a field whose keys the event lacks has no value.
//!
//! Where the plugin's extraction cannot have meant what it does, this reads what the field
//! says and the difference is noted on the field: the effective user and group read the
//! `securityContext` (the plugin reads `spec.runAsUser`, where no pod has it), added
//! capabilities are one value per capability (not each container's list as JSON), and
//! `ka.req.binding.subject.has_name[x]` tests the subjects (the plugin always answers
//! true). No rule of Falco's `k8s_audit_rules.yaml` reads those fields.

use std::borrow::Cow;

use serde_json::Value as Json;

use super::AuditEvent;
use crate::rules::{
    Field, FieldArg, Value,
    fields::{K8S_AUDIT_SOURCE, syscall_fields},
    format_iso8601,
    output::format_clock,
};

/// The pod spec lists whose entries are containers.
#[derive(Clone, Copy)]
enum Containers {
    Main,
    Init,
    Ephemeral,
}

impl Containers {
    fn key(self) -> &'static str {
        match self {
            Containers::Main => "containers",
            Containers::Init => "initContainers",
            Containers::Ephemeral => "ephemeralContainers",
        }
    }
}

/// What a container field reads from each container.
#[derive(Clone, Copy)]
enum Of {
    Name,
    Image,
    Repository,
    Command,
    Args,
    Privileged,
    AllowPrivilegeEscalation,
    ReadOnlyFs,
    RunAsUser,
    EffRunAsUser,
    RunAsGroup,
    EffRunAsGroup,
    ProcMount,
    AddCapabilities,
    HostPort,
}

pub(super) fn field<'e>(ev: &'e AuditEvent, id: Field, arg: Option<&FieldArg>) -> Option<Value<'e>> {
    use Containers::{Ephemeral, Init, Main};
    use Field::*;
    let json = &ev.json;
    let index = match arg {
        Some(FieldArg::Index(n)) => Some(*n as usize),
        _ => None,
    };
    let key = match arg {
        Some(FieldArg::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    let one = |path: &[&str]| at(json, path).map(text);
    let list = |path: &[&str]| at(json, path)?.as_array().map(|items| Value::List(items.iter().map(text).collect()));
    let annotation = |name: &str| json.get("annotations")?.get(name).map(text);
    let containers = |which: Containers, of: Of| container_field(json, which, of, index);
    match id {
        // --- evt: every source's
        EvtTime => s(format_clock(ev.time_ns, false, true)),
        EvtTimeS => s(format_clock(ev.time_ns, false, false)),
        EvtTimeIso8601 => s(format_iso8601(ev.time_ns)),
        EvtDatetime => s(format_clock(ev.time_ns, true, true)),
        EvtDatetimeS => s(format_clock(ev.time_ns, true, false)),
        EvtRawtime => Some(Value::UInt(ev.time_ns)),
        EvtRawtimeS => Some(Value::UInt(ev.time_ns / 1_000_000_000)),
        EvtRawtimeNs => Some(Value::UInt(ev.time_ns % 1_000_000_000)),
        EvtSource => Some(Value::str(K8S_AUDIT_SOURCE)),
        EvtHostname => Some(Value::str(ev.hostname)),
        Static => crate::rules::fields::static_value(arg),
        // An audit event has none of a syscall event's fields.
        syscall_fields!() => None,
        // --- ka: the request
        KaAuditid => one(&["auditID"]),
        KaStage => one(&["stage"]),
        KaAuthDecision => annotation("authorization.k8s.io/decision"),
        KaAuthReason => annotation("authorization.k8s.io/reason"),
        KaAuthOpenshiftDecision => annotation("authorization.openshift.io/decision"),
        KaAuthOpenshiftUsername => annotation("authentication.openshift.io/username"),
        KaValidationsAdmissionPolicyFailure => annotation("validation.policy.admission.k8s.io/validation_failure"),
        KaSecurityPodViolations => annotation("pod-security.kubernetes.io/audit-violations"),
        KaUserName => one(&["user", "username"]),
        KaUserGroups => list(&["user", "groups"]),
        KaImpuserName => one(&["impersonatedUser", "username"]),
        KaVerb => one(&["verb"]),
        KaUri => one(&["requestURI"]),
        KaUriParam => {
            let uri = json.get("requestURI")?.as_str()?;
            query_param(uri, key?).map(|v| Value::Str(Cow::Owned(v)))
        }
        KaUseragent => one(&["userAgent"]),
        KaSourceips => pick(at(json, &["sourceIPs"])?.as_array()?.iter().map(text).collect(), index),
        KaClusterName => ev.cluster.as_deref().map(Value::str),
        KaUserForbiddenRecent => ev.forbidden_recent.map(Value::UInt),
        KaResponseCode => one(&["responseStatus", "code"]),
        KaResponseReason => one(&["responseStatus", "reason"]),
        KaRespName => one(&["responseObject", "metadata", "name"]),
        // --- ka: the object
        KaTargetName | KaReqConfigmapName => one(&["objectRef", "name"]),
        KaTargetNamespace => one(&["objectRef", "namespace"]),
        KaTargetResource => one(&["objectRef", "resource"]),
        KaTargetSubresource => one(&["objectRef", "subresource"]),
        KaTargetPodName => {
            (at(json, &["objectRef", "resource"])?.as_str()? == "pods").then(|| one(&["objectRef", "name"]))?
        }
        KaReqConfigmapObj => one(&["requestObject", "data"]),
        // --- ka: role bindings and roles
        KaReqBindingSubjects => list(&["requestObject", "subjects"]),
        KaReqBindingSubjectsUserNames => subjects(json, "User", false),
        KaReqBindingSubjectsServiceaccountNames => subjects(json, "ServiceAccount", false),
        KaReqBindingSubjectsServiceaccountNsNames => subjects(json, "ServiceAccount", true),
        KaReqBindingSubjectsGroupNames => subjects(json, "Group", false),
        KaReqBindingRole => one(&["requestObject", "roleRef", "name"]),
        KaReqBindingSubjectHasName => {
            let subjects = at(json, &["requestObject", "subjects"])?.as_array()?;
            let named = subjects.iter().any(|s| s.get("name").and_then(Json::as_str) == key);
            Some(Value::str(if named { "true" } else { "false" }))
        }
        KaReqRoleRules => list(&["requestObject", "rules"]),
        KaReqRoleRulesApiGroups => rule_values(json, "apiGroups", index),
        KaReqRoleRulesNonResourceURLs => rule_values(json, "nonResourceURLs", index),
        KaReqRoleRulesVerbs => rule_values(json, "verbs", index),
        KaReqRoleRulesResources => rule_values(json, "resources", index),
        // --- ka: services
        KaReqServiceType => one(&["requestObject", "spec", "type"]),
        KaReqServicePorts => {
            pick(at(json, &["requestObject", "spec", "ports"])?.as_array()?.iter().map(text).collect(), index)
        }
        // --- ka: pods
        KaReqPodHostIpc => one(&["requestObject", "spec", "hostIPC"]),
        KaReqPodHostNetwork | KaReqContainerHostNetwork => one(&["requestObject", "spec", "hostNetwork"]),
        KaReqPodHostPid => one(&["requestObject", "spec", "hostPID"]),
        KaReqPodRunAsUser => one(&["requestObject", "spec", "securityContext", "runAsUser"]),
        KaReqPodRunAsGroup => one(&["requestObject", "spec", "securityContext", "runAsGroup"]),
        KaReqPodFsGroup => one(&["requestObject", "spec", "securityContext", "fsGroup"]),
        KaReqPodSupplementalGroups => list(&["requestObject", "spec", "securityContext", "supplementalGroups"]),
        KaReqPodVolumesHostpath => volume_values(json, index, |v| v.get("hostPath")?.get("path").map(text)),
        KaReqPodVolumesFlexvolumeDriver => volume_values(json, index, |v| v.get("flexVolume")?.get("driver").map(text)),
        KaReqPodVolumesVolumeType => {
            let volumes = selected(at(json, &["requestObject", "spec", "volumes"])?.as_array()?, index)?;
            let kinds = volumes
                .iter()
                .filter_map(|v| v.as_object())
                .flat_map(|o| o.keys().filter(|k| *k != "name").map(|k| Value::str(k.as_str())))
                .collect();
            Some(Value::List(kinds))
        }
        KaReqVolumeHostpath => {
            let volumes = at(json, &["requestObject", "spec", "volumes"])?.as_array()?;
            let want = key?;
            let mounted =
                volumes.iter().filter_map(|v| v.get("hostPath")?.get("path")?.as_str()).any(|path| {
                    match want.strip_suffix('*') {
                        Some(prefix) => path.starts_with(prefix),
                        None => path == want,
                    }
                });
            Some(Value::str(if mounted { "true" } else { "false" }))
        }
        KaReqContainerImage => container_field(json, Main, Of::Image, Some(0)),
        KaReqContainerImageRepository => container_field(json, Main, Of::Repository, Some(0)),
        KaReqContainerPrivileged => {
            let all = each_container(json, Main, None)?;
            let any =
                all.iter().any(|c| at(c, &["securityContext", "privileged"]).and_then(Json::as_bool) == Some(true));
            Some(Value::str(if any { "true" } else { "false" }))
        }
        KaReqPodContainersName => containers(Main, Of::Name),
        KaReqPodContainersImage => containers(Main, Of::Image),
        KaReqPodContainersImageRepository => containers(Main, Of::Repository),
        KaReqPodContainersCommand => containers(Main, Of::Command),
        KaReqPodContainersArgs => containers(Main, Of::Args),
        KaReqPodContainersPrivileged => containers(Main, Of::Privileged),
        KaReqPodContainersAllowPrivilegeEscalation => containers(Main, Of::AllowPrivilegeEscalation),
        KaReqPodContainersReadOnlyFs => containers(Main, Of::ReadOnlyFs),
        KaReqPodContainersRunAsUser => containers(Main, Of::RunAsUser),
        KaReqPodContainersEffRunAsUser => containers(Main, Of::EffRunAsUser),
        KaReqPodContainersRunAsGroup => containers(Main, Of::RunAsGroup),
        KaReqPodContainersEffRunAsGroup => containers(Main, Of::EffRunAsGroup),
        KaReqPodContainersProcMount => containers(Main, Of::ProcMount),
        KaReqPodContainersAddCapabilities => containers(Main, Of::AddCapabilities),
        KaReqPodContainersHostPort => containers(Main, Of::HostPort),
        KaReqPodInitContainersName => containers(Init, Of::Name),
        KaReqPodInitContainersImage => containers(Init, Of::Image),
        KaReqPodInitContainersImageRepository => containers(Init, Of::Repository),
        KaReqPodInitContainersCommand => containers(Init, Of::Command),
        KaReqPodInitContainersArgs => containers(Init, Of::Args),
        KaReqPodInitContainersPrivileged => containers(Init, Of::Privileged),
        KaReqPodInitContainersAllowPrivilegeEscalation => containers(Init, Of::AllowPrivilegeEscalation),
        KaReqPodInitContainersReadOnlyFs => containers(Init, Of::ReadOnlyFs),
        KaReqPodInitContainersRunAsUser => containers(Init, Of::RunAsUser),
        KaReqPodInitContainersEffRunAsUser => containers(Init, Of::EffRunAsUser),
        KaReqPodInitContainersRunAsGroup => containers(Init, Of::RunAsGroup),
        KaReqPodInitContainersEffRunAsGroup => containers(Init, Of::EffRunAsGroup),
        KaReqPodInitContainersProcMount => containers(Init, Of::ProcMount),
        KaReqPodInitContainersAddCapabilities => containers(Init, Of::AddCapabilities),
        KaReqPodInitContainersHostPort => containers(Init, Of::HostPort),
        KaReqPodEphemeralContainersName => containers(Ephemeral, Of::Name),
        KaReqPodEphemeralContainersImage => containers(Ephemeral, Of::Image),
        KaReqPodEphemeralContainersImageRepository => containers(Ephemeral, Of::Repository),
        KaReqPodEphemeralContainersCommand => containers(Ephemeral, Of::Command),
        KaReqPodEphemeralContainersArgs => containers(Ephemeral, Of::Args),
        KaReqPodEphemeralContainersPrivileged => containers(Ephemeral, Of::Privileged),
        KaReqPodEphemeralContainersAllowPrivilegeEscalation => containers(Ephemeral, Of::AllowPrivilegeEscalation),
        KaReqPodEphemeralContainersReadOnlyFs => containers(Ephemeral, Of::ReadOnlyFs),
        KaReqPodEphemeralContainersRunAsUser => containers(Ephemeral, Of::RunAsUser),
        KaReqPodEphemeralContainersEffRunAsUser => containers(Ephemeral, Of::EffRunAsUser),
        KaReqPodEphemeralContainersRunAsGroup => containers(Ephemeral, Of::RunAsGroup),
        KaReqPodEphemeralContainersEffRunAsGroup => containers(Ephemeral, Of::EffRunAsGroup),
        KaReqPodEphemeralContainersProcMount => containers(Ephemeral, Of::ProcMount),
        KaReqPodEphemeralContainersAddCapabilities => containers(Ephemeral, Of::AddCapabilities),
        // --- jevt: the event as JSON
        JevtTime => s(format_clock(ev.time_ns, false, true)),
        JevtTimeIso8601 => s(format_iso8601(ev.time_ns)),
        JevtRawtime => Some(Value::UInt(ev.time_ns)),
        JevtValue => json.pointer(key?).map(text),
        JevtObj => s(json.to_string()),
    }
}

fn s<'e>(text: String) -> Option<Value<'e>> {
    Some(Value::Str(Cow::Owned(text)))
}

/// The value at `path` (object keys) in `json`.
fn at<'j>(json: &'j Json, path: &[&str]) -> Option<&'j Json> {
    path.iter().try_fold(json, |v, key| v.get(key))
}

/// A JSON value as the plugin renders it: a string as it is, anything else as its JSON.
fn text(v: &Json) -> Value<'_> {
    match v {
        Json::String(s) => Value::str(s),
        other => Value::Str(Cow::Owned(other.to_string())),
    }
}

/// All `values`, or with `index` the one at it.
fn pick(values: Vec<Value<'_>>, index: Option<usize>) -> Option<Value<'_>> {
    match index {
        None => Some(Value::List(values)),
        Some(n) => values.into_iter().nth(n),
    }
}

/// All `items`, or with `index` the one at it (`None` when there is none there).
fn selected(items: &[Json], index: Option<usize>) -> Option<Vec<&Json>> {
    match index {
        None => Some(items.iter().collect()),
        Some(n) => Some(vec![items.get(n)?]),
    }
}

/// The containers of the pod in the request (of one of its lists), or with `index` the one
/// at it.
fn each_container(json: &Json, which: Containers, index: Option<usize>) -> Option<Vec<&Json>> {
    selected(at(json, &["requestObject", "spec", which.key()])?.as_array()?, index)
}

/// One value per selected container (several for commands, arguments, capabilities and
/// ports). A container without an image makes the image fields unknown, as in the plugin;
/// one without a setting adds nothing for it, but for the effective user and group, which
/// fall back to the pod's, then 0.
fn container_field(json: &Json, which: Containers, of: Of, index: Option<usize>) -> Option<Value<'_>> {
    let containers = each_container(json, which, index)?;
    let mut out = Vec::new();
    for c in containers {
        let setting = |key: &str| at(c, &["securityContext", key]);
        match of {
            Of::Name => out.extend(c.get("name").map(text)),
            Of::Image => out.push(text(c.get("image")?)),
            Of::Repository => out.push(Value::str(repository(c.get("image")?.as_str()?))),
            Of::Command | Of::Args => {
                let key = if matches!(of, Of::Command) { "command" } else { "args" };
                out.extend(c.get(key).and_then(Json::as_array).into_iter().flatten().map(text));
            }
            Of::Privileged => out.extend(setting("privileged").map(text)),
            Of::AllowPrivilegeEscalation => out.extend(setting("allowPrivilegeEscalation").map(text)),
            Of::ReadOnlyFs => out.extend(setting("readOnlyRootFilesystem").map(text)),
            Of::RunAsUser => out.extend(setting("runAsUser").map(text)),
            Of::RunAsGroup => out.extend(setting("runAsGroup").map(text)),
            Of::ProcMount => out.extend(setting("procMount").map(text)),
            Of::EffRunAsUser | Of::EffRunAsGroup => {
                let key = if matches!(of, Of::EffRunAsUser) { "runAsUser" } else { "runAsGroup" };
                let pod = at(json, &["requestObject", "spec", "securityContext", key]);
                out.push(setting(key).or(pod).map_or(Value::str("0"), text));
            }
            Of::AddCapabilities => out.extend(
                at(c, &["securityContext", "capabilities", "add"])
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .map(text),
            ),
            // The host port, else (on the host's network it is the same) the container port.
            Of::HostPort => out.extend(
                c.get("ports")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("hostPort").or_else(|| p.get("containerPort")).map(text)),
            ),
        }
    }
    match (index, of) {
        // `[n]` of a field with one value per container is that value.
        (Some(_), Of::Name | Of::Image | Of::Repository | Of::EffRunAsUser | Of::EffRunAsGroup) => {
            out.into_iter().next()
        }
        _ => Some(Value::List(out)),
    }
}

/// An image without its tag or digest, cut as the plugin cuts it: at the first `:` (so a
/// registry with a port keeps only its host), then at `@`.
fn repository(image: &str) -> &str {
    let no_tag = image.split(':').next().unwrap_or(image);
    no_tag.split('@').next().unwrap_or(no_tag)
}

/// The names of the binding's subjects of `kind` (`namespace:name` for service accounts
/// with `namespaced`).
fn subjects<'j>(json: &'j Json, kind: &str, namespaced: bool) -> Option<Value<'j>> {
    let subjects = at(json, &["requestObject", "subjects"])?.as_array()?;
    let names = subjects
        .iter()
        .filter(|s| s.get("kind").and_then(Json::as_str) == Some(kind))
        .filter_map(|s| {
            let name = s.get("name")?.as_str()?;
            Some(match (namespaced, s.get("namespace").and_then(Json::as_str)) {
                (true, Some(ns)) => Value::Str(Cow::Owned(format!("{ns}:{name}"))),
                (true, None) => Value::Str(Cow::Owned(format!(":{name}"))),
                (false, _) => Value::str(name),
            })
        })
        .collect();
    Some(Value::List(names))
}

/// Every value of the role's rules' `key` lists (with `index`, of the rule at it).
fn rule_values<'j>(json: &'j Json, key: &str, index: Option<usize>) -> Option<Value<'j>> {
    let rules = selected(at(json, &["requestObject", "rules"])?.as_array()?, index)?;
    let values = rules.iter().filter_map(|r| r.get(key)?.as_array()).flatten().map(text).collect();
    Some(Value::List(values))
}

/// One value per volume of the pod in the request that `value` finds one in (with `index`,
/// of the volume at it).
fn volume_values<'j>(
    json: &'j Json,
    index: Option<usize>,
    value: impl Fn(&'j Json) -> Option<Value<'j>>,
) -> Option<Value<'j>> {
    let volumes = at(json, &["requestObject", "spec", "volumes"])?.as_array()?;
    match index {
        None => Some(Value::List(volumes.iter().filter_map(value).collect())),
        Some(n) => value(volumes.get(n)?),
    }
}

/// The first value of query parameter `name` in `uri`, decoded (`%XX`, `+` for a space).
fn query_param(uri: &str, name: &str) -> Option<String> {
    let (_, query) = uri.split_once('?')?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
