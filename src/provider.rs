//! The provider itself (`provider "lab" { ... }`): its schema, plan-time validation, configure,
//! and the list of resources. What the block resolves to is `crate::settings`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::protocol::resource::{ErasedDataSource, ErasedResource, erase_data_source, erase_resource};
use crate::protocol::{AttrPath, Attribute, Block, Diagnostic, Diagnostics, NestedBlock, Nesting, Provider, Schema};
use crate::resources::console::ConsoleResource;
use crate::resources::gateway::GatewayResource;
use crate::resources::image::ImageResource;
use crate::resources::network::NetworkResource;
use crate::resources::session::SessionResource;
use crate::resources::sessions::SessionsDataSource;
use crate::resources::terminal::TerminalResource;
use crate::resources::vm::VmResource;
use crate::settings::{DnsBlock, LabConfig, ProviderHandle, Settings};
use crate::validate;

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
        if let Some(uri) = config.libvirt_uri.known() {
            validate::check(&mut diags, AttrPath::root("libvirt_uri"), validate::libvirt_uri(uri));
        }
        if let Some(pool) = config.storage_pool.known() {
            validate::check(&mut diags, AttrPath::root("storage_pool"), validate::pool_name(pool));
        }
        if let Some(domain) = config.domain.known() {
            validate::check(&mut diags, AttrPath::root("domain"), validate::domain(domain));
        }
        if let Some(dns) = &config.dns {
            diags.extend(validate_dns(dns));
        }
        for (name, host) in config.host.iter().flatten() {
            let path = AttrPath::root("host").key(name);
            validate::check(&mut diags, path.clone(), validate::name(name).map_err(|why| format!("host name {why}")));
            if let Some(uri) = host.libvirt_uri.known() {
                validate::check(&mut diags, path.clone().attr("libvirt_uri"), validate::libvirt_uri(uri));
            }
            if let Some(pool) = host.storage_pool.known() {
                validate::check(&mut diags, path.clone().attr("storage_pool"), validate::pool_name(pool));
            }
            if let Some(dir) = host.docker_cert_path.known() {
                validate::check(&mut diags, path.clone().attr("docker_cert_path"), validate::absolute_path(dir));
                if let Some(docker) = host.docker_host.known()
                    && !(docker.starts_with("tcp://") || docker.starts_with("https://"))
                {
                    let why = format!("TLS files are for a `tcp://` docker_host; `{docker}` does not use them");
                    validate::check(&mut diags, path.clone().attr("docker_cert_path"), Err::<(), _>(why));
                }
            }
        }
        diags
    }

    async fn configure(&self, config: LabConfig) -> Result<(), Diagnostics> {
        let settings = Settings::resolve(config, |var| std::env::var(var).ok())?;
        self.handle.configure(settings);
        Ok(())
    }

    fn resources(&self) -> Vec<Arc<dyn ErasedResource>> {
        vec![
            erase_resource(SessionResource::new(self.handle.clone())),
            erase_resource(VmResource::new(self.handle.clone())),
            erase_resource(NetworkResource::new(self.handle.clone())),
            erase_resource(TerminalResource::new(self.handle.clone())),
            erase_resource(GatewayResource::new(self.handle.clone())),
            erase_resource(ConsoleResource::new(self.handle.clone())),
            erase_resource(ImageResource::new(self.handle.clone())),
        ]
    }

    fn data_sources(&self) -> Vec<Arc<dyn ErasedDataSource>> {
        vec![erase_data_source(SessionsDataSource::new(self.handle.clone()))]
    }
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
            Attribute::string("storage_pool").optional().description(
                "libvirt storage pool (on the libvirt host) that holds `lab_vm` overlays and seeds as volumes. \
                 Defaults to `$LAB_STORAGE_POOL`; when neither is set, each VM uses the dir pool over its \
                 `overlay_dir` (made as a transient pool when the host has none).",
            ),
        ],
        blocks: vec![
            single_block(
                "dns",
                Block {
                    description: "Where session DNS records are made: at most one of `cloudflare` or `rfc2136`. \
                                  Without this block, sessions only compute hostnames (wildcard DNS)."
                        .into(),
                    blocks: vec![
                        single_block("cloudflare", cloudflare_block()),
                        single_block("rfc2136", rfc2136_block()),
                    ],
                    ..Default::default()
                },
            ),
            NestedBlock {
                type_name: "host".into(),
                block: host_block(),
                nesting: Nesting::Map,
                min_items: 0,
                max_items: 0,
            },
        ],
        ..Default::default()
    }
}

/// An optional block that appears at most once (Terraform wants min == max == 0 for those).
fn single_block(name: &str, block: Block) -> NestedBlock {
    NestedBlock { type_name: name.into(), block, nesting: Nesting::Single, min_items: 0, max_items: 0 }
}

fn host_block() -> Block {
    Block {
        description: "A host a class is spread over: `host \"<name>\" { ... }`, named by the `host` argument of \
                      `lab_vm`, `lab_image`, `lab_terminal` and `lab_gateway` (resources without `host` use the \
                      provider's own `libvirt_uri` and `docker_host`). Names: `[a-z0-9-]`, 1-63 characters."
            .into(),
        attributes: vec![
            Attribute::string("libvirt_uri").optional().description(
                "libvirt connection URI of the host, e.g. `qemu+ssh://root@hv1.example.edu/system?keyfile=...` \
                 (libvirt's ssh transport: the ssh client, `~/.ssh/config` and `known_hosts`).",
            ),
            Attribute::string("docker_host").optional().description(
                "Docker daemon of the host: `ssh://root@hv1.example.edu` (the ssh client runs `docker system \
                 dial-stdio` there), `tcp://hv1.example.edu:2376` with TLS (`docker_cert_path`), or `unix://`.",
            ),
            Attribute::string("docker_cert_path").optional().description(
                "Directory of the TLS files for a `tcp://` `docker_host`, laid out as `DOCKER_CERT_PATH`: `ca.pem` \
                 (the CA the daemon's certificate is checked against), `cert.pem` and `key.pem` (this client's). \
                 Unset: the provider's own Docker TLS files (`$DOCKER_CERT_PATH`, or `~/.docker` with \
                 `$DOCKER_TLS_VERIFY`), if any.",
            ),
            Attribute::string("storage_pool").optional().description(
                "libvirt storage pool on the host for `lab_vm` overlays and seeds, and for `lab_image`s that \
                     name no `pool`.",
            ),
        ],
        ..Default::default()
    }
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
        let rfc_path = path.attr("rfc2136");
        if let Some(alg) = rfc.key_algorithm.known() {
            let known = matches!(alg.as_str(), "hmac-sha256" | "hmac-sha512");
            let result = if known { Ok(()) } else { Err(format!("`{alg}`: use `hmac-sha256` or `hmac-sha512`.")) };
            validate::check(&mut diags, rfc_path.clone().attr("key_algorithm"), result);
        }
        if let Some(rt) = rfc.record_type.known() {
            let known = matches!(rt.as_str(), "CNAME" | "A");
            let result = if known { Ok(()) } else { Err(format!("`{rt}`: use `CNAME` or `A`.")) };
            validate::check(&mut diags, rfc_path.clone().attr("record_type"), result);
        }
        if let Some(server) = rfc.server.known() {
            validate::check(&mut diags, rfc_path.attr("server"), validate::host_port(server));
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Attr;
    use crate::settings::Rfc2136Block;

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

    #[tokio::test]
    async fn libvirt_uri_is_validated_at_plan_time() {
        let config = LabConfig { libvirt_uri: Attr::Known("qemu:///system' ; id ; '".into()), ..Default::default() };
        let diags = LabProvider::new().validate(&config).await;
        assert_eq!(diags.0.len(), 1, "{diags:?}");
        assert_eq!(diags.0[0].summary, "Invalid libvirt_uri");
        let config = LabConfig { libvirt_uri: Attr::Known("qemu+ssh://root@host/system".into()), ..Default::default() };
        assert!(LabProvider::new().validate(&config).await.is_empty());
    }

    #[tokio::test]
    async fn a_hosts_docker_cert_path_is_absolute_and_for_tcp_only() {
        use crate::settings::HostBlock;
        let host = |docker: &str, certs: &str| HostBlock {
            docker_host: Attr::Known(docker.into()),
            docker_cert_path: Attr::Known(certs.into()),
            ..Default::default()
        };
        let config = |h: HostBlock| LabConfig {
            host: Some(std::collections::BTreeMap::from([("h1".to_string(), h)])),
            ..Default::default()
        };
        let ok = config(host("tcp://10.77.2.2:2376", "/etc/lab/h1-docker"));
        assert!(LabProvider::new().validate(&ok).await.is_empty());
        for bad in [host("tcp://10.77.2.2:2376", "certs"), host("ssh://root@10.77.2.2", "/etc/lab/h1-docker")] {
            let diags = LabProvider::new().validate(&config(bad)).await;
            assert_eq!(diags.0.len(), 1, "{diags:?}");
            let path = diags.0[0].attribute.as_ref().map(|p| p.to_string());
            assert_eq!(path.as_deref(), Some("host[\"h1\"].docker_cert_path"), "{diags:?}");
        }
    }
}
