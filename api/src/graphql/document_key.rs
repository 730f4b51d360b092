//! A document's text without what GraphQL ignores, so that documents that differ only in
//! layout share what is keyed by their text (live groups).

/// `query` without whitespace, commas and comments, keeping one space only where two name or
/// number characters would otherwise touch; strings (block strings too) are kept byte for byte.
/// Two texts give the same key only when they lex to the same tokens. Text that ends inside a
/// string is returned whole (it cannot be parsed, so it shares nothing anyway).
pub fn document_key(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut chars = query.char_indices().peekable();
    let mut pending_space = false;
    while let Some((at, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => pending_space = true,
            '#' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
                pending_space = true;
            }
            '"' => {
                let Some(end) = string_end(query, at) else {
                    return query.to_owned();
                };
                out.push_str(&query[at..end]);
                while chars.peek().is_some_and(|(i, _)| *i < end) {
                    chars.next();
                }
                pending_space = false;
            }
            _ => {
                if pending_space && is_word(c) && out.chars().next_back().is_some_and(is_word) {
                    out.push(' ');
                }
                out.push(c);
                pending_space = false;
            }
        }
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The byte offset just past the string that starts at `start` (a `"`), if it ends.
fn string_end(query: &str, start: usize) -> Option<usize> {
    let rest = &query[start..];
    if let Some(body) = rest.strip_prefix("\"\"\"") {
        // A block string ends at the first `"""` not escaped as `\"""`.
        let mut from = 0;
        loop {
            let found = body[from..].find("\"\"\"")? + from;
            if body[..found].ends_with('\\') {
                from = found + 3;
            } else {
                return Some(start + 3 + found + 3);
            }
        }
    }
    let mut escaped = false;
    for (i, c) in rest.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(start + i + 1),
            '\n' | '\r' => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::document_key;

    #[test]
    fn layout_does_not_change_the_key() {
        let a =
            "subscription OnEvent($c: ID!) { invitationActivity(companyId: $c) { position type } }";
        let b = "# watch a company\nsubscription  OnEvent( $c : ID! ){\n  invitationActivity(companyId:$c){position,type}\n}\n";
        assert_eq!(document_key(a), document_key(b));
        assert_eq!(
            document_key(a),
            "subscription OnEvent($c:ID!){invitationActivity(companyId:$c){position type}}"
        );
    }

    #[test]
    fn different_tokens_keep_different_keys() {
        // Names that touch would merge into one token.
        assert_ne!(document_key("{ a b }"), document_key("{ ab }"));
        assert_ne!(document_key("{ f(n: 1 2) }"), document_key("{ f(n: 12) }"));
        // Inside strings, layout and `#` are content.
        assert_ne!(
            document_key(r#"{ f(s: "a  b") }"#),
            document_key(r#"{ f(s: "a b") }"#)
        );
        assert_eq!(
            document_key(r#"{ f(s: "x # y, \" z") }"#),
            r#"{f(s:"x # y, \" z")}"#
        );
        assert_eq!(
            document_key("{ f(s: \"\"\"a \\\"\"\" ,\n b\"\"\") }"),
            "{f(s:\"\"\"a \\\"\"\" ,\n b\"\"\")}"
        );
    }

    #[test]
    fn an_unterminated_string_is_kept_whole() {
        assert_eq!(document_key("{ f(s: \"open) }"), "{ f(s: \"open) }");
    }
}
