//! RustCrypto backend: the design card's `aes-gcm` and `chacha20poly1305`
//! crates, pure Rust. Selectable at run time; slower than AWS-LC here (see
//! perf/RESULTS.md). Their `zeroize` feature wipes the key schedules on drop.

use super::{Aead, AeadAlg, CryptoError, ICV_LEN, IV_LEN, SALT_LEN, nonce};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use zeroize::Zeroize;

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// An AEAD key held by the RustCrypto crates.
pub(super) struct RustCryptoAead {
    alg: AeadAlg,
    cipher: Cipher,
    salt: [u8; SALT_LEN],
}

impl RustCryptoAead {
    pub(super) fn new(alg: AeadAlg, key: &[u8], salt: [u8; SALT_LEN]) -> Result<Self, CryptoError> {
        let bad = |_| CryptoError::BadKeyLength;
        let cipher = match alg {
            AeadAlg::AesGcm128 => Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(key).map_err(bad)?)),
            AeadAlg::AesGcm256 => Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(key).map_err(bad)?)),
            AeadAlg::ChaCha20Poly1305 => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).map_err(bad)?))
            }
        };
        Ok(RustCryptoAead { alg, cipher, salt })
    }
}

impl Drop for RustCryptoAead {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl Aead for RustCryptoAead {
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
        let n = nonce(&self.salt, iv);
        let tag = match &self.cipher {
            Cipher::Aes128(c) => c.encrypt_inout_detached(&n.into(), aad, data.into()),
            Cipher::Aes256(c) => c.encrypt_inout_detached(&n.into(), aad, data.into()),
            Cipher::ChaCha(c) => c.encrypt_inout_detached(&n.into(), aad, data.into()),
        }
        .map_err(|_| CryptoError::Backend)?;
        let mut out = [0u8; ICV_LEN];
        out.copy_from_slice(&tag);
        Ok(out)
    }

    #[inline]
    fn open_in_place(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        data_and_icv: &mut [u8],
    ) -> Result<(), CryptoError> {
        let Some(split) = data_and_icv.len().checked_sub(ICV_LEN) else {
            return Err(CryptoError::AuthFailed);
        };
        let (data, icv) = data_and_icv.split_at_mut(split);
        let n = nonce(&self.salt, iv);
        let tag: &[u8; ICV_LEN] = (&*icv).try_into().map_err(|_| CryptoError::AuthFailed)?;
        match &self.cipher {
            Cipher::Aes128(c) => c.decrypt_inout_detached(&n.into(), aad, data.into(), tag.into()),
            Cipher::Aes256(c) => c.decrypt_inout_detached(&n.into(), aad, data.into(), tag.into()),
            Cipher::ChaCha(c) => c.decrypt_inout_detached(&n.into(), aad, data.into(), tag.into()),
        }
        .map_err(|_| CryptoError::AuthFailed)
    }
}
