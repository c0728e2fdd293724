//! Tells a call whose answer was lost from one that was refused: an attempt that was sent and got no response (the
//! connection reset or timed out) may have taken effect at AWS, so what its retry meets may be this call's own work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Watches one call's attempts: set once any attempt was sent and ended without a response. Add it to the call with
/// `.customize().interceptor(watch.clone())`, and ask [`AnswerWatch::lost`] when the call failed.
#[derive(Debug, Clone, Default)]
pub struct AnswerWatch(Arc<AtomicBool>);

impl AnswerWatch {
    pub fn new() -> Self {
        AnswerWatch::default()
    }

    /// Whether an attempt of the call may have taken effect although its answer never arrived.
    pub fn lost(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Intercept for AnswerWatch {
    fn name(&self) -> &'static str {
        "AnswerWatch"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The request itself is gone by now (the HTTP client took it); no response and a transport failure is what
        // a reset or a timeout after sending looks like. A connection refused looks the same and is counted too:
        // the state read afterwards shows whether anything took effect.
        let unanswered = context.response().is_none();
        let lost = matches!(context.output_or_error(), Some(Err(e))
            if e.is_timeout_error() || e.as_connector_error().is_some_and(|c| !c.is_user()));
        if unanswered && lost {
            self.0.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}
