//! The gateway's container: Traefik's arguments, the labels, the TLS files and the container
//! spec built from validated settings, and (for import) the settings read back from a container.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::instructor;
use super::route::{
    CONTAINER_HTTP_PORT, CONTAINER_HTTPS_PORT, ENTRYPOINT_HTTP, ENTRYPOINT_HTTPS, LABEL_CLASS_HOSTNAME,
    LABEL_ENTRYPOINTS, LABEL_GATEWAY, LABEL_INSTRUCTOR, LABEL_ROLE, LABEL_URL_PORT, LABEL_URL_SCHEME, ROLE_GATEWAY,
};
use crate::backends::docker::{BindMount, ContainerInfo, ContainerSpec, PortPublish, UploadFile};
use crate::lifecycle::MANAGED_LABEL;

/// Where Traefik's Docker provider finds the daemon, inside the container.
const SOCKET_IN_CONTAINER: &str = "/var/run/docker.sock";
const DYNAMIC_CONFIG: &str = "/etc/traefik/dynamic/tls.yaml";
const CERT_FILE: &str = "/etc/traefik/tls/cert.pem";
const KEY_FILE: &str = "/etc/traefik/tls/key.pem";
/// SHA-256 of the certificate and key: lets an imported gateway match its configured TLS
/// material without replacement, and tells whether an update must upload it again.
pub const LABEL_TLS_SHA256: &str = "lab.gateway.tls_sha256";
/// Traefik's own health answer on the class hostname, behind the instructor credential.
pub const PING_PATH: &str = "/ping";

/// A published entrypoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub host_ip: String,
    pub host_port: u16,
}

/// The HTTPS entrypoint: where, and with which certificate (PEM).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsListen {
    pub listen: Listen,
    pub certificate_pem: String,
    pub private_key_pem: String,
}

impl std::fmt::Debug for TlsListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListen").field("listen", &self.listen).field("private_key_pem", &"<sensitive>").finish()
    }
}

impl TlsListen {
    pub fn digest(&self) -> String {
        tls_digest(&self.certificate_pem, &self.private_key_pem)
    }
}

pub fn tls_digest(certificate_pem: &str, private_key_pem: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(certificate_pem.trim().as_bytes());
    hasher.update([0]);
    hasher.update(private_key_pem.trim().as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The instructor credential as the gateway's labels carry it: never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Instructor {
    pub username: String,
    pub password_hash: String,
}

impl std::fmt::Debug for Instructor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instructor").field("username", &self.username).finish_non_exhaustive()
    }
}

/// The resolved, validated settings a gateway container is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    pub name: String,
    pub image: String,
    /// The Docker daemon's socket on the Docker host, mounted read-only.
    pub docker_socket: String,
    pub http: Option<Listen>,
    pub https: Option<TlsListen>,
    pub url_scheme: String,
    pub url_port: u16,
    pub instructor: Option<Instructor>,
    /// The instructor's page of the class (with `instructor` only).
    pub class_hostname: Option<String>,
}

impl GatewaySettings {
    /// The network the gateway owns and its terminals join: named after the gateway.
    pub fn network(&self) -> &str {
        &self.name
    }

    fn entrypoints(&self) -> Vec<&'static str> {
        let mut list = Vec::new();
        if self.http.is_some() {
            list.push(ENTRYPOINT_HTTP);
        }
        if self.https.is_some() {
            list.push(ENTRYPOINT_HTTPS);
        }
        list
    }

    /// Traefik's static configuration, as command-line flags. Every value is one argv element
    /// built from validated names (no shell).
    pub fn command(&self) -> Vec<String> {
        let mut cmd = Vec::new();
        if self.http.is_some() {
            cmd.push(format!("--entrypoints.{ENTRYPOINT_HTTP}.address=:{CONTAINER_HTTP_PORT}"));
        }
        if self.https.is_some() {
            cmd.push(format!("--entrypoints.{ENTRYPOINT_HTTPS}.address=:{CONTAINER_HTTPS_PORT}"));
            cmd.push(format!("--providers.file.filename={DYNAMIC_CONFIG}"));
        }
        cmd.extend([
            "--providers.docker=true".to_string(),
            format!("--providers.docker.endpoint=unix://{SOCKET_IN_CONTAINER}"),
            "--providers.docker.exposedbydefault=false".to_string(),
            format!("--providers.docker.network={}", self.network()),
            // `name` is [a-z0-9-]: no backtick can break out of the expression.
            format!("--providers.docker.constraints=Label(`{LABEL_GATEWAY}`,`{}`)", self.name),
            // A classroom host talks to no one but its students.
            "--global.checknewversion=false".to_string(),
            "--global.sendanonymoususage=false".to_string(),
        ]);
        if self.instructor.is_some() {
            // `ping@internal` answers the class hostname's router (see `instructor_labels`).
            cmd.extend(["--ping=true".to_string(), "--ping.manualrouting=true".to_string()]);
        }
        cmd
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (MANAGED_LABEL.to_string(), "true".to_string()),
            (LABEL_ROLE.to_string(), ROLE_GATEWAY.to_string()),
            (LABEL_GATEWAY.to_string(), self.name.clone()),
            (LABEL_ENTRYPOINTS.to_string(), self.entrypoints().join(",")),
            (LABEL_URL_SCHEME.to_string(), self.url_scheme.clone()),
            (LABEL_URL_PORT.to_string(), self.url_port.to_string()),
        ]);
        if let Some(tls) = &self.https {
            labels.insert(LABEL_TLS_SHA256.into(), tls.digest());
        }
        self.instructor_labels(&mut labels);
        labels
    }

    /// With an instructor: the basicAuth middleware (in this container's labels, so Traefik's
    /// Docker provider reads it as `<name>-instructor@docker`), the label that tells terminals
    /// its name, and `/ping` on the class hostname behind it (Traefik's own health answer, so the
    /// instructor can tell the gateway from the class page). Traefik makes a default router (to
    /// itself, a loop) for a container without one, and a default service: both are explicit.
    fn instructor_labels(&self, labels: &mut BTreeMap<String, String>) {
        let Some(who) = &self.instructor else { return };
        labels.extend(instructor::middleware_labels(&self.name, &who.username, &who.password_hash));
        labels.insert(LABEL_INSTRUCTOR.into(), instructor::middleware_ref(&self.name));
        labels.insert("traefik.enable".into(), "true".into());
        labels.insert(
            format!("traefik.http.services.{}-gateway.loadbalancer.server.port", self.name),
            CONTAINER_HTTP_PORT.to_string(),
        );
        let Some(host) = &self.class_hostname else { return };
        labels.insert(LABEL_CLASS_HOSTNAME.into(), host.clone());
        let entrypoints = self.entrypoints();
        for (entrypoint, suffix, tls) in [(ENTRYPOINT_HTTP, "", false), (ENTRYPOINT_HTTPS, "-tls", true)] {
            if !entrypoints.contains(&entrypoint) {
                continue;
            }
            let router = format!("traefik.http.routers.{}-ping{suffix}", self.name);
            // A validated DNS name: no backtick can break out of the rule.
            labels.insert(format!("{router}.rule"), format!("Host(`{host}`) && Path(`{PING_PATH}`)"));
            labels.insert(format!("{router}.entrypoints"), entrypoint.into());
            labels.insert(format!("{router}.middlewares"), instructor::middleware_name(&self.name));
            labels.insert(format!("{router}.service"), "ping@internal".into());
            if tls {
                labels.insert(format!("{router}.tls"), "true".into());
            }
        }
    }

    /// The labels its network carries.
    pub fn network_labels(&self) -> BTreeMap<String, String> {
        network_labels(&self.name)
    }

    pub fn container_spec(&self) -> ContainerSpec {
        let mut publish = Vec::new();
        if let Some(l) = &self.http {
            publish.push(PortPublish {
                container_port: CONTAINER_HTTP_PORT,
                host_ip: l.host_ip.clone(),
                host_port: Some(l.host_port),
            });
        }
        if let Some(t) = &self.https {
            publish.push(PortPublish {
                container_port: CONTAINER_HTTPS_PORT,
                host_ip: t.listen.host_ip.clone(),
                host_port: Some(t.listen.host_port),
            });
        }
        ContainerSpec {
            name: self.name.clone(),
            image: self.image.clone(),
            entrypoint: None,
            cmd: self.command(),
            labels: self.labels(),
            hostname: Some(self.name.clone()),
            network: Some(self.network().to_string()),
            extra_networks: Vec::new(),
            publish,
            expose: Vec::new(),
            restart_unless_stopped: true,
            mounts: vec![BindMount {
                host_path: self.docker_socket.clone(),
                container_path: SOCKET_IN_CONTAINER.into(),
                read_only: true,
            }],
        }
    }

    /// The certificate, its key and the dynamic configuration naming them as Traefik's default
    /// certificate; uploaded before start (and again when the certificate changes: Traefik
    /// watches the file).
    pub fn tls_files(&self) -> Vec<UploadFile> {
        let Some(tls) = &self.https else { return Vec::new() };
        let file = |path: &str, contents: String| UploadFile {
            path: path.into(),
            contents: contents.into_bytes(),
            mode: 0o600,
            uid: 0,
            gid: 0,
        };
        // JSON is YAML: serde_json writes it, so no value can break the document's structure.
        let dynamic = serde_json::json!({
            "tls": { "stores": { "default": { "defaultCertificate": { "certFile": CERT_FILE, "keyFile": KEY_FILE } } } }
        });
        vec![
            file(CERT_FILE, format!("{}\n", tls.certificate_pem.trim())),
            file(KEY_FILE, format!("{}\n", tls.private_key_pem.trim())),
            file(DYNAMIC_CONFIG, format!("{dynamic}\n")),
        ]
    }
}

/// The labels of gateway `name`'s network: ownership only. A network under that name with
/// exactly these is the gateway's own.
pub fn network_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_LABEL.to_string(), "true".to_string()), (LABEL_GATEWAY.to_string(), name.to_string())])
}

/// What import can read back from a gateway container: everything but the TLS material (its
/// digest label stands for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    pub name: String,
    pub image: String,
    pub docker_socket: Option<String>,
    pub http: Option<Listen>,
    pub https: Option<Listen>,
    pub url_scheme: Option<String>,
    pub url_port: Option<u16>,
    /// The instructor's username and hash, from the middleware's label.
    pub instructor: Option<(String, String)>,
    pub class_hostname: Option<String>,
}

pub fn read_back(info: &ContainerInfo) -> ReadBack {
    let listen = |port: u16| {
        info.requested_publish
            .iter()
            .find(|p| p.container_port == port)
            .map(|p| Listen { host_ip: p.host_ip.clone(), host_port: p.host_port.unwrap_or(port) })
    };
    ReadBack {
        name: info.name.clone(),
        image: info.image.clone(),
        docker_socket: info
            .mounts
            .iter()
            .find(|m| m.container_path == SOCKET_IN_CONTAINER)
            .map(|m| m.host_path.clone()),
        http: listen(CONTAINER_HTTP_PORT),
        https: listen(CONTAINER_HTTPS_PORT),
        url_scheme: info.labels.get(LABEL_URL_SCHEME).cloned(),
        url_port: info.labels.get(LABEL_URL_PORT).and_then(|p| p.parse().ok()),
        instructor: instructor::read_back(&info.name, &info.labels),
        class_hostname: info.labels.get(LABEL_CLASS_HOSTNAME).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::docker::create_body;

    fn settings() -> GatewaySettings {
        GatewaySettings {
            name: "os101-edge".into(),
            image: "lab/traefik:3.7.15".into(),
            docker_socket: "/run/lab-rig/docker.sock".into(),
            http: Some(Listen { host_ip: "127.0.0.1".into(), host_port: 8080 }),
            https: None,
            url_scheme: "http".into(),
            url_port: 8080,
            instructor: None,
            class_hostname: None,
        }
    }

    #[test]
    fn traefik_routes_only_this_gateways_terminals_and_never_phones_home() {
        let cmd = settings().command();
        assert!(cmd.contains(&"--providers.docker.constraints=Label(`lab.gateway`,`os101-edge`)".to_string()));
        assert!(cmd.contains(&"--providers.docker.exposedbydefault=false".to_string()));
        assert!(cmd.contains(&"--providers.docker.network=os101-edge".to_string()));
        assert!(cmd.contains(&"--entrypoints.web.address=:80".to_string()));
        assert!(cmd.contains(&"--global.checknewversion=false".to_string()));
        assert!(!cmd.iter().any(|a| a.contains("websecure") || a.contains("providers.file")), "{cmd:?}");
        assert!(settings().tls_files().is_empty());
    }

    #[test]
    fn socket_is_mounted_read_only_and_entrypoints_published_where_asked() {
        let spec = settings().container_spec();
        assert_eq!(spec.network.as_deref(), Some("os101-edge"));
        assert_eq!(
            spec.mounts,
            vec![BindMount {
                host_path: "/run/lab-rig/docker.sock".into(),
                container_path: "/var/run/docker.sock".into(),
                read_only: true
            }]
        );
        let body = create_body(&spec);
        let host = body.host_config.unwrap();
        assert_eq!(host.mounts.unwrap()[0].read_only, Some(true));
        let bindings = host.port_bindings.unwrap();
        let web = bindings["80/tcp"].as_ref().unwrap();
        assert_eq!((web[0].host_ip.as_deref(), web[0].host_port.as_deref()), (Some("127.0.0.1"), Some("8080")));
        assert_eq!(spec.labels["lab.gateway.entrypoints"], "web");
        assert_eq!(spec.labels["lab.role"], "gateway");
    }

    #[test]
    fn tls_files_name_the_certificate_and_digest_changes_with_it() {
        let mut s = settings();
        let tls = TlsListen {
            listen: Listen { host_ip: "0.0.0.0".into(), host_port: 443 },
            certificate_pem: "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----".into(),
            private_key_pem: "-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----".into(),
        };
        s.https = Some(tls.clone());
        let files = s.tls_files();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, [CERT_FILE, KEY_FILE, DYNAMIC_CONFIG]);
        assert!(files.iter().all(|f| f.mode == 0o600));
        let dynamic: serde_json::Value = serde_json::from_slice(&files[2].contents).unwrap();
        assert_eq!(dynamic["tls"]["stores"]["default"]["defaultCertificate"]["keyFile"], KEY_FILE);
        assert!(s.command().contains(&"--entrypoints.websecure.address=:443".to_string()));
        assert_eq!(s.labels()["lab.gateway.entrypoints"], "web,websecure");
        let other = TlsListen {
            private_key_pem: "-----BEGIN PRIVATE KEY-----\nCCC\n-----END PRIVATE KEY-----".into(),
            ..tls.clone()
        };
        assert_ne!(tls.digest(), other.digest());
        assert!(!format!("{tls:?}").contains("BBB"), "the key must not reach Debug output");
    }

    #[test]
    fn read_back_recovers_what_import_needs() {
        let s = settings();
        let info = ContainerInfo {
            name: s.name.clone(),
            image: s.image.clone(),
            labels: s.labels(),
            requested_publish: s.container_spec().publish,
            mounts: s.container_spec().mounts,
            ..Default::default()
        };
        let back = read_back(&info);
        assert_eq!(back.docker_socket.as_deref(), Some("/run/lab-rig/docker.sock"));
        assert_eq!(back.http, s.http);
        assert_eq!(back.https, None);
        assert_eq!((back.url_scheme.as_deref(), back.url_port), (Some("http"), Some(8080)));
        assert_eq!(back.instructor, None);
    }

    #[test]
    fn instructor_is_a_middleware_on_the_gateway_with_the_class_page_behind_it() {
        let mut s = settings();
        assert!(!s.labels().contains_key("traefik.enable"), "no instructor: Traefik ignores its own container");
        let hash = "$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234".to_string();
        s.instructor = Some(Instructor { username: "prof".into(), password_hash: hash.clone() });
        s.class_hostname = Some("class.lab.localhost".into());
        let labels = s.labels();
        assert_eq!(labels["traefik.enable"], "true");
        assert_eq!(labels["lab.gateway.instructor"], "os101-edge-instructor@docker");
        assert_eq!(labels["traefik.http.middlewares.os101-edge-instructor.basicauth.users"], format!("prof:{hash}"));
        assert_eq!(labels["traefik.http.routers.os101-edge-ping.rule"], "Host(`class.lab.localhost`) && Path(`/ping`)");
        assert_eq!(labels["traefik.http.routers.os101-edge-ping.middlewares"], "os101-edge-instructor");
        assert_eq!(labels["traefik.http.routers.os101-edge-ping.service"], "ping@internal");
        assert!(!labels.keys().any(|k| k.contains("-ping-tls")), "no HTTPS entrypoint, no TLS router");
        assert!(s.command().contains(&"--ping.manualrouting=true".to_string()));
        assert!(!format!("{s:?}").contains(&hash), "Debug shows no hash");
        let info = ContainerInfo { name: s.name.clone(), labels, ..Default::default() };
        let back = read_back(&info);
        assert_eq!(back.instructor, Some(("prof".into(), hash)));
        assert_eq!(back.class_hostname.as_deref(), Some("class.lab.localhost"));
    }
}
