//! `lab_session`: a student's access point. A random id (CSPRNG), the hostname and URL built
//! from it, an optional expiry, and (with a provider `dns` block) the tunnel DNS record.
//! The `lab_sessions` data source (`sessions.rs`) lists the sessions the DNS backend knows.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::backends::dns::{DnsBackend, OwnedRecord, RecordId, RecordSpec, SessionIdentity};
use crate::protocol::{
    Attr, AttrPath, Attribute, Block, DiagResultExt, Diagnostic, Diagnostics, OpContext, PlanRequest, Planned,
    Resource, Schema, Type,
};
use crate::settings::{ProviderHandle, Settings};
use crate::validate;

const TYPE_NAME: &str = "lab_session";
const ID_LEN: usize = 8;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const DEFAULT_PREFIX: &str = "lab-";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub id: Attr<String>,
    pub student: Attr<String>,
    pub ttl: Attr<String>,
    pub hostname_prefix: Attr<String>,
    pub labels: Attr<BTreeMap<String, String>>,
    pub url_scheme: Attr<String>,
    pub url_port: Attr<i64>,
    pub dns_target: Attr<String>,
    pub hostname: Attr<String>,
    pub url: Attr<String>,
    pub created_at: Attr<String>,
    pub expires_at: Attr<String>,
    pub expired: Attr<bool>,
    pub dns_record_id: Attr<String>,
}

pub struct SessionResource {
    provider: ProviderHandle,
    /// Session ids this process has created or adopted. All creates of one apply run in one
    /// provider process, so two sessions of one identity never take the same record.
    claimed: Mutex<HashSet<String>>,
}

impl SessionResource {
    pub fn new(provider: ProviderHandle) -> Self {
        SessionResource { provider, claimed: Mutex::default() }
    }

    fn claimed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.claimed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A fresh id, claimed before its record is written.
    fn claim_new_id(&self) -> String {
        let mut claimed = self.claimed();
        loop {
            let id = new_session_id();
            if claimed.insert(id.clone()) {
                return id;
            }
        }
    }

    /// The orphan this create takes over: the one pending record (written by an apply that
    /// died before Terraform saved its session) of a session with the same domain, prefix and
    /// student, not yet claimed in this process. Several: none is guessed, a warning names them.
    async fn claim_orphan(
        &self,
        settings: &Settings,
        identity: Option<SessionIdentity>,
        ctx: &OpContext,
    ) -> Result<Option<OwnedRecord>, Diagnostics> {
        let (Some(dns), Some(identity)) = (&settings.dns, identity) else { return Ok(None) };
        let student = &identity.student;
        let found = dns
            .find_pending(&identity)
            .await
            .or_diag(format!("Looking for the DNS record of an unfinished earlier apply for student {student:?}"))?;
        let mut claimed = self.claimed();
        let mut orphans: Vec<OwnedRecord> = found
            .into_iter()
            .filter(|r| validate_session_id(&r.session_id).is_ok() && !claimed.contains(&r.session_id))
            .collect();
        match orphans.len() {
            0 => Ok(None),
            1 => {
                let orphan = orphans.remove(0);
                claimed.insert(orphan.session_id.clone());
                ctx.warnings.push(Diagnostic::attr_warning(
                    AttrPath::root("id"),
                    "Adopted the DNS record of an unfinished apply",
                    format!(
                        "The DNS record {} (record id {}) was written for student {student:?} by an earlier \
                         apply that ended before Terraform saved the session in its state. This session \
                         adopts it and keeps its id `{}`, so no second record is made and the student's URL \
                         is the one that apply made.",
                        orphan.hostname, orphan.id, orphan.session_id
                    ),
                ));
                Ok(Some(orphan))
            }
            _ => {
                let names: Vec<String> =
                    orphans.iter().map(|r| format!("{} (record id {})", r.hostname, r.id)).collect();
                ctx.warnings.push(Diagnostic::attr_warning(
                    AttrPath::root("student"),
                    "Several DNS records of unfinished applies match this session",
                    format!(
                        "{} records carry this provider's marker for student {student:?} with hostname prefix \
                         {:?} in {}, and Terraform's state has none of them: {}. The provider does not guess \
                         which one is this session's, so it makes a new session. Remove the others with your \
                         DNS tool: the `lab_sessions` data source lists them with their ids.",
                        orphans.len(),
                        identity.hostname_prefix,
                        identity.domain,
                        names.join(", ")
                    ),
                ));
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl Resource for SessionResource {
    type State = SessionState;

    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        let computed = |name: &str, ty: Type, text: &str| Attribute::of_type(name, ty).computed().description(text);
        Schema {
            version: 0,
            block: Block {
                description: "A student's access point: a random session id, the hostname and URL \
                              `https://<hostname_prefix><id>.<domain>`, an optional expiry and, when the provider \
                              has a `dns` block, the session's DNS record."
                    .into(),
                attributes: vec![
                    computed(
                        "id",
                        Type::String,
                        "Session id: 8 characters `[a-z0-9]` from a CSPRNG, stable for the session's life.",
                    )
                    .keep_prior(),
                    Attribute::string("student")
                        .required()
                        .requires_replace()
                        .description("Who the session is for: free text, e.g. an email or a name."),
                    Attribute::string("ttl").optional().description(
                        "How long the session lasts from its creation, e.g. `\"4h\"`, `\"90m\"`, `\"1h30m\"`. \
                         Unset: no expiry. Changing it moves `expires_at` in place.",
                    ),
                    Attribute::string("hostname_prefix")
                        .default_str(DEFAULT_PREFIX)
                        .requires_replace()
                        .description("Prefix of the hostname's first label: lowercase letters, digits and `-`."),
                    Attribute::of_type("labels", Type::Map(Box::new(Type::String)))
                        .optional()
                        .description("Free-form labels, e.g. course or group. Updated in place."),
                    Attribute::string("url_scheme").optional().description(
                        "Scheme of `url`: `https` (unset) or `http`. Usually `lab_gateway.<name>.url_scheme`. \
                         Updated in place: the id stays.",
                    ),
                    Attribute::number("url_port").optional().description(
                        "Port of `url`, left out when it is the scheme's default; unset: the default. Usually \
                         `lab_gateway.<name>.url_port` (`8080` for a local classroom). Updated in place.",
                    ),
                    Attribute::string("dns_target").optional().description(
                        "Where this session's DNS record points instead of the provider's `dns` target: the \
                         gateway (or tunnel) of the host the session's terminal is on, e.g. \
                         `gw-h2.lab.example.edu`. A host name for CNAME records (Cloudflare, RFC 2136's default), \
                         an IPv4 address for RFC 2136's `record_type = \"A\"`; checked at plan time. Changed \
                         in place (the record is repointed, the id stays). No effect without a `dns` block.",
                    ),
                    computed("hostname", Type::String, "`<hostname_prefix><id>.<domain>`.").keep_prior(),
                    computed(
                        "url",
                        Type::String,
                        "`<url_scheme>://<hostname>[:<url_port>]`, e.g. `https://lab-k3x9q2m7.example.edu` or \
                         `http://lab-k3x9q2m7.lab.localhost:8080`: the link to give the student.",
                    )
                    .keep_prior(),
                    computed("created_at", Type::String, "Creation time, RFC 3339 (UTC).").keep_prior(),
                    computed("expires_at", Type::String, "`created_at + ttl`, RFC 3339 (UTC); null without `ttl`."),
                    computed("expired", Type::Bool, "Whether `expires_at` has passed; recomputed on every refresh."),
                    computed(
                        "dns_record_id",
                        Type::String,
                        "Id of the session's DNS record; null without a provider `dns` block.",
                    )
                    .keep_prior(),
                ],
                ..Default::default()
            },
        }
    }

    async fn validate(&self, config: &SessionState) -> Diagnostics {
        let mut diags = Diagnostics::new();
        if let Some(student) = config.student.known()
            && student.trim().is_empty()
        {
            diags.push(Diagnostic::attr_error(
                AttrPath::root("student"),
                "Empty student",
                "`student` must name the student, e.g. an email address or a name.",
            ));
        }
        if let Some(ttl) = config.ttl.known() {
            validate::check(&mut diags, AttrPath::root("ttl"), parse_ttl(ttl));
        }
        if let Some(prefix) = config.hostname_prefix.known() {
            validate::check(&mut diags, AttrPath::root("hostname_prefix"), validate_prefix(prefix));
        }
        if let Some(scheme) = config.url_scheme.known() {
            let known = scheme == "http" || scheme == "https";
            let result = if known { Ok(()) } else { Err(format!("`{scheme}`: use `http` or `https`")) };
            validate::check(&mut diags, AttrPath::root("url_scheme"), result);
        }
        if let Some(port) = config.url_port.known() {
            validate::check(&mut diags, AttrPath::root("url_port"), validate::port(*port));
        }
        if let Some(target) = config.dns_target.known() {
            validate::check(&mut diags, AttrPath::root("dns_target"), validate::host(target.trim_end_matches('.')));
        }
        diags
    }

    async fn plan(&self, req: PlanRequest<SessionState>) -> Result<Planned<SessionState>, Diagnostics> {
        let settings = self.provider.settings()?;
        settings.require_domain(TYPE_NAME)?;
        let mut planned = req.planned;
        // What the record can point at depends on the backend (CNAME or A).
        if let (Some(dns), Some(target)) = (&settings.dns, planned.dns_target.known()) {
            dns.check_target(target).or_attr_diag(AttrPath::root("dns_target"), "Invalid dns_target")?;
        }
        let prior_ttl = req.prior.as_ref().map(|p| p.ttl.clone());
        // `expires_at` follows `ttl`: derived now when `created_at` is known, at apply otherwise.
        if planned.ttl.is_unknown() {
            planned.expires_at = Attr::Unknown;
            planned.expired = Attr::Unknown;
        } else if prior_ttl.as_ref() != Some(&planned.ttl) {
            planned.expires_at = if planned.ttl.is_null() || planned.created_at.known().is_some() {
                expires_at(&planned)?
            } else {
                Attr::Unknown
            };
            planned.expired = Attr::Unknown;
        } else if let Some(prior) = &req.prior {
            planned.expires_at = prior.expires_at.clone();
            planned.expired = prior.expired.clone();
        }
        // The URL follows its scheme and port; the hostname (and id) stay.
        if let Some(prior) = &req.prior
            && (prior.url_scheme != planned.url_scheme || prior.url_port != planned.url_port)
        {
            planned.url =
                match (planned.hostname.known(), planned.url_scheme.is_unknown() || planned.url_port.is_unknown()) {
                    (Some(hostname), false) => Attr::Known(session_url(&planned, hostname)),
                    _ => Attr::Unknown,
                };
        }
        // A DNS record deleted out of band (read cleared the id) is re-created by an update.
        if req.prior.is_some() && settings.dns.is_some() && planned.dns_record_id.is_null() {
            planned.dns_record_id = Attr::Unknown;
        }
        // An imported session knows only its id and prefix: it adopts `student` from the configuration.
        let imported = req.prior.as_ref().is_some_and(|p| p.student.is_null());
        let mut result = Planned::new(planned);
        if imported {
            result.state.created_at = Attr::Unknown;
            result.state.expires_at = if result.state.ttl.is_null() { Attr::Null } else { Attr::Unknown };
            result.adopt_without_replace = vec![AttrPath::root("student")];
        }
        Ok(result)
    }

    async fn create(&self, planned: SessionState, ctx: &OpContext) -> Result<SessionState, Diagnostics> {
        let settings = self.provider.settings()?;
        let domain = settings.require_domain(TYPE_NAME)?;
        let prefix = planned.hostname_prefix.known().map_or(DEFAULT_PREFIX, String::as_str);
        // A session's identity is its domain, prefix and student; its id is what the orphan of
        // an apply killed before saving its state carries.
        let identity = planned.student.known().map(|student| SessionIdentity {
            domain: domain.to_string(),
            hostname_prefix: prefix.to_string(),
            student: student.clone(),
        });
        let id = match self.claim_orphan(settings, identity, ctx).await? {
            Some(orphan) => orphan.session_id,
            None => self.claim_new_id(),
        };
        let hostname = format!("{prefix}{id}.{domain}");
        let mut state = SessionState {
            id: Attr::Known(id),
            url: Attr::Known(session_url(&planned, &hostname)),
            hostname: Attr::Known(hostname),
            created_at: Attr::Known(format_time(now_seconds())),
            dns_record_id: Attr::Null,
            ..planned
        };
        state.expires_at = expires_at(&state)?;
        state.expired = Attr::Known(is_expired(&state.expires_at, OffsetDateTime::now_utc())?);
        // Pending until a refresh sees the session in Terraform's state.
        state.dns_record_id = ensure_dns_record(settings, &state, true).await?;
        Ok(state)
    }

    async fn read(&self, mut current: SessionState, _ctx: &OpContext) -> Result<Option<SessionState>, Diagnostics> {
        let settings = self.provider.settings()?;
        current.expired = Attr::Known(is_expired(&current.expires_at, OffsetDateTime::now_utc())?);
        if !dns_record_exists(settings, &current).await? {
            current.dns_record_id = Attr::Null;
        }
        Ok(Some(current))
    }

    async fn update(
        &self,
        prior: SessionState,
        planned: SessionState,
        _ctx: &OpContext,
    ) -> Result<SessionState, Diagnostics> {
        let settings = self.provider.settings()?;
        // An imported session starts its clock at its first apply.
        let created_at = match prior.created_at {
            Attr::Known(t) => Attr::Known(t),
            _ => Attr::Known(format_time(now_seconds())),
        };
        let mut state = SessionState { created_at, ..planned };
        if let Some(hostname) = state.hostname.known() {
            state.url = Attr::Known(session_url(&state, hostname));
        }
        state.expires_at = expires_at(&state)?;
        state.expired = Attr::Known(is_expired(&state.expires_at, OffsetDateTime::now_utc())?);
        // The record's marker carries the expiry that `lab_sessions` reports: refresh it too, and
        // repoint the record when its target changed.
        let record_changed = state.expires_at != prior.expires_at || state.dns_target != prior.dns_target;
        if state.dns_record_id.is_unknown() || (settings.dns.is_some() && record_changed) {
            state.dns_record_id = ensure_dns_record(settings, &state, false).await?;
        }
        Ok(state)
    }

    async fn delete(&self, current: SessionState, _ctx: &OpContext) -> Result<(), Diagnostics> {
        let settings = self.provider.settings()?;
        delete_dns_record(settings, &current).await
    }

    /// Import id: the session id (`k3x9q2m7`), or the first label of its hostname when the
    /// prefix is not the default (`class-a-k3x9q2m7`).
    async fn import(&self, import_id: &str, _ctx: &OpContext) -> Result<Option<SessionState>, Diagnostics> {
        let (prefix, id) = match import_id.len().checked_sub(ID_LEN) {
            Some(0) => (DEFAULT_PREFIX, import_id),
            Some(split) if import_id.is_char_boundary(split) => import_id.split_at(split),
            _ => (DEFAULT_PREFIX, import_id),
        };
        let invalid = |why| Diagnostic::error("Invalid session id to import", why);
        validate_session_id(id).map_err(invalid)?;
        validate_prefix(prefix).map_err(invalid)?;
        let settings = self.provider.settings()?;
        let domain = settings.require_domain(TYPE_NAME)?;
        // A session lives in its id (and DNS record); the rest comes from the configuration on the next apply.
        let hostname = format!("{prefix}{id}.{domain}");
        Ok(Some(SessionState {
            id: Attr::Known(id.to_string()),
            hostname_prefix: Attr::Known(prefix.into()),
            url: Attr::Known(format!("https://{hostname}")),
            hostname: Attr::Known(hostname),
            expired: Attr::Known(false),
            ..Default::default()
        }))
    }
}

/// `<url_scheme>://<hostname>[:<url_port>]`, `https` and its default port where unset.
fn session_url(state: &SessionState, hostname: &str) -> String {
    let scheme = state.url_scheme.known().map_or("https", String::as_str);
    let port = state.url_port.known().and_then(|p| u16::try_from(*p).ok());
    crate::resources::gateway::route::url_for(scheme, hostname, port)
}

// --- DNS record lifecycle (no-ops without a provider `dns` block) ---

/// `pending`: the session is not in Terraform's state yet (a create).
async fn ensure_dns_record(
    settings: &Settings,
    state: &SessionState,
    pending: bool,
) -> Result<Attr<String>, Diagnostics> {
    let Some(dns) = &settings.dns else { return Ok(Attr::Null) };
    let (Some(hostname), Some(id)) = (state.hostname.known(), state.id.known()) else {
        return Err(Diagnostic::error("Corrupt session state", "hostname or id is missing").into());
    };
    let spec = RecordSpec {
        hostname: hostname.clone(),
        session_id: id.clone(),
        expires_at: state.expires_at.known().cloned(),
        student: state.student.known().cloned(),
        pending,
        target: state.dns_target.known().cloned(),
    };
    let record = dns.ensure_record(&spec).await.or_diag(format!("Creating DNS record {hostname}"))?;
    Ok(Attr::Known(record.0))
}

/// The session's existing record, when the provider has a DNS backend and the state names one.
fn existing_record<'a>(settings: &'a Settings, state: &'a SessionState) -> Option<(&'a DnsBackend, &'a str, RecordId)> {
    let (Some(dns), Some(hostname), Some(record)) =
        (&settings.dns, state.hostname.known(), state.dns_record_id.known())
    else {
        return None;
    };
    Some((dns, hostname, RecordId(record.clone())))
}

/// Whether the session's record still exists; a refresh also confirms a pending marker, since
/// the session is in Terraform's state now.
async fn dns_record_exists(settings: &Settings, state: &SessionState) -> Result<bool, Diagnostics> {
    let Some((dns, hostname, record)) = existing_record(settings, state) else { return Ok(true) };
    dns.confirm_record(hostname, &record).await.or_diag(format!("Checking DNS record {hostname}"))
}

async fn delete_dns_record(settings: &Settings, state: &SessionState) -> Result<(), Diagnostics> {
    let Some((dns, hostname, record)) = existing_record(settings, state) else { return Ok(()) };
    dns.delete_record(hostname, &record).await.or_diag(format!("Deleting DNS record {hostname}"))
}

// --- ids, durations, times ---

/// 8 characters of `[a-z0-9]` (41 bits) from the thread-local CSPRNG (ChaCha, seeded by the OS).
pub fn new_session_id() -> String {
    let mut rng = rand::rng();
    (0..ID_LEN).map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char).collect()
}

fn validate_session_id(id: &str) -> Result<(), String> {
    if id.len() == ID_LEN && id.bytes().all(|b| ID_ALPHABET.contains(&b)) {
        Ok(())
    } else {
        Err(format!("`{id}` is not a session id: expected {ID_LEN} characters of [a-z0-9]"))
    }
}

/// `"4h"`, `"90m"`, `"1h30m"`, `"2days"`: strictly positive.
pub fn parse_ttl(ttl: &str) -> Result<Duration, String> {
    validate::duration(ttl).map_err(|why| {
        if why.ends_with("is zero") {
            format!("{why}; leave `ttl` unset for a session that never expires")
        } else {
            why
        }
    })
}

fn validate_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(format!("`{prefix}` may only contain lowercase letters, digits and '-'"));
    }
    if prefix.starts_with('-') {
        return Err(format!("`{prefix}` cannot start with '-' (it begins a DNS label)"));
    }
    if prefix.len() + ID_LEN > 63 {
        return Err(format!("`{prefix}` is too long: with the {ID_LEN}-character id a DNS label holds 63 characters"));
    }
    Ok(())
}

fn expires_at(state: &SessionState) -> Result<Attr<String>, Diagnostics> {
    let (Some(ttl), Some(created)) = (state.ttl.known(), state.created_at.known()) else {
        return Ok(Attr::Null);
    };
    let ttl = parse_ttl(ttl).map_err(|why| validate::invalid(AttrPath::root("ttl"), why))?;
    Ok(Attr::Known(format_time(parse_time(created)? + ttl)))
}

pub(super) fn is_expired(expires_at: &Attr<String>, now: OffsetDateTime) -> Result<bool, Diagnostics> {
    match expires_at.known() {
        Some(t) => Ok(now >= parse_time(t)?),
        None => Ok(false),
    }
}

/// Now, to the second: state times read like `2026-11-22T10:00:00Z`.
fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

pub(crate) fn format_time(t: OffsetDateTime) -> String {
    // Rfc3339 formatting only fails for years outside 0..=9999.
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn parse_time(text: &str) -> Result<OffsetDateTime, Diagnostics> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        Diagnostic::error("Corrupt session state", format!("`{text}` is not an RFC 3339 time: {e}")).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_well_formed() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_session_id()).collect();
        assert_eq!(ids.len(), 1000, "collision in 1000 ids of 41 bits");
        assert!(ids.iter().all(|id| validate_session_id(id).is_ok()));
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("4h").unwrap(), Duration::from_secs(4 * 3600));
        assert_eq!(parse_ttl("90m").unwrap(), Duration::from_secs(90 * 60));
        assert_eq!(parse_ttl("1h30m").unwrap(), Duration::from_secs(90 * 60));
        let err = parse_ttl("4 parsecs").unwrap_err();
        assert!(err.contains("`parsecs` is not a unit of time"), "{err}");
        assert!(parse_ttl("0s").is_err());
    }

    #[test]
    fn expiry_follows_ttl() {
        let state = SessionState {
            ttl: Attr::Known("90m".into()),
            created_at: Attr::Known("2026-11-22T10:00:00Z".into()),
            ..Default::default()
        };
        let exp = expires_at(&state).unwrap();
        assert_eq!(exp, Attr::Known("2026-11-22T11:30:00Z".into()));
        let before = parse_time("2026-11-22T11:29:59Z").unwrap();
        let after = parse_time("2026-11-22T11:30:00Z").unwrap();
        assert!(!is_expired(&exp, before).unwrap());
        assert!(is_expired(&exp, after).unwrap());
        assert!(!is_expired(&Attr::Null, after).unwrap());
    }

    #[tokio::test]
    async fn validation_names_the_attribute() {
        let r = SessionResource::new(ProviderHandle::default());
        let config = SessionState {
            student: Attr::Known("  ".into()),
            ttl: Attr::Known("4 parsecs".into()),
            hostname_prefix: Attr::Known("Lab_".into()),
            ..Default::default()
        };
        let diags = r.validate(&config).await;
        let paths: Vec<String> = diags.0.iter().map(|d| d.attribute.as_ref().unwrap().to_string()).collect();
        assert_eq!(paths, ["student", "ttl", "hostname_prefix"]);
        assert!(validate_prefix(&"a".repeat(56)).is_err());
        assert!(validate_prefix("lab-").is_ok());
    }

    /// A provider whose RFC 2136 backend writes `record_type` records (no server is contacted).
    fn with_rfc2136(record_type: &str, target: &str) -> ProviderHandle {
        use crate::backends::dns::rfc2136::{Rfc2136Config, Rfc2136Dns};
        let config = Rfc2136Config {
            server: "127.0.0.1:53".into(),
            zone: "lab.example.edu".into(),
            key_name: "lab-key".into(),
            key_algorithm: Default::default(),
            key_secret: "c2VjcmV0".into(),
            record_type: record_type.parse().unwrap(),
            target: target.into(),
        };
        let dns = DnsBackend::Rfc2136(Rfc2136Dns::new(config).unwrap());
        ProviderHandle::with_settings(Settings {
            domain: Some("lab.example.edu".into()),
            dns: Some(std::sync::Arc::new(dns)),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn dns_target_is_checked_on_its_attribute_against_the_record_type() {
        let bad = SessionState { dns_target: Attr::Known("gw h2!".into()), ..Default::default() };
        let diags = SessionResource::new(ProviderHandle::default()).validate(&bad).await;
        assert_eq!(diags.0.len(), 1, "{diags:?}");
        assert_eq!(diags.0[0].attribute, Some(AttrPath::root("dns_target")));

        let plan = |provider: ProviderHandle, target: &str| {
            let config = SessionState {
                student: Attr::Known("ann".into()),
                hostname_prefix: Attr::Known(DEFAULT_PREFIX.into()),
                dns_target: Attr::Known(target.into()),
                ..Default::default()
            };
            let req = PlanRequest { prior: None, config: config.clone(), planned: config };
            async move { SessionResource::new(provider).plan(req).await }
        };
        // A records hold addresses, CNAMEs names.
        let err = plan(with_rfc2136("A", "10.0.0.1"), "gw-h2.lab.example.edu").await.err().unwrap();
        assert_eq!(err.0[0].attribute, Some(AttrPath::root("dns_target")), "{err:?}");
        assert!(err.0[0].detail.contains("must be an IPv4 address"), "{err:?}");
        assert!(plan(with_rfc2136("A", "10.0.0.1"), "10.77.2.2").await.is_ok());
        let err = plan(with_rfc2136("CNAME", "tunnel.lab.example.edu"), "10.77.2.2").await.err().unwrap();
        assert_eq!(err.0[0].attribute, Some(AttrPath::root("dns_target")), "{err:?}");
        let ok = plan(with_rfc2136("CNAME", "tunnel.lab.example.edu"), "gw-h2.lab.example.edu").await.unwrap();
        assert_eq!(ok.state.dns_target, Attr::Known("gw-h2.lab.example.edu".into()));
    }
}
