//! Logs in the format Lambda's advanced logging expects, and CloudWatch Embedded Metric Format (EMF) counters.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tracing_subscriber::EnvFilter;

use crate::config::Lookup;
use crate::report::{Outcome, Report};

/// The log filter: `RUST_LOG` when set (full directive syntax), else `AWS_LAMBDA_LOG_LEVEL` (Lambda's application log
/// level; FATAL has no tracing equivalent and maps to error), else info.
pub fn log_filter(lookup: &Lookup<'_>) -> String {
    if let Some(rust_log) = lookup.string("RUST_LOG") {
        return rust_log;
    }
    match lookup.string("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()).as_deref() {
        Some("fatal") => "error".into(),
        Some(level @ ("trace" | "debug" | "info" | "warn" | "error")) => level.into(),
        _ => "info".into(),
    }
}

/// JSON lines when Lambda's log format is JSON (it then filters by the `level` field), plain text otherwise.
pub fn json_logs(lookup: &Lookup<'_>) -> bool {
    lookup.string("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"))
}

/// Installs the global subscriber once; a second call (tests, the local runner) leaves the first in place.
pub fn init(lookup: &Lookup<'_>) {
    let filter = EnvFilter::try_new(log_filter(lookup)).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: Lambda's text log format, a CI log or a pipe would keep the escape codes.
    let ansi = std::io::stderr().is_terminal() && lookup.string("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = if json_logs(lookup) {
        builder.json().flatten_event(true).with_current_span(false).without_time().try_init()
    } else {
        builder.without_time().try_init()
    };
    if result.is_err() {
        tracing::debug!("tracing already initialised");
    }
}

/// One invocation's counters, written as one EMF line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    namespace: String,
    function: String,
    counts: BTreeMap<String, u64>,
}

impl Metrics {
    pub fn new(namespace: impl Into<String>, function: impl Into<String>) -> Self {
        Metrics { namespace: namespace.into(), function: function.into(), counts: BTreeMap::new() }
    }

    /// The counts of a report: one counter per outcome (applied, skipped, failed, planned), zeros included so that
    /// dashboards and alarms see a value on every run.
    pub fn from_report(namespace: impl Into<String>, report: &Report) -> Self {
        let mut metrics = Metrics::new(namespace, report.function.clone());
        for outcome in Outcome::ALL {
            metrics.add(outcome.as_str(), report.count(outcome) as u64);
        }
        if report.error.is_some() {
            metrics.add(Outcome::Failed.as_str(), 1);
        }
        metrics
    }

    pub fn add(&mut self, name: &str, n: u64) -> &mut Self {
        *self.counts.entry(name.to_string()).or_insert(0) += n;
        self
    }

    pub fn get(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Every counter, by name.
    pub fn counts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counts.iter().map(|(name, count)| (name.as_str(), *count))
    }

    /// The EMF document: `_aws` metadata, the `function` dimension, one member per counter.
    pub fn emf_line(&self, timestamp_ms: u64) -> String {
        let metrics: Vec<_> = self.counts.keys().map(|name| json!({"Name": name, "Unit": "Count"})).collect();
        let mut doc = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{"Namespace": self.namespace, "Dimensions": [["function"]], "Metrics": metrics}]
            },
            "function": self.function,
        });
        for (name, count) in &self.counts {
            doc[name.as_str()] = json!(count);
        }
        doc.to_string()
    }

    /// Writes the EMF line to stdout, where Lambda's log agent extracts the metrics (never through the log
    /// formatter, which would wrap it).
    pub fn emit(&self) {
        println!("{}", self.emf_line_now());
    }

    /// The EMF line stamped with the current time.
    pub fn emf_line_now(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        self.emf_line(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Action;

    #[test]
    fn given_log_variables_when_filter_chosen_then_rust_log_wins_then_lambda_level() {
        assert_eq!(log_filter(&Lookup::from_pairs(&[])), "info");
        assert_eq!(log_filter(&Lookup::from_pairs(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")])), "debug");
        assert_eq!(log_filter(&Lookup::from_pairs(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")])), "error");
        assert_eq!(log_filter(&Lookup::from_pairs(&[("AWS_LAMBDA_LOG_LEVEL", "loud")])), "info");
        assert_eq!(
            log_filter(&Lookup::from_pairs(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG"), ("RUST_LOG", "shared=trace")])),
            "shared=trace"
        );
        assert!(json_logs(&Lookup::from_pairs(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")])));
        assert!(!json_logs(&Lookup::from_pairs(&[("AWS_LAMBDA_LOG_FORMAT", "Text")])));
    }

    #[test]
    fn given_report_when_written_as_emf_then_cloudwatch_reads_counters_with_function_dimension() {
        let mut report = Report::new("start-idle-image-builders", "e", false);
        report.push(Action::new("b1", "start", Outcome::Applied, ""));
        report.push(Action::new("b2", "start", Outcome::Applied, ""));
        report.push(Action::new("b3", "start", Outcome::Skipped, "running"));
        let mut metrics = Metrics::from_report("keeper", &report);
        metrics.add("started", 2);
        let line: serde_json::Value = serde_json::from_str(&metrics.emf_line(1_700_000_000_000)).unwrap();
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000u64);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "keeper");
        assert_eq!(directive["Dimensions"], json!([["function"]]));
        let names: Vec<&str> =
            directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["applied", "failed", "planned", "skipped", "started"]);
        assert_eq!(line["function"], "start-idle-image-builders");
        assert_eq!(
            (line["applied"].clone(), line["skipped"].clone(), line["failed"].clone()),
            (json!(2), json!(1), json!(0))
        );
        assert_eq!(line["started"], 2);
    }

    #[test]
    fn given_permanent_failure_in_report_when_counted_then_failed_is_one() {
        let mut report = Report::new("f", "e", false);
        report.error =
            Some(crate::report::Failure { error_type: "Permanent.InvalidInput".into(), error_message: "x".into() });
        assert_eq!(Metrics::from_report("keeper", &report).get("failed"), 1);
    }
}
