//! RFC 2136 backend against a real Knot DNS server (`knotd`, Debian package `knot`), started by
//! each test on 127.0.0.1 at a free port with a fresh zone and a TSIG key generated per run.
//! Records are checked with an independent DNS client (`kdig`, package `knot-dnsutils`).
//! If knotd or kdig is missing the tests fail and say so: there is no silent skip.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use terraform_provider_lab::backends::dns::rfc2136::{KeyAlgorithm, Rfc2136Config, Rfc2136Dns, SessionRecordType};
use terraform_provider_lab::backends::dns::{DnsBackend, DnsError, RecordId, RecordSpec};

const ZONE: &str = "lab.example.test";
const KEY_NAME: &str = "lab-update-key";
/// A second key, hmac-sha512, allowed to update but not to transfer the zone.
const KEY_512_NAME: &str = "lab-update-only-512";
const TUNNEL_TARGET: &str = "tunnel.lab.example.test";

/// A knotd child process serving [`ZONE`]; killed when dropped.
struct Knot {
    _child: tokio::process::Child,
    port: u16,
    secret: String,
    secret_512: String,
    dir: tempfile::TempDir,
}

fn find_tool(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("{name} not found: install Debian package `{package}` (scripts/deps.sh does)");
}

/// A port free for both UDP and TCP on 127.0.0.1 at the moment of asking.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn random_secret_512() -> String {
    let bytes: [u8; 64] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Knot {
    async fn start() -> Knot {
        let knotd = find_tool("knotd", "knot");
        find_tool("kdig", "knot-dnsutils");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let secret = random_secret();
        let secret_512 = random_secret_512();
        let d = dir.path().display();
        let config = format!(
            r#"server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}
control:
    listen: "{d}/knot.sock"
log:
  - target: stderr
    any: info
database:
    storage: "{d}/db"
key:
  - id: {KEY_NAME}
    algorithm: hmac-sha256
    secret: {secret}
  - id: {KEY_512_NAME}
    algorithm: hmac-sha512
    secret: {secret_512}
acl:
  - id: lab-update
    key: {KEY_NAME}
    action: [update, transfer]
  - id: lab-update-only
    key: {KEY_512_NAME}
    action: update
zone:
  - domain: {ZONE}
    storage: "{d}"
    file: "{ZONE}.zone"
    acl: [lab-update, lab-update-only]
    zonefile-sync: -1
"#
        );
        // `www` is a record this provider did not create: it must never be touched.
        let zone = format!(
            "$ORIGIN {ZONE}.\n$TTL 60\n\
             @ SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 60\n\
             @ NS ns\nns A 127.0.0.1\nwww A 127.0.0.2\ntunnel A 127.0.0.3\n"
        );
        std::fs::write(dir.path().join("knot.conf"), config).unwrap();
        std::fs::write(dir.path().join(format!("{ZONE}.zone")), zone).unwrap();
        std::fs::create_dir_all(dir.path().join("db")).unwrap();
        let log = std::fs::File::create(dir.path().join("knotd.log")).unwrap();
        let child = tokio::process::Command::new(knotd)
            .arg("-c")
            .arg(dir.path().join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("starting knotd");
        let knot = Knot { _child: child, port, secret, secret_512, dir };
        knot.wait_ready().await;
        knot
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.dig(&format!("ns.{ZONE}"), "A") == vec!["127.0.0.1".to_string()] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default();
        panic!("knotd did not answer on port {} within 15 s; log:\n{log}", self.port);
    }

    /// Answers from an independent client: `kdig +short`.
    fn dig(&self, name: &str, rr_type: &str) -> Vec<String> {
        let out = std::process::Command::new(find_tool("kdig", "knot-dnsutils"))
            .arg("@127.0.0.1")
            .args(["-p", &self.port.to_string(), "+short", "+timeout=2", "+retry=0"])
            .args([name, rr_type])
            .output()
            .expect("running kdig");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .collect()
    }

    /// Changes the zone behind the provider's back with `knsupdate` (same key).
    fn nsupdate(&self, commands: &str) {
        let script = format!(
            "server 127.0.0.1 {}\nzone {ZONE}.\nkey hmac-sha256:{KEY_NAME} {}\n{commands}\nsend\n",
            self.port, self.secret
        );
        let mut child = std::process::Command::new(find_tool("knsupdate", "knot-dnsutils"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running knsupdate");
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "knsupdate failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn config(&self, record_type: SessionRecordType, target: &str) -> Rfc2136Config {
        Rfc2136Config {
            server: format!("127.0.0.1:{}", self.port),
            zone: ZONE.to_string(),
            key_name: KEY_NAME.to_string(),
            key_algorithm: KeyAlgorithm::HmacSha256,
            key_secret: self.secret.clone(),
            record_type,
            target: target.to_string(),
        }
    }

    fn backend(&self) -> DnsBackend {
        DnsBackend::Rfc2136(Rfc2136Dns::new(self.config(SessionRecordType::Cname, TUNNEL_TARGET)).unwrap())
    }
}

fn spec(host: &str, session: &str) -> RecordSpec {
    RecordSpec { hostname: format!("{host}.{ZONE}"), session_id: session.to_string() }
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
