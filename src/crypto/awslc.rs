//! AWS-LC backend (`aws-lc-rs`): the default, fastest measured here.
//!
//! AWS-LC keeps its own expanded key schedule and wipes it when the key is
//! dropped; the raw key bytes we were given are not kept.

use super::{Aead, AeadAlg, CryptoError, ICV_LEN, IV_LEN, SALT_LEN, nonce};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroize;

/// An AEAD key held by AWS-LC.
pub(super) struct AwsLcAead {
    alg: AeadAlg,
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
}

impl AwsLcAead {
    pub(super) fn new(alg: AeadAlg, key: &[u8], salt: [u8; SALT_LEN]) -> Result<Self, CryptoError> {
        let algorithm = match alg {
            AeadAlg::AesGcm128 => &aead::AES_128_GCM,
            AeadAlg::AesGcm256 => &aead::AES_256_GCM,
            AeadAlg::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        };
        let unbound = UnboundKey::new(algorithm, key).map_err(|_| CryptoError::BadKeyLength)?;
        Ok(AwsLcAead { alg, key: LessSafeKey::new(unbound), salt })
    }
}

impl Drop for AwsLcAead {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl Aead for AwsLcAead {
    fn alg(&self) -> AeadAlg {
        self.alg
    }

    #[inline]
    fn seal_in_place(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; ICV_LEN], CryptoError> {
        let n = Nonce::assume_unique_for_key(nonce(&self.salt, iv));
        let tag =
            self.key.seal_in_place_separate_tag(n, Aad::from(aad), data).map_err(|_| CryptoError::Backend)?;
        let mut out = [0u8; ICV_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    #[inline]
    fn open_in_place(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        data_and_icv: &mut [u8],
    ) -> Result<(), CryptoError> {
        if data_and_icv.len() < ICV_LEN {
            return Err(CryptoError::AuthFailed);
        }
        let n = Nonce::assume_unique_for_key(nonce(&self.salt, iv));
        self.key
            .open_in_place(n, Aad::from(aad), data_and_icv)
            .map(|_| ())
            .map_err(|_| CryptoError::AuthFailed)
    }
}
