//! Reads a PEM public key (SubjectPublicKeyInfo) and says whether CloudFront accepts it: RSA 2048-bit or EC P-256.

use spki::SubjectPublicKeyInfoOwned;
use spki::der::{DecodePem, asn1::ObjectIdentifier};

use crate::classify::{Classify, ErrorType};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Named curves by OID, so an error can say which curve it found.
const CURVES: [(&str, &str); 4] = [
    ("1.2.840.10045.3.1.7", "P-256"),
    ("1.3.132.0.34", "P-384"),
    ("1.3.132.0.35", "P-521"),
    ("1.3.132.0.10", "secp256k1"),
];

/// A key CloudFront accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    EcP256,
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyKind::Rsa2048 => "RSA 2048-bit",
            KeyKind::EcP256 => "EC P-256",
        })
    }
}

/// Why a key is refused; the message names what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM public key (-----BEGIN PUBLIC KEY----- SubjectPublicKeyInfo): {0}")]
    NotPem(String),
    #[error("found {found}; CloudFront accepts RSA 2048-bit or EC P-256 public keys")]
    Unsupported { found: String },
}

impl Classify for KeyError {
    fn error_type(&self) -> ErrorType {
        ErrorType::INVALID_INPUT
    }
}

/// Parses a PEM SubjectPublicKeyInfo and checks its algorithm and size.
pub fn inspect(pem: &str) -> Result<KeyKind, KeyError> {
    let spki = SubjectPublicKeyInfoOwned::from_pem(pem.trim()).map_err(|e| KeyError::NotPem(e.to_string()))?;
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        let bits = rsa_modulus_bits(spki.subject_public_key.raw_bytes())?;
        return if bits == 2048 {
            Ok(KeyKind::Rsa2048)
        } else {
            Err(KeyError::Unsupported { found: format!("an RSA {bits}-bit key") })
        };
    }
    if oid == EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .map(|c| c.to_string())
            .unwrap_or_else(|| "no named curve".into());
        let name = CURVES.iter().find(|(o, _)| *o == curve).map(|(_, n)| *n).unwrap_or(curve.as_str());
        return if name == "P-256" {
            Ok(KeyKind::EcP256)
        } else {
            Err(KeyError::Unsupported { found: format!("an EC key on {name}") })
        };
    }
    let found = if oid == ED25519 { "an Ed25519 key".to_string() } else { format!("a key with algorithm {oid}") };
    Err(KeyError::Unsupported { found })
}

fn rsa_modulus_bits(der: &[u8]) -> Result<usize, KeyError> {
    use pkcs1::der::Decode;
    let key: pkcs1::RsaPublicKey<pkcs1::der::asn1::UintRef<'_>> =
        pkcs1::RsaPublicKey::from_der(der).map_err(|e| KeyError::NotPem(format!("RSA key body: {e}")))?;
    let bytes = key.modulus.as_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let significant = &bytes[first..];
    Ok(significant.first().map(|b| significant.len() * 8 - b.leading_zeros() as usize).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> String {
        let path = format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).expect(&path)
    }

    #[test]
    fn given_keys_cloudfront_accepts_when_inspected_then_kind() {
        assert_eq!(inspect(&key("rsa-2048.pem")), Ok(KeyKind::Rsa2048));
        assert_eq!(inspect(&key("ec-p256.pem")), Ok(KeyKind::EcP256));
        assert_eq!(
            inspect(&format!("\n  {}  \n", key("ec-p256.pem"))),
            Ok(KeyKind::EcP256),
            "surrounding blanks are fine"
        );
    }

    #[test]
    fn given_keys_cloudfront_refuses_when_inspected_then_error_names_what_was_found() {
        let cases = [
            ("rsa-1024.pem", "an RSA 1024-bit key"),
            ("ec-p384.pem", "an EC key on P-384"),
            ("ed25519.pem", "an Ed25519 key"),
        ];
        for (file, found) in cases {
            let err = inspect(&key(file)).unwrap_err();
            assert_eq!(err, KeyError::Unsupported { found: found.into() }, "{file}");
            assert!(err.to_string().contains("RSA 2048-bit or EC P-256"));
            assert_eq!(err.error_type(), ErrorType::INVALID_INPUT);
        }
    }

    #[test]
    fn given_text_that_is_no_key_when_inspected_then_not_pem() {
        assert!(matches!(inspect(&key("garbage.pem")), Err(KeyError::NotPem(_))));
        assert!(matches!(inspect("hello"), Err(KeyError::NotPem(_))));
        let private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        assert!(matches!(inspect(private), Err(KeyError::NotPem(_))), "a private key is not a public key");
    }
}
