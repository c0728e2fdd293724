//! The signing key pairs of managed rotations: made with aws-lc-rs (RSA 2048 or EC P-256, what CloudFront accepts),
//! kept as PKCS#8 PEM, and proved by signing a CloudFront canned-policy URL and verifying the signature with the
//! public key as CloudFront stores it. No `Debug` or `Display` of a private key prints it.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey};
use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};
use spki::SubjectPublicKeyInfoOwned;
use spki::der::DecodePem;
use spki::der::pem::{self, LineEnding};

pub use crate::config::Algorithm;

/// A private key as PKCS#8 PEM. Its `Debug` says only that it is one, so no log line, report or error that formats
/// a value holding it can carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrivateKey(String);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(redacted)")
    }
}

impl PrivateKey {
    /// The PEM text, for the secret's value and nothing else.
    pub fn expose_pem(&self) -> &str {
        &self.0
    }
}

/// Why a key could not be made, read or proved. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// A new key pair.
#[derive(Debug, Clone)]
pub struct Generated {
    pub private_key: PrivateKey,
    /// SubjectPublicKeyInfo PEM, what CreatePublicKey takes.
    pub public_key_pem: String,
}

fn failed(what: &str) -> impl FnOnce(aws_lc_rs::error::Unspecified) -> KeyError + '_ {
    move |_| KeyError(format!("aws-lc-rs could not {what}"))
}

fn to_pem(label: &str, der: &[u8]) -> Result<String, KeyError> {
    pem::encode_string(label, LineEnding::LF, der).map_err(|e| KeyError(format!("PEM encoding: {e}")))
}

/// Makes a key pair of `algorithm` from the system's random source.
pub fn generate(algorithm: Algorithm) -> Result<Generated, KeyError> {
    let (pkcs8, public): (Pkcs8V1Der<'static>, PublicKeyX509Der<'static>) = match algorithm {
        Algorithm::Rsa2048 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed("generate an RSA key"))?;
            let public = pair.public_key().as_der().map_err(failed("encode the RSA public key"))?;
            (pair.as_der().map_err(failed("encode the RSA private key"))?, public)
        }
        Algorithm::EcdsaP256 => {
            let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)
                .map_err(failed("generate an EC key"))?;
            let public = pair.public_key().as_der().map_err(failed("encode the EC public key"))?;
            let document = pair.to_pkcs8v1().map_err(failed("encode the EC private key"))?;
            let private = to_pem("PRIVATE KEY", document.as_ref())?;
            return Ok(Generated {
                private_key: PrivateKey(private),
                public_key_pem: to_pem("PUBLIC KEY", public_der(&public))?,
            });
        }
    };
    Ok(Generated {
        private_key: PrivateKey(to_pem("PRIVATE KEY", pkcs8_der(&pkcs8))?),
        public_key_pem: to_pem("PUBLIC KEY", public_der(&public))?,
    })
}

fn pkcs8_der<'a>(der: &'a Pkcs8V1Der<'_>) -> &'a [u8] {
    AsRef::<[u8]>::as_ref(&**der)
}

fn public_der<'a>(der: &'a PublicKeyX509Der<'_>) -> &'a [u8] {
    AsRef::<[u8]>::as_ref(&**der)
}

/// A private key read back from its PEM, ready to sign.
enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

fn signer(algorithm: Algorithm, private_key: &PrivateKey) -> Result<Signer, KeyError> {
    let (label, der) =
        pem::decode_vec(private_key.0.as_bytes()).map_err(|e| KeyError(format!("the private key is not PEM: {e}")))?;
    if label != "PRIVATE KEY" {
        return Err(KeyError(format!("the private key is a PEM `{label}`, not a PKCS#8 `PRIVATE KEY`")));
    }
    let rejected =
        |e: aws_lc_rs::error::KeyRejected| KeyError(format!("the private key is not {}: {e}", algorithm.as_str()));
    Ok(match algorithm {
        Algorithm::Rsa2048 => Signer::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(rejected)?),
        Algorithm::EcdsaP256 => {
            Signer::Ec(EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der).map_err(rejected)?)
        }
    })
}

/// The public half of a private key, as SubjectPublicKeyInfo PEM: what CloudFront must hold for the pair to work.
pub fn public_key_of(algorithm: Algorithm, private_key: &PrivateKey) -> Result<String, KeyError> {
    let public = match signer(algorithm, private_key)? {
        Signer::Rsa(pair) => pair.public_key().as_der().map_err(failed("encode the RSA public key"))?,
        Signer::Ec(pair) => pair.public_key().as_der().map_err(failed("encode the EC public key"))?,
    };
    to_pem("PUBLIC KEY", public_der(&public))
}

/// CloudFront's canned policy for `url` until `expires` (epoch seconds), exactly as CloudFront rebuilds it to check a
/// signature: no white space.
pub fn canned_policy(url: &str, expires: u64) -> String {
    format!(r#"{{"Statement":[{{"Resource":"{url}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#)
}

/// Base64 with the three characters a query string cannot carry replaced as CloudFront documents (`+=/` → `-_~`).
fn url_safe(bytes: &[u8]) -> String {
    Base64::encode_string(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

fn from_url_safe(text: &str) -> Result<Vec<u8>, KeyError> {
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            c => c,
        })
        .collect();
    Base64::decode_vec(&standard).map_err(|e| KeyError(format!("the signature is not base64: {e}")))
}

/// A URL signed with a canned policy: the URL with `Expires`, `Signature`, `Key-Pair-Id` and `Hash-Algorithm=SHA256`
/// (CloudFront's SHA-256 form, for RSA and ECDSA keys alike).
pub fn sign_url(
    url: &str,
    expires: u64,
    key_pair_id: &str,
    algorithm: Algorithm,
    private_key: &PrivateKey,
) -> Result<String, KeyError> {
    let policy = canned_policy(url, expires);
    let rng = SystemRandom::new();
    let signature = match signer(algorithm, private_key)? {
        Signer::Rsa(pair) => {
            let mut signature = vec![0; pair.public_modulus_len()];
            pair.sign(&signature::RSA_PKCS1_SHA256, &rng, policy.as_bytes(), &mut signature)
                .map_err(failed("sign with the RSA key"))?;
            signature
        }
        Signer::Ec(pair) => {
            pair.sign(&rng, policy.as_bytes()).map_err(failed("sign with the EC key"))?.as_ref().to_vec()
        }
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{url}{separator}Expires={expires}&Signature={}&Key-Pair-Id={key_pair_id}&Hash-Algorithm=SHA256",
        url_safe(&signature)
    ))
}

/// Checks a canned-policy signed URL as CloudFront would, with `public_key_pem` (the key as CloudFront stores it):
/// the policy rebuilt from the URL and its `Expires`, the signature verified. Returns the `Key-Pair-Id` it names.
pub fn verify_url(signed: &str, public_key_pem: &str) -> Result<String, KeyError> {
    let (url, query) = signed
        .rsplit_once("?Expires=")
        .or_else(|| signed.rsplit_once("&Expires="))
        .ok_or_else(|| KeyError("the URL has no Expires".into()))?;
    let mut expires = None;
    let mut signature = None;
    let mut key_pair_id = None;
    for (i, part) in format!("Expires={query}").split('&').enumerate() {
        let (name, value) = part.split_once('=').ok_or_else(|| KeyError(format!("query part {i} has no `=`")))?;
        match name {
            "Expires" => expires = value.parse::<u64>().ok(),
            "Signature" => signature = Some(from_url_safe(value)?),
            "Key-Pair-Id" => key_pair_id = Some(value.to_string()),
            "Hash-Algorithm" if value == "SHA256" => {}
            other => return Err(KeyError(format!("unexpected query part `{other}`"))),
        }
    }
    let (Some(expires), Some(signature), Some(key_pair_id)) = (expires, signature, key_pair_id) else {
        return Err(KeyError("the URL lacks Expires, Signature or Key-Pair-Id".into()));
    };
    let spki = SubjectPublicKeyInfoOwned::from_pem(public_key_pem.trim())
        .map_err(|e| KeyError(format!("the public key is not a PEM SubjectPublicKeyInfo: {e}")))?;
    let raw = spki.subject_public_key.raw_bytes();
    let policy = canned_policy(url, expires);
    let verified = match shared::public_key::inspect(public_key_pem) {
        Ok(shared::public_key::KeyKind::Rsa2048) => {
            UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, raw).verify(policy.as_bytes(), &signature)
        }
        Ok(shared::public_key::KeyKind::EcP256) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, raw).verify(policy.as_bytes(), &signature)
        }
        Err(e) => return Err(KeyError(e.to_string())),
    };
    verified.map_err(|_| KeyError(format!("the signature does not verify with the public key of {key_pair_id}")))?;
    Ok(key_pair_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_each_algorithm_when_a_key_is_made_then_cloudfront_accepts_its_public_key_and_its_url_verifies() {
        for (algorithm, kind) in [
            (Algorithm::Rsa2048, shared::public_key::KeyKind::Rsa2048),
            (Algorithm::EcdsaP256, shared::public_key::KeyKind::EcP256),
        ] {
            // GIVEN a new key pair
            let made = generate(algorithm).unwrap();
            // THEN its public key is one CloudFront accepts, and the private key gives the same public key back
            assert_eq!(shared::public_key::inspect(&made.public_key_pem).unwrap(), kind);
            assert_eq!(public_key_of(algorithm, &made.private_key).unwrap(), made.public_key_pem);
            assert!(made.private_key.expose_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
            // WHEN a URL is signed with it THEN it verifies with the public key, naming the key pair id
            let url = sign_url(
                "https://d111111abcdef8.cloudfront.net/a.jpg",
                1_900_000_000,
                "K2TEST",
                algorithm,
                &made.private_key,
            )
            .unwrap();
            assert!(
                url.contains("?Expires=1900000000&Signature=")
                    && url.ends_with("&Key-Pair-Id=K2TEST&Hash-Algorithm=SHA256"),
                "{url}"
            );
            assert_eq!(verify_url(&url, &made.public_key_pem).unwrap(), "K2TEST");
            // AND not with another key, nor once its expiry or resource is changed
            let other = generate(algorithm).unwrap();
            assert!(verify_url(&url, &other.public_key_pem).is_err());
            assert!(verify_url(&url.replace("1900000000", "1900000001"), &made.public_key_pem).is_err());
            assert!(verify_url(&url.replace("a.jpg", "b.jpg"), &made.public_key_pem).is_err());
        }
    }

    #[test]
    fn given_a_private_key_when_formatted_for_a_log_then_no_key_material_is_printed() {
        let made = generate(Algorithm::EcdsaP256).unwrap();
        let printed = format!("{made:?} {:?}", made.private_key);
        assert!(!printed.contains("BEGIN PRIVATE KEY") && printed.contains("redacted"), "{printed}");
        let body: String = made.private_key.expose_pem().lines().nth(1).unwrap().into();
        assert!(!printed.contains(&body));
    }

    #[test]
    fn given_the_documented_canned_policy_when_built_then_it_has_no_white_space() {
        assert_eq!(
            canned_policy("https://d111111abcdef8.cloudfront.net/image.jpg", 1767290400),
            r#"{"Statement":[{"Resource":"https://d111111abcdef8.cloudfront.net/image.jpg","Condition":{"DateLessThan":{"AWS:EpochTime":1767290400}}}]}"#
        );
    }
}
