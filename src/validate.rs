//! Validators shared by the provider and the resources: each says what is wrong with a value, for
//! a diagnostic on the attribute it came from.

/// A lowercase DNS name: labels of `[a-z0-9-]`, 1-63 chars, not starting or ending with `-`.
pub fn validate_domain(domain: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{domain}` is not a valid DNS domain: {why}"));
    if domain.is_empty() || domain.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    for label in domain.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each label must be 1 to 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return bad("only lowercase letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_validation() {
        assert!(validate_domain("lab.example.edu").is_ok());
        assert!(validate_domain("lab.localhost").is_ok());
        for bad in ["", "Lab.example", "a..b", "-a.b", "a_b.c", "a.b-"] {
            assert!(validate_domain(bad).is_err(), "{bad:?} accepted");
        }
    }
}
