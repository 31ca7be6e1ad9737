//! The Docker client the Docker-backed resources (`lab_terminal`, `lab_gateway`) share: made from
//! the provider's `docker_host` on first use and cached.

use std::sync::OnceLock;

use crate::backends::docker::{DockerClient, DockerError, DockerHost, TlsFiles};
use crate::protocol::{Diagnostic, Diagnostics};
use crate::provider::ProviderHandle;

pub struct DockerConnection {
    provider: ProviderHandle,
    client: OnceLock<DockerClient>,
}

impl DockerConnection {
    pub fn new(provider: ProviderHandle) -> Self {
        DockerConnection { provider, client: OnceLock::new() }
    }

    /// The client for the provider's `docker_host`; `resource` names who needs it in the
    /// diagnostic when no host is configured.
    pub fn get(&self, resource: &str) -> Result<&DockerClient, Diagnostics> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let settings = self.provider.settings()?;
        let host = settings.require_docker_host(resource)?;
        let client = connect(host).map_err(|e| Diagnostic::from_error("Cannot use the Docker host", &e))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The provider's `docker_host` as configured (for defaults derived from it).
    pub fn host(&self) -> Result<Option<String>, Diagnostics> {
        Ok(self.provider.settings()?.docker_host.clone())
    }
}

/// `tcp://` daemons use TLS when `DOCKER_TLS_VERIFY` or `DOCKER_CERT_PATH` is set, with the
/// Docker CLI's files (`ca.pem`, `cert.pem`, `key.pem`) from `DOCKER_CERT_PATH` or `~/.docker`.
fn connect(host: &str) -> Result<DockerClient, DockerError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let tls = (env("DOCKER_TLS_VERIFY").is_some() || env("DOCKER_CERT_PATH").is_some()).then(|| {
        let dir = env("DOCKER_CERT_PATH")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env("HOME").unwrap_or_default()).join(".docker"));
        TlsFiles::in_dir(&dir)
    });
    DockerClient::connect(&DockerHost::parse(host, tls)?)
}
