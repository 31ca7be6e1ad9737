//! RFC 2136 dynamic updates signed with TSIG (hickory).
//!
//! Each session gets a CNAME or A record at `<hostname>` plus an ownership TXT record at
//! `_lab-owner.<hostname>` (a CNAME cannot share its name with a TXT). Both are written in one
//! update message whose prerequisites make it atomic: creation requires both names to be
//! unused, adoption and deletion require the exact ownership TXT to still be there.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use hickory_client::client::{Client, ClientHandle};
use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_proto::dnssec::tsig::TSigner;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::{A, CNAME, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::runtime::TokioRuntimeProvider;
use hickory_proto::tcp::TcpClientStream;
use hickory_proto::udp::UdpClientStream;
use hickory_proto::xfer::{DnsHandle, DnsMultiplexer};
use hickory_proto::{ProtoError, ProtoErrorKind};

// The one error-chain walker (plain text, no Terraform types): hickory's top-level errors
// ("proto error") keep the cause in their source.
use crate::protocol::diag::error_chain;

use super::{DnsError, Marker, OwnedRecord, RecordId, RecordSpec, parse_owner_marker};

/// Label prepended to a session hostname for its ownership TXT record.
/// One TXT character-string holds 255 bytes.
const MAX_TXT_LEN: usize = 255;

pub const OWNER_LABEL: &str = "_lab-owner";
/// Short TTL: sessions come and go within a term.
const RECORD_TTL: u32 = 60;
/// Allowed clock skew between us and the server when signing (RFC 8945 recommends 300 s).
const TSIG_FUDGE: u16 = 300;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries per UDP exchange (a lost datagram is retried, nothing else).
const ATTEMPTS: u32 = 3;

/// TSIG HMAC algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    #[default]
    HmacSha256,
    HmacSha512,
}

impl FromStr for KeyAlgorithm {
    type Err = DnsError;
    fn from_str(s: &str) -> Result<Self, DnsError> {
        match s.to_ascii_lowercase().trim_end_matches('.') {
            "hmac-sha256" => Ok(KeyAlgorithm::HmacSha256),
            "hmac-sha512" => Ok(KeyAlgorithm::HmacSha512),
            other => Err(DnsError::InvalidConfig(format!(
                "rfc2136: key_algorithm {other:?} is not supported (use hmac-sha256 or hmac-sha512)"
            ))),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::HmacSha256 => "hmac-sha256",
            KeyAlgorithm::HmacSha512 => "hmac-sha512",
        })
    }
}

impl KeyAlgorithm {
    fn tsig(self) -> TsigAlgorithm {
        match self {
            KeyAlgorithm::HmacSha256 => TsigAlgorithm::HmacSha256,
            KeyAlgorithm::HmacSha512 => TsigAlgorithm::HmacSha512,
        }
    }
}

/// Type of the session record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionRecordType {
    #[default]
    Cname,
    A,
}

impl FromStr for SessionRecordType {
    type Err = DnsError;
    fn from_str(s: &str) -> Result<Self, DnsError> {
        match s.to_ascii_uppercase().as_str() {
            "CNAME" => Ok(SessionRecordType::Cname),
            "A" => Ok(SessionRecordType::A),
            other => Err(DnsError::InvalidConfig(format!(
                "rfc2136: record_type {other:?} is not supported (use CNAME or A)"
            ))),
        }
    }
}

impl fmt::Display for SessionRecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionRecordType::Cname => "CNAME",
            SessionRecordType::A => "A",
        })
    }
}

impl SessionRecordType {
    fn rr_type(self) -> RecordType {
        match self {
            SessionRecordType::Cname => RecordType::CNAME,
            SessionRecordType::A => RecordType::A,
        }
    }
}

/// Typed `dns { rfc2136 { ... } }` provider block.
#[derive(Clone)]
pub struct Rfc2136Config {
    /// `host:port` of the primary server, e.g. `ns1.example.edu:53` or `127.0.0.1:5353`.
    pub server: String,
    /// Zone to update, e.g. `lab.example.edu` (trailing dot optional).
    pub zone: String,
    pub key_name: String,
    pub key_algorithm: KeyAlgorithm,
    /// Base64 TSIG secret, as in `keymgr -t` / `tsig-keygen` output.
    pub key_secret: String,
    pub record_type: SessionRecordType,
    /// CNAME target (a host name) or A address (IPv4) every session record points to.
    pub target: String,
}

// The TSIG secret must never reach logs or diagnostics.
impl fmt::Debug for Rfc2136Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rfc2136Config")
            .field("server", &self.server)
            .field("zone", &self.zone)
            .field("key_name", &self.key_name)
            .field("key_algorithm", &self.key_algorithm)
            .field("key_secret", &"<redacted>")
            .field("record_type", &self.record_type)
            .field("target", &self.target)
            .finish()
    }
}

impl Rfc2136Config {
    /// Checks every value and returns the parsed pieces.
    fn parse(&self) -> Result<Parsed, DnsError> {
        let bad = |msg: String| DnsError::InvalidConfig(format!("rfc2136: {msg}"));
        let (host, port) =
            self.server.rsplit_once(':').ok_or_else(|| bad(format!("server {:?} must be host:port", self.server)))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad(format!("server {:?} must be host:port", self.server)));
        }
        let zone = parse_name(&self.zone).map_err(|e| bad(format!("zone {:?}: {e}", self.zone)))?;
        let key_name = parse_name(&self.key_name).map_err(|e| bad(format!("key_name {:?}: {e}", self.key_name)))?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(self.key_secret.trim())
            .map_err(|_| bad("key_secret is not valid base64".to_string()))?;
        if key.is_empty() {
            return Err(bad("key_secret is empty".to_string()));
        }
        let target = parse_target(self.record_type, &self.target).map_err(|e| bad(format!("target {e}")))?;
        Ok(Parsed { zone, key_name, key, target })
    }
}

/// A record's data: `text` as a CNAME's host name or an `A` record's IPv4 address.
fn parse_target(record_type: SessionRecordType, text: &str) -> Result<RData, String> {
    match record_type {
        SessionRecordType::Cname => {
            super::validate_cname_target(text).map_err(|why| format!("{text:?} {why}"))?;
            let name = parse_name(text).map_err(|e| format!("{text:?}: {e}"))?;
            Ok(RData::CNAME(CNAME(name)))
        }
        SessionRecordType::A => Ipv4Addr::from_str(text)
            .map(|ip| RData::A(A(ip)))
            .map_err(|_| format!("{text:?} must be an IPv4 address for record_type A")),
    }
}

struct Parsed {
    zone: Name,
    key_name: Name,
    key: Vec<u8>,
    target: RData,
}

fn parse_name(text: &str) -> Result<Name, String> {
    let trimmed = text.trim_end_matches('.');
    super::validate_hostname(trimmed).map_err(|e| e.to_string())?;
    let mut name = Name::from_ascii(trimmed).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    Ok(name)
}

/// Dynamic-update client for one zone on one primary server.
pub struct Rfc2136Dns {
    config: Rfc2136Config,
    zone: Name,
    target: RData,
    signer: TSigner,
}

impl fmt::Debug for Rfc2136Dns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rfc2136Dns").field("config", &self.config).finish()
    }
}

/// What the ownership TXT of a hostname says.
enum Ownership {
    Absent,
    Ours { session_id: String, txt: Box<Record> },
    Other(String),
}

impl Rfc2136Dns {
    pub fn new(config: Rfc2136Config) -> Result<Self, DnsError> {
        let parsed = config.parse()?;
        let signer =
            TSigner::new(parsed.key, config.key_algorithm.tsig(), parsed.key_name, TSIG_FUDGE).map_err(|e| {
                DnsError::InvalidConfig(format!(
                    "rfc2136: TSIG key {:?} ({}): {e}",
                    config.key_name, config.key_algorithm
                ))
            })?;
        Ok(Rfc2136Dns { config, zone: parsed.zone, target: parsed.target, signer })
    }

    pub fn config(&self) -> &Rfc2136Config {
        &self.config
    }

    /// The id this backend gives the record of `hostname`: `<fqdn>/<type>`.
    pub fn record_id(&self, hostname: &str) -> RecordId {
        RecordId(format!("{hostname}/{}", self.config.record_type))
    }

    /// The data of a session's record: `target` (a session's own), else the configured one.
    pub fn target_rdata(&self, target: Option<&str>) -> Result<RData, DnsError> {
        match target {
            Some(text) => parse_target(self.config.record_type, text)
                .map_err(|e| DnsError::InvalidInput(format!("record target {e}"))),
            None => Ok(self.target.clone()),
        }
    }

    pub async fn ensure_record(&self, spec: &RecordSpec) -> Result<RecordId, DnsError> {
        let target_text = spec.target.as_deref().unwrap_or(&self.config.target);
        let action = format!("creating {} {} -> {target_text}", self.config.record_type, spec.hostname);
        let target = self.target_rdata(spec.target.as_deref())?;
        let host = self.host_name(&spec.hostname, &action)?;
        let owner = owner_name(&host, &action, &self.config.server)?;
        let marker = Marker::of(spec).text(MAX_TXT_LEN);
        let client = self.connect(&action).await?;

        // Both names must be unused (RFC 2136 2.4.5 "name is not in use").
        let mut msg = self.update_message();
        msg.add_pre_requisite(prereq_name_absent(host.clone()));
        msg.add_pre_requisite(prereq_name_absent(owner.clone()));
        msg.add_update(Record::from_rdata(host.clone(), RECORD_TTL, target.clone()));
        msg.add_update(txt_record(owner.clone(), RECORD_TTL, &marker));
        match self.send(&client, msg, &action).await? {
            ResponseCode::NoError => return Ok(self.record_id(&spec.hostname)),
            ResponseCode::YXDomain => {}
            code => return Err(self.update_error(&action, code)),
        }

        // Something exists: adopt it only if the marker says it is this session's.
        match self.ownership(&client, &owner, &action).await? {
            Ownership::Ours { session_id, txt } if session_id == spec.session_id => {
                let mut msg = self.update_message();
                msg.add_pre_requisite(prereq_exact(&txt));
                // The name is ours: clear both types we manage, in case `record_type` changed.
                msg.add_update(delete_rrset(host.clone(), RecordType::CNAME));
                msg.add_update(delete_rrset(host.clone(), RecordType::A));
                msg.add_update(Record::from_rdata(host, RECORD_TTL, target));
                // The marker may carry a changed expiry.
                msg.add_update(delete_rrset(owner.clone(), RecordType::TXT));
                msg.add_update(txt_record(owner, RECORD_TTL, &marker));
                match self.send(&client, msg, &action).await? {
                    ResponseCode::NoError => Ok(self.record_id(&spec.hostname)),
                    code => Err(self.update_error(&format!("{action} (adopting)"), code)),
                }
            }
            other => {
                let present = self.describe_records(&client, &host, &action).await?;
                let marker_text = match other {
                    Ownership::Absent => format!("no ownership TXT at {owner}"),
                    Ownership::Ours { session_id, .. } => {
                        format!("owned by session {session_id:?} per TXT at {owner}")
                    }
                    Ownership::Other(text) => format!("TXT at {owner} says {text:?}"),
                };
                Err(DnsError::Foreign {
                    action: "creating record",
                    hostname: spec.hostname.clone(),
                    found: format!("{present} ({marker_text})"),
                    expected_owner: format!("session {}", spec.session_id),
                })
            }
        }
    }

    pub async fn record_exists(&self, hostname: &str, id: &RecordId) -> Result<bool, DnsError> {
        let action = format!("reading record {id}");
        let (name, rr_type) = self.parse_id(hostname, id, &action)?;
        let client = self.connect(&action).await?;
        let answers = self.lookup(&client, &name, rr_type, &action).await?;
        Ok(answers.iter().any(|r| r.record_type() == rr_type && r.name() == &name))
    }

    pub async fn delete_record(&self, hostname: &str, id: &RecordId) -> Result<(), DnsError> {
        let action = format!("deleting record {id}");
        let (host, rr_type) = self.parse_id(hostname, id, &action)?;
        let owner = owner_name(&host, &action, &self.config.server)?;
        let client = self.connect(&action).await?;
        match self.ownership(&client, &owner, &action).await? {
            Ownership::Ours { txt, .. } => {
                // The exact TXT as read is a prerequisite: if ownership changed meanwhile,
                // the server refuses and nothing is deleted.
                let mut msg = self.update_message();
                msg.add_pre_requisite(prereq_exact(&txt));
                msg.add_update(delete_rrset(host, rr_type));
                msg.add_update(delete_rrset(owner, RecordType::TXT));
                match self.send(&client, msg, &action).await? {
                    ResponseCode::NoError => Ok(()),
                    code => Err(self.update_error(&action, code)),
                }
            }
            marker => {
                let answers = self.lookup(&client, &host, rr_type, &action).await?;
                if !answers.iter().any(|r| r.record_type() == rr_type) {
                    return Ok(()); // already gone
                }
                let marker_text = match marker {
                    Ownership::Other(text) => format!("TXT at {owner} says {text:?}"),
                    _ => format!("no ownership TXT at {owner}"),
                };
                Err(DnsError::Foreign {
                    action: "deleting record",
                    hostname: hostname.to_string(),
                    found: format!("{} ({marker_text})", describe(&answers)),
                    expected_owner: "terraform-provider-lab".to_string(),
                })
            }
        }
    }

    pub async fn confirm_record(&self, hostname: &str, id: &RecordId) -> Result<bool, DnsError> {
        let action = format!("confirming record {id}");
        let (host, rr_type) = self.parse_id(hostname, id, &action)?;
        let owner = owner_name(&host, &action, &self.config.server)?;
        let client = self.connect(&action).await?;
        let answers = self.lookup(&client, &host, rr_type, &action).await?;
        if !answers.iter().any(|r| r.record_type() == rr_type && r.name() == &host) {
            return Ok(false);
        }
        let Ownership::Ours { txt, .. } = self.ownership(&client, &owner, &action).await? else {
            return Ok(true);
        };
        let Some(marker) = txt_marker(&txt).as_deref().and_then(Marker::parse).filter(|m| m.pending) else {
            return Ok(true);
        };
        // The exact TXT as read is the prerequisite: a marker changed meanwhile is left as it is.
        let mut msg = self.update_message();
        msg.add_pre_requisite(prereq_exact(&txt));
        msg.add_update(delete_rrset(owner.clone(), RecordType::TXT));
        msg.add_update(txt_record(owner, RECORD_TTL, &Marker { pending: false, ..marker }.text(MAX_TXT_LEN)));
        match self.send(&client, msg, &action).await? {
            ResponseCode::NoError | ResponseCode::NXRRSet => Ok(true),
            code => Err(self.update_error(&action, code)),
        }
    }

    /// Reads the zone by AXFR (signed with the same key) and returns every ownership TXT.
    /// The server must allow transfers for the key; otherwise the error says so.
    pub async fn list_owned(&self) -> Result<Vec<OwnedRecord>, DnsError> {
        let action = format!("listing owned records by zone transfer (AXFR) of {}", self.zone);
        let mut client = self.connect_tcp(&action).await?;
        let mut stream = client.zone_transfer(self.zone.clone(), None);
        let mut owned = Vec::new();
        while let Some(response) = stream.next().await {
            let response = response.map_err(|e| self.transport_error(&action, &client_error_text(&e)))?;
            if response.response_code() != ResponseCode::NoError {
                return Err(self.rfc_error(
                    &action,
                    format!(
                        "server answered {} (allow AXFR for key {:?} to list sessions)",
                        response.response_code(),
                        self.config.key_name
                    ),
                ));
            }
            for record in response.answers() {
                let Some(marker) = txt_marker(record).as_deref().and_then(Marker::parse) else {
                    continue;
                };
                let Some(hostname) = hostname_of_owner(record.name()) else {
                    continue;
                };
                owned.push(OwnedRecord::of(self.record_id(&hostname), hostname, marker));
            }
        }
        owned.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        owned.dedup_by(|a, b| a.hostname == b.hostname);
        Ok(owned)
    }

    fn host_name(&self, hostname: &str, action: &str) -> Result<Name, DnsError> {
        let name = parse_name(hostname).map_err(|e| DnsError::InvalidInput(format!("{action}: hostname: {e}")))?;
        if !self.zone.zone_of(&name) || name == self.zone {
            return Err(DnsError::InvalidInput(format!(
                "{action}: hostname {hostname:?} is not inside zone {}",
                self.zone
            )));
        }
        Ok(name)
    }

    fn parse_id(&self, hostname: &str, id: &RecordId, action: &str) -> Result<(Name, RecordType), DnsError> {
        let (id_host, id_type) =
            id.0.rsplit_once('/')
                .ok_or_else(|| DnsError::InvalidInput(format!("{action}: record id must be <fqdn>/<type>")))?;
        if !id_host.eq_ignore_ascii_case(hostname.trim_end_matches('.')) {
            return Err(DnsError::InvalidInput(format!(
                "{action}: record id names {id_host:?}, not hostname {hostname:?}"
            )));
        }
        let rr_type = SessionRecordType::from_str(id_type)
            .map_err(|_| DnsError::InvalidInput(format!("{action}: unknown record type {id_type:?}")))?
            .rr_type();
        Ok((self.host_name(id_host, action)?, rr_type))
    }

    fn update_message(&self) -> Message {
        let mut zone = Query::new();
        zone.set_name(self.zone.clone()).set_query_class(DNSClass::IN).set_query_type(RecordType::SOA);
        let mut msg = Message::new();
        msg.set_id(rand::random())
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Update)
            .set_recursion_desired(false);
        msg.add_zone(zone);
        msg
    }

    async fn connect(&self, action: &str) -> Result<Client, DnsError> {
        let addr = self.resolve_server(action).await?;
        let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
            .with_timeout(Some(REQUEST_TIMEOUT))
            .with_signer(Some(Arc::new(self.signer.clone())))
            .build();
        let (client, background) =
            Client::connect(stream).await.map_err(|e| self.transport_error(action, &error_chain(&e)))?;
        tokio::spawn(background);
        Ok(client)
    }

    /// Zone transfers need TCP.
    async fn connect_tcp(&self, action: &str) -> Result<Client, DnsError> {
        let addr = self.resolve_server(action).await?;
        let (stream, handle) = TcpClientStream::new(addr, None, Some(REQUEST_TIMEOUT), TokioRuntimeProvider::default());
        let multiplexer =
            DnsMultiplexer::with_timeout(stream, handle, REQUEST_TIMEOUT, Some(Arc::new(self.signer.clone())));
        let (client, background) =
            Client::connect(multiplexer).await.map_err(|e| self.transport_error(action, &error_chain(&e)))?;
        tokio::spawn(background);
        Ok(client)
    }

    async fn resolve_server(&self, action: &str) -> Result<SocketAddr, DnsError> {
        let mut addrs = tokio::net::lookup_host(self.config.server.as_str())
            .await
            .map_err(|e| self.rfc_error(action, format!("resolving server address: {e}")))?;
        addrs.next().ok_or_else(|| self.rfc_error(action, "server name has no address".to_string()))
    }

    /// Sends an update; a timed-out UDP exchange is sent again. That is safe: a repeated
    /// create meets its own records (YXDOMAIN, then adoption), a repeated delete is a no-op.
    async fn send(&self, client: &Client, msg: Message, action: &str) -> Result<ResponseCode, DnsError> {
        let mut attempt = 1;
        loop {
            let mut responses = client.send(msg.clone());
            match responses.next().await {
                Some(Ok(response)) => return Ok(response.response_code()),
                // The exchange ends without a response when its timeout fires.
                Some(Err(e)) if is_timeout(&e) && attempt < ATTEMPTS => attempt += 1,
                None if attempt < ATTEMPTS => attempt += 1,
                Some(Err(e)) if !is_timeout(&e) => return Err(self.transport_error(action, &error_chain(&e))),
                Some(Err(_)) | None => return Err(self.no_response(action)),
            }
        }
    }

    async fn lookup(
        &self,
        client: &Client,
        name: &Name,
        rr_type: RecordType,
        action: &str,
    ) -> Result<Vec<Record>, DnsError> {
        let mut client = client.clone();
        let mut attempt = 1;
        let response = loop {
            match client.query(name.clone(), DNSClass::IN, rr_type).await {
                Ok(response) => break response,
                Err(e) if client_error_is_timeout(&e) && attempt < ATTEMPTS => attempt += 1,
                Err(e) if client_error_is_timeout(&e) => return Err(self.no_response(action)),
                Err(e) => return Err(self.transport_error(action, &client_error_text(&e))),
            }
        };
        match response.response_code() {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(response.answers().to_vec()),
            code => Err(self.rfc_error(action, format!("query {name} {rr_type} answered {code}"))),
        }
    }

    async fn ownership(&self, client: &Client, owner: &Name, action: &str) -> Result<Ownership, DnsError> {
        let answers = self.lookup(client, owner, RecordType::TXT, action).await?;
        let Some(txt) = answers.iter().find(|r| r.record_type() == RecordType::TXT) else {
            return Ok(Ownership::Absent);
        };
        let text = txt_marker(txt).unwrap_or_default();
        // Several TXT records at the owner name is not something this provider writes.
        if answers.iter().filter(|r| r.record_type() == RecordType::TXT).count() > 1 {
            return Ok(Ownership::Other(format!("{} TXT records", answers.len())));
        }
        Ok(match parse_owner_marker(&text) {
            Some(session_id) => Ownership::Ours { session_id, txt: Box::new(txt.clone()) },
            None => Ownership::Other(text),
        })
    }

    async fn describe_records(&self, client: &Client, host: &Name, action: &str) -> Result<String, DnsError> {
        let mut found = Vec::new();
        for rr_type in [RecordType::CNAME, RecordType::A, RecordType::AAAA, RecordType::TXT] {
            let answers = self.lookup(client, host, rr_type, action).await?;
            found.extend(answers.into_iter().filter(|r| r.name() == host));
        }
        found.dedup();
        Ok(describe(&found))
    }

    fn update_error(&self, action: &str, code: ResponseCode) -> DnsError {
        let hint = match code {
            ResponseCode::NotAuth => format!(
                " (the server refused TSIG key {:?}: check key name, algorithm and secret, and \
                 that the zone's update ACL names this key)",
                self.config.key_name
            ),
            ResponseCode::Refused => " (updates for this zone are not allowed for this key)".into(),
            ResponseCode::NXRRSet => " (the ownership record changed meanwhile; nothing was modified)".into(),
            _ => String::new(),
        };
        self.rfc_error(action, format!("update answered {code}{hint}"))
    }

    fn transport_error(&self, action: &str, detail: &str) -> DnsError {
        let lower = detail.to_ascii_lowercase();
        // A server that refuses our key answers BADKEY/BADSIG with an unsigned or empty-MAC
        // TSIG; hickory reports that as a verification failure with a confusing text.
        if lower.contains("tsig") || lower.contains("hmac") {
            let needs = if action.contains("AXFR") {
                "transfer the zone (AXFR), which listing sessions needs"
            } else {
                "update the zone"
            };
            return self.rfc_error(
                action,
                format!(
                    "the server refused key {:?} ({}) with a TSIG error (BADKEY/BADSIG): check \
                     key_name, key_algorithm and key_secret against the server's key, and that \
                     the server's ACL allows this key to {needs}",
                    self.config.key_name, self.config.key_algorithm
                ),
            );
        }
        self.rfc_error(action, detail.to_string())
    }

    fn no_response(&self, action: &str) -> DnsError {
        self.rfc_error(
            action,
            format!(
                "no response within {} s, {ATTEMPTS} attempts: check that the server runs and that \
                 `server` is its address and port",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
    }

    fn rfc_error(&self, action: &str, detail: String) -> DnsError {
        DnsError::Rfc2136 { server: self.config.server.clone(), action: action.to_string(), detail }
    }
}

fn is_timeout(err: &ProtoError) -> bool {
    matches!(err.kind(), ProtoErrorKind::Timeout)
}

fn client_error_is_timeout(err: &hickory_client::ClientError) -> bool {
    match err.kind() {
        hickory_client::ClientErrorKind::Timeout => true,
        hickory_client::ClientErrorKind::Proto(proto) => is_timeout(proto),
        _ => false,
    }
}

/// hickory-client's errors print "proto error" and keep the cause in their kind.
fn client_error_text(err: &hickory_client::ClientError) -> String {
    match err.kind() {
        hickory_client::ClientErrorKind::Proto(proto) => error_chain(proto),
        _ => error_chain(err),
    }
}

fn owner_name(host: &Name, action: &str, server: &str) -> Result<Name, DnsError> {
    host.prepend_label(OWNER_LABEL).map_err(|e| DnsError::Rfc2136 {
        server: server.to_string(),
        action: action.to_string(),
        detail: format!("ownership name for {host}: {e}"),
    })
}

/// `lab-x.zone.` from `_lab-owner.lab-x.zone.`, without trailing dot.
fn hostname_of_owner(owner: &Name) -> Option<String> {
    let mut labels = owner.iter();
    let first = labels.next()?;
    if !first.eq_ignore_ascii_case(OWNER_LABEL.as_bytes()) {
        return None;
    }
    Some(owner.base_name().to_ascii().trim_end_matches('.').to_string())
}

fn txt_record(name: Name, ttl: u32, text: &str) -> Record {
    Record::from_rdata(name, ttl, RData::TXT(TXT::new(vec![text.to_string()])))
}

fn txt_marker(record: &Record) -> Option<String> {
    match record.data() {
        RData::TXT(txt) => {
            Some(txt.iter().map(|chunk| String::from_utf8_lossy(chunk).into_owned()).collect::<String>())
        }
        _ => None,
    }
}

/// RFC 2136 2.4.5: NONE/ANY prerequisite, "name is not in use".
fn prereq_name_absent(name: Name) -> Record {
    let mut record = Record::update0(name, 0, RecordType::ANY);
    record.set_dns_class(DNSClass::NONE);
    record
}

/// RFC 2136 2.4.2: the RRset exists with exactly this value.
fn prereq_exact(record: &Record) -> Record {
    let mut record = record.clone();
    record.set_ttl(0);
    record.set_dns_class(DNSClass::IN);
    record
}

/// RFC 2136 2.5.2: delete an RRset.
fn delete_rrset(name: Name, rr_type: RecordType) -> Record {
    let mut record = Record::update0(name, 0, rr_type);
    record.set_dns_class(DNSClass::ANY);
    record
}

fn describe(records: &[Record]) -> String {
    if records.is_empty() {
        return "no record at that name".to_string();
    }
    records.iter().map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data())).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Rfc2136Config {
        Rfc2136Config {
            server: "127.0.0.1:5353".into(),
            zone: "lab.example.edu".into(),
            key_name: "lab-key".into(),
            key_algorithm: KeyAlgorithm::default(),
            key_secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==".into(),
            record_type: SessionRecordType::Cname,
            target: "tunnel.lab.example.edu".into(),
        }
    }

    #[test]
    fn valid_config_parses() {
        let dns = Rfc2136Dns::new(config()).unwrap();
        assert_eq!(dns.record_id("lab-a.lab.example.edu").0, "lab-a.lab.example.edu/CNAME");
    }

    #[test]
    fn invalid_configs_are_refused_without_the_secret() {
        type Mutation = Box<dyn Fn(&mut Rfc2136Config)>;
        let cases: Vec<Mutation> = vec![
            Box::new(|c| c.server = "127.0.0.1".into()),
            Box::new(|c| c.server = "127.0.0.1:99999".into()),
            Box::new(|c| c.zone = "bad zone".into()),
            Box::new(|c| c.key_secret = "not base64!".into()),
            Box::new(|c| c.key_secret = "".into()),
            Box::new(|c| {
                c.record_type = SessionRecordType::A;
                c.target = "tunnel.example.edu".into();
            }),
        ];
        for mutate in cases {
            let mut c = config();
            mutate(&mut c);
            let err = Rfc2136Dns::new(c).expect_err("must be refused").to_string();
            assert!(!err.contains("c2VjcmV0"), "{err}");
        }
        assert!(!format!("{:?}", config()).contains("c2VjcmV0"));
    }

    #[test]
    fn algorithms_and_types_parse() {
        assert_eq!("hmac-sha512".parse::<KeyAlgorithm>().unwrap(), KeyAlgorithm::HmacSha512);
        assert_eq!("HMAC-SHA256.".parse::<KeyAlgorithm>().unwrap(), KeyAlgorithm::HmacSha256);
        assert!("hmac-md5".parse::<KeyAlgorithm>().is_err());
        assert_eq!("a".parse::<SessionRecordType>().unwrap(), SessionRecordType::A);
        assert!("MX".parse::<SessionRecordType>().is_err());
    }

    #[test]
    fn hostnames_outside_the_zone_are_refused() {
        let dns = Rfc2136Dns::new(config()).unwrap();
        assert!(dns.host_name("lab-a.lab.example.edu", "t").is_ok());
        assert!(dns.host_name("lab-a.other.edu", "t").is_err());
        assert!(dns.host_name("lab.example.edu", "t").is_err());
    }

    #[test]
    fn ids_must_match_the_hostname() {
        let dns = Rfc2136Dns::new(config()).unwrap();
        let id = dns.record_id("lab-a.lab.example.edu");
        assert!(dns.parse_id("lab-a.lab.example.edu", &id, "t").is_ok());
        assert!(dns.parse_id("lab-b.lab.example.edu", &id, "t").is_err());
        assert!(dns.parse_id("lab-a.lab.example.edu", &RecordId("x/MX".into()), "t").is_err());
    }

    #[test]
    fn owner_names_map_back_to_hostnames() {
        let host = parse_name("lab-a.lab.example.edu").unwrap();
        let owner = owner_name(&host, "t", "s").unwrap();
        assert_eq!(owner.to_ascii(), "_lab-owner.lab-a.lab.example.edu.");
        assert_eq!(hostname_of_owner(&owner).as_deref(), Some("lab-a.lab.example.edu"));
        assert_eq!(hostname_of_owner(&host), None);
    }

    #[test]
    fn marker_is_read_from_txt() {
        let host = parse_name("_lab-owner.lab-a.lab.example.edu").unwrap();
        let record = txt_record(host, 60, &super::super::owner_marker("a"));
        assert_eq!(txt_marker(&record).as_deref().and_then(parse_owner_marker).as_deref(), Some("a"));
    }
}
