//! Logs in the format Lambda's advanced logging expects, and CloudWatch Embedded Metric Format (EMF) counters.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tracing_subscriber::EnvFilter;

use crate::config::Lookup;
use crate::report::{Outcome, Report, Verb};

/// The log filter: `RUST_LOG` when set (full directive syntax), else `AWS_LAMBDA_LOG_LEVEL` (Lambda's application log
/// level; FATAL has no tracing equivalent and maps to error), else info.
pub fn log_filter(lookup: &Lookup<'_>) -> String {
    if let Some(rust_log) = lookup.string("RUST_LOG") {
        return rust_log;
    }
    let level = match lookup.string("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()).as_deref() {
        Some("fatal") => "error".to_string(),
        Some(level @ ("trace" | "debug" | "info" | "warn" | "error")) => level.to_string(),
        _ => "info".to_string(),
    };
    match level.as_str() {
        // The SDK and its HTTP stack write whole request and response bodies at TRACE (keys, documents): keeper's
        // own lines go to TRACE, theirs stop at DEBUG, so no log level puts a key body in the function's logs.
        "trace" => format!("trace,{}", WIRE_TARGETS.map(|t| format!("{t}=debug")).join(",")),
        _ => level,
    }
}

/// The crates that log what goes over the wire, bodies included, at TRACE.
const WIRE_TARGETS: [&str; 7] = [
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_smithy_http",
    "aws_sigv4",
    "hyper",
    "hyper_util",
];

/// JSON lines when Lambda's log format is JSON (it then filters by the `level` field), plain text otherwise.
pub fn json_logs(lookup: &Lookup<'_>) -> bool {
    lookup.string("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"))
}

/// Lambda's levels, lowest first, as its log-level filter orders them.
pub const LAMBDA_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// The level Lambda filters application logs at (`AWS_LAMBDA_LOG_LEVEL`, INFO when unset or unknown).
pub fn lambda_level(lookup: &Lookup<'_>) -> &'static str {
    lookup.string("AWS_LAMBDA_LOG_LEVEL").and_then(|l| level_rank(&l)).map(|i| LAMBDA_LEVELS[i]).unwrap_or("INFO")
}

/// The `level` the EMF line carries: Lambda drops a JSON line below its filter, and a line without a valid `level`
/// counts as INFO, so at WARN and above the metrics (and every alarm on them) would vanish. The line is stamped with
/// the filter's own level, never below INFO, so it passes whatever level the function is deployed with.
static EMF_LEVEL: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// The level the EMF line is written at (see [`EMF_LEVEL`]).
pub fn emf_level() -> &'static str {
    EMF_LEVEL.get().copied().unwrap_or("INFO")
}

/// Where a level stands in [`LAMBDA_LEVELS`] (any case, as Lambda reads it), if it is one.
fn level_rank(level: &str) -> Option<usize> {
    LAMBDA_LEVELS.iter().position(|x| x.eq_ignore_ascii_case(level))
}

/// INFO's rank: what Lambda gives a line without a valid level or timestamp.
const INFO_RANK: usize = 2;

/// The EMF level for a filter level: the filter's, or INFO below it.
pub fn emf_level_for(filter: &str) -> &'static str {
    LAMBDA_LEVELS[level_rank(filter).unwrap_or(INFO_RANK).max(INFO_RANK)]
}

/// keeper's subscriber writing to `writer`. JSON lines carry `level` and an RFC 3339 `timestamp`: Lambda's filter
/// gives a line without a valid timestamp the level INFO, and would drop the ERROR lines at WARN and above.
pub fn subscriber<W>(lookup: &Lookup<'_>, writer: W, ansi: bool) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(log_filter(lookup)).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).with_writer(writer);
    if json_logs(lookup) {
        Box::new(builder.json().flatten_event(true).with_current_span(false).finish())
    } else {
        // Text logs are not filtered by Lambda, and Lambda stamps each line itself.
        Box::new(builder.without_time().finish())
    }
}

/// Installs the global subscriber once; a second call (tests, the local runner) leaves the first in place.
pub fn init(lookup: &Lookup<'_>) {
    let _ = EMF_LEVEL.set(emf_level_for(lambda_level(lookup)));
    // Colour only for a person at a terminal: Lambda's text log format, a CI log or a pipe would keep the escape codes.
    let ansi = std::io::stderr().is_terminal() && lookup.string("NO_COLOR").is_none_or(|v| v.is_empty());
    if tracing::subscriber::set_global_default(subscriber(lookup, std::io::stderr, ansi)).is_err() {
        tracing::debug!("tracing already initialised");
    }
}

/// Lambda's application log-level filter for the JSON log format, as documented: a line that is a JSON object with a
/// valid `level` and a valid RFC 3339 `timestamp` has that level; any other line (text, no level, an unknown level,
/// no or a bad timestamp) is INFO. A line is kept when its level is at or above the filter's.
pub fn lambda_keeps(line: &str, filter: &str) -> bool {
    let parsed: Option<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(line).ok();
    let level = parsed
        .as_ref()
        .filter(|o| {
            o.get("timestamp")
                .and_then(|t| t.as_str())
                .is_some_and(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok())
        })
        .and_then(|o| o.get("level").and_then(|l| l.as_str()).and_then(level_rank))
        .unwrap_or(INFO_RANK);
    level >= level_rank(filter).unwrap_or(INFO_RANK)
}

/// One invocation's counters, written as one EMF line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    namespace: String,
    function: String,
    /// The deployment (`KEEPER_STACK`): several stacks in one account keep their metrics, and alarms, apart.
    stack: String,
    counts: BTreeMap<String, u64>,
}

impl Metrics {
    pub fn new(namespace: impl Into<String>, function: impl Into<String>) -> Self {
        Metrics {
            namespace: namespace.into(),
            function: function.into(),
            stack: "keeper".into(),
            counts: BTreeMap::new(),
        }
    }

    /// The same counters for the deployment `stack`.
    pub fn with_stack(mut self, stack: impl Into<String>) -> Self {
        self.stack = stack.into();
        self
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

    /// Adds the counter of every verb that has one: its applied lines, zero included, so that every counter is on
    /// the EMF line of every run.
    pub fn count_verbs<V: Verb>(&mut self, report: &Report) -> &mut Self {
        for verb in V::ALL {
            if let Some(metric) = verb.metric() {
                self.add(metric, report.count_verb(*verb, Outcome::Applied) as u64);
            }
        }
        self
    }

    pub fn get(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Every counter, by name.
    pub fn counts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counts.iter().map(|(name, count)| (name.as_str(), *count))
    }

    /// The EMF document: `_aws` metadata, the `function` and `stack` dimensions, one member per counter, and the
    /// `level` and `timestamp` Lambda's log filter reads (see [`emf_level`]).
    pub fn emf_line(&self, timestamp_ms: u64) -> String {
        self.emf_line_at(timestamp_ms, emf_level())
    }

    /// The EMF document stamped with `level`.
    pub fn emf_line_at(&self, timestamp_ms: u64, level: &str) -> String {
        let metrics: Vec<_> = self.counts.keys().map(|name| json!({"Name": name, "Unit": "Count"})).collect();
        let mut doc = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["function", "stack"]],
                    "Metrics": metrics
                }]
            },
            "function": self.function,
            "stack": self.stack,
            "level": level,
            "timestamp": rfc3339_ms(timestamp_ms),
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

/// Epoch milliseconds as RFC 3339 (UTC, milliseconds).
fn rfc3339_ms(ms: u64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time.format(&format).unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Action;

    #[test]
    fn given_log_variables_when_filter_chosen_then_rust_log_wins_then_lambda_level() {
        assert_eq!(log_filter(&Lookup::from_pairs(&[])), "info");
        assert_eq!(log_filter(&Lookup::from_pairs(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")])), "debug");
        let trace = log_filter(&Lookup::from_pairs(&[("AWS_LAMBDA_LOG_LEVEL", "TRACE")]));
        assert!(
            trace.starts_with("trace,") && trace.contains("aws_smithy_runtime=debug"),
            "the wire stays out: {trace}"
        );
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
        assert_eq!(directive["Dimensions"], json!([["function", "stack"]]));
        assert_eq!(line["stack"], "keeper");
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
            Some(crate::classify::Failure { error_type: "Permanent.InvalidInput".into(), error_message: "x".into() });
        assert_eq!(Metrics::from_report("keeper", &report).get("failed"), 1);
    }

    /// A writer the test reads back: every line the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn given_each_level_the_template_allows_when_lambda_filters_keepers_lines_then_errors_and_metrics_pass_and_info_only_at_or_below_info()
     {
        for level in LAMBDA_LEVELS {
            // GIVEN keeper deployed with JSON logs at `level`, writing each kind of line it writes
            let lookup = Lookup::from_pairs(&[("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("AWS_LAMBDA_LOG_LEVEL", level)]);
            let captured = Captured::default();
            tracing::subscriber::with_default(subscriber(&lookup, captured.clone(), false), || {
                tracing::info!(function = "f", "invocation");
                tracing::warn!(report = "{}", "run ended with an error");
                tracing::error!(target = "b1", error_type = "Retryable.Throttled", "target failed");
            });
            let written = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
            let lines: Vec<&str> = written.lines().collect();
            let mut metrics = Metrics::new("keeper", "f");
            metrics.add("failed", 1);
            let emf = metrics.emf_line_at(1_700_000_000_000, emf_level_for(lambda_level(&lookup)));
            // WHEN Lambda's documented filter reads them
            let kept = |needle: &str| lines.iter().filter(|l| l.contains(needle)).any(|l| lambda_keeps(l, level));
            // THEN the ERROR line and the metrics pass at every level, and no line is mislevelled as INFO
            assert!(lambda_keeps(&emf, level), "EMF line dropped at {level}: {emf}");
            let emf_doc: serde_json::Value = serde_json::from_str(&emf).unwrap();
            assert_eq!(emf_doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "failed");
            let at_most =
                |l: &str| LAMBDA_LEVELS.iter().position(|x| *x == level) <= LAMBDA_LEVELS.iter().position(|x| *x == l);
            assert_eq!(kept("target failed"), at_most("ERROR"), "ERROR line at {level}: {written}");
            assert_eq!(kept("run ended"), at_most("WARN"), "WARN line at {level}: {written}");
            assert_eq!(kept("invocation"), at_most("INFO"), "INFO line at {level}: {written}");
            for line in &lines {
                let doc: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(doc["level"].is_string() && doc["timestamp"].is_string(), "{line}");
            }
        }
    }

    #[test]
    fn given_lines_without_level_or_time_when_lambda_filters_at_warn_then_they_count_as_info_and_are_dropped() {
        // The rule the test above relies on, on the lines keeper used to write.
        assert!(!lambda_keeps(r#"{"_aws":{},"failed":1}"#, "WARN"));
        assert!(!lambda_keeps(r#"{"level":"ERROR","message":"no time"}"#, "WARN"));
        assert!(!lambda_keeps(r#"{"level":"ERROR","timestamp":"yesterday"}"#, "WARN"));
        assert!(!lambda_keeps("plain text", "WARN"));
        assert!(!lambda_keeps(r#"{"level":"error","timestamp":"2026-12-02T00:00:00.000Z"}"#, "FATAL"));
        assert!(lambda_keeps(r#"{"level":"FATAL","timestamp":"2026-12-02T00:00:00.000Z"}"#, "FATAL"));
        assert!(lambda_keeps(r#"{"level":"error","timestamp":"2026-12-02T00:00:00.000Z"}"#, "WARN"));
        assert_eq!(emf_level_for("DEBUG"), "INFO");
        assert_eq!(emf_level_for("ERROR"), "ERROR");
    }
}
