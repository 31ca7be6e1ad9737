//! The Docker client the Docker-backed resources (`lab_terminal`, `lab_gateway`) share: made from
//! the provider's `docker_host` on first use and cached.

use std::sync::OnceLock;

use crate::backends::docker::{DockerClient, DockerError, DockerHost, TlsFiles};
use crate::protocol::{Diagnostic, Diagnostics};
use crate::settings::ProviderHandle;

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
        let client = connect(host, settings.docker_tls.clone())
            .map_err(|e| Diagnostic::from_error("Cannot use the Docker host", &e))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The provider's `docker_host` as configured (for defaults derived from it).
    pub fn host(&self) -> Result<Option<String>, Diagnostics> {
        Ok(self.provider.settings()?.docker_host.clone())
    }
}

/// `tcp://` daemons use TLS when the settings found the Docker CLI's files (`Settings::docker_tls`).
fn connect(host: &str, tls: Option<TlsFiles>) -> Result<DockerClient, DockerError> {
    DockerClient::connect(&DockerHost::parse(host, tls)?)
}
