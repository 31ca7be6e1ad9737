//! The plugin binary as Terraform sees it: environment handshake, the handshake line, mTLS with
//! a pinned client certificate on the unix socket, a few RPCs, and Shutdown.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use terraform_provider_lab::protocol::pb::plugin::grpc_controller_client::GrpcControllerClient;
use terraform_provider_lab::protocol::pb::tfplugin6 as tf;
use terraform_provider_lab::protocol::pb::tfplugin6::provider_client::ProviderClient;
use terraform_provider_lab::protocol::{Type, Value, codec, handshake};
use tonic::transport::{Channel, Endpoint, Uri};

const BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-lab");

/// A client identity like Terraform's: a self-signed P-521 CA certificate.
struct ClientIdentity {
    cert: CertificateDer<'static>,
    pem: String,
    key: PrivatePkcs8KeyDer<'static>,
}

fn client_identity() -> ClientIdentity {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth, rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).unwrap();
    ClientIdentity { cert: cert.der().clone(), pem: cert.pem(), key: PrivatePkcs8KeyDer::from(key.serialize_der()) }
}

struct Plugin {
    child: Child,
    socket: PathBuf,
    server_cert: CertificateDer<'static>,
}

/// SIGTERM (not SIGKILL) so the plugin removes its socket directory, as on a normal stop.
impl Drop for Plugin {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if wait_exit(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts the binary with the environment Terraform sets and reads the handshake line.
fn start_plugin(client_cert_pem: &str) -> (Plugin, String) {
    let mut child = Command::new(BIN)
        .env(handshake::MAGIC_COOKIE_KEY, handshake::MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env("PLUGIN_CLIENT_CERT", client_cert_pem)
        .env("PLUGIN_MIN_PORT", "10000")
        .env("PLUGIN_MAX_PORT", "25000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let line = line.trim_end().to_string();
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(fields.len(), 6, "handshake line {line:?}");
    let der = base64::engine::general_purpose::STANDARD_NO_PAD.decode(fields[5]).unwrap();
    let plugin = Plugin { child, socket: PathBuf::from(fields[3]), server_cert: CertificateDer::from(der) };
    (plugin, line)
}

/// Trusts exactly the certificate from the handshake line, as go-plugin's client does.
#[derive(Debug)]
struct PinnedServer(CertificateDer<'static>);

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("unexpected server certificate".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

async fn connect(plugin: &Plugin, identity: Option<&ClientIdentity>) -> Result<Channel, tonic::transport::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer(plugin.server_cert.clone())));
    let mut config = match identity {
        Some(id) => {
            builder.with_client_auth_cert(vec![id.cert.clone()], PrivateKeyDer::Pkcs8(id.key.clone_key())).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let socket = plugin.socket.clone();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let socket = socket.clone();
            async move {
                let unix = tokio::net::UnixStream::connect(socket).await?;
                let tls = connector.connect(ServerName::try_from("localhost").unwrap(), unix).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}

fn msgpack(value: &Value, ty: &Type) -> tf::DynamicValue {
    tf::DynamicValue { msgpack: codec::encode_msgpack(value, ty).unwrap(), json: Vec::new() }
}

/// An object of type `ty` with every attribute null except `set`.
fn object_with(ty: &Type, set: &[(&str, Value)]) -> Value {
    let Type::Object(attrs) = ty else { panic!("not an object type: {ty:?}") };
    let mut map: BTreeMap<String, Value> = attrs.keys().map(|k| (k.clone(), Value::Null)).collect();
    for (k, v) in set {
        map.insert(k.to_string(), v.clone());
    }
    Value::Object(map)
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn run_by_hand_exits_1_with_a_friendly_message() {
    let out = Command::new(BIN).env_remove(handshake::MAGIC_COOKIE_KEY).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not meant to be run directly"), "{stderr}");

    let out = Command::new(BIN)
        .env(handshake::MAGIC_COOKIE_KEY, handshake::MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only version 6"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_then_rpcs_over_mtls_then_shutdown() {
    let identity = client_identity();
    let (mut plugin, line) = start_plugin(&identity.pem);
    assert!(line.starts_with("1|6|unix|/"), "{line}");
    assert!(line.contains("|grpc|"));
    assert!(plugin.socket.exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(plugin.socket.parent().unwrap()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "socket directory must be private");

    let channel = connect(&plugin, Some(&identity)).await.unwrap();

    // go-plugin's health check.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status =
        health.check(tonic_health::pb::HealthCheckRequest { service: "plugin".into() }).await.unwrap().into_inner();
    assert_eq!(status.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    let mut client = ProviderClient::new(channel.clone());
    let schema = client.get_provider_schema(tf::get_provider_schema::Request {}).await.unwrap().into_inner();
    assert!(schema.diagnostics.is_empty(), "{:?}", schema.diagnostics);
    let session = &schema.resource_schemas["lab_session"];
    let block = session.block.as_ref().unwrap();
    let id = block.attributes.iter().find(|a| a.name == "id").unwrap();
    assert!(id.computed);
    assert_eq!(id.r#type, b"\"string\"");
    let caps = schema.server_capabilities.unwrap();
    assert!(!caps.plan_destroy && !caps.get_provider_schema_optional && caps.move_resource_state);

    // Configure, then plan a create: computed attributes are unknown in the plan.
    let provider_ty = terraform_provider_lab::protocol::dispatch::erase_provider(
        terraform_provider_lab::provider::LabProvider::new(),
    )
    .schema()
    .block
    .value_type();
    let config = object_with(&provider_ty, &[("domain", Value::String("lab.example.edu".into()))]);
    let configured = client
        .configure_provider(tf::configure_provider::Request {
            terraform_version: "1.11.4".into(),
            config: Some(msgpack(&config, &provider_ty)),
            client_capabilities: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(configured.diagnostics.is_empty(), "{:?}", configured.diagnostics);

    let session_ty = terraform_provider_lab::protocol::Block::value_type(
        &terraform_provider_lab::protocol::dispatch::erase_provider(
            terraform_provider_lab::provider::LabProvider::new(),
        )
        .resources()
        .into_iter()
        .find(|r| r.type_name() == "lab_session")
        .unwrap()
        .schema()
        .block,
    );
    let resource_config = object_with(&session_ty, &[("student", Value::String("ada".into()))]);
    let planned = client
        .plan_resource_change(tf::plan_resource_change::Request {
            type_name: "lab_session".into(),
            prior_state: Some(msgpack(&Value::Null, &session_ty)),
            proposed_new_state: Some(msgpack(&resource_config, &session_ty)),
            config: Some(msgpack(&resource_config, &session_ty)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(planned.diagnostics.is_empty(), "{:?}", planned.diagnostics);
    let planned = codec::decode_msgpack(&planned.planned_state.unwrap().msgpack, &session_ty).unwrap();
    assert_eq!(planned.get_attr("id"), Some(&Value::Unknown));
    assert_eq!(planned.get_attr("student"), Some(&Value::String("ada".into())));

    // Unknown types answer with diagnostics, not transport errors.
    let unknown = client
        .validate_resource_config(tf::validate_resource_config::Request {
            type_name: "lab_nope".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unknown.diagnostics[0].summary, "Unknown resource type");

    // StopProvider cancels but keeps serving.
    client.stop_provider(tf::stop_provider::Request {}).await.unwrap();
    client.get_metadata(tf::get_metadata::Request {}).await.unwrap();

    // Shutdown: the process exits cleanly and removes its socket directory.
    let socket_dir = plugin.socket.parent().unwrap().to_path_buf();
    GrpcControllerClient::new(channel).shutdown(terraform_provider_lab::protocol::pb::plugin::Empty {}).await.unwrap();
    // go-plugin's client kills plugins that take more than 2 s to exit.
    let asked = Instant::now();
    let status = wait_exit(&mut plugin.child, Duration::from_secs(10)).expect("plugin exits after Shutdown");
    assert!(asked.elapsed() < Duration::from_secs(2), "exit took {:?}", asked.elapsed());
    assert!(status.success(), "{status:?}");
    assert!(!socket_dir.exists(), "socket directory left behind: {}", socket_dir.display());
}

async fn schema_call_fails(plugin: &Plugin, identity: Option<&ClientIdentity>) -> bool {
    let Ok(channel) = connect(plugin, identity).await else { return true };
    ProviderClient::new(channel).get_provider_schema(tf::get_provider_schema::Request {}).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_the_pinned_certificate_are_refused() {
    let terraform = client_identity();
    let intruder = client_identity();
    let (plugin, _) = start_plugin(&terraform.pem);
    assert!(schema_call_fails(&plugin, None).await, "a client without certificate got in");
    assert!(schema_call_fails(&plugin, Some(&intruder)).await, "a client with another certificate got in");
    // The server is still fine for the right client.
    assert!(!schema_call_fails(&plugin, Some(&terraform)).await);
}

#[test]
fn sigterm_exits_and_removes_the_socket_directory() {
    let identity = client_identity();
    let (plugin, _) = start_plugin(&identity.pem);
    assert!(Path::new(&plugin.socket).is_absolute());
    let dir = plugin.socket.parent().unwrap().to_path_buf();
    drop(plugin);
    assert!(!dir.exists(), "socket directory left behind: {}", dir.display());
}
