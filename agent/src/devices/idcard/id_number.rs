//! 公民身份号码 checks (GB 11643): 17 digits and an ISO 7064 MOD 11-2 check character.
//! The same rule covers the 港澳台居民居住证 numbers (prefixes 81, 82, 83).

/// Why an ID number is not valid. Never carries the number itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    #[error("the ID number has {0} characters, not 18")]
    Length(usize),
    #[error("the ID number has a non-digit in its first 17 characters")]
    NotDigits,
    #[error("the ID number's check character is wrong")]
    CheckDigit,
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// The check character for the first 17 digits, or `None` if they are not 17 ASCII digits.
pub fn check_character(first17: &str) -> Option<char> {
    let digits: Vec<u32> = first17
        .chars()
        .map(|c| c.to_digit(10))
        .collect::<Option<_>>()?;
    if digits.len() != 17 || !first17.is_ascii() {
        return None;
    }
    let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
    Some(CHECK[(sum % 11) as usize])
}

/// Checks an 18-character number; a lowercase `x` is accepted and reported as `X`.
pub fn validate(number: &str) -> Result<String, IdNumberError> {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() != 18 {
        return Err(IdNumberError::Length(chars.len()));
    }
    let first17: String = chars[..17].iter().collect();
    let expected = check_character(&first17).ok_or(IdNumberError::NotDigits)?;
    if chars[17].to_ascii_uppercase() != expected {
        return Err(IdNumberError::CheckDigit);
    }
    Ok(format!("{first17}{expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_numbers() {
        // The worked example in GB 11643 annex and common references.
        assert_eq!(
            validate("11010519491231002X"),
            Ok("11010519491231002X".into())
        );
        assert_eq!(
            validate("11010519491231002x"),
            Ok("11010519491231002X".into())
        );
        assert_eq!(
            validate("310101199003071230"),
            Ok("310101199003071230".into())
        );
        assert_eq!(
            validate("310101199003071231"),
            Err(IdNumberError::CheckDigit)
        );
        assert_eq!(
            validate("31010119900307123"),
            Err(IdNumberError::Length(17))
        );
        assert_eq!(
            validate("3101011990030712X0"),
            Err(IdNumberError::NotDigits)
        );
        assert_eq!(
            validate("３10101199003071230"),
            Err(IdNumberError::NotDigits)
        );
    }

    proptest! {
        #[test]
        fn exactly_one_check_character_is_valid(first17 in "[0-9]{17}") {
            let good = check_character(&first17).expect("digits");
            for c in CHECK {
                let number = format!("{first17}{c}");
                prop_assert_eq!(validate(&number).is_ok(), c == good);
            }
        }

        #[test]
        fn never_panics(s in ".{0,30}") {
            let _ = validate(&s);
        }
    }
}
