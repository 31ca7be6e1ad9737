//! Provider configuration (`provider "lab" { ... }`): schema, plan-time validation, and the
//! resolved `Settings` every resource reads through a `ProviderHandle`.
//!
//! Every attribute is optional: an unset one disables what needs it, and a resource that needs it
//! says so with a clear error (`Settings::require_*`). Each also falls back to an environment
//! variable, so acceptance tests and CI need no provider block.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::backends::dns::cloudflare::{CloudflareConfig, CloudflareDns, DEFAULT_API_URL};
use crate::backends::dns::rfc2136::{Rfc2136Config, Rfc2136Dns};
use crate::backends::dns::{DnsBackend, DnsError};
use crate::protocol::resource::{ErasedDataSource, ErasedResource, erase_data_source, erase_resource};
use crate::protocol::{
    Attr, AttrPath, Attribute, Block, Diagnostic, Diagnostics, NestedBlock, Nesting, Provider, Schema,
};
use crate::resources::gateway::GatewayResource;
use crate::resources::session::{SessionResource, SessionsDataSource};
use crate::resources::terminal::TerminalResource;
use crate::resources::vm::VmResource;

/// The `provider "lab"` block as Terraform sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabConfig {
    pub libvirt_uri: Attr<String>,
    pub docker_host: Attr<String>,
    pub domain: Attr<String>,
    pub strict_capacity: Attr<bool>,
    pub dns: Option<DnsBlock>,
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
    /// The DNS backend of the `dns` block; None: sessions only compute hostnames.
    pub dns: Option<Arc<DnsBackend>>,
}

impl Settings {
    fn resolve(config: LabConfig, env: impl Fn(&str) -> Option<String>) -> Result<Self, Diagnostics> {
        let or_env =
            |attr: Attr<String>, var: &str| attr.known().cloned().or_else(|| env(var).filter(|v| !v.is_empty()));
        let dns = match &config.dns {
            Some(block) => Some(Arc::new(dns_backend(block).map_err(|e| {
                Diagnostic::attr_error(AttrPath::root("dns"), "Invalid DNS configuration", e.to_string())
            })?)),
            None => None,
        };
        Ok(Settings {
            libvirt_uri: or_env(config.libvirt_uri, "LAB_LIBVIRT_URI"),
            docker_host: or_env(config.docker_host, "DOCKER_HOST"),
            domain: or_env(config.domain, "LAB_DOMAIN"),
            strict_capacity: config.strict_capacity.known().copied().unwrap_or(false),
            dns,
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

/// Shared by the provider and every resource: filled once by ConfigureProvider.
#[derive(Clone, Default)]
pub struct ProviderHandle(Arc<OnceLock<Settings>>);

impl ProviderHandle {
    pub fn settings(&self) -> Result<&Settings, Diagnostics> {
        self.0.get().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "The lab provider was used before Terraform configured it; this is a bug in the provider.",
            )
            .into()
        })
    }

    /// For tests and for resources used without a provider block.
    pub fn with_settings(settings: Settings) -> Self {
        let handle = Self::default();
        let _ = handle.0.set(settings);
        handle
    }
}

#[derive(Default)]
pub struct LabProvider {
    handle: ProviderHandle,
}

impl LabProvider {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Provider for LabProvider {
    type Config = LabConfig;

    fn schema(&self) -> Schema {
        Schema { version: 0, block: provider_block() }
    }

    async fn validate(&self, config: &LabConfig) -> Diagnostics {
        let mut diags = Diagnostics::new();
        if let Some(domain) = config.domain.known()
            && let Err(why) = validate_domain(domain)
        {
            diags.push(Diagnostic::attr_error(AttrPath::root("domain"), "Invalid domain", why));
        }
        if let Some(dns) = &config.dns {
            diags.extend(validate_dns(dns));
        }
        diags
    }

    async fn configure(&self, config: LabConfig) -> Result<(), Diagnostics> {
        let settings = Settings::resolve(config, |var| std::env::var(var).ok())?;
        if let Some(domain) = &settings.domain {
            validate_domain(domain).map_err(|why| Diagnostic::error("Invalid LAB_DOMAIN", why))?;
        }
        // Terraform configures a provider instance once; a second call keeps the first settings.
        let _ = self.handle.0.set(settings);
        Ok(())
    }

    fn resources(&self) -> Vec<Arc<dyn ErasedResource>> {
        vec![
            erase_resource(SessionResource::new(self.handle.clone())),
            erase_resource(VmResource::new(self.handle.clone())),
            erase_resource(TerminalResource::new(self.handle.clone())),
            erase_resource(GatewayResource::new(self.handle.clone())),
        ]
    }

    fn data_sources(&self) -> Vec<Arc<dyn ErasedDataSource>> {
        vec![erase_data_source(SessionsDataSource::new(self.handle.clone()))]
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

fn provider_block() -> Block {
    Block {
        description: "The lab provider: classroom VMs (libvirt), browser terminals (Docker + ttyd) and \
                      per-student sessions with tunnel DNS records."
            .into(),
        attributes: vec![
            Attribute::string("libvirt_uri").optional().description(
                "libvirt connection URI for `lab_vm`, e.g. `qemu:///system`. Defaults to `$LAB_LIBVIRT_URI`.",
            ),
            Attribute::string("docker_host").optional().description(
                "Docker daemon for `lab_terminal`: `unix://`, `tcp://` (TLS from `$DOCKER_CERT_PATH`) or `ssh://`. \
                 Defaults to `$DOCKER_HOST`.",
            ),
            Attribute::string("domain").optional().description(
                "DNS domain under which sessions get their hostnames (`lab-<id>.<domain>`). Defaults to `$LAB_DOMAIN`.",
            ),
            Attribute::bool("strict_capacity").optional().description(
                "When true, planning more VM memory than the host has free is an error instead of a warning.",
            ),
        ],
        blocks: vec![single_block(
            "dns",
            Block {
                description: "Where session DNS records are made: at most one of `cloudflare` or `rfc2136`. \
                              Without this block, sessions only compute hostnames (wildcard DNS)."
                    .into(),
                blocks: vec![single_block("cloudflare", cloudflare_block()), single_block("rfc2136", rfc2136_block())],
                ..Default::default()
            },
        )],
        ..Default::default()
    }
}

/// An optional block that appears at most once (Terraform wants min == max == 0 for those).
fn single_block(name: &str, block: Block) -> NestedBlock {
    NestedBlock { type_name: name.into(), block, nesting: Nesting::Single, min_items: 0, max_items: 0 }
}

fn cloudflare_block() -> Block {
    Block {
        description: "A proxied CNAME `<hostname>` -> `<tunnel_id>.cfargotunnel.com` per session.".into(),
        attributes: vec![
            Attribute::string("api_token")
                .required()
                .sensitive()
                .description("Cloudflare API token with `Zone.DNS:Edit` on the zone."),
            Attribute::string("zone_id").required().description("Zone id of `domain`."),
            Attribute::string("tunnel_id").required().description("Cloudflare Tunnel UUID the records point at."),
            Attribute::bool("proxied").optional().description("Proxy the records through Cloudflare (default true)."),
            Attribute::string("api_url")
                .optional()
                .description("API base URL (default `https://api.cloudflare.com/client/v4`)."),
        ],
        ..Default::default()
    }
}

fn rfc2136_block() -> Block {
    Block {
        description: "TSIG-signed dynamic updates (RFC 2136) to a self-hosted DNS server.".into(),
        attributes: vec![
            Attribute::string("server")
                .required()
                .description("Primary server as `host:port`, e.g. `ns1.example.edu:53`."),
            Attribute::string("zone").required().description("Zone to update, e.g. `lab.example.edu`."),
            Attribute::string("key_name").required().description("TSIG key name."),
            Attribute::string("key_algorithm")
                .optional()
                .description("TSIG algorithm: `hmac-sha256` (default) or `hmac-sha512`."),
            Attribute::string("key_secret").required().sensitive().description("TSIG secret, base64."),
            Attribute::string("record_type").optional().description("`CNAME` (default) or `A`."),
            Attribute::string("target").required().description("CNAME target host, or IPv4 address for `A` records."),
        ],
        ..Default::default()
    }
}

/// A lowercase DNS name: labels of `[a-z0-9-]`, 1-63 chars, not starting or ending with `-`.
pub fn validate_domain(domain: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{domain}` is not a valid DNS domain: {why}"));
    if domain.is_empty() || domain.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    for label in domain.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each label must be 1 to 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return bad("only lowercase letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with '-'");
        }
    }
    Ok(())
}

fn validate_dns(dns: &DnsBlock) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let path = AttrPath::root("dns");
    match (&dns.cloudflare, &dns.rfc2136) {
        (Some(_), Some(_)) => diags.push(Diagnostic::attr_error(
            path.clone(),
            "Only one DNS backend",
            "Set either `cloudflare` or `rfc2136` inside `dns`, not both.",
        )),
        (None, None) => diags.push(Diagnostic::attr_error(
            path.clone(),
            "Empty dns block",
            "Set `cloudflare { ... }` or `rfc2136 { ... }` inside `dns`, or remove the block.",
        )),
        _ => {}
    }
    if let Some(rfc) = &dns.rfc2136 {
        let rfc_path = path.clone().attr("rfc2136");
        if let Some(alg) = rfc.key_algorithm.known()
            && !matches!(alg.as_str(), "hmac-sha256" | "hmac-sha512")
        {
            diags.push(Diagnostic::attr_error(
                rfc_path.clone().attr("key_algorithm"),
                "Unsupported TSIG algorithm",
                format!("`{alg}`: use `hmac-sha256` or `hmac-sha512`."),
            ));
        }
        if let Some(rt) = rfc.record_type.known()
            && !matches!(rt.as_str(), "CNAME" | "A")
        {
            diags.push(Diagnostic::attr_error(
                rfc_path.clone().attr("record_type"),
                "Unsupported record type",
                format!("`{rt}`: use `CNAME` or `A`."),
            ));
        }
        if let Some(server) = rfc.server.known()
            && server.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            diags.push(Diagnostic::attr_error(
                rfc_path.attr("server"),
                "Invalid DNS server address",
                format!("`{server}` must be `host:port`, e.g. `ns1.example.edu:53`."),
            ));
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_validation() {
        assert!(validate_domain("lab.example.edu").is_ok());
        assert!(validate_domain("lab.localhost").is_ok());
        for bad in ["", "Lab.example", "a..b", "-a.b", "a_b.c", "a.b-"] {
            assert!(validate_domain(bad).is_err(), "{bad:?} accepted");
        }
    }

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

    #[tokio::test]
    async fn dns_block_validation_names_the_attribute() {
        let config = LabConfig {
            dns: Some(DnsBlock {
                cloudflare: None,
                rfc2136: Some(Rfc2136Block {
                    server: Attr::Known("ns1".into()),
                    key_algorithm: Attr::Known("md5".into()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let diags = LabProvider::new().validate(&config).await;
        let paths: Vec<String> = diags.0.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect();
        assert_eq!(paths, vec!["dns.rfc2136.key_algorithm", "dns.rfc2136.server"]);
    }
}
