//! Just enough RFC 5322 / MIME parsing to read what lettre sends: header unfolding, RFC 2047
//! encoded words, multipart walking, base64 and quoted-printable.

/// One leaf MIME part of a captured message, transfer-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The media type, lowercase, without parameters (e.g. `text/plain`).
    pub content_type: String,
    /// The decoded content as text (UTF-8, lossy), line endings normalized to `\n`.
    pub body: String,
}

/// Splits on `\n`, dropping the `\r` of CRLF.
pub(super) fn lines(raw: &str) -> Vec<&str> {
    raw.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// The header fields (unfolded, trimmed) and the body lines after the first empty line.
pub(super) fn parse_headers<'a, 'b>(
    lines: &'b [&'a str],
) -> (Vec<(String, String)>, &'b [&'a str]) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push_str(line);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    for header in &mut headers {
        header.1 = header.1.trim().to_owned();
    }
    (headers, &lines[i..])
}

fn find_header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// A parameter of a structured header: `param("text/plain; charset=\"utf-8\"", "charset")`.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Lenient base64 (standard or URL-safe alphabet; whitespace and padding skipped).
pub(super) fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `=XX` escapes decoded; with `underscore_space` (RFC 2047 "Q"), `_` is a space.
fn unescape(s: &str, underscore_space: bool, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'='),
            },
            b'_' if underscore_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
}

/// Quoted-printable body lines (soft line breaks joined), decoded to bytes.
fn quoted_printable(lines: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let line = line.trim_end_matches([' ', '\t']);
        match line.strip_suffix('=') {
            Some(soft) => unescape(soft, false, &mut out),
            None => {
                unescape(line, false, &mut out);
                if n + 1 < lines.len() {
                    out.push(b'\n');
                }
            }
        }
    }
    out
}

fn charset_decode(charset: Option<&str>, bytes: Vec<u8>) -> String {
    let latin1 = charset.is_some_and(|c| {
        let c = c.to_ascii_lowercase();
        c == "iso-8859-1" || c == "latin1" || c == "iso8859-1"
    });
    if latin1 {
        bytes.into_iter().map(char::from).collect()
    } else {
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// One encoded word, `s` starting right after `=?`: returns the text and the bytes consumed.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let q1 = s.find('?')?;
    let charset = s[..q1].split('*').next().unwrap_or_default();
    let rest = &s[q1 + 1..];
    let q2 = rest.find('?')?;
    let encoding = &rest[..q2];
    let start = q1 + 1 + q2 + 1;
    let len = s[start..].find("?=")?;
    let text = &s[start..start + len];
    let bytes = match encoding {
        "B" | "b" => base64(text)?,
        "Q" | "q" => {
            let mut out = Vec::new();
            unescape(text, true, &mut out);
            out
        }
        _ => return None,
    };
    Some((charset_decode(Some(charset), bytes), start + len + 2))
}

/// Decodes RFC 2047 encoded words; whitespace between adjacent encoded words is dropped.
pub(super) fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        let after = &rest[start + 2..];
        match encoded_word(after) {
            Some((text, used)) => {
                if !(after_word && before.chars().all(char::is_whitespace)) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &after[used..];
                after_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = after;
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Collects the leaf parts of the entity made of `lines` (headers, empty line, body).
pub(super) fn leaf_parts(lines: &[&str], out: &mut Vec<Part>, depth: usize) {
    let (headers, body) = parse_headers(lines);
    let content_type =
        find_header(&headers, "Content-Type").unwrap_or_else(|| "text/plain".to_owned());
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media.starts_with("multipart/")
        && depth < 16
        && let Some(boundary) = param(&content_type, "boundary")
    {
        let delimiter = format!("--{boundary}");
        let close = format!("--{boundary}--");
        let mut current: Option<Vec<&str>> = None;
        for line in body {
            let trimmed = line.trim_end();
            if trimmed == close {
                break;
            }
            if trimmed == delimiter {
                if let Some(part) = current.take() {
                    leaf_parts(&part, out, depth + 1);
                }
                current = Some(Vec::new());
            } else if let Some(part) = current.as_mut() {
                part.push(line);
            }
        }
        if let Some(part) = current.take() {
            leaf_parts(&part, out, depth + 1);
        }
        return;
    }
    let encoding = find_header(&headers, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => base64(&body.concat()).unwrap_or_default(),
        "quoted-printable" => quoted_printable(body),
        _ => body.join("\n").into_bytes(),
    };
    let charset = param(&content_type, "charset");
    let text = charset_decode(charset.as_deref(), bytes).replace("\r\n", "\n");
    out.push(Part {
        content_type: media,
        body: text,
    });
}

/// `http(s)://` links in `text`, `&` unescaped (`&amp;` or `&#38;`), trailing punctuation dropped.
pub(super) fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let http = rest.find("http://");
        let https = rest.find("https://");
        let start = match (http, https) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || "\"'<>()[]{}`".contains(c))
            .unwrap_or(tail.len());
        let link = tail[..end]
            .trim_end_matches(['.', ',', ';', ':', '!', '?'])
            .replace("&amp;", "&")
            .replace("&#38;", "&");
        out.push(link);
        rest = &tail[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_and_bodies() {
        assert_eq!(
            decode_words("=?utf-8?b?SMOpbGxv?= =?utf-8?q?_w=C3=B6rld?="),
            "Héllo wörld"
        );
        assert_eq!(decode_words("plain =?x"), "plain =?x");
        assert_eq!(base64("aGk=").unwrap(), b"hi");
        assert_eq!(
            quoted_printable(&["caf=C3=A9 long=", "line", "end"]),
            "café longline\nend".as_bytes()
        );
        assert_eq!(
            links(
                "see <a href=\"https://x.test/a?b=1&amp;c=2\">here</a>, or http://y.test/p, \
                 <a href=\"https://z.test/?d=3&#38;e=4\">"
            ),
            vec![
                "https://x.test/a?b=1&c=2",
                "http://y.test/p",
                "https://z.test/?d=3&e=4"
            ]
        );
    }

    #[test]
    fn multipart_alternative_like_lettre() {
        let raw = "Subject: x\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative;\r\n boundary=\"BND\"\r\n\
\r\n\
--BND\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Bonjour Ren=C3=A9e, https://app.test/i/abc?t=1&u=2 is a very long line that is soft=\r\n\
-wrapped\r\n\
--BND\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PGEgaHJlZj0iaHR0cHM6Ly9hcHAudGVzdC9pL2FiYz90PTEmYW1wO3U9MiI+Sm9pbjwvYT4=\r\n\
--BND--\r\n";
        let lines = lines(raw);
        let mut parts = Vec::new();
        leaf_parts(&lines, &mut parts, 0);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(parts[0].content_type, "text/plain");
        assert_eq!(
            parts[0].body,
            "Bonjour Renée, https://app.test/i/abc?t=1&u=2 is a very long line that is soft-wrapped"
        );
        assert_eq!(parts[1].content_type, "text/html");
        assert_eq!(
            parts[1].body,
            "<a href=\"https://app.test/i/abc?t=1&amp;u=2\">Join</a>"
        );
        assert_eq!(links(&parts[1].body), ["https://app.test/i/abc?t=1&u=2"]);
    }
}
