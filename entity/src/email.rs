//! Email address normalization (SPEC §3.1: trimmed, lower-cased, duplicates removed).

use crate::DomainError;

/// Longest address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Trims and lower-cases an address and checks its shape. This is deliberately a shape check
/// (one `@`, a dotted domain, no spaces or control characters), not full RFC 5322 parsing:
/// deliverability is proven by the verification code, not by a regex.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err("email is empty");
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err("email is too long");
    }
    let (local, domain) = email.split_once('@').ok_or("email has no @")?;
    if local.is_empty() || local.len() > 64 {
        return Err("email has an invalid local part");
    }
    let domain_ok = !domain.is_empty()
        && domain.contains('.')
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with(['.', '-'])
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    if !domain_ok {
        return Err("email has an invalid domain");
    }
    let local_ok = !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    if !local_ok {
        return Err("email has an invalid local part");
    }
    Ok(email)
}

/// Normalizes a list and removes duplicates, keeping first-seen order. `field` names the input
/// field in the error, with the index of the offending item (`allowedEmails[2]`).
pub fn normalize_list(raw: &[String], field: &str) -> Result<Vec<String>, DomainError> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, item) in raw.iter().enumerate() {
        let email =
            normalize(item).map_err(|m| DomainError::invalid(format!("{field}[{i}]"), m))?;
        if !out.contains(&email) {
            out.push(email);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_whitespace() {
        assert_eq!(
            normalize("  Ann.Lee@Example.COM ").unwrap(),
            "ann.lee@example.com"
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@b",
            "a b@x.com",
            "a@x..com",
            ".a@x.com",
            "a@-x.com",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(normalize(&format!("{}@x.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn list_dedupes_and_names_the_index() {
        let list = vec![
            "A@x.com".to_owned(),
            "a@x.com ".to_owned(),
            "b@x.com".to_owned(),
        ];
        assert_eq!(
            normalize_list(&list, "allowedEmails").unwrap(),
            ["a@x.com", "b@x.com"]
        );
        let bad = vec!["a@x.com".to_owned(), "nope".to_owned()];
        match normalize_list(&bad, "allowedEmails") {
            Err(DomainError::InvalidInput { field, .. }) => assert_eq!(field, "allowedEmails[1]"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
