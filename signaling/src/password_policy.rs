//! What a staff password must be: at least [`MIN_CHARS`] characters, not one of the common
//! passwords shipped in `signaling/data/common-passwords.txt` (compared without regard to
//! case), not the username, and not one character repeated.
//!
//! Messages are for the staff member choosing the password, Chinese first.

use std::collections::HashSet;
use std::sync::OnceLock;

pub const MIN_CHARS: usize = 12;
/// Longer passwords are refused, so a password check's input stays small.
pub const MAX_CHARS: usize = 256;

const COMMON: &str = include_str!("../data/common-passwords.txt");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("密码至少需要 {MIN_CHARS} 个字符 / the password needs at least {MIN_CHARS} characters")]
    TooShort,
    #[error("密码过长（最多 {MAX_CHARS} 个字符）/ the password is too long (at most {MAX_CHARS})")]
    TooLong,
    #[error("这个密码太常见，容易被猜中，请换一个 / this password is too common, choose another")]
    Common,
    #[error(
        "密码不能与用户名相同或只重复一个字符 / the password may not be the username or one repeated character"
    )]
    Trivial,
}

fn common() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_lowercase)
            .collect()
    })
}

/// Checks a new password for `username`.
pub fn check(password: &str, username: &str) -> Result<(), PolicyError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PolicyError::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PolicyError::TooLong);
    }
    let lower = password.to_lowercase();
    if common().contains(&lower) {
        return Err(PolicyError::Common);
    }
    let mut distinct = password.chars();
    let first = distinct.next();
    if lower == username.trim().to_lowercase() || distinct.all(|c| Some(c) == first) {
        return Err(PolicyError::Trivial);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_common_and_trivial_passwords_are_refused() {
        assert_eq!(check("short-one", "clerk1"), Err(PolicyError::TooShort));
        assert_eq!(check("Password1234", "clerk1"), Err(PolicyError::Common));
        assert_eq!(check("QWERTYUIOPAS", "clerk1"), Err(PolicyError::Common));
        assert_eq!(
            check("wangmin-clerk", "Wangmin-Clerk"),
            Err(PolicyError::Trivial)
        );
        assert_eq!(check("zzzzzzzzzzzzzz", "clerk1"), Err(PolicyError::Trivial));
        assert_eq!(check(&"x".repeat(300), "clerk1"), Err(PolicyError::TooLong));
        // Twelve characters counted as characters, not bytes.
        assert_eq!(
            check("静安寺路一号窗口办事员", "clerk1"),
            Err(PolicyError::TooShort)
        );
        check("静安寺路一号窗口办事员甲", "clerk1").expect("twelve characters");
        check("tide-lantern-42-ferry", "clerk1").expect("a good password");
    }

    #[test]
    fn the_list_is_loaded() {
        assert!(common().len() > 300);
        assert!(common().contains("123456"));
        assert!(!common().iter().any(|p| p.starts_with('#')));
    }
}
