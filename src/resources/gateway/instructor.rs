//! The instructor credential of a class: a Traefik basicAuth middleware defined in the gateway's
//! own labels, holding a bcrypt hash only (made here from the password, or given ready). Routes
//! that only the instructor may open (each terminal's watch view, the class page) name it; the
//! student's URL never does.

use std::collections::BTreeMap;

/// bcrypt's cost for hashes the provider makes. Traefik checks the hash on every request of an
/// instructor route (no cache), so this stays near the common htpasswd default.
pub const HASH_COST: u32 = 10;
const MIN_PASSWORD_LEN: usize = 8;

/// The middleware's name in Traefik (`<gateway>-instructor`), unique per gateway.
pub fn middleware_name(gateway: &str) -> String {
    format!("{gateway}-instructor")
}

/// How a router on another container (a terminal) names the middleware.
pub fn middleware_ref(gateway: &str) -> String {
    format!("{}@docker", middleware_name(gateway))
}

/// The label that defines the middleware's user list.
pub fn users_label(gateway: &str) -> String {
    format!("traefik.http.middlewares.{}.basicauth.users", middleware_name(gateway))
}

/// The middleware's labels: `username:hash` (both validated: no `,` or `:` in the username, the
/// hash a bcrypt one), and the Authorization header removed before the request reaches the
/// backend, so no instructor credential ever reaches a terminal container.
pub fn middleware_labels(gateway: &str, username: &str, hash: &str) -> BTreeMap<String, String> {
    let prefix = format!("traefik.http.middlewares.{}.basicauth", middleware_name(gateway));
    BTreeMap::from([
        (users_label(gateway), format!("{username}:{hash}")),
        (format!("{prefix}.realm"), format!("{gateway} instructor")),
        (format!("{prefix}.removeheader"), "true".to_string()),
    ])
}

/// The username and hash of a middleware read back from a gateway's labels (import).
pub fn read_back(gateway: &str, labels: &BTreeMap<String, String>) -> Option<(String, String)> {
    let (user, hash) = labels.get(&users_label(gateway))?.split_once(':')?;
    Some((user.to_string(), hash.to_string()))
}

pub fn validate_username(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_graphic() && c != ':' && c != ',' && c != '`' && c != '"');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}`: use 1-64 printable ASCII characters without spaces, `:`, `,`, `\"` or backticks"))
    }
}

/// Never echoes the value.
pub fn validate_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!("use at least {MIN_PASSWORD_LEN} characters (e.g. `random_password.instructor.result`)"));
    }
    if password.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// A bcrypt hash as `htpasswd -nbB` prints it after the `user:`. Never echoes the value.
pub fn validate_hash(hash: &str) -> Result<(), String> {
    let ok = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
        && hash.len() == 60
        && hash.bytes().all(|b| b.is_ascii_alphanumeric() || b"$./".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("expected a bcrypt hash (`$2y$10$...`, 60 characters), e.g. from `htpasswd -nbB`".into())
    }
}

/// A fresh bcrypt hash of `password` (random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    bcrypt::hash(password, HASH_COST).map_err(|e| format!("hashing the instructor password failed: {e}"))
}

/// Whether `hash` (from state or the gateway's labels) is a hash of `password`: then the plan
/// keeps it, since a new salt would change the labels and so replace the gateway.
pub fn hash_matches(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_hold_the_hash_never_the_password() {
        let hash = hash_password("correct horse").unwrap();
        assert!(validate_hash(&hash).is_ok(), "{hash}");
        assert!(hash_matches("correct horse", &hash));
        assert!(!hash_matches("wrong horse!", &hash));
        assert!(!hash_matches("correct horse", "not a hash"));
        let labels = middleware_labels("os101-edge", "prof", &hash);
        assert_eq!(labels["traefik.http.middlewares.os101-edge-instructor.basicauth.users"], format!("prof:{hash}"));
        assert_eq!(labels["traefik.http.middlewares.os101-edge-instructor.basicauth.removeheader"], "true");
        assert!(!labels.values().any(|v| v.contains("correct horse")));
        assert_eq!(read_back("os101-edge", &labels), Some(("prof".into(), hash)));
        assert_eq!(middleware_ref("os101-edge"), "os101-edge-instructor@docker");
    }

    #[test]
    fn validation_never_echoes_secrets() {
        assert!(validate_username("prof").is_ok());
        for bad in ["", "a:b", "a,b", "with space", "tick`"] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        let short = validate_password("s3cr").unwrap_err();
        assert!(!short.contains("s3cr"), "{short}");
        assert!(validate_password("long enough").is_ok());
        let bad_hash = validate_hash("$1$plainmd5").unwrap_err();
        assert!(!bad_hash.contains("plainmd5"), "{bad_hash}");
        assert!(validate_hash("$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234").is_ok());
    }
}
