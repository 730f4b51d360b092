//! Reading a sent message the way the tests look at it: header values as written, the decoded
//! subject, the leaf MIME parts as text, the links in them.
//!
//! mail-parser does the RFC 5322 / MIME work (folding, RFC 2047 encoded words, multipart,
//! base64, quoted-printable, charsets); this module only shapes its answers.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// One message, read from its raw RFC 5322 text.
#[derive(Debug)]
pub struct Mail<'a> {
    raw: &'a str,
    message: Message<'a>,
}

/// One leaf MIME part, transfer-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The media type, lowercase, without parameters (e.g. `text/plain`).
    pub content_type: String,
    /// The decoded content as text (UTF-8, lossy), line endings normalized to `\n`.
    pub body: String,
}

impl<'a> Mail<'a> {
    /// Reads `raw` (headers, empty line, body); panics when it holds no header at all.
    pub fn parse(raw: &'a str) -> Mail<'a> {
        let message = MessageParser::default()
            .parse(raw)
            .unwrap_or_else(|| panic!("not an RFC 5322 message: {raw:?}"));
        Mail { raw, message }
    }

    /// The first header called `name` (case-insensitive), unfolded and trimmed, as written
    /// (encoded words are left encoded).
    pub fn header(&self, name: &str) -> Option<String> {
        self.message
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.replace(['\r', '\n'], "").trim().to_owned())
    }

    /// The `Message-ID` header as written, angle brackets included (e.g. `<abc@host>`).
    pub fn message_id(&self) -> Option<String> {
        self.header("Message-ID")
    }

    /// The `Subject`, encoded words decoded.
    pub fn subject(&self) -> Option<String> {
        self.message.subject().map(str::to_owned)
    }

    /// The raw body: everything after the header block, still transfer-encoded.
    pub fn body(&self) -> &'a str {
        let start = self.message.root_part().raw_body_offset() as usize;
        self.raw.get(start..).unwrap_or_default()
    }

    /// The leaf MIME parts in order (multiparts walked), decoded to text, line endings `\n`.
    pub fn parts(&self) -> Vec<Part> {
        self.message
            .parts
            .iter()
            .filter(|part| !part.is_multipart())
            .map(|part| {
                let content_type = part.content_type().map_or_else(
                    || "text/plain".to_owned(),
                    |t| match t.subtype() {
                        Some(subtype) => format!("{}/{subtype}", t.ctype()).to_ascii_lowercase(),
                        None => t.ctype().to_ascii_lowercase(),
                    },
                );
                let body = match &part.body {
                    PartType::Text(text) | PartType::Html(text) => text.replace("\r\n", "\n"),
                    _ => String::from_utf8_lossy(part.contents()).replace("\r\n", "\n"),
                };
                Part { content_type, body }
            })
            .collect()
    }

    /// The first `text/plain` part, decoded.
    pub fn text(&self) -> Option<String> {
        self.first("text/plain")
    }

    /// The first `text/html` part, decoded.
    pub fn html(&self) -> Option<String> {
        self.first("text/html")
    }

    /// Every distinct `http://` / `https://` link in the decoded text parts, in order
    /// (`&amp;` / `&#38;` unescaped, trailing punctuation dropped).
    pub fn links(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for part in self
            .parts()
            .into_iter()
            .filter(|p| p.content_type.starts_with("text/"))
        {
            for link in links(&part.body) {
                if !out.contains(&link) {
                    out.push(link);
                }
            }
        }
        out
    }

    fn first(&self, content_type: &str) -> Option<String> {
        self.parts()
            .into_iter()
            .find(|p| p.content_type == content_type)
            .map(|p| p.body)
    }
}

/// `http(s)://` links in `text`, `&amp;` / `&#38;` unescaped, trailing punctuation dropped.
fn links(text: &str) -> Vec<String> {
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
            // HTML parts spell `&` as an entity, by name or by number.
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

    /// A single-part message whose only part has the given headers and body.
    fn single(part_headers: &str, body: &str) -> String {
        format!("Subject: x\r\nMIME-Version: 1.0\r\n{part_headers}\r\n\r\n{body}")
    }

    #[test]
    fn encoded_words_and_bodies() {
        let subject = |raw: &str| Mail::parse(&format!("Subject: {raw}\r\n\r\n")).subject();
        assert_eq!(
            subject("=?utf-8?b?SMOpbGxv?= =?utf-8?q?_w=C3=B6rld?=").as_deref(),
            Some("Héllo wörld")
        );
        assert_eq!(subject("plain =?x").as_deref(), Some("plain =?x"));
        let base64 = single("Content-Transfer-Encoding: base64", "aGk=\r\n");
        assert_eq!(Mail::parse(&base64).text().as_deref(), Some("hi"));
        let quoted = single(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable",
            "caf=C3=A9 long=\r\nline\r\nend",
        );
        assert_eq!(
            Mail::parse(&quoted).text().as_deref(),
            Some("café longline\nend")
        );
        assert_eq!(
            links("see <a href=\"https://x.test/a?b=1&amp;c=2\">here</a>, or http://y.test/p."),
            vec!["https://x.test/a?b=1&c=2", "http://y.test/p"]
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
        let mail = Mail::parse(raw);
        let parts = mail.parts();
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
        assert_eq!(
            links("<a href=\"https://app.test/i/abc?t=1&#38;u=2\">"),
            ["https://app.test/i/abc?t=1&u=2"]
        );
        assert_eq!(
            mail.header("content-type").as_deref(),
            Some("multipart/alternative; boundary=\"BND\"")
        );
    }
}
