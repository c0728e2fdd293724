//! Who may call: like other local AWS emulators, any access key by default; with verification on, SigV4 checked
//! against the documented key pair for every service, failures answered with AWS's own codes.
//!
//! The expected signature is computed with `aws-sigv4` (the SDK's signer) over exactly the headers the request says
//! it signed, at the request's own `x-amz-date`, with each service's canonicalisation (S3 encodes the path once and
//! signs `x-amz-content-sha256`; the others encode twice).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::client::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use crate::wire::ApiError;

/// How the emulator treats credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Any access key and any signature (the default): a client configured for AWS works unchanged.
    #[default]
    AnyKey,
    /// Only the documented pair, with a valid signature (`--verify-signatures`).
    Verify,
}

/// The parts of a SigV4 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::new("IncompleteSignature", 403, message)
}

/// Reads `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, SignedHeaders=a;b, Signature=<hex>`.
pub fn parse(header: &str) -> Result<Authorization, ApiError> {
    let rest = header
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| incomplete("Authorization must use the AWS4-HMAC-SHA256 algorithm"))?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(incomplete(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters",
        ));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(incomplete(format!(
            "Credential `{credential}` is not <key>/<date>/<region>/<service>/aws4_request"
        )));
    };
    Ok(Authorization {
        access_key: key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(String::from).collect(),
        signature: signature.to_string(),
    })
}

/// The signature the documented credentials give this request. `body` is the payload for services that hash it;
/// S3 requests carry their payload hash (or streaming marker) in `x-amz-content-sha256` instead.
pub fn expected_signature(
    auth: &Authorization,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: Option<&[u8]>,
) -> Result<String, ApiError> {
    let s3 = auth.service == "s3";
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let amz_date = header("x-amz-date").ok_or_else(|| incomplete("the request has no x-amz-date header"))?;
    let time = time::PrimitiveDateTime::parse(
        amz_date,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map_err(|_| incomplete(format!("x-amz-date `{amz_date}` is not a SigV4 date")))?
    .assume_utc();
    // The signer adds x-amz-date (and, for S3, x-amz-content-sha256) itself; every other signed header goes in as sent.
    let own = |name: &str| name == "x-amz-date" || (s3 && name == "x-amz-content-sha256");
    let mut signed = Vec::new();
    for name in auth.signed_headers.iter().filter(|n| !own(n)) {
        let value = header(name).ok_or_else(|| incomplete(format!("signed header `{name}` is not in the request")))?;
        signed.push((name.as_str(), value));
    }
    let body = match (s3, body) {
        (true, _) => {
            SignableBody::Precomputed(header("x-amz-content-sha256").unwrap_or("UNSIGNED-PAYLOAD").to_string())
        }
        (false, Some(bytes)) => SignableBody::Bytes(bytes),
        (false, None) => SignableBody::Bytes(&[]),
    };
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(Vec::new());
    if s3 {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let identity: Identity = Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "keeper-local").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(&auth.service)
        .time(SystemTime::from(time))
        .settings(settings)
        .build()
        .map_err(|e| incomplete(format!("cannot sign: {e}")))?
        .into();
    let request = SignableRequest::new(method.as_str(), uri.to_string(), signed.into_iter(), body)
        .map_err(|e| incomplete(format!("cannot read the request for signing: {e}")))?;
    let output = sign(request, &params).map_err(|e| incomplete(format!("cannot sign: {e}")))?;
    Ok(output.signature().to_string())
}

/// Checks a request under `mode`. Returns the signature the documented pair gives it when the caller's own must be
/// replaced (any key, for S3, whose library checks signatures itself), or nothing when the request passes as is.
pub fn check(
    mode: Mode,
    auth: &Authorization,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: Option<&[u8]>,
) -> Result<Option<String>, ApiError> {
    match mode {
        Mode::AnyKey if auth.service != "s3" => Ok(None),
        Mode::AnyKey => {
            let expected = expected_signature(auth, method, uri, headers, body)?;
            Ok((auth.access_key != ACCESS_KEY_ID || auth.signature != expected).then_some(expected))
        }
        Mode::Verify => {
            if auth.access_key != ACCESS_KEY_ID {
                return Err(ApiError::new(
                    "InvalidAccessKeyId",
                    403,
                    format!(
                        "The AWS Access Key Id you provided does not exist in our records ({}); this emulator verifies signatures against {ACCESS_KEY_ID}",
                        auth.access_key
                    ),
                ));
            }
            let expected = expected_signature(auth, method, uri, headers, body)?;
            if auth.signature != expected {
                return Err(ApiError::new(
                    "SignatureDoesNotMatch",
                    403,
                    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
                ));
            }
            Ok(None)
        }
    }
}

/// The `Authorization` header with the documented key and `signature` in place of the caller's.
pub fn resigned(auth: &Authorization, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{}/{}/{}/aws4_request, SignedHeaders={}, Signature={signature}",
        auth.date,
        auth.region,
        auth.service,
        auth.signed_headers.join(";")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_sdk_style_header_when_parsed_then_scope_and_signed_headers() {
        let a = parse("AWS4-HMAC-SHA256 Credential=AKID/20261123/eu-west-1/imagebuilder/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab12").unwrap();
        assert_eq!(
            (a.access_key.as_str(), a.region.as_str(), a.service.as_str()),
            ("AKID", "eu-west-1", "imagebuilder")
        );
        assert_eq!(a.signed_headers, vec!["host", "x-amz-date"]);
        assert_eq!(a.signature, "ab12");
        for bad in [
            "Bearer x",
            "AWS4-HMAC-SHA256 Credential=A/B, SignedHeaders=host, Signature=x",
            "AWS4-HMAC-SHA256 Credential=A/1/r/s/aws4_request",
        ] {
            assert_eq!(parse(bad).unwrap_err().code, "IncompleteSignature", "{bad}");
        }
    }
}
