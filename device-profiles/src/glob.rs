//! Shell-style wildcard matching for device names and paths: `*` matches any run of
//! characters (including `/`), `?` exactly one; everything else literally, case-sensitive.

/// Whether `text` matches `pattern`. Linear in practice: the classic backtracking to the last
/// `*` only, so no input makes it exponential.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards() {
        assert!(glob_match("/dev/ttyUSB*", "/dev/ttyUSB0"));
        assert!(glob_match("/dev/ttyUSB*", "/dev/ttyUSB"));
        assert!(!glob_match("/dev/ttyUSB*", "/dev/ttyACM0"));
        assert!(glob_match(
            "/dev/input/by-id/usb-*-event-kbd",
            "/dev/input/by-id/usb-Foo_Scanner-event-kbd"
        ));
        assert!(!glob_match(
            "/dev/input/by-id/usb-*-event-kbd",
            "/dev/input/by-id/usb-Foo-event-mouse"
        ));
        assert!(glob_match("video?", "video0"));
        assert!(!glob_match("video?", "video10"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "a-b-b-c"));
        assert!(!glob_match("a*b*c", "a-b-b-d"));
        assert!(glob_match("高拍仪*", "高拍仪 主摄像头"));
    }

    proptest! {
        #[test]
        fn literal_patterns_match_only_themselves(a in "[a-z/]{0,12}", b in "[a-z/]{0,12}") {
            prop_assert_eq!(glob_match(&a, &b), a == b);
        }

        #[test]
        fn star_matches_any_suffix(prefix in "[a-z]{0,8}", rest in ".{0,16}") {
            let pattern = format!("{prefix}*");
            let text = format!("{prefix}{rest}");
            prop_assert!(glob_match(&pattern, &text));
        }

        #[test]
        fn never_panics(p in ".{0,20}", t in ".{0,40}") {
            let _ = glob_match(&p, &t);
        }
    }
}
