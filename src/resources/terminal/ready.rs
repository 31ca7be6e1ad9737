//! Readiness: the probes of ttyd, the target's SSH port and the student's URL; the gateway's route.

use std::net::IpAddr;
use std::time::Duration;

use super::container::{PERSISTENT_NEEDS, TMUX_SESSION, TerminalSettings, tmux_argv, ttyd_address};
use super::{LABEL_HOSTNAME, LABEL_TERMINAL, PROBE_INTERVAL, PROBE_TIMEOUT};
use crate::backends::docker::{ContainerInfo, DockerClient, DockerError};
use crate::lifecycle::MANAGED_LABEL;
use crate::lifecycle::wait_until;
use crate::protocol::{AttrPath, DiagResultExt, Diagnostic, Diagnostics, OpContext};
use crate::resources::docker_client::{self, Poll};
use crate::resources::gateway::route::{GatewayRoute, http_status, terminal_routed};
use crate::resources::session::format_time;

// --- readiness ---

#[derive(Debug, thiserror::Error)]
pub(super) enum ProbeError {
    #[error("the container has no address reachable from here (no published port, no network address)")]
    NoAddress,
    #[error("ttyd at {0} did not answer: {1}")]
    Http(String, String),
    #[error("ttyd at {0} answered HTTP {1}")]
    Status(String, u16),
    #[error("SSH port {0} refused or timed out: {1}")]
    Ssh(String, String),
    #[error("the student's URL is not served yet: {0}")]
    Routed(crate::resources::gateway::route::RouteProbeError),
}

/// The route of the gateway `reference` names (None without one); an error when it is missing
/// or is not a lab_gateway.
pub(super) async fn resolve_gateway(
    docker: &DockerClient,
    reference: Option<&str>,
) -> Result<Option<GatewayRoute>, Diagnostics> {
    let Some(reference) = reference else { return Ok(None) };
    let not_usable = |why: String| -> Diagnostics {
        Diagnostic::attr_error(AttrPath::root("gateway"), "The terminal's gateway cannot be used", why).into()
    };
    let info = docker
        .inspect_container(reference)
        .await
        .or_diag("Reading the terminal's gateway")?
        .ok_or_else(|| not_usable(format!("no container `{reference}` on {}", docker.host())))?;
    GatewayRoute::from_container(&info).map(Some).map_err(not_usable)
}

/// Wait (at most `limit`) until the gateway no longer serves `hostname`: anything but 200 and
/// 502/504 (the router still pointing at the stopped container) counts as stopped.
pub(super) async fn wait_unrouted(
    route: &GatewayRoute,
    hostname: &str,
    limit: Duration,
    cancel: &tokio_util::sync::CancellationToken,
) {
    let what = format!("{hostname} to stop serving through gateway `{}`", route.name);
    let _ = wait_until(&what, limit, PROBE_INTERVAL, cancel, || async {
        match http_status(route.probe_address, hostname, None).await {
            Ok(200 | 401 | 502 | 504) => Ok(None),
            Ok(_) => Ok(Some(())),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
}

// --- activity ---

/// What a persistent terminal's tmux session says of its student: when they last typed (RFC 3339
/// UTC; None before anyone attached) and how many browsers are attached now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    pub last_activity_at: Option<String>,
    pub clients: i64,
}

/// The format `read_activity` asks tmux for: the session's last input (epoch seconds; tmux
/// updates it on a client's key press, not on output) and its attached clients.
const ACTIVITY_FORMAT: &str = "#{session_activity} #{session_attached}";

/// Ask the session's tmux server in the running container `id`. No server or no session (nobody
/// has opened the URL since the container started) is no activity and no clients.
pub async fn read_activity(docker: &DockerClient, id: &str) -> Result<Activity, DockerError> {
    let argv = tmux_argv(&["display-message", "-p", "-t", TMUX_SESSION, ACTIVITY_FORMAT]);
    let out = docker.exec(id, &argv).await?;
    Ok(if out.succeeded() { parse_activity(&out.stdout).unwrap_or_default() } else { Activity::default() })
}

/// The terminal serving `hostname` (found by its ownership labels: `lab.managed`, `lab.terminal`
/// and `lab.hostname`) and, when it is persistent and runs, its activity; stopped: 0 clients.
pub async fn activity_of_hostname(
    docker: &DockerClient,
    hostname: &str,
) -> Result<Option<(String, Option<Activity>)>, DockerError> {
    for (id, name) in docker.find_by_label(LABEL_HOSTNAME, hostname).await? {
        let Some(info) = docker.inspect_container(&id).await? else { continue };
        let label = |k: &str| info.labels.get(k).map(String::as_str);
        if label(MANAGED_LABEL) != Some("true") || label(LABEL_TERMINAL).is_none() {
            continue;
        }
        let persistent = info.cmd.iter().any(|a| a == "tmux");
        let activity = match (persistent, info.running) {
            (false, _) => None,
            (true, false) => Some(Activity::default()),
            (true, true) => Some(read_activity(docker, &id).await?),
        };
        return Ok(Some((name, activity)));
    }
    Ok(None)
}

fn parse_activity(stdout: &str) -> Option<Activity> {
    let mut fields = stdout.split_whitespace();
    let activity: i64 = fields.next()?.parse().ok()?;
    let clients: i64 = fields.next()?.parse().ok()?;
    let at = time::OffsetDateTime::from_unix_timestamp(activity).ok()?;
    Some(Activity { last_activity_at: Some(format_time(at)), clients })
}

/// A persistent terminal's image has what the tmux session and its reconnect loop run (ttyd only
/// starts them when a browser connects, so a missing tmux would otherwise show only then).
///
/// A failing exec (the daemon restarting, the container coming back by its restart policy) is
/// retried until `timeout`, as the readiness probes are: only what the image lacks is an error.
pub(super) async fn check_persistent_image(
    docker: &DockerClient,
    id: &str,
    image: &str,
    timeout: std::time::Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<(), Diagnostics> {
    let script =
        format!("for c in {}; do command -v \"$c\" >/dev/null || echo \"$c\"; done", PERSISTENT_NEEDS.join(" "));
    let what = format!("the tools of image {image} in container {id}");
    let out = wait_until(&what, timeout, PROBE_INTERVAL, cancel, || async {
        docker.exec(id, &["sh", "-c", &script]).await.map(Some)
    })
    .await
    .map_err(|e| Diagnostic::from_error("Checking the terminal image for tmux", &e))?;
    let missing: Vec<&str> = out.stdout.split_whitespace().collect();
    if out.succeeded() && missing.is_empty() {
        return Ok(());
    }
    let lacks = if out.succeeded() {
        missing.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
    } else {
        format!("a working `sh` ({}{})", out.stdout.trim(), out.stderr.trim())
    };
    Err(Diagnostic::attr_error(
        AttrPath::root("persistent"),
        "The terminal image cannot keep sessions",
        format!(
            "`persistent = true` runs each student's terminal in a tmux session with a reconnect loop, and image \
             `{image}` has no {lacks}. Add them to the image (Debian: `apt-get install tmux`), or set \
             `persistent = false`."
        ),
    )
    .into())
}

/// ttyd answers `GET /` with 200 (with the credential when one is set).
pub(super) async fn probe_ttyd(info: &ContainerInfo, settings: &TerminalSettings) -> Result<(), ProbeError> {
    let credential = settings.credential.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    if let (Some(route), Some(host)) = (&settings.route, &settings.hostname) {
        return terminal_routed(route.probe_address, host, credential).await.map_err(ProbeError::Routed);
    }
    let Some((ip, port)) = ttyd_address(info) else {
        // Unpublished on a remote host: nothing of it is reachable from here; the ssh probe
        // (run in the container) still has to pass.
        return if info.remote.is_some() { Ok(()) } else { Err(ProbeError::NoAddress) };
    };
    let url = match ip {
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}/"),
        IpAddr::V4(v4) => format!("http://{v4}:{port}/"),
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| ProbeError::Http(url.clone(), e.to_string()))?;
    let mut request = client.get(&url);
    if let Some((user, password)) = &settings.credential {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.map_err(|e| ProbeError::Http(url.clone(), e.to_string()))?;
    match response.status().as_u16() {
        200 => Ok(()),
        code => Err(ProbeError::Status(url, code)),
    }
}

/// The target's SSH: on a remote Docker host (whose VMs are private to it) a login with the
/// terminal's own key and ssh, run in the container; on a local one, its port accepts a TCP
/// connection from where the provider runs.
pub(super) async fn probe_ssh(docker: &DockerClient, id: &str, settings: &TerminalSettings) -> Result<(), ProbeError> {
    if docker.remote_host().is_some() {
        let addr = format!("{}@{}:{}", settings.ssh_user, settings.target_host, settings.target_port);
        let probe = settings.ssh_probe_command();
        let args: Vec<&str> = probe.iter().map(String::as_str).collect();
        return match docker.exec(id, &args).await {
            Ok(out) if out.succeeded() => Ok(()),
            Ok(out) => Err(ProbeError::Ssh(
                addr,
                format!("ssh in the terminal container exited with {:?}: {}", out.exit_code, out.stderr.trim()),
            )),
            Err(e) => Err(ProbeError::Ssh(addr, crate::protocol::diag::error_chain(&e))),
        };
    }
    let addr = format!("{}:{}", settings.target_host, settings.target_port);
    let connect = tokio::net::TcpStream::connect((settings.target_host.as_str(), settings.target_port));
    match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(ProbeError::Ssh(addr, e.to_string())),
        Err(_) => Err(ProbeError::Ssh(addr, "timed out".into())),
    }
}

/// Wait until the container runs, ttyd answers and the target's SSH port is open. A container
/// that exits fails at once with its exit code instead of waiting out the timeout.
pub(super) async fn wait_ready(
    docker: &DockerClient,
    id: &str,
    settings: &TerminalSettings,
    timeout: Duration,
    ctx: &OpContext,
) -> Result<ContainerInfo, Diagnostics> {
    let what = format!(
        "terminal `{}` (ttyd HTTP and SSH to {}:{})",
        settings.name, settings.target_host, settings.target_port
    );
    let poll = Poll { timeout, interval: PROBE_INTERVAL };
    docker_client::wait_ready(docker, id, "terminal", &what, poll, ctx, |info| async move {
        probe_ttyd(&info, settings).await.map_err(|e| e.to_string())?;
        probe_ssh(docker, id, settings).await.map_err(|e| e.to_string())?;
        Ok(info)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_parses_tmux_fields() {
        let a = parse_activity("1796191266 2\n").unwrap();
        assert_eq!(a, Activity { last_activity_at: Some("2026-12-02T06:01:06Z".into()), clients: 2 });
        assert_eq!(parse_activity(""), None);
        assert_eq!(parse_activity("x 1"), None);
    }
}
