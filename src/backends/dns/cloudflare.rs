//! Cloudflare DNS records API client (reqwest, rustls).
//!
//! One proxied CNAME per session, `<hostname>` -> `<tunnel_id>.cfargotunnel.com`, with the
//! ownership marker in the record comment. Every response is the `{success, errors, messages,
//! result, result_info}` envelope; lists are paginated; 429 (honouring Retry-After), 5xx and
//! transport failures are retried with bounded backoff.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    ApiErrorItem, DnsError, Marker, OWNER_MARKER_PREFIX, OwnedRecord, RecordId, RecordSpec, parse_owner_marker,
};

/// Cloudflare answers "record already exists" with one of these codes.
pub const CODE_RECORD_EXISTS: [i64; 3] = [81053, 81057, 81058];
/// "Record does not exist" (GET/DELETE of an unknown record id).
pub const CODE_RECORD_NOT_FOUND: i64 = 81044;

/// Cloudflare limits record comments to 100 characters on free zones.
const MAX_COMMENT_LEN: usize = 100;

pub const DEFAULT_API_URL: &str = "https://api.cloudflare.com/client/v4";
/// Largest page the list endpoint accepts without complaint on every plan.
const PAGE_SIZE: u32 = 100;
/// Guards against a server that keeps announcing more pages.
const MAX_PAGES: u32 = 10_000;

/// Typed `dns { cloudflare { ... } }` provider block.
#[derive(Clone)]
pub struct CloudflareConfig {
    pub api_token: String,
    pub zone_id: String,
    pub tunnel_id: String,
    pub proxied: bool,
    /// Default [`DEFAULT_API_URL`]; tests point it at a local server.
    pub api_url: String,
}

// The token must never reach logs or diagnostics.
impl fmt::Debug for CloudflareConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareConfig")
            .field("api_token", &"<redacted>")
            .field("zone_id", &self.zone_id)
            .field("tunnel_id", &self.tunnel_id)
            .field("proxied", &self.proxied)
            .field("api_url", &self.api_url)
            .finish()
    }
}

impl CloudflareConfig {
    /// Checks the values before any request is made.
    pub fn validate(&self) -> Result<(), DnsError> {
        let bad = |msg: String| Err(DnsError::InvalidConfig(format!("cloudflare: {msg}")));
        if self.api_token.trim().is_empty() {
            return bad("api_token is empty".into());
        }
        if self.api_token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("api_token contains whitespace or control characters".into());
        }
        if self.zone_id.is_empty()
            || self.zone_id.len() > 32
            || !self.zone_id.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return bad(format!(
                "zone_id {:?} must be the zone identifier (up to 32 letters and digits)",
                self.zone_id
            ));
        }
        if self.tunnel_id.is_empty() || !self.tunnel_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return bad(format!(
                "tunnel_id {:?} must be the tunnel UUID (as shown by `cloudflared tunnel list`)",
                self.tunnel_id
            ));
        }
        match Url::parse(&self.api_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
            _ => bad(format!("api_url {:?} must be an http(s) URL", self.api_url)),
        }
    }

    /// Target of every session CNAME.
    pub fn tunnel_target(&self) -> String {
        format!("{}.cfargotunnel.com", self.tunnel_id)
    }
}

/// How hard to try before giving up on 429, 5xx and transport errors.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts per request, including the first.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Upper bound on a server-provided Retry-After.
    pub max_retry_after: Duration,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, failed_attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_attempts.saturating_sub(1));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// The `{success, errors, messages, result, result_info}` envelope of every v4 response.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<ApiErrorItem>,
    #[serde(default)]
    pub messages: Vec<serde_json::Value>,
    pub result: Option<T>,
    pub result_info: Option<ResultInfo>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResultInfo {
    pub page: Option<u32>,
    pub per_page: Option<u32>,
    pub count: Option<u32>,
    pub total_count: Option<u32>,
    pub total_pages: Option<u32>,
}

/// The fields of a DNS record this provider reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DnsRecord {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub proxied: Option<bool>,
    #[serde(default)]
    pub comment: Option<String>,
}

impl DnsRecord {
    fn owner_session(&self) -> Option<String> {
        self.comment.as_deref().and_then(parse_owner_marker)
    }

    fn describe(&self) -> String {
        let comment = match &self.comment {
            Some(c) if !c.is_empty() => format!("comment {c:?}"),
            _ => "no comment".to_string(),
        };
        format!("{} record {} -> {} (id {}, {comment})", self.record_type, self.name, self.content, self.id)
    }
}

#[derive(Debug, Serialize)]
struct NewRecord<'a> {
    #[serde(rename = "type")]
    record_type: &'a str,
    name: &'a str,
    content: &'a str,
    /// 1 = automatic, required for proxied records.
    ttl: u32,
    proxied: bool,
    comment: &'a str,
}

#[derive(Debug, Serialize)]
struct RecordPatch<'a> {
    content: &'a str,
    proxied: bool,
    comment: &'a str,
}

#[derive(Debug, Deserialize)]
struct DeletedRecord {
    #[allow(dead_code)]
    id: Option<String>,
}

/// Client for one zone and one tunnel.
pub struct CloudflareDns {
    config: CloudflareConfig,
    http: reqwest::Client,
    retry: RetryPolicy,
    base: Url,
}

impl fmt::Debug for CloudflareDns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareDns").field("config", &self.config).field("retry", &self.retry).finish()
    }
}

impl CloudflareDns {
    pub fn new(config: CloudflareConfig) -> Result<Self, DnsError> {
        Self::with_retry_policy(config, RetryPolicy::default())
    }

    pub fn with_retry_policy(config: CloudflareConfig, retry: RetryPolicy) -> Result<Self, DnsError> {
        config.validate()?;
        // Url::join drops the last path segment unless it ends in '/'.
        let mut base_text = config.api_url.clone();
        if !base_text.ends_with('/') {
            base_text.push('/');
        }
        let base = Url::parse(&base_text)
            .map_err(|e| DnsError::InvalidConfig(format!("cloudflare: api_url {:?}: {e}", config.api_url)))?;
        let http = reqwest::Client::builder()
            .timeout(retry.request_timeout)
            .connect_timeout(retry.connect_timeout)
            .user_agent(concat!("terraform-provider-lab/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DnsError::InvalidConfig(format!("cloudflare: building HTTP client: {e}")))?;
        Ok(CloudflareDns { config, http, retry, base })
    }

    pub fn config(&self) -> &CloudflareConfig {
        &self.config
    }

    /// Where the session's CNAME points: its own `target`, else the tunnel.
    fn target_of(&self, spec: &RecordSpec) -> String {
        spec.target.as_deref().map_or_else(|| self.config.tunnel_target(), |t| t.trim_end_matches('.').to_string())
    }

    pub async fn ensure_record(&self, spec: &RecordSpec) -> Result<RecordId, DnsError> {
        let action = format!("creating CNAME {}", spec.hostname);
        if let Some(id) = self.adopt_or_refuse(spec, &action).await? {
            return Ok(id);
        }
        let target = self.target_of(spec);
        let comment = Marker::of(spec).text(MAX_COMMENT_LEN);
        let body = NewRecord {
            record_type: "CNAME",
            name: &spec.hostname,
            content: &target,
            ttl: 1,
            proxied: self.config.proxied,
            comment: &comment,
        };
        let created = self.call::<DnsRecord, _>(Method::POST, &self.records_path(), &[], Some(&body), &action).await;
        match created {
            Ok(env) => {
                let record = require_result(env, &action)?;
                Ok(RecordId(record.id))
            }
            // Someone (maybe our own earlier, timed-out attempt) created it meanwhile: look again.
            Err(err) if has_code(&err, &CODE_RECORD_EXISTS) => match self.adopt_or_refuse(spec, &action).await? {
                Some(id) => Ok(id),
                None => Err(err),
            },
            Err(err) => Err(err),
        }
    }

    /// Finds records named `spec.hostname`: the session's own CNAME is adopted (`Some`), any
    /// other record is an error naming it, nothing at all gives `None`.
    async fn adopt_or_refuse(&self, spec: &RecordSpec, action: &str) -> Result<Option<RecordId>, DnsError> {
        let existing = self.list_records(&[("name", spec.hostname.clone())], action).await?;
        let mut adopted = None;
        for record in existing.iter().filter(|r| r.name.eq_ignore_ascii_case(&spec.hostname)) {
            let ours =
                record.record_type == "CNAME" && record.owner_session().as_deref() == Some(spec.session_id.as_str());
            if !ours {
                return Err(DnsError::Foreign {
                    action: "creating CNAME",
                    hostname: spec.hostname.clone(),
                    found: record.describe(),
                    expected_owner: format!("session {}", spec.session_id),
                });
            }
            self.repoint_if_stale(record, spec, action).await?;
            adopted = Some(RecordId(record.id.clone()));
        }
        Ok(adopted)
    }

    /// An adopted record of this session may predate a change of `tunnel_id`, of the session's own
    /// target, `proxied` or the session's expiry: bring it in line (it is ours, so changing it is
    /// allowed).
    async fn repoint_if_stale(&self, record: &DnsRecord, spec: &RecordSpec, action: &str) -> Result<(), DnsError> {
        let target = self.target_of(spec);
        let comment = Marker::of(spec).text(MAX_COMMENT_LEN);
        let stale = !record.content.eq_ignore_ascii_case(&target)
            || record.proxied != Some(self.config.proxied)
            || record.comment.as_deref() != Some(comment.as_str());
        if !stale {
            return Ok(());
        }
        let body = RecordPatch { content: &target, proxied: self.config.proxied, comment: &comment };
        let path = self.record_path(&RecordId(record.id.clone()))?;
        let action = format!("{action} (updating adopted record {} to {target})", record.id);
        self.call::<DnsRecord, _>(Method::PATCH, &path, &[], Some(&body), &action).await?;
        Ok(())
    }

    pub async fn record_exists(&self, hostname: &str, id: &RecordId) -> Result<bool, DnsError> {
        let action = format!("reading record {id} ({hostname})");
        Ok(self.get_record(id, &action).await?.is_some())
    }

    pub async fn delete_record(&self, hostname: &str, id: &RecordId) -> Result<(), DnsError> {
        let action = format!("deleting record {id} ({hostname})");
        let Some(record) = self.get_record(id, &action).await? else {
            return Ok(());
        };
        if !record.name.eq_ignore_ascii_case(hostname) {
            return Err(DnsError::InvalidInput(format!(
                "{action}: record {id} is {}, not {hostname}; refusing to delete it",
                record.name
            )));
        }
        if record.owner_session().is_none() {
            return Err(DnsError::Foreign {
                action: "deleting record",
                hostname: hostname.to_string(),
                found: record.describe(),
                expected_owner: "terraform-provider-lab".to_string(),
            });
        }
        let path = self.record_path(id)?;
        match self.call::<DeletedRecord, ()>(Method::DELETE, &path, &[], None, &action).await {
            Ok(_) => Ok(()),
            // Gone between our read and our delete: the outcome we wanted.
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(err),
        }
    }

    pub async fn list_owned(&self) -> Result<Vec<OwnedRecord>, DnsError> {
        self.list_marked(&[], "listing records owned by terraform-provider-lab").await
    }

    /// The owned records whose marker carries the student digest `who`: the listing is narrowed
    /// server-side by the documented `comment.contains` filter, and the marker is parsed again here.
    pub async fn list_owned_by(&self, who: &str) -> Result<Vec<OwnedRecord>, DnsError> {
        let filter = [("comment.contains", format!(" who={who}"))];
        let action = format!("listing records owned by terraform-provider-lab with who={who}");
        Ok(self.list_marked(&filter, &action).await?.into_iter().filter(|r| r.who.as_deref() == Some(who)).collect())
    }

    /// Owned CNAMEs matching `filters` too. The comment filters narrow the listing server-side
    /// (case-insensitive); the marker is parsed again here, which is what decides ownership.
    async fn list_marked(&self, filters: &[(&str, String)], action: &str) -> Result<Vec<OwnedRecord>, DnsError> {
        let mut query = vec![("type", "CNAME".to_string()), ("comment.startswith", OWNER_MARKER_PREFIX.to_string())];
        query.extend_from_slice(filters);
        let records = self.list_records(&query, action).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let marker = Marker::parse(r.comment.as_deref()?)?;
                Some(OwnedRecord::of(RecordId(r.id), r.name, marker))
            })
            .collect())
    }

    pub async fn confirm_record(&self, hostname: &str, id: &RecordId) -> Result<bool, DnsError> {
        let action = format!("confirming record {id} ({hostname})");
        let Some(record) = self.get_record(id, &action).await? else {
            return Ok(false);
        };
        let marker = record.comment.as_deref().and_then(Marker::parse);
        if let Some(marker) = marker.filter(|m| m.pending && record.name.eq_ignore_ascii_case(hostname)) {
            let comment = Marker { pending: false, ..marker }.text(MAX_COMMENT_LEN);
            let body =
                RecordPatch { content: &record.content, proxied: record.proxied.unwrap_or(false), comment: &comment };
            self.call::<DnsRecord, _>(Method::PATCH, &self.record_path(id)?, &[], Some(&body), &action).await?;
        }
        Ok(true)
    }

    async fn get_record(&self, id: &RecordId, action: &str) -> Result<Option<DnsRecord>, DnsError> {
        let path = self.record_path(id)?;
        match self.call::<DnsRecord, ()>(Method::GET, &path, &[], None, action).await {
            Ok(env) => Ok(Some(require_result(env, action)?)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// All pages of `GET /zones/{zone}/dns_records` with the given filters.
    async fn list_records(&self, filters: &[(&str, String)], action: &str) -> Result<Vec<DnsRecord>, DnsError> {
        let mut all = Vec::new();
        let mut page = 1u32;
        loop {
            let mut query: Vec<(&str, String)> = filters.to_vec();
            query.push(("page", page.to_string()));
            query.push(("per_page", PAGE_SIZE.to_string()));
            let env = self.call::<Vec<DnsRecord>, ()>(Method::GET, &self.records_path(), &query, None, action).await?;
            let info = env.result_info.clone().unwrap_or_default();
            let batch = env.result.unwrap_or_default();
            let batch_len = batch.len();
            all.extend(batch);
            let total_pages = info.total_pages.unwrap_or(1);
            if page >= total_pages || batch_len == 0 {
                break;
            }
            if page >= MAX_PAGES {
                return Err(DnsError::UnexpectedResponse {
                    action: action.to_string(),
                    detail: format!("more than {MAX_PAGES} pages announced; stopping"),
                });
            }
            page += 1;
        }
        Ok(all)
    }

    fn records_path(&self) -> String {
        format!("zones/{}/dns_records", self.config.zone_id)
    }

    fn record_path(&self, id: &RecordId) -> Result<String, DnsError> {
        // The id becomes a path segment: refuse anything that could change the path.
        if id.0.is_empty() || !id.0.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(DnsError::InvalidInput(format!("Cloudflare record id {:?} must be letters and digits", id.0)));
        }
        Ok(format!("{}/{}", self.records_path(), id.0))
    }

    /// One API call with retries on 429, 5xx and transport errors; unwraps the envelope.
    async fn call<T, B>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        action: &str,
    ) -> Result<Envelope<T>, DnsError>
    where
        T: DeserializeOwned,
        B: Serialize + ?Sized,
    {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| DnsError::InvalidInput(format!("{action}: building URL for {path:?}: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.max_attempts;
            let mut request = self.http.request(method.clone(), url.clone()).bearer_auth(&self.config.api_token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(err) if !last && (err.is_timeout() || err.is_connect()) => {
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                    continue;
                }
                Err(err) => {
                    return Err(DnsError::Http {
                        action: action.to_string(),
                        // reqwest errors carry the URL, which holds no secret (token is a header).
                        source: err,
                    });
                }
            };
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS && !last {
                let wait = retry_after(&response)
                    .map(|d| d.min(self.retry.max_retry_after))
                    .unwrap_or_else(|| self.retry.backoff(attempt));
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && !last {
                tokio::time::sleep(self.retry.backoff(attempt)).await;
                continue;
            }
            let bytes = response.bytes().await.map_err(|e| DnsError::Http { action: action.to_string(), source: e })?;
            return parse_envelope(status, &bytes, action);
        }
    }
}

/// Turns a response into its envelope, or an error carrying Cloudflare's codes.
pub fn parse_envelope<T: DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
    action: &str,
) -> Result<Envelope<T>, DnsError> {
    let env: Envelope<serde_json::Value> = match serde_json::from_slice(body) {
        Ok(env) => env,
        Err(e) => {
            let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
            return Err(DnsError::UnexpectedResponse {
                action: action.to_string(),
                detail: format!("HTTP {status}, body is not a Cloudflare envelope ({e}): {snippet:?}"),
            });
        }
    };
    if !env.success || !status.is_success() {
        return Err(DnsError::CloudflareApi {
            action: action.to_string(),
            status: status.as_u16(),
            errors: if env.errors.is_empty() {
                vec![ApiErrorItem { code: 0, message: format!("HTTP {status}") }]
            } else {
                env.errors
            },
        });
    }
    let result = match env.result {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => Some(serde_json::from_value(value).map_err(|e| DnsError::UnexpectedResponse {
            action: action.to_string(),
            detail: format!("result has an unexpected shape: {e}"),
        })?),
    };
    Ok(Envelope {
        success: env.success,
        errors: env.errors,
        messages: env.messages,
        result,
        result_info: env.result_info,
    })
}

fn require_result<T>(env: Envelope<T>, action: &str) -> Result<T, DnsError> {
    env.result.ok_or_else(|| DnsError::UnexpectedResponse {
        action: action.to_string(),
        detail: "success without a result".to_string(),
    })
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    // Cloudflare sends delta-seconds; an HTTP date falls back to our own backoff.
    let secs: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

fn has_code(err: &DnsError, codes: &[i64]) -> bool {
    err.cloudflare_codes().iter().any(|c| codes.contains(c))
}

fn is_not_found(err: &DnsError) -> bool {
    match err {
        DnsError::CloudflareApi { status, errors, .. } => {
            *status == 404 || errors.iter().any(|e| e.code == CODE_RECORD_NOT_FOUND)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CloudflareConfig {
        CloudflareConfig {
            api_token: "secret-token-value".into(),
            zone_id: "023e105f4ecef8ad9ca31a8372d0c353".into(),
            tunnel_id: "c1744f8b-faa1-48a4-9e5c-02ac921467fa".into(),
            proxied: true,
            api_url: DEFAULT_API_URL.into(),
        }
    }

    #[test]
    fn valid_config_passes_and_targets_the_tunnel() {
        let c = config();
        assert!(c.validate().is_ok());
        assert_eq!(c.tunnel_target(), "c1744f8b-faa1-48a4-9e5c-02ac921467fa.cfargotunnel.com");
    }

    #[test]
    fn invalid_configs_are_refused_without_leaking_the_token() {
        type Mutation = Box<dyn Fn(&mut CloudflareConfig)>;
        let cases: Vec<Mutation> = vec![
            Box::new(|c| c.api_token = " ".into()),
            Box::new(|c| c.zone_id = "../zones".into()),
            Box::new(|c| c.tunnel_id = "not a uuid".into()),
            Box::new(|c| c.api_url = "ftp://example.com".into()),
            Box::new(|c| c.api_url = "no url".into()),
        ];
        for mutate in cases {
            let mut c = config();
            mutate(&mut c);
            let err = c.validate().expect_err("must be refused").to_string();
            assert!(!err.contains("secret-token-value"), "{err}");
        }
        assert!(!format!("{:?}", config()).contains("secret-token-value"));
    }

    #[test]
    fn envelope_with_result_info_parses() {
        let body = br#"{"success":true,"errors":[],"messages":[],
            "result":[{"id":"372e67954025e0ba6aaa6d586b9e0b59","name":"lab-a.example.com",
                       "type":"CNAME","content":"t.cfargotunnel.com","proxied":true,
                       "comment":"managed-by=terraform-provider-lab session=a","ttl":1}],
            "result_info":{"page":1,"per_page":2,"count":1,"total_count":3,"total_pages":2}}"#;
        let env: Envelope<Vec<DnsRecord>> = parse_envelope(StatusCode::OK, body, "listing").unwrap();
        let records = env.result.unwrap();
        assert_eq!(records[0].owner_session().as_deref(), Some("a"));
        assert_eq!(env.result_info.unwrap().total_pages, Some(2));
    }

    #[test]
    fn envelope_errors_carry_codes() {
        let body = br#"{"success":false,"errors":[{"code":81053,
            "message":"An A, AAAA, or CNAME record with that host already exists."}],
            "messages":[],"result":null}"#;
        let err = parse_envelope::<DnsRecord>(StatusCode::BAD_REQUEST, body, "creating CNAME x").unwrap_err();
        assert!(has_code(&err, &CODE_RECORD_EXISTS));
        assert!(err.to_string().contains("81053"));
    }

    #[test]
    fn non_json_body_is_reported_with_status() {
        let err = parse_envelope::<DnsRecord>(StatusCode::BAD_GATEWAY, b"<html>", "reading").unwrap_err().to_string();
        assert!(err.contains("502"), "{err}");
    }

    #[test]
    fn not_found_is_recognised() {
        let body = br#"{"success":false,"errors":[{"code":81044,"message":"Record does not exist."}],
            "messages":[],"result":null}"#;
        let err = parse_envelope::<DnsRecord>(StatusCode::NOT_FOUND, body, "reading").unwrap_err();
        assert!(is_not_found(&err));
    }

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(500));
        assert_eq!(p.backoff(2), Duration::from_secs(1));
        assert_eq!(p.backoff(40), p.max_backoff);
    }

    #[test]
    fn record_ids_cannot_escape_the_path() {
        let dns = CloudflareDns::new(config()).unwrap();
        assert!(dns.record_path(&RecordId("../../user".into())).is_err());
        assert!(dns.record_path(&RecordId("372e6795".into())).is_ok());
    }
}
