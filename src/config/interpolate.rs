//! `@format` strings: `{env[NAME]}`, `{vault[path#key]}` and `{this.dotted.path}` fields in a Python
//! `str.format` template (`{{` and `}}` are literal braces). Rendering is lazy:
//! only the values a command needs are rendered, so an unset variable breaks
//! only what uses it.

/// One piece of a parsed template.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Env(String),
    /// `{vault[path#key]}`: one key of a Vault secret (path under the mount point).
    Vault {
        path: String,
        key: String,
    },
    This(Vec<String>),
}

/// The template of a `@format` string, or `None` for a plain string.
pub fn template(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("@format")?;
    if rest.is_empty() {
        return Some(rest);
    }
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some(rest.trim_start())
}

/// Splits a template into text and fields.
pub fn parse(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '}' => {
                return Err(
                    "single `}` in a @format string (write `}}` for a literal brace)".into(),
                );
            }
            '{' => {
                let mut field = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    field.push(c);
                }
                if !closed {
                    return Err(
                        "unclosed `{` in a @format string (write `{{` for a literal brace)".into(),
                    );
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(parse_field(&field)?);
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn parse_field(field: &str) -> Result<Piece, String> {
    if field.contains(['!', ':']) && !field.starts_with("env[") && !field.starts_with("vault[") {
        return Err(format!(
            "`{{{field}}}`: conversions and format specs are not supported"
        ));
    }
    if let Some(rest) = field.strip_prefix("env[") {
        let name = rest
            .strip_suffix(']')
            .ok_or_else(|| format!("`{{{field}}}` should be `{{env[NAME]}}`"))?;
        let name = name.trim_matches(|c| c == '\'' || c == '"');
        if name.is_empty() {
            return Err("`{env[]}` names no variable".into());
        }
        return Ok(Piece::Env(name.to_string()));
    }
    if let Some(rest) = field.strip_prefix("vault[") {
        let inner = rest
            .strip_suffix(']')
            .ok_or_else(|| format!("`{{{field}}}` should be `{{vault[path#key]}}`"))?;
        let inner = inner.trim_matches(|c| c == '\'' || c == '"');
        let (path, key) = inner
            .rsplit_once('#')
            .filter(|(p, k)| !p.trim_matches('/').is_empty() && !k.is_empty())
            .ok_or_else(|| {
                format!("`{{{field}}}` should be `{{vault[path#key]}}`: a secret's path and one of its keys")
            })?;
        return Ok(Piece::Vault {
            path: path.trim_matches('/').to_string(),
            key: key.to_string(),
        });
    }
    if field == "this" {
        return Err("`{this}` needs a path, like `{this.load_path}`".into());
    }
    if let Some(rest) = field.strip_prefix("this") {
        let mut path = Vec::new();
        let mut rest = rest;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(format!("`{{{field}}}` has an empty path segment"));
                }
                path.push(r[..end].to_string());
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r
                    .find(']')
                    .ok_or_else(|| format!("`{{{field}}}` has an unclosed `[`"))?;
                path.push(r[..end].trim_matches(|c| c == '\'' || c == '"').to_string());
                rest = &r[end + 1..];
            } else {
                return Err(format!("`{{{field}}}` is not a field alto knows"));
            }
        }
        return Ok(Piece::This(path));
    }
    Err(format!(
        "`{{{field}}}` is not a field alto knows: use `{{env[NAME]}}`, `{{vault[path#key]}}` or `{{this.path.to.key}}`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(template("@format {env[X]}"), Some("{env[X]}"));
        assert_eq!(template("@formatx"), None);
        assert_eq!(template("plain {env[X]}"), None);
    }

    #[test]
    fn pieces() {
        assert_eq!(
            parse("pg://{env[U]}@{this.taps.tap_x.load_path}/{{x}}").unwrap(),
            vec![
                Piece::Text("pg://".into()),
                Piece::Env("U".into()),
                Piece::Text("@".into()),
                Piece::This(vec!["taps".into(), "tap_x".into(), "load_path".into()]),
                Piece::Text("/{x}".into()),
            ]
        );
        assert_eq!(
            parse("{this[a].b}").unwrap(),
            vec![Piece::This(vec!["a".into(), "b".into()])]
        );
        assert!(parse("{").is_err());
        assert!(parse("}").is_err());
        assert!(parse("{foo}").is_err());
        assert!(parse("{this.x:>3}").is_err());
        assert!(parse("{env[]}").is_err());
        assert_eq!(
            parse("{vault[db/prod#pass:word]}").unwrap(),
            vec![Piece::Vault {
                path: "db/prod".into(),
                key: "pass:word".into()
            }]
        );
        for bad in ["{vault[db]}", "{vault[#k]}", "{vault[db#]}", "{vault[db#k}"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
