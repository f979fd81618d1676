//! A benchmark's outcome on a node: a table for people, JSON and JUnit XML for pipelines.

use std::fmt::Write as _;

use super::{CheckResult, Status};

/// Every check's outcome on one node.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// `cis-1.12`.
    pub benchmark: String,
    pub title: String,
    /// The kubelet process read.
    pub kubelet_pid: u32,
    pub results: Vec<CheckResult>,
    /// What the reader should know: processes passed over, a configuration that did not parse.
    pub notes: Vec<String>,
}

impl Report {
    /// How many checks ended `status`.
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// Whether any check failed (the command's exit code).
    pub fn failed(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    /// One line per check, then the remediation of each that did not pass, then the totals.
    pub fn table(&self) -> String {
        let mut out = format!("{} (kubelet pid {})\n", self.title, self.kubelet_pid);
        let clean = |s: &str| s.replace(|c: char| c.is_control(), "?");
        for r in &self.results {
            let _ = writeln!(
                out,
                "[{}] {:<7} {}\n          observed: {} ({}); expected: {}",
                r.status.as_str(),
                r.id,
                r.text,
                clean(&r.observed),
                clean(&r.source),
                r.expected
            );
        }
        let not_passed: Vec<&CheckResult> = self.results.iter().filter(|r| r.status != Status::Pass).collect();
        if !not_passed.is_empty() {
            out.push_str("\nRemediations:\n");
            for r in not_passed {
                let _ = writeln!(out, "{} {}", r.id, r.remediation);
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {}", clean(note));
        }
        let _ = writeln!(
            out,
            "\n{} checks PASS, {} FAIL, {} WARN",
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Warn)
        );
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> serde_json::Value {
        let mut json = serde_json::to_value(self).unwrap_or_default();
        json["totals"] = serde_json::json!({
            "pass": self.count(Status::Pass), "fail": self.count(Status::Fail), "warn": self.count(Status::Warn),
        });
        json
    }

    /// The report as JUnit XML: a test case per check, a failure for Fail, `skipped` with
    /// the reason for Warn (a manual check to look at, not a broken build).
    pub fn junit(&self) -> String {
        let esc = |s: &str| crate::html::escape(s);
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n\
             <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
            esc(&self.benchmark),
            self.results.len(),
            self.count(Status::Fail),
            self.count(Status::Warn),
            esc(&self.title),
            self.results.len(),
            self.count(Status::Fail),
            self.count(Status::Warn),
        );
        for r in &self.results {
            let _ = write!(
                out,
                "  <testcase classname=\"{}\" name=\"{} {}\">",
                esc(&self.benchmark),
                esc(&r.id),
                esc(&r.text)
            );
            let detail = format!(
                "observed: {} ({}); expected: {}\nremediation: {}",
                r.observed, r.source, r.expected, r.remediation
            );
            match r.status {
                Status::Pass => {}
                Status::Fail => {
                    let _ = write!(out, "<failure message=\"{}\">{}</failure>", esc(&r.observed), esc(&detail));
                }
                Status::Warn => {
                    let _ = write!(
                        out,
                        "<skipped message=\"WARN: {}\"/><system-out>{}</system-out>",
                        esc(&r.observed),
                        esc(&detail)
                    );
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("</testsuite>\n</testsuites>\n");
        out
    }
}
