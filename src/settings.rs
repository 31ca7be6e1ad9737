//! What the provider block says (`LabConfig`) and what resources see of it (`Settings`): the
//! block resolved against environment fallbacks, handed to resources through a `ProviderHandle`.
//!
//! Every attribute is optional: an unset one disables what needs it, and a resource that needs it
//! says so with a clear error (`Settings::require_*`). Each also falls back to an environment
//! variable, so acceptance tests and CI need no provider block. All those fallbacks resolve here.
//! Depends on backends (and protocol types) only: resources and the provider both import it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::backends::dns::cloudflare::{CloudflareConfig, CloudflareDns, DEFAULT_API_URL};
use crate::backends::dns::rfc2136::{Rfc2136Config, Rfc2136Dns};
use crate::backends::dns::{DnsBackend, DnsError};
use crate::backends::docker::{DockerClient, DockerHost, TlsFiles};
use crate::backends::libvirt::Libvirt;
use crate::protocol::diag::DiagResultExt;
use crate::protocol::{Attr, AttrPath, Diagnostic, Diagnostics};
use crate::validate;

/// The `provider "lab"` block as Terraform sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabConfig {
    pub libvirt_uri: Attr<String>,
    pub docker_host: Attr<String>,
    pub domain: Attr<String>,
    pub strict_capacity: Attr<bool>,
    pub storage_pool: Attr<String>,
    pub dns: Option<DnsBlock>,
    /// `host "<name>" { ... }` blocks: the hosts a resource's `host` argument can name.
    pub host: Option<BTreeMap<String, HostBlock>>,
}

/// One `host "<name>" { ... }` block: a libvirt host and the Docker daemon next to it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostBlock {
    pub libvirt_uri: Attr<String>,
    pub docker_host: Attr<String>,
    pub docker_cert_path: Attr<String>,
    pub storage_pool: Attr<String>,
}

/// `dns { cloudflare { ... } }` or `dns { rfc2136 { ... } }`: at most one backend.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DnsBlock {
    pub cloudflare: Option<CloudflareBlock>,
    pub rfc2136: Option<Rfc2136Block>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct CloudflareBlock {
    pub api_token: Attr<String>,
    pub zone_id: Attr<String>,
    pub tunnel_id: Attr<String>,
    pub proxied: Attr<bool>,
    pub api_url: Attr<String>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Rfc2136Block {
    pub server: Attr<String>,
    pub zone: Attr<String>,
    pub key_name: Attr<String>,
    pub key_algorithm: Attr<String>,
    pub key_secret: Attr<String>,
    pub record_type: Attr<String>,
    pub target: Attr<String>,
}

// Secrets never reach logs, not even through `{:?}`.
impl std::fmt::Debug for CloudflareBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareBlock").field("zone_id", &self.zone_id).field("api_token", &"<sensitive>").finish()
    }
}
impl std::fmt::Debug for Rfc2136Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136Block").field("server", &self.server).field("key_secret", &"<sensitive>").finish()
    }
}

/// What resources see: the provider block resolved against environment fallbacks.
#[derive(Clone, Default)]
pub struct Settings {
    pub libvirt_uri: Option<String>,
    pub docker_host: Option<String>,
    pub domain: Option<String>,
    pub strict_capacity: bool,
    /// libvirt storage pool for `lab_vm` overlays and seeds (`LAB_STORAGE_POOL`); None: the dir
    /// pool over each VM's `overlay_dir`.
    pub storage_pool: Option<String>,
    /// The DNS backend of the `dns` block; None: sessions only compute hostnames.
    pub dns: Option<Arc<DnsBackend>>,
    /// Client TLS material for `tcp://` Docker daemons (`DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`).
    pub docker_tls: Option<TlsFiles>,
    /// The named hosts of the `host` blocks; resources without `host` use the fields above.
    pub hosts: BTreeMap<String, HostSettings>,
}

/// A named host as resources see it. Unlike the provider's own fields, nothing falls back to the
/// environment: a host block says where its daemons are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostSettings {
    pub libvirt_uri: Option<String>,
    pub docker_host: Option<String>,
    pub storage_pool: Option<String>,
    /// Client TLS material for a `tcp://` daemon (`docker_cert_path`); None: the provider's own
    /// (`Settings::docker_tls`), as a host without its own files used before the block had them.
    pub docker_tls: Option<TlsFiles>,
}

/// Which host a resource runs on: `None` is the provider's own `libvirt_uri`/`docker_host`.
pub type HostName = Option<String>;

impl Settings {
    /// The provider block with its environment fallbacks (`env` reads one variable).
    pub fn resolve(config: LabConfig, env: impl Fn(&str) -> Option<String>) -> Result<Self, Diagnostics> {
        let env = |var: &str| env(var).filter(|v| !v.is_empty());
        let or_env = |attr: Attr<String>, var: &str| attr.known().cloned().or_else(|| env(var));
        let dns = match &config.dns {
            Some(block) => Some(Arc::new(dns_backend(block).map_err(|e| {
                Diagnostic::attr_error(AttrPath::root("dns"), "Invalid DNS configuration", e.to_string())
            })?)),
            None => None,
        };
        // A value from the environment was not seen by the provider's plan-time validation.
        let checked = |attr: Attr<String>, name: &str, var: &str, valid: fn(&str) -> Result<(), String>| {
            let (value, from_env) = match attr.known() {
                Some(value) => (Some(value.clone()), false),
                None => (env(var), true),
            };
            match value.as_deref().map(valid) {
                Some(Err(why)) if from_env => Err(Diagnostics::from(Diagnostic::error(format!("Invalid {var}"), why))),
                Some(Err(why)) => Err(validate::invalid(AttrPath::root(name), why).into()),
                _ => Ok(value),
            }
        };
        let mut hosts = BTreeMap::new();
        for (name, block) in config.host.unwrap_or_default() {
            let path = AttrPath::root("host").key(&name);
            let known = |attr: &Attr<String>, attribute: &str, valid: fn(&str) -> Result<(), String>| {
                let value = attr.known().cloned();
                match value.as_deref().map(valid) {
                    Some(Err(why)) => Err(Diagnostics::from(validate::invalid(path.clone().attr(attribute), why))),
                    _ => Ok(value),
                }
            };
            let host = HostSettings {
                libvirt_uri: known(&block.libvirt_uri, "libvirt_uri", validate::libvirt_uri)?,
                docker_host: block.docker_host.known().cloned(),
                storage_pool: known(&block.storage_pool, "storage_pool", validate::pool_name)?,
                docker_tls: known(&block.docker_cert_path, "docker_cert_path", validate::absolute_path)?
                    .map(|dir| TlsFiles::in_dir(std::path::Path::new(&dir))),
            };
            hosts.insert(name, host);
        }
        Ok(Settings {
            hosts,
            libvirt_uri: checked(config.libvirt_uri, "libvirt_uri", "LAB_LIBVIRT_URI", validate::libvirt_uri)?,
            docker_host: or_env(config.docker_host, "DOCKER_HOST"),
            domain: checked(config.domain, "domain", "LAB_DOMAIN", validate::domain)?,
            strict_capacity: config.strict_capacity.known().copied().unwrap_or(false),
            storage_pool: checked(config.storage_pool, "storage_pool", "LAB_STORAGE_POOL", validate::pool_name)?,
            dns,
            docker_tls: docker_tls(env),
        })
    }

    pub fn require_libvirt_uri(&self, resource: &str) -> Result<&str, Diagnostics> {
        require(&self.libvirt_uri, resource, "libvirt_uri", "LAB_LIBVIRT_URI", "qemu:///system")
    }
    pub fn require_docker_host(&self, resource: &str) -> Result<&str, Diagnostics> {
        require(&self.docker_host, resource, "docker_host", "DOCKER_HOST", "unix:///var/run/docker.sock")
    }
    pub fn require_domain(&self, resource: &str) -> Result<&str, Diagnostics> {
        require(&self.domain, resource, "domain", "LAB_DOMAIN", "lab.example.edu")
    }

    /// The libvirt URI of `host` (a `host` block's, or the provider's own when None).
    pub fn require_libvirt_uri_on(&self, host: Option<&str>, resource: &str) -> Result<&str, Diagnostics> {
        match host {
            None => self.require_libvirt_uri(resource),
            Some(name) => require_on(&self.named_host(name)?.libvirt_uri, name, resource, "libvirt_uri"),
        }
    }

    /// The Docker host of `host` (a `host` block's, or the provider's own when None).
    pub fn require_docker_host_on(&self, host: Option<&str>, resource: &str) -> Result<&str, Diagnostics> {
        match host {
            None => self.require_docker_host(resource),
            Some(name) => require_on(&self.named_host(name)?.docker_host, name, resource, "docker_host"),
        }
    }

    /// The `host` block called `name`; the error names the hosts there are. Resources call it at
    /// plan time through `check_host`, so it is also what a create meets if the block went away.
    pub fn named_host(&self, name: &str) -> Result<&HostSettings, Diagnostics> {
        self.hosts.get(name).ok_or_else(|| Diagnostics::from(unknown_host(&self.hosts, name)))
    }

    /// The plan-time check of a resource's `host` argument, on its attribute.
    pub fn check_host(&self, host: &Attr<String>) -> Result<(), Diagnostics> {
        match host.known() {
            Some(name) if !self.hosts.contains_key(name) => {
                let mut diag = unknown_host(&self.hosts, name);
                diag.attribute = Some(AttrPath::root("host"));
                Err(diag.into())
            }
            _ => Ok(()),
        }
    }
}

fn unknown_host(hosts: &BTreeMap<String, HostSettings>, name: &str) -> Diagnostic {
    let known = if hosts.is_empty() {
        "The provider block has no `host` blocks: add `host \"<name>\" { libvirt_uri = ..., docker_host = ... }`, \
         or remove `host` to use the provider's own libvirt_uri and docker_host."
            .to_string()
    } else {
        let names: Vec<String> = hosts.keys().map(|k| format!("`{k}`")).collect();
        format!("The provider block's hosts are {}.", names.join(", "))
    };
    Diagnostic::error("Unknown host", format!("No `host \"{name}\"` block in `provider \"lab\"`. {known}"))
}

fn require_on<'a>(
    value: &'a Option<String>,
    host: &str,
    resource: &str,
    attribute: &str,
) -> Result<&'a str, Diagnostics> {
    value.as_deref().ok_or_else(|| {
        Diagnostic::error(
            format!("{resource} needs `{attribute}` in host \"{host}\""),
            format!("Set `{attribute}` in the provider's `host \"{host}\" {{ ... }}` block."),
        )
        .into()
    })
}

/// As the Docker CLI does: TLS when `DOCKER_TLS_VERIFY` or `DOCKER_CERT_PATH` is set, with
/// `ca.pem`, `cert.pem`, `key.pem` from `DOCKER_CERT_PATH` or `~/.docker`.
fn docker_tls(env: impl Fn(&str) -> Option<String>) -> Option<TlsFiles> {
    (env("DOCKER_TLS_VERIFY").is_some() || env("DOCKER_CERT_PATH").is_some()).then(|| {
        let dir = env("DOCKER_CERT_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env("HOME").unwrap_or_default()).join(".docker"));
        TlsFiles::in_dir(&dir)
    })
}

fn require<'a>(
    value: &'a Option<String>,
    resource: &str,
    attribute: &str,
    env: &str,
    example: &str,
) -> Result<&'a str, Diagnostics> {
    value.as_deref().ok_or_else(|| {
        Diagnostic::error(
            format!("{resource} needs `{attribute}` in the provider block"),
            format!(
                "Set `{attribute} = \"{example}\"` in `provider \"lab\" {{ ... }}` or the {env} environment variable."
            ),
        )
        .into()
    })
}

/// Shared by the provider and every resource: the settings, filled once by ConfigureProvider, and
/// the backend clients made from them, one of each per provider process (the one client cache).
/// Each client survives its daemon restarting: `Libvirt` notices a dead connection and connects a
/// new helper; bollard's client opens connections as requests need them (a restarted dockerd costs
/// nothing but the requests refused while it is down); the DNS backends (`Settings::dns`) connect
/// per update (RFC 2136) or through reqwest's pool, which drops dead connections (Cloudflare).
#[derive(Clone, Default)]
pub struct ProviderHandle {
    settings: Arc<OnceLock<Settings>>,
    /// One `Clients` per host (None: the provider's own), made with the settings at configure.
    clients: Arc<OnceLock<BTreeMap<HostName, Clients>>>,
}

#[derive(Default)]
struct Clients {
    libvirt: tokio::sync::OnceCell<Libvirt>,
    docker: OnceLock<DockerClient>,
}

impl ProviderHandle {
    pub fn settings(&self) -> Result<&Settings, Diagnostics> {
        self.settings.get().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "The lab provider was used before Terraform configured it; this is a bug in the provider.",
            )
            .into()
        })
    }

    /// ConfigureProvider: Terraform configures a provider instance once; a second call keeps the
    /// first settings.
    pub fn configure(&self, settings: Settings) {
        let hosts = std::iter::once(None).chain(settings.hosts.keys().cloned().map(Some));
        let _ = self.clients.set(hosts.map(|host| (host, Clients::default())).collect());
        let _ = self.settings.set(settings);
    }

    fn clients_of(&self, host: Option<&str>) -> Result<&Clients, Diagnostics> {
        let settings = self.settings()?;
        if let Some(name) = host {
            settings.named_host(name)?;
        }
        self.clients.get().and_then(|c| c.get(&host.map(str::to_string))).ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "No clients were made for this host; this is a bug in the provider.",
            )
            .into()
        })
    }

    /// For tests and for resources used without a provider block.
    pub fn with_settings(settings: Settings) -> Self {
        let handle = Self::default();
        handle.configure(settings);
        handle
    }

    /// The connection to `libvirt_uri`, made on the first call that needs it (a failed attempt is
    /// tried again at the next); `resource` names who needs it when no URI is configured.
    pub async fn libvirt(&self, resource: &str) -> Result<Libvirt, Diagnostics> {
        self.libvirt_on(None, resource).await
    }

    /// The connection to `host`'s libvirt (None: the provider's own `libvirt_uri`), one per host.
    pub async fn libvirt_on(&self, host: Option<&str>, resource: &str) -> Result<Libvirt, Diagnostics> {
        let uri = self.settings()?.require_libvirt_uri_on(host, resource)?;
        let libvirt = self.clients_of(host)?.libvirt.get_or_try_init(|| Libvirt::connect(uri)).await;
        libvirt.cloned().or_diag("Cannot reach libvirt")
    }

    /// The client of `docker_host`, made on first use; `resource` names who needs it when no host
    /// is configured. `tcp://` daemons use TLS when the settings found the Docker CLI's files.
    pub fn docker(&self, resource: &str) -> Result<&DockerClient, Diagnostics> {
        self.docker_on(None, resource)
    }

    /// The client of `host`'s Docker daemon (None: the provider's own `docker_host`), one per host.
    pub fn docker_on(&self, host: Option<&str>, resource: &str) -> Result<&DockerClient, Diagnostics> {
        let clients = self.clients_of(host)?;
        if let Some(client) = clients.docker.get() {
            return Ok(client);
        }
        let settings = self.settings()?;
        let docker_host = settings.require_docker_host_on(host, resource)?;
        let tls = match host {
            Some(name) => settings.named_host(name)?.docker_tls.clone().or_else(|| settings.docker_tls.clone()),
            None => settings.docker_tls.clone(),
        };
        let client = DockerHost::parse(docker_host, tls)
            .and_then(|host| DockerClient::connect(&host))
            .or_diag("Cannot use the Docker host")?;
        Ok(clients.docker.get_or_init(|| client))
    }
}

/// Builds the backend of a `dns` block (values are known at ConfigureProvider).
fn dns_backend(block: &DnsBlock) -> Result<DnsBackend, DnsError> {
    let text = |a: &Attr<String>| a.known().cloned().unwrap_or_default();
    if let Some(cf) = &block.cloudflare {
        let config = CloudflareConfig {
            api_token: text(&cf.api_token),
            zone_id: text(&cf.zone_id),
            tunnel_id: text(&cf.tunnel_id),
            proxied: cf.proxied.known().copied().unwrap_or(true),
            api_url: cf.api_url.known().cloned().unwrap_or_else(|| DEFAULT_API_URL.to_string()),
        };
        return Ok(DnsBackend::Cloudflare(CloudflareDns::new(config)?));
    }
    if let Some(rfc) = &block.rfc2136 {
        let config = Rfc2136Config {
            server: text(&rfc.server),
            zone: text(&rfc.zone),
            key_name: text(&rfc.key_name),
            key_algorithm: rfc.key_algorithm.known().map_or(Ok(Default::default()), |a| a.parse())?,
            key_secret: text(&rfc.key_secret),
            record_type: rfc.record_type.known().map_or(Ok(Default::default()), |t| t.parse())?,
            target: text(&rfc.target),
        };
        return Ok(DnsBackend::Rfc2136(Rfc2136Dns::new(config)?));
    }
    Err(DnsError::InvalidConfig("the dns block needs `cloudflare` or `rfc2136`".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_wins_over_environment() {
        let env = |var: &str| (var == "LAB_DOMAIN" || var == "DOCKER_HOST").then(|| format!("env-{var}"));
        let config = LabConfig { domain: Attr::Known("from.config".into()), ..Default::default() };
        let s = Settings::resolve(config, env).unwrap();
        assert_eq!(s.domain.as_deref(), Some("from.config"));
        assert_eq!(s.docker_host.as_deref(), Some("env-DOCKER_HOST"));
        assert_eq!(s.libvirt_uri, None);
        let err = s.require_libvirt_uri("lab_vm").unwrap_err();
        assert!(err.0[0].summary.contains("lab_vm needs `libvirt_uri`"), "{err:?}");
    }

    #[test]
    fn named_hosts_resolve_without_environment_fallbacks() {
        let env = |var: &str| (var == "DOCKER_HOST").then(|| "unix:///env.sock".to_string());
        let host = HostBlock {
            libvirt_uri: Attr::Known("qemu+ssh://root@10.77.1.2/system".into()),
            docker_host: Attr::Known("ssh://root@10.77.1.2".into()),
            docker_cert_path: Attr::Null,
            storage_pool: Attr::Null,
        };
        let config = LabConfig { host: Some(BTreeMap::from([("h1".to_string(), host)])), ..Default::default() };
        let s = Settings::resolve(config, env).unwrap();
        assert_eq!(s.require_docker_host_on(None, "lab_terminal").unwrap(), "unix:///env.sock");
        assert_eq!(s.require_docker_host_on(Some("h1"), "lab_terminal").unwrap(), "ssh://root@10.77.1.2");
        assert_eq!(s.require_libvirt_uri_on(Some("h1"), "lab_vm").unwrap(), "qemu+ssh://root@10.77.1.2/system");
        assert!(s.check_host(&Attr::Known("h1".into())).is_ok() && s.check_host(&Attr::Null).is_ok());
        let err = s.check_host(&Attr::Known("h3".into())).unwrap_err();
        assert_eq!(err.0[0].summary, "Unknown host");
        assert_eq!(err.0[0].attribute, Some(AttrPath::root("host")));
        assert!(err.0[0].detail.contains("No `host \"h3\"` block") && err.0[0].detail.contains("`h1`"), "{err:?}");
        let none = Settings::resolve(LabConfig::default(), env).unwrap();
        let err = none.check_host(&Attr::Known("h1".into())).unwrap_err();
        assert!(err.0[0].detail.contains("has no `host` blocks"), "{err:?}");
    }

    #[test]
    fn a_bad_host_uri_is_named_by_its_block() {
        let host = HostBlock { libvirt_uri: Attr::Known("qemu:///system'; id".into()), ..Default::default() };
        let config = LabConfig { host: Some(BTreeMap::from([("h1".to_string(), host)])), ..Default::default() };
        let err = Settings::resolve(config, |_| None).err().unwrap();
        assert_eq!(err.0[0].attribute.as_ref().map(|p| p.to_string()).as_deref(), Some("host[\"h1\"].libvirt_uri"));
    }

    #[test]
    fn a_host_blocks_docker_tls_files_are_its_own_else_the_providers() {
        let env = |var: &str| (var == "DOCKER_CERT_PATH").then(|| "/env-certs".to_string());
        let block = |certs: Option<&str>| HostBlock {
            docker_host: Attr::Known("tcp://10.77.2.2:2376".into()),
            docker_cert_path: certs.map(str::to_string).into(),
            ..Default::default()
        };
        let hosts = BTreeMap::from([("h1".to_string(), block(Some("/certs/h1"))), ("h2".to_string(), block(None))]);
        let s = Settings::resolve(LabConfig { host: Some(hosts), ..Default::default() }, env).unwrap();
        assert_eq!(s.hosts["h1"].docker_tls, Some(TlsFiles::in_dir(std::path::Path::new("/certs/h1"))));
        assert_eq!(s.hosts["h2"].docker_tls, None, "no environment fallback in the block itself");
        assert_eq!(s.docker_tls, Some(TlsFiles::in_dir(std::path::Path::new("/env-certs"))));

        // What each host's client is made with: its own files, else the provider's.
        let handle = ProviderHandle::with_settings(s);
        let text = |host| match handle.docker_on(Some(host), "lab_terminal") {
            Ok(_) => panic!("connected with TLS files that do not exist"),
            Err(diags) => format!("{diags:?}"),
        };
        assert!(text("h1").contains("/certs/h1/ca.pem"), "{}", text("h1"));
        assert!(text("h2").contains("/env-certs/ca.pem"), "{}", text("h2"));

        let relative = BTreeMap::from([("h1".to_string(), block(Some("certs")))]);
        let err = Settings::resolve(LabConfig { host: Some(relative), ..Default::default() }, env).err().unwrap();
        let path = err.0[0].attribute.as_ref().map(|p| p.to_string());
        assert_eq!(path.as_deref(), Some("host[\"h1\"].docker_cert_path"), "{err:?}");
    }

    #[test]
    fn environment_values_are_validated_too() {
        let env = |var: &str| (var == "LAB_LIBVIRT_URI").then(|| "qemu:///system'; id; '".to_string());
        let err = Settings::resolve(LabConfig::default(), env).err().unwrap();
        assert_eq!(err.0[0].summary, "Invalid LAB_LIBVIRT_URI");
        let config = LabConfig { libvirt_uri: Attr::Known("qemu:///system".into()), ..Default::default() };
        assert_eq!(Settings::resolve(config, env).unwrap().libvirt_uri.as_deref(), Some("qemu:///system"));
    }

    #[test]
    fn docker_tls_follows_the_docker_cli() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |var: &str| vars.iter().find(|(k, _)| *k == var).map(|(_, v)| v.to_string())
        };
        let resolve = |e| Settings::resolve(LabConfig::default(), e).unwrap().docker_tls;
        assert_eq!(resolve(env(&[("HOME", "/home/me")])), None);
        assert_eq!(
            resolve(env(&[("DOCKER_TLS_VERIFY", "1"), ("HOME", "/home/me")])),
            Some(TlsFiles::in_dir(std::path::Path::new("/home/me/.docker")))
        );
        assert_eq!(
            resolve(env(&[("DOCKER_CERT_PATH", "/certs"), ("DOCKER_TLS_VERIFY", "")])),
            Some(TlsFiles::in_dir(std::path::Path::new("/certs")))
        );
    }
}
