//! Refanging: undo the defanging analysts apply so indicators cannot be clicked in reports.

use std::borrow::Cow;

/// Returns the value, trimmed, with common defanging undone (`hxxp`, `[.]`, `(.)`, `{.}`, `[dot]`, `[:]`, `[@]`,
/// ...).
///
/// Applied to every value before it is typed and normalised, because shared intel is often pasted from reports.
/// A value with nothing to undo (almost all of them) is borrowed, not copied: this runs for every indicator loaded.
pub fn refang(value: &str) -> Cow<'_, str> {
    let trimmed = value.trim();
    let hxxp = trimmed.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("hxxp"));
    if !hxxp && !trimmed.bytes().any(|b| matches!(b, b'[' | b'(' | b'{' | b'\\')) {
        return Cow::Borrowed(trimmed);
    }
    let mut s = trimmed.to_string();
    const PAIRS: [(&str, &str); 14] = [
        ("[.]", "."),
        ("(.)", "."),
        ("{.}", "."),
        ("[dot]", "."),
        ("(dot)", "."),
        ("{dot}", "."),
        ("[:]", ":"),
        ("[://]", "://"),
        ("[@]", "@"),
        ("[at]", "@"),
        ("(at)", "@"),
        ("{at}", "@"),
        ("[/]", "/"),
        ("\\.", "."),
    ];
    if s.contains(['[', '(', '{', '\\']) {
        for (from, to) in PAIRS {
            if s.to_ascii_lowercase().contains(from) {
                s = replace_ignore_case(&s, from, to);
            }
        }
    }
    let lower = s.get(..5).map(|p| p.to_ascii_lowercase());
    match lower.as_deref() {
        Some("hxxps") | Some("hxxp:") => s.replace_range(..4, "http"),
        _ => {}
    }
    Cow::Owned(s)
}

fn replace_ignore_case(s: &str, from: &str, to: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (i, _) in lower.match_indices(from) {
        out.push_str(&s[last..i]);
        out.push_str(to);
        last = i + from.len();
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::refang;

    #[test]
    fn refang_undoes_each_defanging_form() {
        assert_eq!(refang("hxxp://evil[.]com/x"), "http://evil.com/x");
        assert_eq!(refang("hxxps://evil(.)com"), "https://evil.com");
        assert_eq!(refang("evil{.}com"), "evil.com");
        assert_eq!(refang("evil[dot]com"), "evil.com");
        assert_eq!(refang("EVIL[DOT]COM"), "EVIL.COM");
        assert_eq!(refang("http[:]//evil.com"), "http://evil.com");
        assert_eq!(refang("bad[@]evil.com"), "bad@evil.com");
        assert_eq!(refang("  1.2.3[.]4 "), "1.2.3.4");
    }

    #[test]
    fn refang_leaves_clean_values_alone() {
        assert_eq!(refang("http://evil.com/a(b)"), "http://evil.com/a(b)");
        assert_eq!(refang("hxxpx.com"), "hxxpx.com");
    }
}
