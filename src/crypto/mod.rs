//! AEAD ciphers for ESP behind one small trait.
//!
//! ESP here only uses combined-mode (AEAD) transforms:
//! - AES-GCM with a 16-octet ICV, 128- or 256-bit keys (RFC 4106),
//! - ChaCha20-Poly1305 (RFC 7634).
//!
//! Both take their key material from the IKE KEYMAT (or a static SA) as
//! `key || salt`, where the salt is 4 octets; the 12-octet nonce is
//! `salt || IV`, the IV being the 8-octet explicit IV carried in each ESP
//! packet (RFC 4106 §3, §8.1; RFC 7634 §2, §4).
//!
//! Two backends implement [`Aead`]: AWS-LC (`aws-lc-rs`, the default, being
//! the fastest measured here, see perf/RESULTS.md) and the design card's
//! pure-Rust RustCrypto crates (`aes-gcm`, `chacha20poly1305`). They are cargo
//! features (`aws-lc`, `rustcrypto`); with both compiled in, [`Backend`]
//! picks one at run time.
//!
//! Key material is held in [`zeroize::Zeroizing`] buffers, wiped on drop, and
//! no type here prints key bytes in `Debug`.
//!
//! Non-goals: IKE PRFs, KDFs and DH groups (they belong to the IKE issue);
//! non-AEAD ESP transforms (CBC + HMAC) are not offered.

#[cfg(feature = "aws-lc")]
mod awslc;
#[cfg(feature = "rustcrypto")]
mod rustcrypto;

use core::fmt;
use zeroize::Zeroizing;

/// Length of the explicit IV carried in every ESP packet (RFC 4106 §3.1).
pub const IV_LEN: usize = 8;
/// Length of the salt taken from the end of the key material.
pub const SALT_LEN: usize = 4;
/// Length of the integrity check value (ICV, the AEAD tag).
pub const ICV_LEN: usize = 16;

/// An ESP AEAD transform, named after the IKEv2 transform it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AeadAlg {
    /// ENCR_AES_GCM_16 (20) with a 128-bit key; strongSwan `aes128gcm16`.
    AesGcm128,
    /// ENCR_AES_GCM_16 (20) with a 256-bit key; strongSwan `aes256gcm16`.
    AesGcm256,
    /// ENCR_CHACHA20_POLY1305 (28); strongSwan `chacha20poly1305`.
    ChaCha20Poly1305,
}

impl AeadAlg {
    /// All transforms, in order of preference.
    pub const ALL: [AeadAlg; 3] = [AeadAlg::AesGcm128, AeadAlg::AesGcm256, AeadAlg::ChaCha20Poly1305];

    /// Cipher key length in octets (without the salt).
    pub const fn key_len(self) -> usize {
        match self {
            AeadAlg::AesGcm128 => 16,
            AeadAlg::AesGcm256 | AeadAlg::ChaCha20Poly1305 => 32,
        }
    }

    /// Key material length in octets: key followed by the 4-octet salt.
    pub const fn keymat_len(self) -> usize {
        self.key_len() + SALT_LEN
    }

    /// The IKEv2 transform ID (IANA "Transform Type 1").
    pub const fn ikev2_id(self) -> u16 {
        match self {
            AeadAlg::AesGcm128 | AeadAlg::AesGcm256 => 20,
            AeadAlg::ChaCha20Poly1305 => 28,
        }
    }

    /// The strongSwan proposal keyword.
    pub const fn name(self) -> &'static str {
        match self {
            AeadAlg::AesGcm128 => "aes128gcm16",
            AeadAlg::AesGcm256 => "aes256gcm16",
            AeadAlg::ChaCha20Poly1305 => "chacha20poly1305",
        }
    }

    /// Parses a strongSwan proposal keyword (`aes128gcm16`, `aes128gcm`, ...).
    pub fn from_name(name: &str) -> Option<AeadAlg> {
        match name {
            "aes128gcm16" | "aes128gcm128" | "aes128gcm" => Some(AeadAlg::AesGcm128),
            "aes256gcm16" | "aes256gcm128" | "aes256gcm" => Some(AeadAlg::AesGcm256),
            "chacha20poly1305" => Some(AeadAlg::ChaCha20Poly1305),
            _ => None,
        }
    }
}

impl fmt::Display for AeadAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which library performs the AEAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// AWS-LC through `aws-lc-rs` (assembly AES-GCM / ChaCha20 kernels).
    #[cfg(feature = "aws-lc")]
    #[cfg_attr(feature = "aws-lc", default)]
    AwsLc,
    /// RustCrypto `aes-gcm` and `chacha20poly1305` (pure Rust).
    #[cfg(feature = "rustcrypto")]
    #[cfg_attr(not(feature = "aws-lc"), default)]
    RustCrypto,
}

impl Backend {
    /// Every backend compiled into this build, default first.
    pub const ALL: &'static [Backend] = &[
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc,
        #[cfg(feature = "rustcrypto")]
        Backend::RustCrypto,
    ];

    /// Short name used in CLI flags, config and bench output.
    pub const fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => "aws-lc",
            #[cfg(feature = "rustcrypto")]
            Backend::RustCrypto => "rustcrypto",
        }
    }

    /// Parses a backend name as printed by [`Backend::name`].
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.iter().copied().find(|b| b.name() == name)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors from the AEAD layer. Deliberately carries no detail: a failed open
/// must not tell an attacker anything beyond "it failed".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Key material of the wrong length for the transform.
    #[error("key material has the wrong length for this transform")]
    BadKeyLength,
    /// The ICV did not verify (or the input was too short to hold one).
    #[error("authentication failed")]
    AuthFailed,
    /// The backend refused the operation (e.g. input too large).
    #[error("cipher backend error")]
    Backend,
}

/// One AEAD key, ready to seal and open ESP payloads.
///
/// The nonce is `salt || iv` (12 octets); callers pass only the 8-octet
/// explicit IV and the AAD (SPI and sequence number, RFC 4106 §5).
pub trait Aead: Send + Sync {
    /// The transform this key is for.
    fn alg(&self) -> AeadAlg;

    /// Encrypts `data` in place and returns the 16-octet ICV.
    fn seal_in_place(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; ICV_LEN], CryptoError>;

    /// Verifies and decrypts `data_and_icv` (ciphertext followed by the
    /// 16-octet ICV) in place. On success the first `len - 16` octets hold
    /// the plaintext; on failure the contents are unspecified.
    fn open_in_place(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        data_and_icv: &mut [u8],
    ) -> Result<(), CryptoError>;
}

/// Splits key material into key and salt after checking its length.
fn split_keymat(alg: AeadAlg, keymat: &[u8]) -> Result<(&[u8], [u8; SALT_LEN]), CryptoError> {
    if keymat.len() != alg.keymat_len() {
        return Err(CryptoError::BadKeyLength);
    }
    let (key, salt) = keymat.split_at(alg.key_len());
    let mut s = [0u8; SALT_LEN];
    s.copy_from_slice(salt);
    Ok((key, s))
}

/// Builds the 12-octet nonce `salt || iv`.
#[inline]
fn nonce(salt: &[u8; SALT_LEN], iv: &[u8; IV_LEN]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..SALT_LEN].copy_from_slice(salt);
    n[SALT_LEN..].copy_from_slice(iv);
    n
}

/// Creates an AEAD key for `alg` from `keymat` (`key || salt`) with the
/// given backend.
pub fn new_aead(backend: Backend, alg: AeadAlg, keymat: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
    let (key, salt) = split_keymat(alg, keymat)?;
    match backend {
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc => Ok(Box::new(awslc::AwsLcAead::new(alg, key, salt)?)),
        #[cfg(feature = "rustcrypto")]
        Backend::RustCrypto => Ok(Box::new(rustcrypto::RustCryptoAead::new(alg, key, salt)?)),
    }
}

/// Key material for one SA direction: `key || salt`, wiped on drop, never
/// shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(Zeroizing<Vec<u8>>);

impl KeyMaterial {
    /// Wraps key material, checking its length against `alg`.
    pub fn new(alg: AeadAlg, bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != alg.keymat_len() {
            return Err(CryptoError::BadKeyLength);
        }
        Ok(KeyMaterial(Zeroizing::new(bytes.to_vec())))
    }

    /// The raw bytes (for handing to a cipher; do not log).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests;
