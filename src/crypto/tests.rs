use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// GCM specification (McGrew & Viega) test case 4: AES-128, 60-byte
/// plaintext, 20-byte AAD, 96-bit IV. Salt = first 4 IV bytes.
#[test]
fn aes128_gcm_known_answer_all_backends() {
    let key = hex("feffe9928665731c6d6a8f9467308308");
    let mut keymat = key.clone();
    keymat.extend_from_slice(&hex("cafebabe"));
    let iv: [u8; 8] = hex("facedbaddecaf888").try_into().unwrap();
    let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let pt = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
    let ct = hex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091");
    let tag = hex("5bc94fbc3221a5db94fae95ae7121a47");
    for &b in Backend::ALL {
        let k = new_aead(b, AeadAlg::AesGcm128, &keymat).unwrap();
        let mut buf = pt.clone();
        let t = k.seal_in_place(&iv, &aad, &mut buf).unwrap();
        assert_eq!(buf, ct, "{b}");
        assert_eq!(t.to_vec(), tag, "{b}");
        buf.extend_from_slice(&t);
        k.open_in_place(&iv, &aad, &mut buf).unwrap();
        assert_eq!(&buf[..pt.len()], &pt[..], "{b}");
    }
}

/// RFC 8439 §2.8.2 AEAD_CHACHA20_POLY1305 example; the nonce
/// 07000000 40414243 44454647 is salt 07000000 + IV 4041424344454647.
#[test]
fn chacha_rfc8439_known_answer_all_backends() {
    let mut keymat = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    keymat.extend_from_slice(&hex("07000000"));
    let iv: [u8; 8] = hex("4041424344454647").try_into().unwrap();
    let aad = hex("50515253c0c1c2c3c4c5c6c7");
    let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    for &b in Backend::ALL {
        let k = new_aead(b, AeadAlg::ChaCha20Poly1305, &keymat).unwrap();
        let mut buf = pt.to_vec();
        let t = k.seal_in_place(&iv, &aad, &mut buf).unwrap();
        assert_eq!(&buf[..4], &hex("d31a8d34")[..], "{b}");
        assert_eq!(t.to_vec(), hex("1ae10b594f09e26a7e902ecbd0600691"), "{b}");
    }
}

#[test]
fn backends_agree_and_reject_tampering() {
    for alg in AeadAlg::ALL {
        let keymat: Vec<u8> = (0..alg.keymat_len() as u8).collect();
        let iv = [9u8; 8];
        let aad = [1, 2, 3, 4, 0, 0, 0, 7];
        let mut outputs = Vec::new();
        for &b in Backend::ALL {
            let k = new_aead(b, alg, &keymat).unwrap();
            assert_eq!(k.alg(), alg);
            let mut buf: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
            let t = k.seal_in_place(&iv, &aad, &mut buf).unwrap();
            buf.extend_from_slice(&t);
            outputs.push(buf.clone());
            // Every single-bit flip in ciphertext, tag or AAD must fail.
            for pos in [0, 500, 999, 1000, 1015] {
                let mut bad = buf.clone();
                bad[pos] ^= 1;
                assert_eq!(k.open_in_place(&iv, &aad, &mut bad), Err(CryptoError::AuthFailed));
            }
            let mut bad = buf.clone();
            assert_eq!(
                k.open_in_place(&iv, &[1, 2, 3, 4, 0, 0, 0, 8], &mut bad),
                Err(CryptoError::AuthFailed)
            );
            assert_eq!(k.open_in_place(&iv, &aad, &mut [0u8; 15]), Err(CryptoError::AuthFailed));
        }
        assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{alg}: backends disagree");
    }
}

#[test]
fn bad_key_length_and_redacted_debug() {
    for &b in Backend::ALL {
        assert!(matches!(new_aead(b, AeadAlg::AesGcm128, &[0u8; 16]), Err(CryptoError::BadKeyLength)));
    }
    let km = KeyMaterial::new(AeadAlg::AesGcm128, &[0xAB; 20]).unwrap();
    let dbg = format!("{km:?}");
    assert!(!dbg.to_lowercase().contains("ab"), "{dbg}");
    assert!(KeyMaterial::new(AeadAlg::AesGcm256, &[0; 20]).is_err());
}
