//! go-plugin's side of starting a provider: check that Terraform launched us, open a unix socket
//! in a fresh private directory, serve gRPC over mTLS on it, and print the handshake line
//! `1|6|unix|<socket>|grpc|<server cert>` that tells Terraform where to connect.
//! `-debug` mode serves without Terraform and prints a `TF_REATTACH_PROVIDERS` value instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dispatch::ErasedProvider;
use super::log;
use super::server;
use super::tls::{self, TlsError};

pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's own protocol version (first field of the handshake line).
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// Terraform plugin protocol major version.
pub const PROTOCOL_VERSION: u32 = 6;
pub const PROVIDER_ADDRESS: &str = "registry.terraform.io/classroom/lab";

/// How long in-flight calls may take to finish after Shutdown before we exit anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// After the server stops, how long cancelled applies get to roll back before the process exits.
const ROLLBACK_GRACE: Duration = Duration::from_secs(60);
/// How often the provider checks that Terraform, its parent, is still there.
const PARENT_CHECK_INTERVAL: Duration = Duration::from_millis(500);

pub const NOT_A_COMMAND: &str = "This binary is a plugin for Terraform/OpenTofu; it is not meant to be run directly.\n\
Terraform runs it when a configuration uses the provider registry.terraform.io/classroom/lab.\n\
To debug it, start it with -debug and set TF_REATTACH_PROVIDERS as it prints.";

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{NOT_A_COMMAND}")]
    NotLaunchedByTerraform,
    #[error(
        "Terraform offered plugin protocol versions {offered:?}, but this provider speaks only version 6 \
         (Terraform 1.0 or newer, OpenTofu)"
    )]
    UnsupportedProtocol { offered: String },
    #[error("PLUGIN_CLIENT_CERT is not set: Terraform always sends its client certificate")]
    MissingClientCert,
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("creating the plugin socket directory under {dir}: {source}")]
    SocketDir { dir: PathBuf, source: std::io::Error },
    #[error("listening on {path}: {source}")]
    Listen { path: PathBuf, source: std::io::Error },
    #[error("writing the handshake line to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("serving gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// What Terraform told us in the environment.
#[derive(Debug)]
pub struct TerraformEnv {
    pub client_cert: CertificateDer<'static>,
}

/// Reads the go-plugin environment (through `get`, so tests need not touch the process env).
pub fn read_env(get: impl Fn(&str) -> Option<String>) -> Result<TerraformEnv, HandshakeError> {
    if get(MAGIC_COOKIE_KEY).as_deref() != Some(MAGIC_COOKIE_VALUE) {
        return Err(HandshakeError::NotLaunchedByTerraform);
    }
    let offered = get("PLUGIN_PROTOCOL_VERSIONS").unwrap_or_default();
    if !offered.split(',').any(|v| v.trim() == PROTOCOL_VERSION.to_string()) {
        return Err(HandshakeError::UnsupportedProtocol { offered });
    }
    let pem = get("PLUGIN_CLIENT_CERT").filter(|p| !p.trim().is_empty()).ok_or(HandshakeError::MissingClientCert)?;
    Ok(TerraformEnv { client_cert: tls::parse_client_cert(&pem)? })
}

pub fn handshake_line(socket: &Path, server_cert: &CertificateDer<'_>) -> String {
    let cert = base64::engine::general_purpose::STANDARD_NO_PAD.encode(server_cert.as_ref());
    format!("{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|unix|{}|grpc|{cert}", socket.display())
}

pub fn reattach_json(socket: &Path, pid: u32) -> String {
    serde_json::json!({
        PROVIDER_ADDRESS: {
            "Protocol": "grpc",
            "ProtocolVersion": PROTOCOL_VERSION,
            "Pid": pid,
            "Test": true,
            "Addr": { "Network": "unix", "String": socket.display().to_string() },
        }
    })
    .to_string()
}

/// A private (0700) directory holding the socket; removed when dropped.
pub struct SocketDir {
    dir: PathBuf,
    pub socket: PathBuf,
}

impl SocketDir {
    pub fn create() -> Result<Self, HandshakeError> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        let mut last_error = None;
        for _ in 0..8 {
            let dir = base.join(format!("plugin{:016x}", rand::random::<u64>()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(SocketDir { socket: dir.join("lab.sock"), dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(e) => return Err(HandshakeError::SocketDir { dir: base, source: e }),
            }
        }
        let source = last_error.unwrap_or_else(|| std::io::Error::other("no free name"));
        Err(HandshakeError::SocketDir { dir: base, source })
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS connection as tonic wants it (tonic only knows TLS streams it set up itself).
struct TlsConn(tokio_rustls::server::TlsStream<UnixStream>);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// Accepts connections and completes TLS handshakes off the accept loop (a stalled or refused
/// client must not hold up others); only verified connections reach tonic.
fn tls_incoming(
    listener: UnixListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        log::warn(&format!("accepting a connection: {e}"));
                        continue;
                    }
                },
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match acceptor.accept(stream).await {
                    Ok(tls) => {
                        let _ = tx.send(Ok(TlsConn(tls))).await;
                    }
                    Err(e) => log::warn(&format!("refused a connection: TLS handshake failed: {e}")),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// SIGTERM ends the server like Shutdown; SIGINT is ignored, as go-plugin servers do:
/// Ctrl-C reaches the whole process group, and Terraform itself decides (StopProvider, then
/// Shutdown) so that running operations can finish or roll back cleanly.
/// Handlers are registered before returning, so a signal right after the handshake line is
/// already ours (and the socket directory gets removed).
fn watch_signals(shutdown: CancellationToken, stop_on_interrupt: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        log::warn("cannot install signal handlers");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => {
                    if stop_on_interrupt { break }
                    log::debug("interrupt received; waiting for Terraform to stop us");
                }
            }
        }
        shutdown.cancel();
    });
}

/// Terraform killed (SIGKILL, a cancelled CI job) cannot send StopProvider: the provider notices
/// that its parent is gone (it is re-parented) and shuts down as if stopped, so that in-flight
/// creates roll back and nothing is left running.
fn watch_parent(shutdown: CancellationToken) {
    let parent = std::os::unix::process::parent_id();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PARENT_CHECK_INTERVAL) => {}
            }
            if std::os::unix::process::parent_id() != parent {
                log::warn(&format!("Terraform (pid {parent}) is gone: cancelling in-flight operations and exiting"));
                shutdown.cancel();
                return;
            }
        }
    });
}

/// Serve Terraform: the normal way this binary runs.
pub async fn serve_terraform(provider: Arc<dyn ErasedProvider>, env: TerraformEnv) -> Result<(), HandshakeError> {
    let started = std::time::Instant::now();
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone(), false);
    watch_parent(shutdown.clone());
    let operations = TaskTracker::new();
    let identity = tls::generate_server_identity()?;
    let tls_config = tls::server_config(&identity, env.client_cert)?;
    log::trace(&format!("server certificate ready after {:?}", started.elapsed()));
    let dir = SocketDir::create()?;
    let listener = UnixListener::bind(&dir.socket)
        .map_err(|source| HandshakeError::Listen { path: dir.socket.clone(), source })?;
    let router = server::router(provider, shutdown.clone(), operations.clone()).await;
    let incoming = tls_incoming(listener, tokio_rustls::TlsAcceptor::from(Arc::new(tls_config)), shutdown.clone());

    let line = handshake_line(&dir.socket, &identity.cert);
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}").and_then(|()| stdout.flush()).map_err(HandshakeError::Stdout)?;
    }
    log::debug(&format!(
        "serving plugin protocol {PROTOCOL_VERSION} on {} (ready after {:?})",
        dir.socket.display(),
        started.elapsed()
    ));

    run_until_shutdown(router.serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned()), shutdown)
        .await?;
    finish_operations(operations).await;
    drop(dir);
    Ok(())
}

/// Waits (bounded) for applies still running, e.g. rolling back after a cancellation.
async fn finish_operations(operations: TaskTracker) {
    operations.close();
    if !operations.is_empty() {
        log::info(&format!("waiting for {} operation(s) to finish or roll back", operations.len()));
    }
    if tokio::time::timeout(ROLLBACK_GRACE, operations.wait()).await.is_err() {
        log::warn("operations still running after the rollback grace period; exiting anyway");
    }
}

/// Serve without Terraform's handshake: plaintext on a private socket, for attaching Terraform
/// with `TF_REATTACH_PROVIDERS` (as go-plugin's debug mode does). Ctrl-C stops it.
pub async fn serve_debug(provider: Arc<dyn ErasedProvider>) -> Result<(), HandshakeError> {
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone(), true);
    let operations = TaskTracker::new();
    let dir = SocketDir::create()?;
    let listener = UnixListener::bind(&dir.socket)
        .map_err(|source| HandshakeError::Listen { path: dir.socket.clone(), source })?;
    let router = server::router(provider, shutdown.clone(), operations.clone()).await;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);

    let reattach = reattach_json(&dir.socket, std::process::id());
    println!(
        "Provider started. To attach Terraform, set TF_REATTACH_PROVIDERS in the shell where Terraform runs:\n\n\
         \tTF_REATTACH_PROVIDERS='{reattach}'\n"
    );
    run_until_shutdown(router.serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned()), shutdown)
        .await?;
    finish_operations(operations).await;
    drop(dir);
    Ok(())
}

/// Waits for the server; after shutdown was requested, gives in-flight calls a grace period.
async fn run_until_shutdown(
    serve: impl std::future::Future<Output = Result<(), tonic::transport::Error>>,
    shutdown: CancellationToken,
) -> Result<(), HandshakeError> {
    tokio::pin!(serve);
    tokio::select! {
        result = &mut serve => return Ok(result?),
        _ = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, serve).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            log::warn("calls still running after shutdown grace period; exiting anyway");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn run_by_hand_is_refused_with_a_friendly_message() {
        let err = read_env(env_of(&[])).unwrap_err();
        assert!(matches!(err, HandshakeError::NotLaunchedByTerraform));
        assert!(err.to_string().contains("not meant to be run directly"));
        let err = read_env(env_of(&[(MAGIC_COOKIE_KEY, "wrong")])).unwrap_err();
        assert!(matches!(err, HandshakeError::NotLaunchedByTerraform));
    }

    #[test]
    fn protocol_6_must_be_offered() {
        let err = read_env(env_of(&[(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE), ("PLUGIN_PROTOCOL_VERSIONS", "4,5")]))
            .unwrap_err();
        assert!(matches!(err, HandshakeError::UnsupportedProtocol { .. }), "{err}");
        let err = read_env(env_of(&[(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE), ("PLUGIN_PROTOCOL_VERSIONS", "5,6")]))
            .unwrap_err();
        assert!(matches!(err, HandshakeError::MissingClientCert), "{err}");
    }

    #[test]
    fn handshake_line_has_six_fields_and_unpadded_der() {
        let identity = tls::generate_server_identity().unwrap();
        let line = handshake_line(Path::new("/tmp/pluginX/lab.sock"), &identity.cert);
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields[..5], ["1", "6", "unix", "/tmp/pluginX/lab.sock", "grpc"]);
        assert!(!fields[5].ends_with('='));
        let der = base64::engine::general_purpose::STANDARD_NO_PAD.decode(fields[5]).unwrap();
        assert_eq!(der, identity.cert.as_ref());
    }

    #[test]
    fn reattach_names_the_provider_and_socket() {
        let json: serde_json::Value = serde_json::from_str(&reattach_json(Path::new("/tmp/p/lab.sock"), 42)).unwrap();
        let entry = &json[PROVIDER_ADDRESS];
        assert_eq!(entry["ProtocolVersion"], 6);
        assert_eq!(entry["Pid"], 42);
        assert_eq!(entry["Addr"]["Network"], "unix");
        assert_eq!(entry["Addr"]["String"], "/tmp/p/lab.sock");
    }

    #[test]
    fn socket_dir_is_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let dir = SocketDir::create().unwrap();
        let parent = dir.socket.parent().unwrap().to_path_buf();
        let mode = std::fs::metadata(&parent).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(dir);
        assert!(!parent.exists());
    }
}
