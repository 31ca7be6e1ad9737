//! The Docker client the Docker-backed resources (`lab_terminal`, `lab_gateway`) share: made from
//! the provider's `docker_host` on first use and cached.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::backends::docker::{ContainerInfo, ContainerSpec, DockerClient, DockerError};
use crate::lifecycle::{MANAGED_LABEL, Rollback, WaitError, exists_unowned, import_id, shell_command, wait_until};
use crate::protocol::diag::error_chain;
use crate::protocol::{Attr, AttrPath, DiagResultExt, Diagnostic, Diagnostics, OpContext, log};
use crate::settings::ProviderHandle;

/// The provider's Docker client as a Docker-backed resource reaches it (the client itself is
/// cached once per provider process in `ProviderHandle`).
pub struct DockerConnection {
    provider: ProviderHandle,
}

impl DockerConnection {
    pub fn new(provider: ProviderHandle) -> Self {
        DockerConnection { provider }
    }

    /// The client for the Docker daemon of `host` (the resource's `host` argument; null: the
    /// provider's own `docker_host`); `resource` names who needs it in the diagnostic when no
    /// daemon is configured.
    pub fn get(&self, host: &Attr<String>, resource: &str) -> Result<&DockerClient, Diagnostics> {
        self.provider.docker_on(host.known().map(String::as_str), resource)
    }

    /// The Docker host of `host` as configured (for defaults derived from it).
    pub fn host(&self, host: &Attr<String>) -> Result<Option<String>, Diagnostics> {
        let settings = self.provider.settings()?;
        Ok(match host.known() {
            Some(name) => settings.named_host(name)?.docker_host.clone(),
            None => settings.docker_host.clone(),
        })
    }

    /// The plan-time check of a resource's `host` argument (on its attribute).
    pub fn check_host(&self, host: &Attr<String>) -> Result<(), Diagnostics> {
        match host {
            Attr::Known(_) => self.provider.settings()?.check_host(host),
            _ => Ok(()),
        }
    }

    /// The provider's `domain` (for hostnames derived from it).
    pub fn domain(&self) -> Result<Option<String>, Diagnostics> {
        Ok(self.provider.settings()?.domain.clone())
    }
}

/// The container a create found under `spec.name`, by the adoption rule in `lifecycle.rs`:
/// `Some` when it carries `lab.managed=true` and the resource's `kind` label, is exactly what
/// `spec` would make (`ContainerSpec::mismatches`) and runs: the create adopts it. One of ours that
/// differs or does not run is removed (`None`: the name is free again). One without those
/// labels is never touched: the error says how to import it (`type_name`, by its name).
pub async fn claim_name(
    docker: &DockerClient,
    host: Option<&str>,
    spec: &ContainerSpec,
    image_labels: &BTreeMap<String, String>,
    kind: (&str, &str),
    type_name: &str,
) -> Result<Option<ContainerInfo>, Diagnostics> {
    let Some(found) = docker.inspect_container(&spec.name).await.or_diag("Looking for a container of that name")?
    else {
        return Ok(None);
    };
    let label = |k: &str| found.labels.get(k).map(String::as_str);
    if label(MANAGED_LABEL) != Some("true") || label(kind.0) != Some(kind.1) {
        let what = format!("A Docker container named `{}` on {}", spec.name, docker.host());
        let id = import_id(host, &spec.name);
        return Err(exists_unowned(AttrPath::root("name"), type_name, &what, &id).into());
    }
    let mut differ = spec.mismatches(&found, image_labels);
    if !found.running {
        differ.push("not running");
    }
    if differ.is_empty() {
        log::info(&format!("{}: adopting container {} left by an earlier create", spec.name, found.id));
        return Ok(Some(found));
    }
    log::info(&format!(
        "{}: removing container {} left by an earlier create ({}) to create it again",
        spec.name,
        found.id,
        differ.join(", ")
    ));
    docker.remove_container(&found.id).await.or_diag("Removing the container left by an earlier create")?;
    Ok(None)
}

/// The container a create of `spec` goes on with, by `claim_name`'s rule: the one found under its
/// name and adopted (`true`: it runs, so what goes in before a start went in), or a new one,
/// created and not started (`false`). Either way its removal is on `rollback`.
pub async fn create_or_adopt(
    docker: &DockerClient,
    host: Option<&str>,
    spec: &ContainerSpec,
    image_labels: &BTreeMap<String, String>,
    kind: (&str, &str),
    type_name: &str,
    rollback: &mut Rollback,
) -> Result<(String, bool), Diagnostics> {
    let (id, adopted) = match claim_name(docker, host, spec, image_labels, kind, type_name).await? {
        Some(found) => (found.id, true),
        None => (docker.create_container(spec).await.or_diag(format!("Creating container {}", spec.name))?, false),
    };
    undo_by_removing(rollback, docker, &id, &spec.name);
    Ok((id, adopted))
}

/// Removing container `id` (named `name`) undoes the create under way: on `rollback`, with the
/// `docker rm` that does it by hand.
pub fn undo_by_removing(rollback: &mut Rollback, docker: &DockerClient, id: &str, name: &str) {
    let (client, id) = (docker.clone(), id.to_string());
    rollback.push_with_manual(
        format!("container {name}"),
        shell_command(["docker", "-H", docker.host(), "rm", "-f", name]),
        async move { client.remove_container(&id).await.map(|_| ()).map_err(|e| error_chain(&e)) },
    );
}

/// How long and how often `wait_ready` polls.
pub struct Poll {
    pub timeout: Duration,
    pub interval: Duration,
}

/// Wait until container `id` runs and `probe` accepts it (`what` says what is awaited, `noun`
/// names the resource in the diagnostics: "terminal", "gateway"). A container that exits fails at
/// once with its exit code instead of waiting out the timeout.
pub async fn wait_ready<F, Fut>(
    docker: &DockerClient,
    id: &str,
    noun: &str,
    what: &str,
    poll: Poll,
    ctx: &OpContext,
    probe: F,
) -> Result<ContainerInfo, Diagnostics>
where
    F: Fn(ContainerInfo) -> Fut,
    Fut: Future<Output = Result<ContainerInfo, String>>,
{
    let outcome = wait_until(what, poll.timeout, poll.interval, &ctx.cancel, || async {
        let info = match docker.inspect_container(id).await {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(Some(Err(format!("container {id} disappeared while starting")))),
            Err(e) => return Err(error_chain(&e)),
        };
        if !info.running {
            return Ok(Some(Err(format!(
                "container {} stopped ({}, exit code {}); see `docker logs {}`",
                info.name,
                info.status,
                info.exit_code.map_or("unknown".into(), |c| c.to_string()),
                info.name
            ))));
        }
        probe(info).await.map(|info| Some(Ok(info)))
    })
    .await;
    match outcome {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(why)) => Err(Diagnostic::error(format!("The {noun} container did not stay up"), why).into()),
        Err(e @ WaitError::Timeout { .. }) => {
            Err(Diagnostic::from_error(format!("The {noun} did not become ready"), &e).into())
        }
        Err(e @ WaitError::Cancelled { .. }) => Err(Diagnostic::from_error("Stopped by Terraform", &e).into()),
    }
}

/// Delete container `id` by `work`, within `timeout` and until Terraform cancels; `failed` turns
/// `work`'s error into diagnostics.
pub async fn delete_within<T>(
    noun: &str,
    id: &str,
    timeout: Duration,
    ctx: &OpContext,
    work: impl Future<Output = Result<T, DockerError>>,
    failed: impl FnOnce(DockerError) -> Diagnostics,
) -> Result<(), Diagnostics> {
    tokio::select! {
        result = tokio::time::timeout(timeout, work) => match result {
            Ok(done) => done.map(|_| ()).map_err(failed),
            Err(_) => Err(Diagnostic::error(format!("Deleting the {noun} timed out"), format!("container {id} after {timeout:?}")).into()),
        },
        _ = ctx.cancel.cancelled() => Err(Diagnostic::error(format!("Deleting the {noun} was cancelled"), format!("container {id}")).into()),
    }
}
