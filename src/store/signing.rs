//! Signed caches: an ed25519 key signs each metadata record it publishes;
//! machines that list `trusted_public_keys` substitute only objects whose
//! record carries a valid signature by one of them. Keys are written
//! `<name>:<hex>`, like Nix's `<name>:<base64>`.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::ObjectMeta;

/// What is signed: the record without its signature, canonically encoded.
const PREFIX: &str = "alto-sig-v1:";

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct KeyError(pub String);

pub struct SecretKey {
    pub name: String,
    key: SigningKey,
}

#[derive(Clone)]
pub struct PublicKey {
    pub name: String,
    key: VerifyingKey,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

fn split(s: &str) -> Result<(&str, &str), KeyError> {
    s.trim()
        .split_once(':')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| KeyError("a key is written `<name>:<hex>`".into()))
}

impl SecretKey {
    /// A new key from the OS's randomness.
    pub fn generate(name: &str) -> std::io::Result<SecretKey> {
        use std::io::Read;
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
        Ok(SecretKey {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn parse(s: &str) -> Result<SecretKey, KeyError> {
        let (name, h) = split(s)?;
        let seed = unhex::<32>(h)
            .ok_or_else(|| KeyError(format!("the signing key `{name}` is not 64 hex digits")))?;
        Ok(SecretKey {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, hex(&self.key.to_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs a record in place.
    pub fn sign(&self, meta: &mut ObjectMeta) {
        let sig = self.key.sign(&fingerprint(meta));
        meta.signature = Some(format!("{}:{}", self.name, hex(&sig.to_bytes())));
    }
}

impl PublicKey {
    pub fn parse(s: &str) -> Result<PublicKey, KeyError> {
        let (name, h) = split(s)?;
        let bytes = unhex::<32>(h)
            .ok_or_else(|| KeyError(format!("the public key `{name}` is not 64 hex digits")))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| KeyError(format!("the public key `{name}`: {e}")))?;
        Ok(PublicKey {
            name: name.to_string(),
            key,
        })
    }

    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, hex(&self.key.to_bytes()))
    }
}

fn fingerprint(meta: &ObjectMeta) -> Vec<u8> {
    let mut unsigned = meta.clone();
    unsigned.signature = None;
    let v = serde_json::to_value(&unsigned).unwrap_or_default();
    format!("{PREFIX}{}", super::key::canonical_json(&v)).into_bytes()
}

/// Whether the record carries a valid signature by one of `trusted`.
pub fn verify(meta: &ObjectMeta, trusted: &[PublicKey]) -> bool {
    let Some(sig) = &meta.signature else {
        return false;
    };
    let Some((name, h)) = sig.split_once(':') else {
        return false;
    };
    let Some(bytes) = unhex::<64>(h) else {
        return false;
    };
    let signature = Signature::from_bytes(&bytes);
    let message = fingerprint(meta);
    trusted
        .iter()
        .filter(|k| k.name == name)
        .any(|k| k.key.verify(&message, &signature).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BuilderInfo;
    use crate::store::Key;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            format: crate::store::META_FORMAT.into(),
            key: Key::parse("0123456789abcdef0123456789abcdef").unwrap(),
            kind: "plugin".into(),
            derivation: serde_json::json!({"pip_url": "x==1"}),
            blake3: "ab".repeat(32),
            size: 10,
            created: "2026-11-24T12:00:00Z".into(),
            builder: BuilderInfo {
                alto: "0.1.0".into(),
                host: "h".into(),
            },
            signature: None,
        }
    }

    #[test]
    fn sign_and_verify() {
        let k = SecretKey::generate("ci").unwrap();
        let other = SecretKey::generate("ci").unwrap();
        let mut m = meta();
        assert!(!verify(&m, &[k.public()]), "unsigned records are refused");
        k.sign(&mut m);
        assert!(verify(&m, &[k.public()]));
        assert!(
            !verify(&m, &[other.public()]),
            "a key of the same name but other bytes"
        );
        let round = SecretKey::parse(&k.to_text()).unwrap();
        assert!(verify(
            &m,
            &[PublicKey::parse(&round.public().to_text()).unwrap()]
        ));
        let mut tampered = m.clone();
        tampered.blake3 = "cd".repeat(32);
        assert!(!verify(&tampered, &[k.public()]));
        assert!(SecretKey::parse("nocolon").is_err());
        assert!(PublicKey::parse("n:zz").is_err());
    }
}
