//! RFC 2136 backend against a real Knot DNS server (`knotd`, Debian package `knot`), started by
//! each test on 127.0.0.1 at a free port with a fresh zone and a TSIG key generated per run.
//! Records are checked with an independent DNS client (`kdig`, package `knot-dnsutils`).
//! If knotd or kdig is missing the tests fail and say so: there is no silent skip.
#[path = "support/knot.rs"]
mod knot;

use std::time::{Duration, Instant};

use knot::*;
use terraform_provider_lab::backends::dns::rfc2136::{KeyAlgorithm, Rfc2136Config, Rfc2136Dns, SessionRecordType};
use terraform_provider_lab::backends::dns::{
    DnsBackend, DnsError, RecordId, RecordSpec, SessionIdentity, student_digest,
};

fn spec(host: &str, session: &str) -> RecordSpec {
    RecordSpec { hostname: format!("{host}.{ZONE}"), session_id: session.to_string(), ..Default::default() }
}

#[tokio::test]
async fn create_adopt_list_and_delete_a_session_cname() {
    let knot = Knot::start().await;
    let dns = knot.backend();
    let alice = spec("lab-alice", "alice");

    let id = dns.ensure_record(&alice).await.unwrap();
    assert_eq!(id, RecordId(format!("lab-alice.{ZONE}/CNAME")));
    assert_eq!(knot.dig(&alice.hostname, "CNAME"), vec![format!("{TUNNEL_TARGET}.")]);
    assert_eq!(
        knot.dig(&format!("_lab-owner.{}", alice.hostname), "TXT"),
        vec!["\"managed-by=terraform-provider-lab session=alice\"".to_string()]
    );
    assert!(dns.record_exists(&alice.hostname, &id).await.unwrap());

    // A retry after a crash adopts the record instead of failing.
    let again = dns.ensure_record(&alice).await.unwrap();
    assert_eq!(again, id);

    // Another session may not take over alice's name.
    let err = dns.ensure_record(&spec("lab-alice", "mallory")).await.unwrap_err();
    eprintln!("other session: {err}");
    assert!(matches!(err, DnsError::Foreign { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&alice.hostname), "{text}");
    assert!(text.contains("alice"), "{text}");

    let bob = spec("lab-bob", "bob");
    dns.ensure_record(&bob).await.unwrap();
    let owned = dns.list_owned().await.unwrap();
    let mut sessions: Vec<_> = owned.iter().map(|o| (o.hostname.as_str(), o.session_id.as_str())).collect();
    sessions.sort();
    assert_eq!(sessions, vec![(alice.hostname.as_str(), "alice"), (bob.hostname.as_str(), "bob")]);

    dns.delete_record(&alice.hostname, &id).await.unwrap();
    assert!(knot.dig(&alice.hostname, "CNAME").is_empty());
    assert!(knot.dig(&format!("_lab-owner.{}", alice.hostname), "TXT").is_empty());
    assert!(!dns.record_exists(&alice.hostname, &id).await.unwrap());
    // Deleting again is a no-op, and bob is untouched.
    dns.delete_record(&alice.hostname, &id).await.unwrap();
    assert_eq!(knot.dig(&bob.hostname, "CNAME"), vec![format!("{TUNNEL_TARGET}.")]);
}

#[tokio::test]
async fn foreign_records_are_never_adopted_or_deleted() {
    let knot = Knot::start().await;
    let dns = knot.backend();
    let www = spec("www", "alice");

    let err = dns.ensure_record(&www).await.unwrap_err();
    let text = err.to_string();
    eprintln!("foreign create: {text}");
    assert!(matches!(err, DnsError::Foreign { .. }), "{text}");
    assert!(text.contains(&www.hostname), "{text}");
    assert!(text.contains("127.0.0.2"), "names the record found: {text}");

    let foreign_id = RecordId(format!("{}/A", www.hostname));
    let err = dns.delete_record(&www.hostname, &foreign_id).await.unwrap_err();
    eprintln!("foreign delete: {err}");
    assert!(matches!(err, DnsError::Foreign { .. }), "{err}");
    assert_eq!(knot.dig(&www.hostname, "A"), vec!["127.0.0.2".to_string()]);
}

#[tokio::test]
async fn a_record_deleted_out_of_band_is_detected_and_recreated() {
    let knot = Knot::start().await;
    let dns = DnsBackend::Rfc2136(Rfc2136Dns::new(knot.config(SessionRecordType::A, "127.0.0.9")).unwrap());
    let carol = spec("lab-carol", "carol");
    let id = dns.ensure_record(&carol).await.unwrap();
    assert_eq!(id, RecordId(format!("{}/A", carol.hostname)));
    assert_eq!(knot.dig(&carol.hostname, "A"), vec!["127.0.0.9".to_string()]);

    knot.nsupdate(&format!("update delete {}. A", carol.hostname));
    assert!(knot.dig(&carol.hostname, "A").is_empty());
    assert!(!dns.record_exists(&carol.hostname, &id).await.unwrap());

    // The ownership TXT survived, so the session adopts its name again.
    assert_eq!(dns.ensure_record(&carol).await.unwrap(), id);
    assert_eq!(knot.dig(&carol.hostname, "A"), vec!["127.0.0.9".to_string()]);

    // The instructor switches to CNAME records: the session's name follows on the next apply.
    let cname = DnsBackend::Rfc2136(Rfc2136Dns::new(knot.config(SessionRecordType::Cname, TUNNEL_TARGET)).unwrap());
    assert_eq!(cname.ensure_record(&carol).await.unwrap(), RecordId(format!("{}/CNAME", carol.hostname)));
    assert_eq!(knot.dig(&carol.hostname, "CNAME"), vec![format!("{TUNNEL_TARGET}.")]);
    // An A query now follows the CNAME to the tunnel host (127.0.0.3); the old A is gone.
    assert_eq!(knot.dig(&carol.hostname, "A"), vec![format!("{TUNNEL_TARGET}."), "127.0.0.3".to_string()]);
}

/// A session on another host points its record at that host's gateway (`lab_session.dns_target`):
/// the record carries the session's target, a changed target repoints it in place, and a target
/// the record type cannot hold is refused before anything is sent.
#[tokio::test]
async fn a_sessions_own_target_overrides_the_configured_one_and_can_change() {
    let knot = Knot::start().await;
    let dns = knot.backend();
    let h1 = format!("gw-h1.{ZONE}");
    let h2 = format!("gw-h2.{ZONE}");
    let ann = RecordSpec { target: Some(h1.clone()), ..spec("lab-ann", "ann") };
    let plain = spec("lab-plain", "plain");

    let id = dns.ensure_record(&ann).await.unwrap();
    dns.ensure_record(&plain).await.unwrap();
    assert_eq!(knot.dig(&ann.hostname, "CNAME"), vec![format!("{h1}.")]);
    assert_eq!(knot.dig(&plain.hostname, "CNAME"), vec![format!("{TUNNEL_TARGET}.")], "no target: the provider's");

    // Moved to h2: the same record (same id, same marker) now points at h2's gateway.
    let moved = RecordSpec { target: Some(format!("{h2}.")), ..ann.clone() };
    assert_eq!(dns.ensure_record(&moved).await.unwrap(), id);
    assert_eq!(knot.dig(&ann.hostname, "CNAME"), vec![format!("{h2}.")]);
    assert_eq!(
        knot.dig(&format!("_lab-owner.{}", ann.hostname), "TXT"),
        vec!["\"managed-by=terraform-provider-lab session=ann\"".to_string()]
    );
    // Back to the provider's target when the session's is removed.
    assert_eq!(dns.ensure_record(&RecordSpec { target: None, ..ann.clone() }).await.unwrap(), id);
    assert_eq!(knot.dig(&ann.hostname, "CNAME"), vec![format!("{TUNNEL_TARGET}.")]);

    // A records take addresses only; CNAMEs take names only. Nothing is written either way.
    let a = DnsBackend::Rfc2136(Rfc2136Dns::new(knot.config(SessionRecordType::A, "127.0.0.9")).unwrap());
    let bad = RecordSpec { target: Some(h1.clone()), ..spec("lab-eve", "eve") };
    let err = a.ensure_record(&bad).await.unwrap_err();
    assert!(err.to_string().contains("must be an IPv4 address for record_type A"), "{err}");
    assert!(knot.dig(&bad.hostname, "A").is_empty() && knot.dig(&bad.hostname, "CNAME").is_empty());
    assert!(dns.check_target("10.77.2.2").is_err() && dns.check_target("gw_h2!").is_err());
    assert!(a.check_target("10.77.2.2").is_ok() && dns.check_target(&h2).is_ok());
    let eve = RecordSpec { target: Some("127.0.0.7".into()), ..spec("lab-eve", "eve") };
    a.ensure_record(&eve).await.unwrap();
    assert_eq!(knot.dig(&eve.hostname, "A"), vec!["127.0.0.7".to_string()]);
}

#[tokio::test]
async fn a_wrong_tsig_key_is_refused_with_a_clear_error() {
    let knot = Knot::start().await;
    let mut config = knot.config(SessionRecordType::Cname, TUNNEL_TARGET);
    config.key_secret = random_secret();
    let wrong_secret = config.key_secret.clone();
    let dns = DnsBackend::Rfc2136(Rfc2136Dns::new(config).unwrap());
    let dave = spec("lab-dave", "dave");

    let err = dns.ensure_record(&dave).await.unwrap_err();
    let text = err.to_string();
    eprintln!("wrong key: {text}");
    assert!(matches!(err, DnsError::Rfc2136 { .. }), "{text}");
    assert!(text.contains(KEY_NAME), "names the key: {text}");
    assert!(text.contains("TSIG"), "says what failed: {text}");
    assert!(!text.contains(&wrong_secret), "never shows the secret: {text}");
    assert!(!text.contains(&knot.secret), "never shows the secret: {text}");
    assert!(knot.dig(&dave.hostname, "CNAME").is_empty());
}

#[tokio::test]
async fn hmac_sha512_keys_work_and_a_refused_transfer_is_explained() {
    let knot = Knot::start().await;
    let mut config = knot.config(SessionRecordType::Cname, TUNNEL_TARGET);
    config.key_name = KEY_512_NAME.to_string();
    config.key_algorithm = "hmac-sha512".parse().unwrap();
    config.key_secret = knot.secret_512.clone();
    let dns = DnsBackend::Rfc2136(Rfc2136Dns::new(config).unwrap());
    let erin = spec("lab-erin", "erin");

    let id = dns.ensure_record(&erin).await.unwrap();
    assert_eq!(knot.dig(&erin.hostname, "CNAME"), vec![format!("{TUNNEL_TARGET}.")]);

    // This key may update but not transfer: listing says what to allow.
    let err = dns.list_owned().await.unwrap_err();
    eprintln!("transfer refused: {err}");
    let text = err.to_string();
    assert!(text.contains("AXFR") && text.contains(KEY_512_NAME), "{text}");
    assert!(text.contains("allows this key to transfer the zone"), "{text}");

    dns.delete_record(&erin.hostname, &id).await.unwrap();
    assert!(knot.dig(&erin.hostname, "CNAME").is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_reported_with_its_address() {
    // Nothing listens on this port; lost datagrams are retried a bounded number of times.
    let port = free_port();
    let config = Rfc2136Config {
        server: format!("127.0.0.1:{port}"),
        zone: ZONE.to_string(),
        key_name: KEY_NAME.to_string(),
        key_algorithm: KeyAlgorithm::HmacSha256,
        key_secret: random_secret(),
        record_type: SessionRecordType::Cname,
        target: TUNNEL_TARGET.to_string(),
    };
    let dns = DnsBackend::Rfc2136(Rfc2136Dns::new(config).unwrap());
    let started = Instant::now();
    let err = dns.ensure_record(&spec("lab-finn", "finn")).await.unwrap_err();
    eprintln!("unreachable after {:?}: {err}", started.elapsed());
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")) && text.contains("lab-finn"), "{text}");
    assert!(text.contains("no response within 5 s, 3 attempts"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "bounded");
}

fn student_spec(host: &str, session: &str, student: &str, pending: bool) -> RecordSpec {
    RecordSpec { student: Some(student.to_string()), pending, ..spec(host, session) }
}

fn identity(prefix: &str, student: &str) -> SessionIdentity {
    SessionIdentity { domain: ZONE.to_string(), hostname_prefix: prefix.to_string(), student: student.to_string() }
}

/// The orphan of an apply killed before it saved its state is found by a signed zone transfer,
/// by its identity only; a refresh of a session in state confirms its record, which is then
/// never taken for an orphan.
#[tokio::test]
async fn pending_records_are_found_by_identity_and_confirmed_by_a_refresh() {
    let knot = Knot::start().await;
    let dns = knot.backend();
    let ada = "ada@example.edu";
    let orphan = student_spec("lab-k3x9q2m7", "k3x9q2m7", ada, true);
    let id = dns.ensure_record(&orphan).await.unwrap();
    // Not the same identity: another student, another prefix, a session in state, and a record
    // of an older provider (no digest).
    dns.ensure_record(&student_spec("lab-aaaaaaaa", "aaaaaaaa", "alan@example.edu", true)).await.unwrap();
    dns.ensure_record(&student_spec("class-b-bbbbbbbb", "bbbbbbbb", ada, true)).await.unwrap();
    dns.ensure_record(&student_spec("lab-cccccccc", "cccccccc", ada, false)).await.unwrap();
    knot.nsupdate(&format!(
        "update add lab-dddddddd.{ZONE}. 60 CNAME {TUNNEL_TARGET}.\n\
         update add _lab-owner.lab-dddddddd.{ZONE}. 60 TXT \"managed-by=terraform-provider-lab session=dddddddd \
         student=ada@example.edu\""
    ));
    let owner = format!("_lab-owner.{}", orphan.hostname);
    let txt = knot.dig(&owner, "TXT");
    assert_eq!(txt.len(), 1);
    assert!(txt[0].contains(" pending") && txt[0].contains(&format!("who={}", student_digest(ada))), "{txt:?}");

    let found = dns.find_pending(&identity("lab-", ada)).await.unwrap();
    let names: Vec<(&str, &str)> = found.iter().map(|r| (r.hostname.as_str(), r.session_id.as_str())).collect();
    assert_eq!(names, [(orphan.hostname.as_str(), "k3x9q2m7")]);
    assert_eq!(found[0].id, id);
    assert_eq!(dns.find_pending(&identity("class-b-", ada)).await.unwrap().len(), 1);
    assert!(dns.find_pending(&identity("lab-", "grace@example.edu")).await.unwrap().is_empty());

    // The first refresh of the session confirms it: the marker loses `pending`, nothing else.
    assert!(dns.confirm_record(&orphan.hostname, &id).await.unwrap());
    let confirmed = knot.dig(&owner, "TXT");
    assert_eq!(confirmed, [txt[0].replace(" pending", "")]);
    assert!(dns.find_pending(&identity("lab-", ada)).await.unwrap().is_empty());
    assert_eq!(knot.dig(&orphan.hostname, "CNAME"), vec![format!("{TUNNEL_TARGET}.")]);
    // Confirming again changes nothing; a record deleted out of band reads as gone.
    assert!(dns.confirm_record(&orphan.hostname, &id).await.unwrap());
    dns.delete_record(&orphan.hostname, &id).await.unwrap();
    assert!(!dns.confirm_record(&orphan.hostname, &id).await.unwrap());
    // `www` has no marker: it exists, and is left as it was.
    let www = format!("www.{ZONE}");
    assert!(dns.confirm_record(&www, &RecordId(format!("{www}/A"))).await.unwrap());
    assert_eq!(knot.dig(&www, "A"), vec!["127.0.0.2".to_string()]);
}

#[tokio::test]
async fn finding_orphans_without_transfer_rights_says_what_to_allow() {
    let knot = Knot::start().await;
    let mut config = knot.config(SessionRecordType::Cname, TUNNEL_TARGET);
    config.key_name = KEY_512_NAME.to_string();
    config.key_algorithm = KeyAlgorithm::HmacSha512;
    config.key_secret = knot.secret_512.clone();
    let dns = DnsBackend::Rfc2136(Rfc2136Dns::new(config).unwrap());
    let err = dns.find_pending(&identity("lab-", "ada@example.edu")).await.unwrap_err();
    eprintln!("no transfer: {err}");
    let text = err.to_string();
    assert!(text.contains("AXFR") && text.contains(KEY_512_NAME), "{text}");
}
