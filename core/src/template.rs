//! Filling `{variable}` placeholders in answers from configuration.
//!
//! A placeholder is a name of ASCII letters, digits and underscores between braces. `{{` and
//! `}}` stand for literal braces. Unknown placeholders are left as they are so a missing value is
//! visible rather than silently dropped; [`placeholders`] lets a checker find them first.

use std::collections::BTreeMap;

/// Fills every `{name}` in `text` whose name is in `vars`.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    scan(text, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Var(name, raw) => match vars.get(name) {
            Some(v) => out.push_str(v),
            None => out.push_str(raw),
        },
    });
    out
}

/// The placeholder names used in `text`, in order of appearance (with repeats).
pub fn placeholders(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    scan(text, |piece| {
        if let Piece::Var(name, _) = piece {
            names.push(name.to_string());
        }
    });
    names
}

enum Piece<'a> {
    Text(&'a str),
    /// The name and the whole `{name}`.
    Var(&'a str, &'a str),
}

fn scan<'a>(text: &'a str, mut emit: impl FnMut(Piece<'a>)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut start = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                emit(Piece::Text(&text[start..i + 1]));
                i += 2;
                start = i;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                emit(Piece::Text(&text[start..i + 1]));
                i += 2;
                start = i;
            }
            b'{' => {
                let name_len = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                if name_len > 0 && bytes.get(i + 1 + name_len) == Some(&b'}') {
                    emit(Piece::Text(&text[start..i]));
                    let end = i + name_len + 2;
                    emit(Piece::Var(&text[i + 1..end - 1], &text[i..end]));
                    i = end;
                    start = i;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    emit(Piece::Text(&text[start..]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("shop_name", "星辰卡铺"), ("support_hours", "9:00-23:00")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fills_known_variables_and_keeps_unknown_ones() {
        assert_eq!(
            render(
                "欢迎来到{shop_name}，客服时间 {support_hours}。{missing}",
                &vars()
            ),
            "欢迎来到星辰卡铺，客服时间 9:00-23:00。{missing}"
        );
    }

    #[test]
    fn double_braces_are_literal() {
        assert_eq!(
            render("{{shop_name}} is {shop_name}", &vars()),
            "{shop_name} is 星辰卡铺"
        );
        assert!(placeholders("{{not_a_var}}").is_empty());
    }

    #[test]
    fn lists_placeholders_in_order() {
        assert_eq!(
            placeholders("{a} and {b_2} and {a} and { spaced }"),
            ["a", "b_2", "a"]
        );
    }
}
