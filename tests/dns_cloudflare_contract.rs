//! Contract test of the Cloudflare backend.
//!
//! Cloudflare cannot be reached from here (and tests must not touch real zones), so this file
//! runs a local HTTP server on 127.0.0.1 that implements the documented DNS records API
//! contract (`/client/v4/zones/{zone_id}/dns_records`): Bearer authentication (401 with error
//! code 10000 otherwise), the `{success, errors, messages, result, result_info}` envelope,
//! the documented list filters (`type`, `name` and `name.{exact,contains,startswith,endswith}`,
//! `comment` and `comment.{exact,contains,startswith,endswith,present,absent}`, case-insensitive,
//! combined by `match=all|any`, `page`, `per_page`) with pages forced to 2 records so pagination is
//! exercised; any other query parameter is refused (400), so the client cannot lean on a filter
//! the API does not document, create (POST, 81053 on a duplicate CNAME host), read,
//! update (PATCH) and delete by id (81044 for an unknown record id). Failures (429 with
//! Retry-After, 5xx, a create whose response is lost) are injected per test. The server's state
//! is the zone; assertions read it directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use terraform_provider_lab::backends::dns::cloudflare::{CloudflareConfig, CloudflareDns, RetryPolicy};
use terraform_provider_lab::backends::dns::{
    DnsBackend, DnsError, RecordId, RecordSpec, SessionIdentity, student_digest,
};

const TOKEN: &str = "test-token-Sn3lZJTBX6kkg7OdcBUAxOO963GE";
const ZONE_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const ZONE_NAME: &str = "example.com";
const TUNNEL_ID: &str = "c1744f8b-faa1-48a4-9e5c-02ac921467fa";
/// The fake forces tiny pages whatever the client asks for.
const FORCED_PER_PAGE: usize = 2;

#[derive(Debug, Clone)]
struct CfRecord {
    id: String,
    name: String,
    record_type: String,
    content: String,
    proxied: bool,
    ttl: u64,
    comment: Option<String>,
}

impl CfRecord {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id, "zone_id": ZONE_ID, "zone_name": ZONE_NAME,
            "name": self.name, "type": self.record_type, "content": self.content,
            "proxiable": true, "proxied": self.proxied, "ttl": self.ttl,
            "comment": self.comment, "tags": [], "meta": {},
            "created_on": "2026-11-22T21:00:00.000000Z", "modified_on": "2026-11-22T21:00:00.000000Z",
        })
    }
}

/// A failure the server plays once, for the first request with a matching method.
#[derive(Debug, Clone)]
enum Fault {
    /// Answer with this status (429 carries `Retry-After: 1`) without doing anything.
    Status(u16),
    /// Do the work, then answer 502 as if a gateway lost the response.
    WorkThenBadGateway,
    /// Answer with this Cloudflare error without doing anything.
    ApiError(u16, i64, &'static str),
}

#[derive(Debug, Clone)]
struct Logged {
    method: Method,
    path: String,
    query: String,
    status: u16,
}

#[derive(Default)]
struct Zone {
    records: Vec<CfRecord>,
    faults: Vec<(Method, Fault)>,
    log: Vec<Logged>,
    next_id: u64,
}

type Shared = Arc<Mutex<Zone>>;

struct FakeCloudflare {
    zone: Shared,
    url: String,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeCloudflare {
    async fn start() -> FakeCloudflare {
        let zone: Shared = Arc::default();
        let app = Router::new()
            .route("/client/v4/zones/{zone_id}/dns_records", get(list_records).post(create_record))
            .route(
                "/client/v4/zones/{zone_id}/dns_records/{id}",
                get(get_record).patch(patch_record).delete(delete_record),
            )
            .layer(middleware::from_fn_with_state(zone.clone(), faults_and_log))
            .layer(middleware::from_fn(require_bearer))
            .with_state(zone.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/client/v4", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeCloudflare { zone, url, _server: server }
    }

    fn config(&self, token: &str) -> CloudflareConfig {
        CloudflareConfig {
            api_token: token.to_string(),
            zone_id: ZONE_ID.to_string(),
            tunnel_id: TUNNEL_ID.to_string(),
            proxied: true,
            api_url: self.url.clone(),
        }
    }

    fn backend(&self) -> DnsBackend {
        self.backend_with_token(TOKEN)
    }

    fn backend_with_token(&self, token: &str) -> DnsBackend {
        // Fast backoff keeps the test short; Retry-After from the server is still honoured.
        let retry = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        };
        DnsBackend::Cloudflare(CloudflareDns::with_retry_policy(self.config(token), retry).unwrap())
    }

    fn seed(&self, name: &str, record_type: &str, content: &str, comment: Option<&str>) -> String {
        let mut zone = self.zone.lock().unwrap();
        zone.next_id += 1;
        let id = format!("{:032x}", 0xf0_0000 + zone.next_id);
        zone.records.push(CfRecord {
            id: id.clone(),
            name: name.to_string(),
            record_type: record_type.to_string(),
            content: content.to_string(),
            proxied: false,
            ttl: 300,
            comment: comment.map(str::to_string),
        });
        id
    }

    fn inject(&self, method: Method, fault: Fault) {
        self.zone.lock().unwrap().faults.push((method, fault));
    }

    fn records_named(&self, name: &str) -> Vec<CfRecord> {
        let zone = self.zone.lock().unwrap();
        zone.records.iter().filter(|r| r.name == name).cloned().collect()
    }

    fn log(&self) -> Vec<Logged> {
        self.zone.lock().unwrap().log.clone()
    }

    fn clear_log(&self) {
        self.zone.lock().unwrap().log.clear();
    }
}

fn envelope_ok(result: Value) -> Json<Value> {
    Json(json!({"success": true, "errors": [], "messages": [], "result": result}))
}

fn envelope_err(status: u16, code: i64, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    let body = json!({
        "success": false,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": null,
    });
    (status, Json(body)).into_response()
}

async fn require_bearer(headers: HeaderMap, request: Request, next: Next) -> Response {
    let expected = format!("Bearer {TOKEN}");
    match headers.get(header::AUTHORIZATION) {
        Some(value) if value.as_bytes() == expected.as_bytes() => next.run(request).await,
        _ => envelope_err(401, 10000, "Authentication error"),
    }
}

async fn faults_and_log(State(zone): State<Shared>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let fault = {
        let mut z = zone.lock().unwrap();
        let pos = z.faults.iter().position(|(m, _)| *m == method);
        pos.map(|i| z.faults.remove(i).1)
    };
    let response = match fault {
        None => next.run(request).await,
        Some(Fault::Status(429)) => {
            let mut r = envelope_err(429, 971, "Please wait and consider throttling your request speed");
            r.headers_mut().insert(header::RETRY_AFTER, "1".parse().unwrap());
            r
        }
        Some(Fault::Status(status)) => envelope_err(status, 10001, "service temporarily unavailable"),
        Some(Fault::WorkThenBadGateway) => {
            let _lost = next.run(request).await;
            (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>").into_response()
        }
        Some(Fault::ApiError(status, code, message)) => envelope_err(status, code, message),
    };
    zone.lock().unwrap().log.push(Logged { method, path, query, status: response.status().as_u16() });
    response
}

/// The error response for a zone id this fake does not serve.
fn zone_mismatch(zone_id: &str) -> Option<Response> {
    (zone_id != ZONE_ID)
        .then(|| envelope_err(404, 7003, "Could not route to /zones, perhaps your object identifier is invalid?"))
}

async fn list_records(
    State(zone): State<Shared>,
    Path(zone_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = zone_mismatch(&zone_id) {
        return r;
    }
    if let Some(unknown) = query.keys().find(|k| !LIST_PARAMETERS.contains(&k.as_str())) {
        return envelope_err(400, 1000, &format!("fake: {unknown:?} is not a documented list parameter"));
    }
    let any = match query.get("match").map(String::as_str) {
        None | Some("all") => false,
        Some("any") => true,
        Some(other) => return envelope_err(400, 1000, &format!("fake: match={other:?}: use all or any")),
    };
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let asked: usize = query.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(100);
    let per_page = asked.clamp(1, FORCED_PER_PAGE);
    let z = zone.lock().unwrap();
    let matching: Vec<&CfRecord> = z
        .records
        .iter()
        .filter(|r| {
            let tests: Vec<bool> = query.iter().filter_map(|(key, value)| filter_matches(r, key, value)).collect();
            tests.is_empty() || if any { tests.iter().any(|t| *t) } else { tests.iter().all(|t| *t) }
        })
        .collect();
    let total_count = matching.len();
    let total_pages = total_count.div_ceil(per_page);
    let page_items: Vec<Value> =
        matching.iter().skip((page - 1) * per_page).take(per_page).map(|r| r.to_json()).collect();
    Json(json!({
        "success": true, "errors": [], "messages": [],
        "result": page_items,
        "result_info": {
            "page": page, "per_page": per_page, "count": page_items.len(),
            "total_count": total_count, "total_pages": total_pages,
        },
    }))
    .into_response()
}

/// The query parameters the list endpoint documents (the fake refuses any other).
const LIST_PARAMETERS: &[&str] = &[
    "type",
    "name",
    "name.exact",
    "name.contains",
    "name.startswith",
    "name.endswith",
    "comment",
    "comment.exact",
    "comment.contains",
    "comment.startswith",
    "comment.endswith",
    "comment.present",
    "comment.absent",
    "match",
    "page",
    "per_page",
];

/// Whether record `r` passes filter `key=value`; None for a parameter that is no filter. Name and
/// comment filters are case-insensitive, as documented.
fn filter_matches(r: &CfRecord, key: &str, value: &str) -> Option<bool> {
    let value = value.to_ascii_lowercase();
    let text = |field: &str| field.to_ascii_lowercase();
    let comment = r.comment.as_deref().filter(|c| !c.is_empty()).map(text);
    let on_comment = |test: &dyn Fn(&str) -> bool| comment.as_deref().is_some_and(test);
    Some(match key {
        "type" => r.record_type.eq_ignore_ascii_case(&value),
        "name" | "name.exact" => text(&r.name) == value,
        "name.contains" => text(&r.name).contains(&value),
        "name.startswith" => text(&r.name).starts_with(&value),
        "name.endswith" => text(&r.name).ends_with(&value),
        "comment" | "comment.exact" => on_comment(&|c| c == value),
        "comment.contains" => on_comment(&|c| c.contains(&value)),
        "comment.startswith" => on_comment(&|c| c.starts_with(&value)),
        "comment.endswith" => on_comment(&|c| c.ends_with(&value)),
        "comment.present" => comment.is_some(),
        "comment.absent" => comment.is_none(),
        _ => return None,
    })
}

async fn create_record(State(zone): State<Shared>, Path(zone_id): Path<String>, Json(body): Json<Value>) -> Response {
    if let Some(r) = zone_mismatch(&zone_id) {
        return r;
    }
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (name, record_type, content) = (field("name"), field("type"), field("content"));
    if name.is_empty() || record_type.is_empty() || content.is_empty() {
        return envelope_err(400, 9000, "DNS name, type and content are required");
    }
    let mut z = zone.lock().unwrap();
    if z.records
        .iter()
        .any(|r| r.name.eq_ignore_ascii_case(&name) && (r.record_type == "CNAME" || record_type == "CNAME"))
    {
        return envelope_err(400, 81053, "An A, AAAA, or CNAME record with that host already exists.");
    }
    z.next_id += 1;
    let record = CfRecord {
        id: format!("{:032x}", 0xc0_0000 + z.next_id),
        name,
        record_type,
        content,
        proxied: body.get("proxied").and_then(Value::as_bool).unwrap_or(false),
        ttl: body.get("ttl").and_then(Value::as_u64).unwrap_or(1),
        comment: body.get("comment").and_then(Value::as_str).map(str::to_string),
    };
    let json = record.to_json();
    z.records.push(record);
    envelope_ok(json).into_response()
}

async fn get_record(State(zone): State<Shared>, Path((zone_id, id)): Path<(String, String)>) -> Response {
    if let Some(r) = zone_mismatch(&zone_id) {
        return r;
    }
    let z = zone.lock().unwrap();
    match z.records.iter().find(|r| r.id == id) {
        Some(r) => envelope_ok(r.to_json()).into_response(),
        None => envelope_err(404, 81044, "Record does not exist."),
    }
}

async fn patch_record(
    State(zone): State<Shared>,
    Path((zone_id, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = zone_mismatch(&zone_id) {
        return r;
    }
    let mut z = zone.lock().unwrap();
    let Some(record) = z.records.iter_mut().find(|r| r.id == id) else {
        return envelope_err(404, 81044, "Record does not exist.");
    };
    if let Some(content) = body.get("content").and_then(Value::as_str) {
        record.content = content.to_string();
    }
    if let Some(proxied) = body.get("proxied").and_then(Value::as_bool) {
        record.proxied = proxied;
    }
    if let Some(comment) = body.get("comment").and_then(Value::as_str) {
        record.comment = Some(comment.to_string());
    }
    envelope_ok(record.to_json()).into_response()
}

async fn delete_record(State(zone): State<Shared>, Path((zone_id, id)): Path<(String, String)>) -> Response {
    if let Some(r) = zone_mismatch(&zone_id) {
        return r;
    }
    let mut z = zone.lock().unwrap();
    match z.records.iter().position(|r| r.id == id) {
        Some(i) => {
            z.records.remove(i);
            envelope_ok(json!({"id": id})).into_response()
        }
        None => envelope_err(404, 81044, "Record does not exist."),
    }
}

fn spec(host: &str, session: &str) -> RecordSpec {
    RecordSpec { hostname: format!("{host}.{ZONE_NAME}"), session_id: session.to_string(), ..Default::default() }
}

fn marker(session: &str) -> String {
    format!("managed-by=terraform-provider-lab session={session}")
}

#[tokio::test]
async fn create_then_exists_then_adopt_on_retry_and_refuse_foreign() {
    let cf = FakeCloudflare::start().await;
    let dns = cf.backend();
    let alice = spec("lab-alice", "alice");

    let id = dns.ensure_record(&alice).await.unwrap();
    let stored = cf.records_named(&alice.hostname);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, id.0);
    assert_eq!(stored[0].record_type, "CNAME");
    assert_eq!(stored[0].content, format!("{TUNNEL_ID}.cfargotunnel.com"));
    assert!(stored[0].proxied);
    assert_eq!(stored[0].comment.as_deref(), Some(marker("alice").as_str()));
    assert!(dns.record_exists(&alice.hostname, &id).await.unwrap());

    // Retry after a crash: same id, still one record.
    assert_eq!(dns.ensure_record(&alice).await.unwrap(), id);
    assert_eq!(cf.records_named(&alice.hostname).len(), 1);

    // Another session's record is not adopted.
    let err = dns.ensure_record(&spec("lab-alice", "mallory")).await.unwrap_err();
    let text = err.to_string();
    eprintln!("other session: {text}");
    assert!(matches!(err, DnsError::Foreign { .. }), "{text}");
    assert!(text.contains(&alice.hostname) && text.contains(&id.0), "{text}");

    // A record the provider never created is named in the error and left alone.
    let www_id = cf.seed("www.example.com", "A", "192.0.2.10", Some("main website"));
    let err = dns.ensure_record(&spec("www", "alice")).await.unwrap_err();
    let text = err.to_string();
    eprintln!("foreign: {text}");
    assert!(matches!(err, DnsError::Foreign { .. }), "{text}");
    assert!(text.contains("www.example.com"), "{text}");
    assert!(text.contains(&www_id) && text.contains("main website"), "{text}");
    assert_eq!(cf.records_named("www.example.com").len(), 1);
}

#[tokio::test]
async fn delete_owned_is_idempotent_and_foreign_is_never_deleted() {
    let cf = FakeCloudflare::start().await;
    let dns = cf.backend();
    let bob = spec("lab-bob", "bob");
    let id = dns.ensure_record(&bob).await.unwrap();

    dns.delete_record(&bob.hostname, &id).await.unwrap();
    assert!(cf.records_named(&bob.hostname).is_empty());
    assert!(!dns.record_exists(&bob.hostname, &id).await.unwrap());
    dns.delete_record(&bob.hostname, &id).await.unwrap();

    let foreign = cf.seed("lab-eve.example.com", "CNAME", "elsewhere.example.net", None);
    let err = dns.delete_record("lab-eve.example.com", &RecordId(foreign.clone())).await.unwrap_err();
    eprintln!("foreign delete: {err}");
    assert!(matches!(err, DnsError::Foreign { .. }), "{err}");
    assert_eq!(cf.records_named("lab-eve.example.com").len(), 1);
    assert!(
        !cf.log().iter().any(|l| l.method == Method::DELETE && l.path.ends_with(&foreign)),
        "no DELETE request may be sent for a foreign record"
    );

    // An owned id passed with another hostname is refused too (a mixed-up state file).
    let carol = dns.ensure_record(&spec("lab-carol", "carol")).await.unwrap();
    let err = dns.delete_record("www.example.com", &carol).await.unwrap_err();
    eprintln!("mixed-up id: {err}");
    assert!(matches!(err, DnsError::InvalidInput(_)), "{err}");
    assert_eq!(cf.records_named("lab-carol.example.com").len(), 1);
}

#[tokio::test]
async fn list_owned_walks_every_page() {
    let cf = FakeCloudflare::start().await;
    let dns = cf.backend();
    for i in 0..5 {
        let host = format!("lab-s{i}.example.com");
        cf.seed(&host, "CNAME", &format!("{TUNNEL_ID}.cfargotunnel.com"), Some(&marker(&format!("s{i}"))));
    }
    cf.seed("www.example.com", "CNAME", "pages.example.net", Some("main website"));
    cf.seed("lab-old.example.com", "CNAME", "x.example.net", Some("managed-by=terraform-provider-lab"));
    cf.seed("api.example.com", "A", "192.0.2.1", None);

    let mut owned = dns.list_owned().await.unwrap();
    owned.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    let sessions: Vec<_> = owned.iter().map(|o| o.session_id.as_str()).collect();
    assert_eq!(sessions, ["s0", "s1", "s2", "s3", "s4"]);
    assert_eq!(owned[2].hostname, "lab-s2.example.com");

    let pages: Vec<String> = cf.log().iter().filter(|l| l.method == Method::GET).map(|l| l.query.clone()).collect();
    eprintln!("list requests: {pages:#?}");
    // 6 records match the comment prefix; 2 per page -> 3 pages.
    assert_eq!(pages.len(), 3, "{pages:?}");
    for (i, q) in pages.iter().enumerate() {
        assert!(q.contains(&format!("page={}", i + 1)), "{q}");
    }
}

#[tokio::test]
async fn rate_limit_and_server_errors_are_retried() {
    let cf = FakeCloudflare::start().await;
    let dns = cf.backend();
    cf.inject(Method::GET, Fault::Status(429));
    cf.inject(Method::POST, Fault::Status(503));

    let started = Instant::now();
    let id = dns.ensure_record(&spec("lab-dan", "dan")).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(cf.records_named("lab-dan.example.com")[0].id, id.0);

    let statuses: Vec<(String, u16)> = cf.log().iter().map(|l| (l.method.to_string(), l.status)).collect();
    eprintln!("requests: {statuses:?} in {elapsed:?}");
    assert_eq!(
        statuses,
        [("GET".to_string(), 429), ("GET".to_string(), 200), ("POST".to_string(), 503), ("POST".to_string(), 200)]
    );
    assert!(elapsed >= Duration::from_millis(950), "Retry-After: 1 honoured, took {elapsed:?}");
}

#[tokio::test]
async fn a_lost_create_response_is_adopted_after_81053() {
    let cf = FakeCloudflare::start().await;
    let dns = cf.backend();
    // The record is created but the response never arrives; the retry meets 81053.
    cf.inject(Method::POST, Fault::WorkThenBadGateway);

    let id = dns.ensure_record(&spec("lab-fay", "fay")).await.unwrap();
    let stored = cf.records_named("lab-fay.example.com");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, id.0);
    let statuses: Vec<(String, u16)> = cf.log().iter().map(|l| (l.method.to_string(), l.status)).collect();
    eprintln!("requests: {statuses:?}");
    assert!(statuses.contains(&("POST".to_string(), 502)), "{statuses:?}");
    assert!(statuses.contains(&("POST".to_string(), 400)), "81053: {statuses:?}");
}

#[tokio::test]
async fn error_codes_are_surfaced() {
    let cf = FakeCloudflare::start().await;
    let dns = cf.backend();
    cf.inject(Method::POST, Fault::ApiError(400, 81057, "The record already exists."));
    let err = dns.ensure_record(&spec("lab-gus", "gus")).await.unwrap_err();
    let text = err.to_string();
    eprintln!("81057: {text}");
    assert_eq!(err.cloudflare_codes(), [81057]);
    assert!(text.contains("81057") && text.contains("lab-gus.example.com"), "{text}");
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let cf = FakeCloudflare::start().await;
    let dns = cf.backend();
    for _ in 0..10 {
        cf.inject(Method::GET, Fault::Status(500));
    }
    cf.clear_log();
    let err = dns.list_owned().await.unwrap_err();
    eprintln!("after retries: {err}");
    assert!(err.to_string().contains("10001"), "{err}");
    assert_eq!(cf.log().len(), 4, "max_attempts = 4");
}

#[tokio::test]
async fn a_wrong_token_gets_code_10000_and_is_never_shown() {
    let cf = FakeCloudflare::start().await;
    let wrong = "wrong-token-value-123";
    let dns = cf.backend_with_token(wrong);
    let err = dns.ensure_record(&spec("lab-hal", "hal")).await.unwrap_err();
    let text = err.to_string();
    eprintln!("wrong token: {text}");
    assert_eq!(err.cloudflare_codes(), [10000]);
    assert!(!text.contains(wrong) && !text.contains(TOKEN), "{text}");
    assert!(cf.records_named("lab-hal.example.com").is_empty());
}

#[tokio::test]
async fn an_adopted_record_follows_a_changed_tunnel() {
    let cf = FakeCloudflare::start().await;
    let dns = cf.backend();
    // Created by an earlier configuration: old tunnel, not proxied.
    let id = cf.seed("lab-ivy.example.com", "CNAME", "0ld-tunnel.cfargotunnel.com", Some(&marker("ivy")));

    assert_eq!(dns.ensure_record(&spec("lab-ivy", "ivy")).await.unwrap(), RecordId(id));
    let stored = cf.records_named("lab-ivy.example.com");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].content, format!("{TUNNEL_ID}.cfargotunnel.com"));
    assert!(stored[0].proxied);
    assert_eq!(stored[0].comment.as_deref(), Some(marker("ivy").as_str()));

    // Up to date now: a further retry sends no PATCH.
    cf.clear_log();
    dns.ensure_record(&spec("lab-ivy", "ivy")).await.unwrap();
    assert!(!cf.log().iter().any(|l| l.method == Method::PATCH), "{:?}", cf.log());
}

/// `lab_session.dns_target`: a session's CNAME points at its own target (another host's tunnel or
/// gateway) instead of the provider's tunnel; a changed target is one PATCH of the same record;
/// a target that is not a host name is refused before any request.
#[tokio::test]
async fn a_sessions_own_target_is_its_cname_and_a_change_patches_it() {
    let cf = FakeCloudflare::start().await;
    let dns = cf.backend();
    let h2 = "2222aaaa-bbbb-cccc-dddd-eeeeffff0000.cfargotunnel.com";
    let ann = RecordSpec { target: Some("gw-h1.example.net".into()), ..spec("lab-ann", "ann") };

    let id = dns.ensure_record(&ann).await.unwrap();
    let stored = cf.records_named(&ann.hostname);
    assert_eq!((stored.len(), stored[0].record_type.as_str()), (1, "CNAME"));
    assert_eq!(stored[0].content, "gw-h1.example.net");

    cf.clear_log();
    let moved = RecordSpec { target: Some(format!("{h2}.")), ..ann.clone() };
    assert_eq!(dns.ensure_record(&moved).await.unwrap(), id);
    let stored = cf.records_named(&ann.hostname);
    assert_eq!((stored.len(), stored[0].content.as_str()), (1, h2));
    let patches = cf.log().iter().filter(|l| l.method == Method::PATCH).count();
    let posts = cf.log().iter().filter(|l| l.method == Method::POST).count();
    assert_eq!((patches, posts), (1, 0), "{:?}", cf.log());
    // Without its own target the session follows the provider's tunnel again.
    dns.ensure_record(&RecordSpec { target: None, ..ann.clone() }).await.unwrap();
    assert_eq!(cf.records_named(&ann.hostname)[0].content, format!("{TUNNEL_ID}.cfargotunnel.com"));

    cf.clear_log();
    let bad = RecordSpec { target: Some("10.77.2.2".into()), ..spec("lab-eve", "eve") };
    let err = dns.ensure_record(&bad).await.unwrap_err();
    assert!(err.to_string().contains("is an IP address, not a host name"), "{err}");
    assert!(cf.log().is_empty() && cf.records_named(&bad.hostname).is_empty(), "{:?}", cf.log());
}

fn student_spec(host: &str, session: &str, student: &str, pending: bool) -> RecordSpec {
    RecordSpec {
        student: Some(student.to_string()),
        expires_at: Some("2026-11-22T16:00:00Z".to_string()),
        pending,
        ..spec(host, session)
    }
}

fn identity(prefix: &str, student: &str) -> SessionIdentity {
    SessionIdentity { domain: ZONE_NAME.to_string(), hostname_prefix: prefix.to_string(), student: student.to_string() }
}

/// The orphan of an apply killed before it saved its state is found by the list API filtered on
/// the marker's student digest; a refresh of a session in state confirms its record (one PATCH of
/// the comment), which is then never taken for an orphan.
#[tokio::test]
async fn pending_records_are_found_by_a_filtered_listing_and_confirmed_by_a_refresh() {
    let cf = FakeCloudflare::start().await;
    let dns = cf.backend();
    let ada = "ada.lovelace@example.edu";
    let orphan = student_spec("lab-k3x9q2m7", "k3x9q2m7", ada, true);
    let id = dns.ensure_record(&orphan).await.unwrap();
    let comment = cf.records_named(&orphan.hostname)[0].comment.clone().expect("comment");
    let who = student_digest(ada);
    assert_eq!(
        comment,
        format!("managed-by=terraform-provider-lab session=k3x9q2m7 who={who} pending expires=2026-11-22T16:00:00Z"),
        "a pending marker with its expiry fits the 100 characters of a free zone's comment"
    );
    // Not the same identity: another student, another prefix, a session in state, an older
    // provider's record (no digest), and a foreign record whose comment mentions the digest.
    dns.ensure_record(&student_spec("lab-aaaaaaaa", "aaaaaaaa", "alan@example.edu", true)).await.unwrap();
    dns.ensure_record(&student_spec("class-b-bbbbbbbb", "bbbbbbbb", ada, true)).await.unwrap();
    dns.ensure_record(&student_spec("lab-cccccccc", "cccccccc", ada, false)).await.unwrap();
    cf.seed("lab-dddddddd.example.com", "CNAME", "t.cfargotunnel.com", Some(&marker("dddddddd")));
    cf.seed("lab-eeeeeeee.example.com", "CNAME", "t.example.net", Some(&format!("copied who={who} pending")));

    cf.clear_log();
    let found = dns.find_pending(&identity("lab-", ada)).await.unwrap();
    let names: Vec<(&str, &str)> = found.iter().map(|r| (r.hostname.as_str(), r.session_id.as_str())).collect();
    assert_eq!(names, [(orphan.hostname.as_str(), "k3x9q2m7")]);
    assert_eq!(found[0].id, id);
    let queries: Vec<String> = cf.log().iter().map(|l| l.query.clone()).collect();
    eprintln!("find_pending asked: {queries:?}");
    assert!(queries.iter().all(|q| q.contains(&format!("comment.contains=+who%3D{who}"))), "{queries:?}");
    assert_eq!(dns.find_pending(&identity("class-b-", ada)).await.unwrap().len(), 1);
    assert!(dns.find_pending(&identity("lab-", "grace@example.edu")).await.unwrap().is_empty());

    // The first refresh confirms: the comment loses `pending`, target and proxying stay.
    cf.clear_log();
    assert!(dns.confirm_record(&orphan.hostname, &id).await.unwrap());
    let stored = cf.records_named(&orphan.hostname);
    assert_eq!(stored[0].comment.as_deref(), Some(comment.replace(" pending", "").as_str()));
    assert_eq!(stored[0].content, format!("{TUNNEL_ID}.cfargotunnel.com"));
    assert!(stored[0].proxied);
    assert_eq!(cf.log().iter().filter(|l| l.method == Method::PATCH).count(), 1, "{:?}", cf.log());
    assert!(dns.find_pending(&identity("lab-", ada)).await.unwrap().is_empty());
    // Confirming again sends no PATCH; a record deleted out of band reads as gone.
    cf.clear_log();
    assert!(dns.confirm_record(&orphan.hostname, &id).await.unwrap());
    assert!(!cf.log().iter().any(|l| l.method == Method::PATCH), "{:?}", cf.log());
    dns.delete_record(&orphan.hostname, &id).await.unwrap();
    assert!(!dns.confirm_record(&orphan.hostname, &id).await.unwrap());
}

#[tokio::test]
async fn the_fake_enforces_the_documented_list_filters() {
    let cf = FakeCloudflare::start().await;
    cf.seed("lab-a.example.com", "CNAME", "t.cfargotunnel.com", Some("Managed-By=terraform-provider-lab session=a"));
    cf.seed("www.example.com", "A", "192.0.2.10", None);
    let http = reqwest::Client::new();
    let list = |query: &'static str| {
        let (http, url) = (http.clone(), format!("{}/zones/{ZONE_ID}/dns_records?{query}", cf.url));
        async move {
            let response = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            let names: Vec<String> = body["result"]
                .as_array()
                .map(|r| r.iter().map(|r| r["name"].as_str().unwrap_or_default().to_string()).collect())
                .unwrap_or_default();
            (status, names)
        }
    };
    assert_eq!(list("comment.contains=SESSION%3Da").await, (200, vec!["lab-a.example.com".to_string()]));
    assert_eq!(list("comment.absent=").await, (200, vec!["www.example.com".to_string()]));
    assert_eq!(list("name.endswith=.EXAMPLE.com&type=A").await, (200, vec!["www.example.com".to_string()]));
    assert_eq!(list("type=A&comment.present=&match=any").await.1.len(), 2);
    assert_eq!(list("type=A&comment.present=").await.1.len(), 0);
    assert_eq!(list("comment.like=x").await.0, 400, "undocumented filters are refused");
}
