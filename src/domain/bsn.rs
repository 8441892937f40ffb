//! The burgerservicenummer. It exists only in memory, at the node where it was typed, for the
//! length of one request: the type has no `Display`, no `Serialize`, no `Clone`, its `Debug`
//! prints a redaction, and its digits are wiped when it is dropped. The only way to its digits
//! is [`Bsn::expose_for_pseudonymisation`], which consumes it.

use std::fmt;

use zeroize::Zeroize;

/// A BSN that passed the elfproef.
pub struct Bsn([u8; 9]);

/// Why a string is not a BSN. Never carries the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BsnError {
    #[error("is required")]
    Missing,
    #[error("must be 9 digits (or 8 with an implied leading zero)")]
    Format,
    #[error("fails the elfproef")]
    Elfproef,
}

impl Bsn {
    /// Parses 9 digits, or 8 digits with an implied leading zero, and checks the elfproef:
    /// 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 must be a multiple of 11 (and not all zero).
    pub fn parse(input: &str) -> Result<Bsn, BsnError> {
        let bytes = input.as_bytes();
        if bytes.is_empty() {
            return Err(BsnError::Missing);
        }
        if !(bytes.len() == 8 || bytes.len() == 9) || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(BsnError::Format);
        }
        let mut digits = [0u8; 9];
        let offset = 9 - bytes.len();
        for (slot, byte) in digits[offset..].iter_mut().zip(bytes) {
            *slot = byte - b'0';
        }
        let weighted: i32 = digits
            .iter()
            .zip([9, 8, 7, 6, 5, 4, 3, 2, -1])
            .map(|(&d, w)| i32::from(d) * w)
            .sum();
        if weighted % 11 != 0 || digits.iter().all(|&d| d == 0) {
            digits.zeroize();
            return Err(BsnError::Elfproef);
        }
        Ok(Bsn(digits))
    }

    /// Hands the nine digits (as ASCII) to a pseudonymiser and drops the BSN. Only the
    /// `pseudonym` module calls this; nothing may store, log or send what it receives.
    pub(crate) fn expose_for_pseudonymisation<R>(self, f: impl FnOnce(&[u8; 9]) -> R) -> R {
        let mut ascii = self.0.map(|d| d + b'0');
        let result = f(&ascii);
        ascii.zeroize();
        result
    }
}

impl PartialEq for Bsn {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Bsn {}

impl fmt::Debug for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bsn(***)")
    }
}

impl Drop for Bsn {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elfproef_vectors() {
        let cases: &[(&str, Result<(), BsnError>)] = &[
            ("111222333", Ok(())),
            ("123456782", Ok(())),
            ("999999990", Ok(())),
            ("10000008", Ok(())), // 8 digits: 010000008
            ("010000008", Ok(())),
            ("012345672", Ok(())),
            ("123456789", Err(BsnError::Elfproef)),
            ("111222334", Err(BsnError::Elfproef)),
            ("000000000", Err(BsnError::Elfproef)),
            ("00000000", Err(BsnError::Elfproef)),
            ("", Err(BsnError::Missing)),
            ("1234567", Err(BsnError::Format)),
            ("1234567890", Err(BsnError::Format)),
            ("12345678a", Err(BsnError::Format)),
            (" 11122233", Err(BsnError::Format)),
            ("111-222-333", Err(BsnError::Format)),
            ("１１１２２２３３３", Err(BsnError::Format)),
        ];
        for (input, expected) in cases {
            assert_eq!(Bsn::parse(input).map(|_| ()), *expected, "input {input:?}");
        }
    }

    #[test]
    fn eight_digits_mean_a_leading_zero() {
        assert_eq!(
            Bsn::parse("10000008").unwrap(),
            Bsn::parse("010000008").unwrap()
        );
    }

    #[test]
    fn debug_is_redacted() {
        let bsn = Bsn::parse("111222333").unwrap();
        assert_eq!(format!("{bsn:?}"), "Bsn(***)");
        assert_eq!(format!("{:?}", Some(&bsn)), "Some(Bsn(***))");
    }

    #[test]
    fn exposure_gives_the_ascii_digits() {
        let bsn = Bsn::parse("10000008").unwrap();
        let digits = bsn.expose_for_pseudonymisation(|d| *d);
        assert_eq!(&digits, b"010000008");
    }
}
