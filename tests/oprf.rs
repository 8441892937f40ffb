//! The oblivious pseudonym end to end, through the public API only: an organisation node
//! blinds, one or two pseudonym services evaluate, the node finalises. Checks what each party
//! can and cannot compute, and that every malformed input is refused with its position.

use kring::domain::{Bsn, Pseudonym};
use kring::pseudonym::oprf::{
    ELEMENT_LEN, KEY_LEN, OprfError, Position, ServiceKey, blind, blind_all, finalize, finalize_all,
};

fn bsn(digits: &str) -> Bsn {
    Bsn::parse(digits).unwrap()
}

/// One pass through a single service.
fn via_one(digits: &str, key: &ServiceKey) -> Pseudonym {
    let blinded = blind(bsn(digits));
    let evaluated = key.evaluate(&[blinded.element()]).unwrap();
    finalize(blinded, &evaluated[0]).unwrap()
}

/// One pass through a chain of services, in the order given: each hop evaluates the previous
/// hop's answer.
fn via_chain(digits: &str, keys: &[&ServiceKey]) -> Pseudonym {
    let blinded = blind(bsn(digits));
    let mut element = blinded.element();
    for key in keys {
        element = key.evaluate(&[element]).unwrap()[0];
    }
    finalize(blinded, &element).unwrap()
}

/// The pseudonym a holder of `key` computes by itself for a guessed BSN, without any client:
/// RFC 9497 Evaluate on the documented input, then the documented hash. This is the dictionary
/// attack the chain exists to deny to any single service.
fn guessed_by_key_holder(digits9: &str, key: &ServiceKey) -> Pseudonym {
    let server = voprf::OprfServer::<voprf::Ristretto255>::new_with_key(&key.to_bytes()).unwrap();
    let input = [&b"kring/v1 bsn\0"[..], digits9.as_bytes()].concat();
    let output = server.evaluate(&input).unwrap();
    let hash = ring::digest::digest(
        &ring::digest::SHA256,
        &[&b"kring/v1 federation pseudonym\0"[..], &output[..]].concat(),
    );
    Pseudonym(hash.as_ref().try_into().unwrap())
}

/// The product of two service keys modulo the ristretto255 group order, so that a test can
/// check that the chain is one OPRF under `k_A * k_B`. Little-endian 64-bit limbs;
/// double-and-add keeps every intermediate below 2^254.
fn key_product(a: &ServiceKey, b: &ServiceKey) -> ServiceKey {
    const L: [u64; 4] = [
        0x5812_631a_5cf5_d3ed,
        0x14de_f9de_a2f7_9cd6,
        0,
        0x1000_0000_0000_0000,
    ];
    fn limbs(bytes: &[u8]) -> [u64; 4] {
        std::array::from_fn(|i| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap()))
    }
    fn add(x: [u64; 4], y: [u64; 4]) -> [u64; 4] {
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for i in 0..4 {
            let sum = u128::from(x[i]) + u128::from(y[i]) + carry;
            out[i] = sum as u64;
            carry = sum >> 64;
        }
        assert_eq!(carry, 0, "intermediates stay below 2^256");
        out
    }
    fn reduce_once(x: [u64; 4]) -> [u64; 4] {
        let at_least_l = (0..4)
            .rev()
            .find(|&i| x[i] != L[i])
            .is_none_or(|i| x[i] > L[i]);
        if !at_least_l {
            return x;
        }
        let mut out = [0u64; 4];
        let mut borrow = 0i128;
        for i in 0..4 {
            let diff = i128::from(x[i]) - i128::from(L[i]) - borrow;
            out[i] = diff.rem_euclid(1 << 64) as u64;
            borrow = i128::from(diff < 0);
        }
        out
    }
    let (x, y) = (limbs(&a.to_bytes()), limbs(&b.to_bytes()));
    let mut r = [0u64; 4];
    for bit in (0..256).rev() {
        r = reduce_once(add(r, r));
        if (x[bit / 64] >> (bit % 64)) & 1 == 1 {
            r = reduce_once(add(r, y));
        }
    }
    let bytes: Vec<u8> = r.iter().flat_map(|limb| limb.to_le_bytes()).collect();
    ServiceKey::from_bytes(&bytes).unwrap()
}

#[test]
fn one_service_same_bsn_same_pseudonym_other_bsn_or_key_other_pseudonym() {
    let a = ServiceKey::generate();
    let b = ServiceKey::generate();
    let first = via_one("111222333", &a);
    assert_eq!(via_one("111222333", &a), first, "fresh blinds, same key");
    assert_ne!(via_one("123456782", &a), first, "other BSN");
    assert_ne!(via_one("111222333", &b), first, "other key");
}

#[test]
fn eight_and_nine_digit_forms_give_one_pseudonym() {
    let key = ServiceKey::generate();
    assert_eq!(via_one("10000008", &key), via_one("010000008", &key));
    assert_eq!(via_one("12345672", &key), via_one("012345672", &key));
}

#[test]
fn the_pseudonym_is_stable_across_releases() {
    // A regression pin computed by this implementation (not an independent answer; RFC 9497's
    // own vectors are checked in the module's tests). Failing means every pseudonym in a
    // running federation would change.
    let key = ServiceKey::from_bytes(&[7u8; KEY_LEN]).unwrap();
    let pseudonym = via_one("111222333", &key);
    assert_eq!(
        pseudonym.to_string(),
        guessed_by_key_holder("111222333", &key).to_string()
    );
    assert_eq!(
        pseudonym.to_string(),
        "5lm4mJp_F-EYLfjLr4G7wY9nlLqFhX-xkREpQNkixO4"
    );
}

#[test]
fn a_chain_of_two_services_is_stable_and_order_free() {
    let a = ServiceKey::generate();
    let b = ServiceKey::generate();
    let ab = via_chain("111222333", &[&a, &b]);
    assert_eq!(via_chain("111222333", &[&a, &b]), ab, "fresh blinds");
    assert_eq!(via_chain("111222333", &[&b, &a]), ab, "either order");
    assert_ne!(via_chain("123456782", &[&a, &b]), ab, "other BSN");
    assert_ne!(via_one("111222333", &a), ab, "A alone");
    assert_ne!(via_one("111222333", &b), ab, "B alone");
    let c = ServiceKey::generate();
    assert_ne!(via_chain("111222333", &[&a, &c]), ab, "one key replaced");
}

#[test]
fn the_chain_is_one_oprf_under_the_product_of_the_keys_and_no_single_key_gives_it() {
    let a = ServiceKey::generate();
    let b = ServiceKey::generate();
    let chained = via_chain("111222333", &[&a, &b]);
    let product = key_product(&a, &b);
    // The chain computes exactly what one service holding k_A * k_B would.
    assert_eq!(via_one("111222333", &product), chained);
    assert_eq!(guessed_by_key_holder("111222333", &product), chained);
    // Each service can evaluate guesses under its own key (which is why one service is not
    // enough), but what it computes is not the federation pseudonym.
    for key in [&a, &b] {
        let guess = guessed_by_key_holder("111222333", key);
        assert_eq!(guess, via_one("111222333", key));
        assert_ne!(guess, chained);
    }
}

#[test]
fn a_service_sees_a_fresh_random_element_per_request() {
    let key = ServiceKey::generate();
    let mut elements = Vec::new();
    let mut answers = Vec::new();
    for digits in ["111222333", "123456782"] {
        for _ in 0..16 {
            let blinded = blind(bsn(digits));
            elements.push(blinded.element());
            answers.push(key.evaluate(&[blinded.element()]).unwrap()[0]);
        }
    }
    // Thirty-two requests for two persons: no element and no answer repeats, so neither the
    // requests nor the service's own answers link two requests for the same person.
    let distinct = |v: &[[u8; ELEMENT_LEN]]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v.len()
    };
    assert_eq!(distinct(&elements), 32);
    assert_eq!(distinct(&answers), 32);
    // The element is not a function of the BSN alone (above), and it does not carry the
    // digits: an implementation that sent its input in the clear would fail here.
    for element in elements.iter().chain(&answers) {
        assert!(
            !element
                .windows(9)
                .any(|w| w == b"111222333" || w == b"123456782")
        );
    }
}

#[test]
fn batches_keep_their_order() {
    let a = ServiceKey::generate();
    let b = ServiceKey::generate();
    let digits = ["111222333", "123456782", "999999990", "010000008"];
    let blinded = blind_all(digits.iter().map(|d| bsn(d)).collect());
    let elements: Vec<[u8; ELEMENT_LEN]> = blinded.iter().map(|x| x.element()).collect();
    let hop1 = a.evaluate(&elements).unwrap();
    let hop2 = b.evaluate(&hop1).unwrap();
    let evaluated: Vec<Vec<u8>> = hop2.iter().map(|e| e.to_vec()).collect();
    let pseudonyms = finalize_all(blinded, &evaluated).unwrap();
    let one_by_one: Vec<Pseudonym> = digits.iter().map(|d| via_chain(d, &[&a, &b])).collect();
    assert_eq!(pseudonyms, one_by_one);
    assert!(a.evaluate::<[u8; ELEMENT_LEN]>(&[]).unwrap().is_empty());
}

#[test]
fn the_service_refuses_malformed_elements_by_position() {
    let key = ServiceKey::generate();
    let good = blind(bsn("111222333")).element().to_vec();
    let mut too_long = good.clone();
    too_long.push(0);
    let cases: Vec<(Vec<u8>, OprfError)> = vec![
        (
            vec![],
            OprfError::ElementLength {
                at: Position::Blinded(1),
                len: 0,
            },
        ),
        (
            good[..31].to_vec(),
            OprfError::ElementLength {
                at: Position::Blinded(1),
                len: 31,
            },
        ),
        (
            too_long,
            OprfError::ElementLength {
                at: Position::Blinded(1),
                len: 33,
            },
        ),
        // Not a canonical encoding (every byte 0xff).
        (
            vec![0xff; 32],
            OprfError::Element {
                at: Position::Blinded(1),
            },
        ),
        // The identity element: a valid encoding, refused because every key maps it to
        // itself.
        (
            vec![0; 32],
            OprfError::Element {
                at: Position::Blinded(1),
            },
        ),
    ];
    for (bad, expected) in cases {
        let batch = vec![good.clone(), bad, good.clone()];
        assert_eq!(key.evaluate(&batch), Err(expected));
    }
    assert_eq!(
        key.evaluate(&[good, vec![0xff; 32]])
            .unwrap_err()
            .to_string(),
        "blinded[1]: not a valid ristretto255 element"
    );
}

#[test]
fn the_client_refuses_malformed_answers() {
    let cases: Vec<(Vec<u8>, OprfError)> = vec![
        (
            vec![1; 31],
            OprfError::ElementLength {
                at: Position::Evaluated(None),
                len: 31,
            },
        ),
        (
            vec![0xff; 32],
            OprfError::Element {
                at: Position::Evaluated(None),
            },
        ),
        (
            vec![0; 32],
            OprfError::Element {
                at: Position::Evaluated(None),
            },
        ),
    ];
    for (bad, expected) in cases {
        assert_eq!(finalize(blind(bsn("111222333")), &bad), Err(expected));
    }

    let key = ServiceKey::generate();
    let blinded = blind_all(vec![bsn("111222333"), bsn("123456782")]);
    let first = key.evaluate(&[blinded[0].element()]).unwrap()[0].to_vec();
    let err = finalize_all(blinded, &[first.clone(), vec![0xff; 32]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "evaluated[1]: not a valid ristretto255 element"
    );

    let blinded = blind_all(vec![bsn("111222333"), bsn("123456782")]);
    let err = finalize_all(blinded, &[first]).unwrap_err();
    assert_eq!(
        err,
        OprfError::Count {
            blinded: 2,
            evaluated: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "2 blinded elements but 1 evaluated elements"
    );
}

#[test]
fn service_keys_round_trip_and_refuse_bad_bytes() {
    let key = ServiceKey::generate();
    let bytes = key.to_bytes();
    assert_eq!(bytes.len(), KEY_LEN);
    let again = ServiceKey::from_bytes(&bytes).unwrap();
    assert_eq!(via_one("111222333", &again), via_one("111222333", &key));

    assert_eq!(
        ServiceKey::from_bytes(&[1; 31]).unwrap_err(),
        OprfError::KeyLength { len: 31 }
    );
    assert_eq!(
        ServiceKey::from_bytes(&[1; 64]).unwrap_err(),
        OprfError::KeyLength { len: 64 }
    );
    // Zero, and a value above the group order, are not keys.
    assert_eq!(
        ServiceKey::from_bytes(&[0; 32]).unwrap_err(),
        OprfError::Key
    );
    assert_eq!(
        ServiceKey::from_bytes(&[0xff; 32]).unwrap_err().to_string(),
        "service key: not a canonical non-zero ristretto255 scalar"
    );
}

#[test]
fn nothing_secret_is_printed() {
    let key = ServiceKey::from_bytes(&[7u8; KEY_LEN]).unwrap();
    assert_eq!(format!("{key:?}"), "ServiceKey(***)");
    let blinded = blind(bsn("111222333"));
    assert_eq!(format!("{blinded:?}"), "Blinded(***)");
    assert_eq!(format!("{:?}", Some(&blinded)), "Some(Blinded(***))");
}

#[test]
fn the_key_file_is_created_once_private_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pseudonym-service.key");
    let first = ServiceKey::read_or_create(&path).unwrap();
    let second = ServiceKey::read_or_create(&path).unwrap();
    assert_eq!(first.to_bytes(), second.to_bytes());
    assert_eq!(std::fs::read(&path).unwrap(), *first.to_bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    for (content, message) in [
        (&b"short"[..], "5 bytes; a ristretto255 scalar is 32"),
        (
            &[0xff; 32][..],
            "not a canonical non-zero ristretto255 scalar",
        ),
    ] {
        std::fs::write(&path, content).unwrap();
        let err = ServiceKey::read_or_create(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains(message), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), content, "left as it was");
    }
}
