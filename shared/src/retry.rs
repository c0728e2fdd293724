//! Retries: the SDK retry configuration that fixes what the SDK gets wrong for these services, and the bounded
//! read-modify-write loop for conflicts that need a fresh read (CloudFront's `PreconditionFailed`).
//!
//! What the SDK does by itself (see the wire facts): standard mode retries 500/502/503/504, IO errors, and a fixed list
//! of throttling codes that includes `LimitExceededException`. It does NOT retry Image Builder's
//! `CallRateLimitExceededException` (HTTP 429), AppStream's `ConcurrentModificationException` or Image Builder's
//! `ResourceInUseException`. [`KeeperRetryClassifier`] runs after the SDK's own classifiers and corrects exactly
//! those cases. Nothing here wraps an SDK call in a second retry loop: retries would multiply.

use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction, RetryClassifierPriority};
use aws_smithy_types::retry::{ErrorKind, RetryConfig};

use crate::config::Settings;

/// Standard mode, with the attempts and first backoff step from the settings.
pub fn retry_config(settings: &Settings) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(settings.max_attempts)
        .with_initial_backoff(settings.retry_initial_backoff)
}

/// How keeper treats an AWS error code, whatever the SDK thinks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rate limiting: retry with the SDK's exponential backoff, counted as throttling.
    Throttled,
    /// Another change is under way on the resource: retry, after a longer wait than a throttle.
    Contention,
    /// An account quota: retrying cannot help and only burns the Lambda's time.
    Quota,
}

/// keeper's verdict on an error code, or `None` to leave the SDK's classification alone.
pub fn verdict(code: &str) -> Option<Verdict> {
    match code {
        // Image Builder, HTTP 429; the SDK's throttling list does not name it.
        "CallRateLimitExceededException" => Some(Verdict::Throttled),
        // AppStream: a concurrent start/stop/update of the same builder.
        "ConcurrentModificationException" => Some(Verdict::Contention),
        // Image Builder: a lifecycle execution or an update is already running on the resource.
        "ResourceInUseException" => Some(Verdict::Contention),
        // AppStream: an account quota, although the SDK's throttling list names it.
        "LimitExceededException" => Some(Verdict::Quota),
        _ => None,
    }
}

/// Cleans an error code as the SDK does: `aws.x#Foo:http://…` → `Foo`.
pub fn sanitize_code(raw: &str) -> &str {
    let before_colon = raw.split(':').next().unwrap_or(raw);
    before_colon.rsplit('#').next().unwrap_or(before_colon).trim()
}

/// The error code of a raw error response, read the way the SDK's deserializers read it for these protocols:
/// `x-amzn-errortype` (awsJson1_1, restJson1), then a JSON body's `code` or `__type`, then a CBOR body's `__type`
/// (RPC v2 CBOR ignores the header, but then the server does not send one). CloudFront's XML codes are never
/// reclassified, so XML is not read.
pub fn error_code(header: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Option<String> {
    if let Some(h) = header.map(sanitize_code).filter(|h| !h.is_empty()) {
        return Some(h.to_string());
    }
    let content_type = content_type.unwrap_or_default().to_ascii_lowercase();
    let from_body = if content_type.contains("cbor") {
        let value: ciborium::Value = ciborium::from_reader(body).ok()?;
        value.as_map()?.iter().find_map(|(k, v)| (k.as_text()? == "__type").then(|| v.as_text().map(String::from))?)
    } else {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        ["code", "__type"].iter().find_map(|k| value.get(*k)?.as_str().map(String::from))
    };
    from_body.map(|c| sanitize_code(&c).to_string()).filter(|c| !c.is_empty())
}

/// The retry classifier every keeper client gets (see the module docs).
#[derive(Debug, Clone)]
pub struct KeeperRetryClassifier {
    /// The base of the wait after a contention error; the wait is 4 to 8 times it, jittered.
    initial_backoff: Duration,
    /// Codes a client must never retry, whatever the SDK or [`verdict`] says: what they mean for its calls cannot
    /// pass within a retry's wait.
    final_codes: &'static [&'static str],
}

impl KeeperRetryClassifier {
    pub fn new(settings: &Settings) -> Self {
        KeeperRetryClassifier { initial_backoff: settings.retry_initial_backoff, final_codes: &[] }
    }

    /// The same classifier, never retrying `codes` (Image Builder's ResourceInUseException on
    /// StartResourceStateUpdate means a lifecycle execution runs for minutes or hours: the caller skips the build).
    pub fn never_retrying(mut self, codes: &'static [&'static str]) -> Self {
        self.final_codes = codes;
        self
    }

    /// The action for a verdict; `random` in [0, 1) jitters the contention wait.
    pub fn action(&self, verdict: Verdict, random: f64) -> RetryAction {
        match verdict {
            Verdict::Throttled => RetryAction::throttling_error(),
            Verdict::Contention => RetryAction::retryable_error_with_explicit_delay(
                ErrorKind::TransientError,
                self.initial_backoff.mul_f64(4.0 + 4.0 * random.clamp(0.0, 1.0)),
            ),
            Verdict::Quota => RetryAction::RetryForbidden,
        }
    }
}

impl ClassifyRetry for KeeperRetryClassifier {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        // Only a response that deserialised to an error is ours to judge; IO errors and timeouts stay the SDK's.
        let Some(Err(error)) = ctx.output_or_error() else { return RetryAction::NoActionIndicated };
        if error.as_operation_error().is_none() {
            return RetryAction::NoActionIndicated;
        }
        let Some(response) = ctx.response() else { return RetryAction::NoActionIndicated };
        let headers = response.headers();
        let body = response.body().bytes().unwrap_or_default();
        let code = error_code(headers.get("x-amzn-errortype"), headers.get("content-type"), body);
        if code.as_deref().is_some_and(|c| self.final_codes.contains(&c)) {
            return RetryAction::RetryForbidden;
        }
        match code.as_deref().and_then(verdict) {
            Some(v) => self.action(v, fastrand::f64()),
            None => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "keeper error-code classifier"
    }

    fn priority(&self) -> RetryClassifierPriority {
        // After the SDK's error-code, modeled and transient classifiers, so our verdict is the last word.
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// The delay before retry `attempt` (0 = first retry): exponential, capped, full jitter (`random` in [0, 1)).
pub fn full_jitter_delay(attempt: u32, base: Duration, cap: Duration, random: f64) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(attempt.min(31)));
    exponential.min(cap).mul_f64(random.clamp(0.0, 1.0))
}

/// Bounds of a read-modify-write loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RmwPolicy {
    /// Rounds (read, plan, write), the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Time kept free before the deadline: no round starts that could not finish before it.
    pub margin: Duration,
}

impl Default for RmwPolicy {
    fn default() -> Self {
        RmwPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            margin: Duration::from_secs(5),
        }
    }
}

/// Runs `round` (read, re-plan, write) until it succeeds, fails with an error that is not a conflict, runs out of
/// attempts, or would run past `deadline` minus the margin. `round` gets the attempt number (0-based). The last
/// error is returned when the loop gives up.
pub async fn read_modify_write<T, E, F, Fut>(
    policy: &RmwPolicy,
    deadline: Option<Instant>,
    is_conflict: impl Fn(&E) -> bool,
    mut round: F,
) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        let error = match round(attempt).await {
            Ok(value) => return Ok(value),
            Err(e) if !is_conflict(&e) => return Err(e),
            Err(e) => e,
        };
        attempt += 1;
        if attempt >= policy.max_attempts {
            tracing::warn!(attempts = attempt, "read-modify-write gave up: still conflicting");
            return Err(error);
        }
        let delay = full_jitter_delay(attempt - 1, policy.base_delay, policy.max_delay, fastrand::f64());
        if let Some(deadline) = deadline
            && Instant::now() + delay + policy.margin >= deadline
        {
            tracing::warn!(attempts = attempt, "read-modify-write gave up: the deadline is near");
            return Err(error);
        }
        tracing::info!(attempt, delay_ms = delay.as_millis() as u64, "conflict; re-reading before the next write");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests;
