//! A real Knot DNS server (`knotd`, Debian package `knot`) for tests: started on 127.0.0.1 at a
//! free port with a fresh zone and a TSIG key generated per run, killed when dropped. Records are
//! checked with an independent DNS client (`kdig`, package `knot-dnsutils`). If knotd or kdig is
//! missing, the caller fails and says so: there is no silent skip.
//! Shared by tests/dns_rfc2136.rs and the acceptance tests (`#[path]` module).
#![allow(dead_code)] // each user needs a different part

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use terraform_provider_lab::backends::dns::DnsBackend;
use terraform_provider_lab::backends::dns::rfc2136::{KeyAlgorithm, Rfc2136Config, Rfc2136Dns, SessionRecordType};

pub const ZONE: &str = "lab.example.test";
pub const KEY_NAME: &str = "lab-update-key";
/// A second key, hmac-sha512, allowed to update but not to transfer the zone.
pub const KEY_512_NAME: &str = "lab-update-only-512";
pub const TUNNEL_TARGET: &str = "tunnel.lab.example.test";

/// A knotd child process serving [`ZONE`]; killed when dropped.
pub struct Knot {
    pub _child: tokio::process::Child,
    /// The network namespace knotd listens in (its 127.0.0.1), None: this process's.
    pub netns: Option<String>,
    pub port: u16,
    pub secret: String,
    pub secret_512: String,
    pub dir: tempfile::TempDir,
}

pub fn find_tool(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("{name} not found: install Debian package `{package}` (scripts/deps.sh does)");
}

/// A port free for both UDP and TCP on 127.0.0.1 at the moment of asking.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn random_secret_512() -> String {
    let bytes: [u8; 64] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `program`, run in `netns` (`ip netns exec`, which execs it: the pid stays the program's) or here.
fn command_in(netns: Option<&str>, program: &Path) -> std::process::Command {
    match netns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => std::process::Command::new(program),
    }
}

impl Knot {
    pub async fn start() -> Knot {
        Self::start_in(None).await
    }

    /// Knot listening on 127.0.0.1 of network namespace `netns` (e.g. the rig's, for a provider that
    /// runs there); queried there too.
    pub async fn start_in(netns: Option<&str>) -> Knot {
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
        let child = tokio::process::Command::from(command_in(netns, &knotd))
            .arg("-c")
            .arg(dir.path().join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("starting knotd");
        let knot = Knot { _child: child, netns: netns.map(String::from), port, secret, secret_512, dir };
        knot.wait_ready().await;
        knot
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.query(&format!("ns.{ZONE}"), "A").ok() == Some(vec!["127.0.0.1".to_string()]) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default();
        panic!("knotd did not answer on port {} within 15 s; log:\n{log}", self.port);
    }

    /// Answers from an independent client (`kdig`): the data of each answer record, in order (a
    /// CNAME's target before what it points to). Empty only for a real answer without records
    /// (NOERROR or NXDOMAIN); panics when kdig gets no answer or knotd refuses or fails the query.
    pub fn dig(&self, name: &str, rr_type: &str) -> Vec<String> {
        self.query(name, rr_type).unwrap_or_else(|why| panic!("kdig {name} {rr_type}: {why}"))
    }

    fn query(&self, name: &str, rr_type: &str) -> Result<Vec<String>, String> {
        let out = command_in(self.netns.as_deref(), &find_tool("kdig", "knot-dnsutils"))
            .arg("@127.0.0.1")
            .args(["-p", &self.port.to_string(), "+noall", "+header", "+answer", "+timeout=2", "+retry=0"])
            .args([name, rr_type])
            .output()
            .expect("running kdig");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("kdig failed ({}): {}{stdout}", out.status, String::from_utf8_lossy(&out.stderr)));
        }
        parse_kdig(&stdout)
    }
    /// Changes the zone behind the provider's back with `knsupdate` (same key).
    pub fn nsupdate(&self, commands: &str) {
        let script = format!(
            "server 127.0.0.1 {}\nzone {ZONE}.\nkey hmac-sha256:{KEY_NAME} {}\n{commands}\nsend\n",
            self.port, self.secret
        );
        let mut child = command_in(self.netns.as_deref(), &find_tool("knsupdate", "knot-dnsutils"))
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

    pub fn config(&self, record_type: SessionRecordType, target: &str) -> Rfc2136Config {
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

    pub fn backend(&self) -> DnsBackend {
        DnsBackend::Rfc2136(Rfc2136Dns::new(self.config(SessionRecordType::Cname, TUNNEL_TARGET)).unwrap())
    }
}

/// kdig's `+noall +header +answer` output -> the answer records' data, after checking the status.
fn parse_kdig(stdout: &str) -> Result<Vec<String>, String> {
    let status = stdout
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|rest| rest.split(';').next())
        .ok_or_else(|| format!("no status in kdig's answer:\n{stdout}"))?;
    if !matches!(status, "NOERROR" | "NXDOMAIN") {
        return Err(format!("status {status}:\n{stdout}"));
    }
    Ok(stdout
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| {
            // NAME TTL CLASS TYPE DATA...: the data is what follows the fourth field.
            let mut rest = l.trim();
            for _ in 0..4 {
                rest = rest.split_once(char::is_whitespace).map_or("", |(_, r)| r).trim_start();
            }
            rest.trim_end().to_string()
        })
        .collect())
}

#[test]
fn parse_kdig_checks_the_status() {
    let ok = ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n;; Flags: qr aa rd; QUERY: 1; ANSWER: 2\n\
              c.z.test.  \t60\tIN\tCNAME\tns.z.test.\nt.z.test.\t60\tIN\tTXT\t\"a b\" \"c\"\n";
    assert_eq!(parse_kdig(ok), Ok(vec!["ns.z.test.".to_string(), "\"a b\" \"c\"".to_string()]));
    let nx = ";; ->>HEADER<<- opcode: QUERY; status: NXDOMAIN; id: 2\n";
    assert_eq!(parse_kdig(nx), Ok(vec![]));
    let refused = ";; ->>HEADER<<- opcode: QUERY; status: REFUSED; id: 3\n";
    assert!(parse_kdig(refused).is_err());
    assert!(parse_kdig("").is_err());
}

/// A forwarder to `knot` on 127.0.0.1 that holds every UDP datagram and TCP connection for
/// `delay` first: a slow network, so a test can stop terraform while creates are under way.
/// Nothing stands in for the server (TSIG is end to end). Runs until the runtime ends.
pub async fn slow_forwarder(knot: &Knot, delay: Duration) -> u16 {
    use tokio::net::{TcpListener as AsyncTcpListener, UdpSocket as AsyncUdpSocket};
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], knot.port));
    let port = free_port();
    let udp = std::sync::Arc::new(AsyncUdpSocket::bind(("127.0.0.1", port)).await.expect("forwarder udp"));
    let tcp = AsyncTcpListener::bind(("127.0.0.1", port)).await.expect("forwarder tcp");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((len, client)) = udp.recv_from(&mut buf).await {
            let (udp, query) = (udp.clone(), buf[..len].to_vec());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let Ok(socket) = AsyncUdpSocket::bind("127.0.0.1:0").await else { return };
                let mut answer = vec![0u8; 65535];
                if socket.send_to(&query, upstream).await.is_ok()
                    && let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut answer)).await
                {
                    let _ = udp.send_to(&answer[..n], client).await;
                }
            });
        }
    });
    tokio::spawn(async move {
        while let Ok((mut client, _)) = tcp.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    port
}
