//! Session DNS records: Cloudflare Tunnel CNAMEs or RFC 2136 dynamic updates.
//!
//! Every record the provider creates carries an ownership marker
//! (`managed-by=terraform-provider-lab session=<id>`): a record comment on Cloudflare, a TXT record
//! at `_lab-owner.<hostname>` for RFC 2136 (a CNAME cannot share its name with other data). The
//! marker is checked before a record is adopted or deleted, so the provider never touches a
//! record it did not create.
//!
//! Orphans: a session's record is written before Terraform saves the session in its state. The
//! marker says so (`pending`) until the first refresh of the session confirms it
//! ([`DnsBackend::confirm_record`]); a pending record whose identity (domain, hostname prefix,
//! student, the last as the digest `who=`) matches a new session is the orphan of an apply that
//! died before saving, and [`DnsBackend::find_pending`] finds it by listing the zone with the
//! backend's credentials (never by a name computable from public data).

pub mod cloudflare;
pub mod rfc2136;

use std::fmt;

/// What one session needs in DNS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordSpec {
    /// FQDN without trailing dot, e.g. `lab-x7k9.lab.example.edu`.
    pub hostname: String,
    pub session_id: String,
    /// Written into the ownership marker so `lab_sessions` can list them; not part of ownership.
    pub expires_at: Option<String>,
    pub student: Option<String>,
    /// Terraform has not saved the session yet (a create): the marker says `pending` until
    /// [`DnsBackend::confirm_record`] sees the session in state.
    pub pending: bool,
    /// Where this record points instead of the backend's own target (`target` of RFC 2136, the
    /// tunnel of Cloudflare), e.g. the gateway of the host the session is on; checked by
    /// [`DnsBackend::check_target`]. None: the backend's target.
    pub target: Option<String>,
}

/// Who a session is for, as the configuration says: what makes a pending record of an earlier,
/// unfinished apply the same session as a new one. Without a student there is no identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    /// The zone part of the hostname, e.g. `lab.example.edu`.
    pub domain: String,
    pub hostname_prefix: String,
    pub student: String,
}

/// Backend-specific record identity: the Cloudflare record id, or `<fqdn>/<type>` for RFC 2136.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordId(pub String);

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A record found carrying this provider's ownership marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    pub id: RecordId,
    pub hostname: String,
    pub session_id: String,
    pub expires_at: Option<String>,
    pub student: Option<String>,
    /// The marker's `who=` digest of the student, if it carries one.
    pub who: Option<String>,
    /// The marker says `pending`: no refresh has seen this session in Terraform's state.
    pub pending: bool,
}

impl OwnedRecord {
    fn of(id: RecordId, hostname: String, marker: Marker) -> Self {
        OwnedRecord {
            id,
            hostname,
            session_id: marker.session_id,
            expires_at: marker.expires_at,
            student: marker.student,
            who: marker.who,
            pending: marker.pending,
        }
    }

    /// Whether this is the record of a session for `identity`: its hostname is exactly
    /// `<prefix><session id>.<domain>` and its marker's digest is the student's.
    pub fn matches(&self, identity: &SessionIdentity) -> bool {
        let hostname = format!("{}{}.{}", identity.hostname_prefix, self.session_id, identity.domain);
        self.hostname.eq_ignore_ascii_case(&hostname)
            && self.who.as_deref() == Some(student_digest(&identity.student).as_str())
    }
}

/// The configured DNS backend of the provider.
#[derive(Debug)]
pub enum DnsBackend {
    Cloudflare(cloudflare::CloudflareDns),
    Rfc2136(rfc2136::Rfc2136Dns),
}

impl DnsBackend {
    /// Creates the session's record, or adopts an existing one this provider owns for the same
    /// session (an idempotent retry after a crash). A foreign record with that name is an error
    /// naming it.
    pub async fn ensure_record(&self, spec: &RecordSpec) -> Result<RecordId, DnsError> {
        validate_hostname(&spec.hostname)?;
        validate_session_id(&spec.session_id)?;
        if let Some(target) = &spec.target {
            self.check_target(target)?;
        }
        match self {
            DnsBackend::Cloudflare(cf) => cf.ensure_record(spec).await,
            DnsBackend::Rfc2136(u) => u.ensure_record(spec).await,
        }
    }

    /// Whether a session's record can point at `target`: a host name for a CNAME (Cloudflare's
    /// records and RFC 2136's `record_type = "CNAME"`), an IPv4 address for RFC 2136's `A`.
    pub fn check_target(&self, target: &str) -> Result<(), DnsError> {
        match self {
            DnsBackend::Cloudflare(_) => validate_cname_target(target).map_err(|why| {
                DnsError::InvalidInput(format!(
                    "{target:?} {why} (Cloudflare session records are CNAMEs, e.g. to `<tunnel id>.cfargotunnel.com`)"
                ))
            }),
            DnsBackend::Rfc2136(u) => u.target_rdata(Some(target)).map(drop),
        }
    }

    /// Whether the record named by `id` still exists (false if it was deleted out of band).
    pub async fn record_exists(&self, hostname: &str, id: &RecordId) -> Result<bool, DnsError> {
        match self {
            DnsBackend::Cloudflare(cf) => cf.record_exists(hostname, id).await,
            DnsBackend::Rfc2136(u) => u.record_exists(hostname, id).await,
        }
    }

    /// Deletes the record if this provider owns it. Deleting a record that is already gone
    /// succeeds; a record without this provider's marker is never deleted (error instead).
    pub async fn delete_record(&self, hostname: &str, id: &RecordId) -> Result<(), DnsError> {
        match self {
            DnsBackend::Cloudflare(cf) => cf.delete_record(hostname, id).await,
            DnsBackend::Rfc2136(u) => u.delete_record(hostname, id).await,
        }
    }

    /// All records carrying this provider's ownership marker (for the `lab_sessions` data
    /// source). RFC 2136 needs a zone transfer (AXFR) allowed for the TSIG key.
    pub async fn list_owned(&self) -> Result<Vec<OwnedRecord>, DnsError> {
        match self {
            DnsBackend::Cloudflare(cf) => cf.list_owned().await,
            DnsBackend::Rfc2136(u) => u.list_owned().await,
        }
    }

    /// The pending records (written by a create whose session Terraform never saved) of a
    /// session for `identity`, found by listing the zone with the backend's credentials:
    /// Cloudflare's list API filtered on the marker, a TSIG-signed AXFR for RFC 2136.
    pub async fn find_pending(&self, identity: &SessionIdentity) -> Result<Vec<OwnedRecord>, DnsError> {
        let candidates = match self {
            DnsBackend::Cloudflare(cf) => cf.list_owned_by(&student_digest(&identity.student)).await?,
            DnsBackend::Rfc2136(u) => u.list_owned().await?,
        };
        Ok(candidates.into_iter().filter(|r| r.pending && r.matches(identity)).collect())
    }

    /// The refresh of a session Terraform has in its state: whether its record still exists,
    /// and if its marker still says `pending`, the marker is rewritten without it, so the record
    /// is never taken for an orphan. A record without our marker is left alone.
    pub async fn confirm_record(&self, hostname: &str, id: &RecordId) -> Result<bool, DnsError> {
        match self {
            DnsBackend::Cloudflare(cf) => cf.confirm_record(hostname, id).await,
            DnsBackend::Rfc2136(u) => u.confirm_record(hostname, id).await,
        }
    }
}

/// Failures of DNS operations. Messages name the operation and the record; they never contain
/// the API token or TSIG secret.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("invalid DNS configuration: {0}")]
    InvalidConfig(String),

    #[error("invalid DNS input: {0}")]
    InvalidInput(String),

    /// A record exists that this provider (or this session) does not own; nothing was changed.
    #[error(
        "{action} {hostname}: refused, found {found}, which is not owned by {expected_owner}; \
         the provider never modifies or deletes records it does not own"
    )]
    Foreign {
        action: &'static str,
        hostname: String,
        found: String,
        /// `session <id>` when creating, `terraform-provider-lab` when deleting.
        expected_owner: String,
    },

    #[error("Cloudflare API {action}: {}{}", format_api_errors(.errors), status_hint(*.status))]
    CloudflareApi { action: String, status: u16, errors: Vec<ApiErrorItem> },

    #[error("Cloudflare API {action}: {source}")]
    Http {
        action: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("Cloudflare API {action}: unexpected response: {detail}")]
    UnexpectedResponse { action: String, detail: String },

    #[error("DNS server {server}: {action}: {detail}")]
    Rfc2136 { server: String, action: String, detail: String },

    #[error("{0}")]
    Unsupported(String),
}

impl DnsError {
    /// Cloudflare error codes carried by this error (empty for other errors).
    pub fn cloudflare_codes(&self) -> Vec<i64> {
        match self {
            DnsError::CloudflareApi { errors, .. } => errors.iter().map(|e| e.code).collect(),
            _ => Vec::new(),
        }
    }
}

/// One entry of the Cloudflare `errors` array.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ApiErrorItem {
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

fn format_api_errors(errors: &[ApiErrorItem]) -> String {
    if errors.is_empty() {
        return "request failed without error details".to_string();
    }
    errors.iter().map(|e| format!("error {}: {}", e.code, e.message)).collect::<Vec<_>>().join("; ")
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (check the api_token: it needs Zone / DNS / Edit permission on this zone)",
        429 => " (rate limited; retries exhausted)",
        _ => "",
    }
}

/// Prefix of every ownership marker written by this provider.
pub const OWNER_MARKER_PREFIX: &str = "managed-by=terraform-provider-lab";

/// An ownership marker: `managed-by=terraform-provider-lab session=<id>`, optionally followed by
/// `who=<digest of the student>`, `pending`, `expires=<RFC 3339>` and
/// `student=<percent-encoded>`. Only the session id decides ownership; `who` and `pending` let a
/// later apply recognise the orphan of an unfinished one; expiry and student let `lab_sessions`
/// list sessions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Marker {
    pub session_id: String,
    pub expires_at: Option<String>,
    pub student: Option<String>,
    pub who: Option<String>,
    pub pending: bool,
}

/// Length of the `who=` digest: 8 characters of `[a-z0-9]` (41 bits), so a pending marker with
/// an expiry still fits Cloudflare's 100-character comments.
const WHO_LEN: usize = 8;

/// The `who=` word of a student: SHA-256 of the student's text, in base 36. It identifies the
/// student for a later apply; it holds nothing of the session id.
pub fn student_digest(student: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(student.as_bytes());
    let mut n = u64::from_be_bytes([hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7]]);
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..WHO_LEN)
        .map(|_| {
            let digit = DIGITS[(n % 36) as usize] as char;
            n /= 36;
            digit
        })
        .collect()
}

impl Marker {
    pub fn of(spec: &RecordSpec) -> Self {
        Marker {
            session_id: spec.session_id.clone(),
            expires_at: spec.expires_at.clone(),
            student: spec.student.clone(),
            who: spec.student.as_deref().map(student_digest),
            pending: spec.pending,
        }
    }

    /// The marker text, at most `max_len` characters when possible: the student (free text) is
    /// left out rather than overflow a backend's limit (Cloudflare comments: 100 on free zones).
    pub fn text(&self, max_len: usize) -> String {
        let mut text = format!("{OWNER_MARKER_PREFIX} session={}", self.session_id);
        if let Some(who) = &self.who {
            text.push_str(&format!(" who={who}"));
        }
        if self.pending {
            text.push_str(" pending");
        }
        if let Some(expires) = &self.expires_at {
            text.push_str(&format!(" expires={expires}"));
        }
        if let Some(student) = &self.student {
            let word = format!(" student={}", percent_encode(student));
            if text.len() + word.len() <= max_len {
                text.push_str(&word);
            }
        }
        text
    }

    pub fn parse(text: &str) -> Option<Marker> {
        let mut words = text.split_whitespace();
        if words.next()? != OWNER_MARKER_PREFIX {
            return None;
        }
        let session_id = words.next()?.strip_prefix("session=")?.to_string();
        if session_id.is_empty() {
            return None;
        }
        let mut marker = Marker { session_id, ..Default::default() };
        for word in words {
            if word == "pending" && !marker.pending {
                marker.pending = true;
                continue;
            }
            match word.split_once('=')? {
                ("who", w) if marker.who.is_none() && !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                    marker.who = Some(w.to_string())
                }
                ("expires", t) if marker.expires_at.is_none() => marker.expires_at = Some(t.to_string()),
                ("student", s) if marker.student.is_none() => marker.student = Some(percent_decode(s)?),
                _ => return None,
            }
        }
        Some(marker)
    }
}

/// The ownership marker for one session: `managed-by=terraform-provider-lab session=<id>`.
pub fn owner_marker(session_id: &str) -> String {
    Marker { session_id: session_id.to_string(), ..Default::default() }.text(usize::MAX)
}

/// Returns the session id if `text` is this provider's ownership marker.
pub fn parse_owner_marker(text: &str) -> Option<String> {
    Marker::parse(text).map(|m| m.session_id)
}

/// Keeps the marker one word per field: everything but `[A-Za-z0-9@._+-]` becomes `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'@' | b'.' | b'_' | b'+' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(word: &str) -> Option<String> {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Checks an FQDN (no trailing dot): LDH labels of 1-63 characters, 253 characters at most.
pub fn validate_hostname(hostname: &str) -> Result<(), DnsError> {
    let bad = |why: &str| DnsError::InvalidInput(format!("hostname {hostname:?}: {why}"));
    if hostname.is_empty() || hostname.len() > 253 {
        return Err(bad("must be 1 to 253 characters"));
    }
    if hostname.ends_with('.') {
        return Err(bad("must not end with a dot"));
    }
    for label in hostname.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("every label must be 1 to 63 characters"));
        }
        // `_` is allowed for service-style names; everything else is letters, digits, hyphens.
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(bad("labels may contain only letters, digits, '-' and '_'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("labels must not start or end with '-'"));
        }
    }
    Ok(())
}

/// What a CNAME may point at: a host name (trailing dot allowed), never an IP address.
pub fn validate_cname_target(target: &str) -> Result<(), String> {
    if target.parse::<std::net::IpAddr>().is_ok() {
        return Err("is an IP address, not a host name: a CNAME points at a name".into());
    }
    validate_hostname(target.trim_end_matches('.')).map_err(|_| "is not a host name".to_string())
}

/// Session ids end up inside the marker text, which is split on whitespace.
pub fn validate_session_id(session_id: &str) -> Result<(), DnsError> {
    let ok = !session_id.is_empty()
        && session_id.len() <= 63
        && session_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(DnsError::InvalidInput(format!("session id {session_id:?}: must be 1 to 63 letters, digits, '-' or '_'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips() {
        let m = owner_marker("x7k9");
        assert_eq!(m, "managed-by=terraform-provider-lab session=x7k9");
        assert_eq!(parse_owner_marker(&m).as_deref(), Some("x7k9"));
    }

    #[test]
    fn marker_rejects_foreign_text() {
        assert_eq!(parse_owner_marker(""), None);
        assert_eq!(parse_owner_marker("managed-by=someone-else session=a"), None);
        assert_eq!(parse_owner_marker("managed-by=terraform-provider-lab"), None);
        assert_eq!(parse_owner_marker("managed-by=terraform-provider-lab session="), None);
        assert_eq!(parse_owner_marker("managed-by=terraform-provider-lab session=a extra"), None);
        assert_eq!(parse_owner_marker("main website"), None);
    }

    #[test]
    fn marker_carries_expiry_and_student_without_changing_ownership() {
        let m = Marker {
            session_id: "x7k9".into(),
            expires_at: Some("2026-11-22T16:00:00Z".into()),
            student: Some("Ada Lovelace <ada@example.edu>".into()),
            ..Default::default()
        };
        let text = m.text(usize::MAX);
        assert_eq!(
            text,
            "managed-by=terraform-provider-lab session=x7k9 expires=2026-11-22T16:00:00Z \
             student=Ada%20Lovelace%20%3Cada@example.edu%3E"
        );
        assert_eq!(Marker::parse(&text), Some(m.clone()));
        assert_eq!(parse_owner_marker(&text).as_deref(), Some("x7k9"));
        // Too long for the backend: the student is left out, the rest stays.
        let short = m.text(90);
        assert!(short.len() <= 90 && !short.contains("student="), "{short}");
        assert_eq!(Marker::parse(&short).map(|p| p.expires_at), Some(m.expires_at));
        assert_eq!(Marker::parse("managed-by=terraform-provider-lab session=a owner=eve"), None);
        assert_eq!(Marker::parse("managed-by=terraform-provider-lab session=a student=%zz"), None);
    }

    #[test]
    fn a_pending_marker_carries_the_student_digest_and_fits_a_cloudflare_comment() {
        let spec = RecordSpec {
            hostname: "lab-k3x9q2m7.lab.example.edu".into(),
            session_id: "k3x9q2m7".into(),
            expires_at: Some("2026-11-22T16:00:00Z".into()),
            student: Some("ada.lovelace@example.edu".into()),
            pending: true,
            target: None,
        };
        let marker = Marker::of(&spec);
        let who = student_digest("ada.lovelace@example.edu");
        assert_eq!(who.len(), WHO_LEN);
        assert_ne!(who, student_digest("alan.turing@example.edu"));
        let text = marker.text(100);
        assert_eq!(
            text,
            format!(
                "managed-by=terraform-provider-lab session=k3x9q2m7 who={who} pending expires=2026-11-22T16:00:00Z"
            )
        );
        assert!(text.len() <= 100, "{} characters", text.len());
        let parsed = Marker::parse(&text).expect("parses");
        assert!(parsed.pending && parsed.who.as_deref() == Some(who.as_str()));
        assert_eq!(parsed.expires_at, spec.expires_at);
        // Confirmed: the same marker without `pending`.
        let confirmed = Marker { pending: false, ..parsed }.text(100);
        assert!(!confirmed.contains("pending"), "{confirmed}");
        assert_eq!(Marker::parse(&confirmed).map(|m| m.who), Some(Some(who)));
        // The digest holds nothing of the session id.
        assert!(!student_digest("ada.lovelace@example.edu").contains("k3x9"));
        assert_eq!(Marker::parse("managed-by=terraform-provider-lab session=a pending pending"), None);
        assert_eq!(Marker::parse("managed-by=terraform-provider-lab session=a who=a/b"), None);
    }

    #[test]
    fn an_owned_record_matches_only_its_own_identity() {
        let who = student_digest("ada@example.edu");
        let record = |hostname: &str, who: Option<&str>| OwnedRecord {
            id: RecordId(format!("{hostname}/CNAME")),
            hostname: hostname.into(),
            session_id: "k3x9q2m7".into(),
            expires_at: None,
            student: None,
            who: who.map(str::to_string),
            pending: true,
        };
        let ada = SessionIdentity {
            domain: "lab.example.edu".into(),
            hostname_prefix: "lab-".into(),
            student: "ada@example.edu".into(),
        };
        assert!(record("lab-k3x9q2m7.lab.example.edu", Some(&who)).matches(&ada));
        assert!(record("LAB-k3x9q2m7.lab.example.edu", Some(&who)).matches(&ada));
        assert!(!record("lab-k3x9q2m7.lab.example.edu", None).matches(&ada), "no digest: no identity");
        let alan = SessionIdentity { student: "alan@example.edu".into(), ..ada.clone() };
        assert!(!record("lab-k3x9q2m7.lab.example.edu", Some(&who)).matches(&alan));
        let other_prefix = SessionIdentity { hostname_prefix: "class-a-".into(), ..ada.clone() };
        assert!(!record("lab-k3x9q2m7.lab.example.edu", Some(&who)).matches(&other_prefix));
        let other_domain = SessionIdentity { domain: "example.edu".into(), ..ada.clone() };
        assert!(!record("lab-k3x9q2m7.lab.example.edu", Some(&who)).matches(&other_domain));
        // The hostname must carry the marker's own session id.
        assert!(!record("lab-aaaaaaaa.lab.example.edu", Some(&who)).matches(&ada));
    }

    #[test]
    fn hostnames_are_checked() {
        assert!(validate_hostname("lab-x7k9.lab.example.edu").is_ok());
        assert!(validate_hostname("lab-x7k9.lab.example.edu.").is_err());
        assert!(validate_hostname("").is_err());
        assert!(validate_hostname("a..b").is_err());
        assert!(validate_hostname("-a.b").is_err());
        assert!(validate_hostname("a b.c").is_err());
        assert!(validate_hostname(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn session_ids_are_checked() {
        assert!(validate_session_id("x7k9-alice").is_ok());
        assert!(validate_session_id("").is_err());
        assert!(validate_session_id("a b").is_err());
        assert!(validate_session_id("a=b").is_err());
    }

    #[test]
    fn api_errors_are_listed_with_codes() {
        let err = DnsError::CloudflareApi {
            action: "creating CNAME lab-a.example.com".into(),
            status: 400,
            errors: vec![ApiErrorItem {
                code: 81053,
                message: "An A, AAAA, or CNAME record with that host already exists.".into(),
            }],
        };
        let text = err.to_string();
        assert!(text.contains("81053"), "{text}");
        assert!(text.contains("creating CNAME lab-a.example.com"), "{text}");
        assert_eq!(err.cloudflare_codes(), vec![81053]);
    }
}
