//! What a gateway tells its terminals, read back from its container's labels, and the probes
//! that check that a hostname is routed through it (the student's path: Host header -> Traefik
//! router -> ttyd).

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;

use crate::backends::docker::ContainerInfo;
use crate::lifecycle::MANAGED_LABEL;
use crate::protocol::diag::error_chain;

/// On the gateway container, its network and every terminal it routes: the gateway's name.
/// Traefik's Docker provider is constrained to this label, so a gateway never routes another's
/// terminals.
pub const LABEL_GATEWAY: &str = "lab.gateway";
/// `gateway` on the gateway container (terminals carry `lab.terminal` instead).
pub const LABEL_ROLE: &str = "lab.role";
pub const ROLE_GATEWAY: &str = "gateway";
/// Comma-separated entrypoints the gateway listens on (`web`, `websecure`).
pub const LABEL_ENTRYPOINTS: &str = "lab.gateway.entrypoints";
/// How students reach it: scheme and port of the URLs it serves.
pub const LABEL_URL_SCHEME: &str = "lab.gateway.url_scheme";
pub const LABEL_URL_PORT: &str = "lab.gateway.url_port";
/// With an instructor credential: the Traefik middleware that asks for it
/// (`<gateway>-instructor@docker`), which a terminal's instructor-only routers name.
pub const LABEL_INSTRUCTOR: &str = "lab.gateway.instructor";
/// The hostname of the class page.
pub const LABEL_CLASS_HOSTNAME: &str = "lab.gateway.class_hostname";

pub const ENTRYPOINT_HTTP: &str = "web";
pub const ENTRYPOINT_HTTPS: &str = "websecure";
/// Traefik's ports inside the gateway container.
pub const CONTAINER_HTTP_PORT: u16 = 80;
pub const CONTAINER_HTTPS_PORT: u16 = 443;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `scheme://hostname`, with `:port` unless it is the scheme's default.
pub fn url_for(scheme: &str, hostname: &str, port: Option<u16>) -> String {
    match (scheme, port) {
        (_, None) | ("http", Some(80)) | ("https", Some(443)) => format!("{scheme}://{hostname}"),
        (_, Some(port)) => format!("{scheme}://{hostname}:{port}"),
    }
}

/// A gateway as its terminals see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRoute {
    pub name: String,
    /// The Docker network its terminals join.
    pub network: String,
    pub http: bool,
    pub https: bool,
    pub url_scheme: String,
    pub url_port: u16,
    /// Where this machine reaches the gateway: the published HTTP entrypoint if any, else the
    /// HTTPS one (`true`: speak TLS). None while it is stopped.
    pub probe_address: Option<(SocketAddr, bool)>,
    /// The instructor middleware's Traefik name, when the gateway has an instructor.
    pub instructor_middleware: Option<String>,
}

impl GatewayRoute {
    /// The route of a container made by `lab_gateway`; the error says why it is not one.
    pub fn from_container(info: &ContainerInfo) -> Result<Self, String> {
        let label = |k: &str| info.labels.get(k).map(String::as_str);
        if label(MANAGED_LABEL) != Some("true") || label(LABEL_ROLE) != Some(ROLE_GATEWAY) {
            return Err(format!(
                "container `{}` is not a lab_gateway (no `{MANAGED_LABEL}=true` and `{LABEL_ROLE}={ROLE_GATEWAY}` labels)",
                info.name
            ));
        }
        let name =
            label(LABEL_GATEWAY).ok_or_else(|| format!("gateway `{}` has no `{LABEL_GATEWAY}` label", info.name))?;
        let entrypoints: Vec<&str> = label(LABEL_ENTRYPOINTS).unwrap_or_default().split(',').collect();
        let url_scheme = label(LABEL_URL_SCHEME).unwrap_or("http").to_string();
        let url_port = label(LABEL_URL_PORT).and_then(|p| p.parse().ok()).unwrap_or(80);
        Ok(GatewayRoute {
            name: name.to_string(),
            network: name.to_string(),
            http: entrypoints.contains(&ENTRYPOINT_HTTP),
            https: entrypoints.contains(&ENTRYPOINT_HTTPS),
            url_scheme,
            url_port,
            probe_address: probe_address(info),
            instructor_middleware: label(LABEL_INSTRUCTOR).map(str::to_string),
        })
    }

    /// The URL a student opens for `hostname` on this gateway.
    pub fn url(&self, hostname: &str) -> String {
        url_for(&self.url_scheme, hostname, Some(self.url_port))
    }
}

/// The published HTTP entrypoint (a wildcard bind through the loopback), else the HTTPS one,
/// else the container's own address on its network.
pub fn probe_address(info: &ContainerInfo) -> Option<(SocketAddr, bool)> {
    if !info.running {
        return None;
    }
    for (port, tls) in [(CONTAINER_HTTP_PORT, false), (CONTAINER_HTTPS_PORT, true)] {
        if let Some(p) = info.published.iter().find(|p| p.container_port == port && p.host_port.is_some()) {
            return Some((SocketAddr::new(info.published_at(&p.host_ip), p.host_port.unwrap_or(port)), tls));
        }
    }
    let ip = &info.network_address()?;
    let https_only = info.labels.get(LABEL_ENTRYPOINTS).is_some_and(|e| !e.split(',').any(|x| x == ENTRYPOINT_HTTP));
    Some(if https_only {
        (SocketAddr::new(*ip, CONTAINER_HTTPS_PORT), true)
    } else {
        (SocketAddr::new(*ip, CONTAINER_HTTP_PORT), false)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum RouteProbeError {
    #[error("the gateway is not running, so it has no address to probe")]
    NoAddress,
    #[error("{url} through the gateway at {addr} did not answer: {why}")]
    Http { url: String, addr: SocketAddr, why: String },
    #[error("{url} through the gateway at {addr} answered HTTP {status}, expected {expected}")]
    Status { url: String, addr: SocketAddr, status: u16, expected: u16 },
}

/// A request as a student's browser makes it: to `hostname`, resolved to the gateway's address,
/// so the Host header (and SNI) carry the session hostname.
fn client(hostname: &str, addr: SocketAddr) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PROBE_TIMEOUT)
        .http1_only()
        .resolve(hostname, addr)
        // The probe checks routing, not certificates: the gateway may serve a private CA's.
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

fn url(hostname: &str, addr: SocketAddr, tls: bool, path: &str) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{hostname}:{}{path}", addr.port())
}

/// The status `GET /` for `hostname` gets through the gateway.
pub async fn http_status(
    address: Option<(SocketAddr, bool)>,
    hostname: &str,
    credential: Option<(&str, &str)>,
) -> Result<u16, RouteProbeError> {
    http_status_at(address, hostname, "/", credential).await
}

/// The status `GET <path>` for `hostname` gets through the gateway.
pub async fn http_status_at(
    address: Option<(SocketAddr, bool)>,
    hostname: &str,
    path: &str,
    credential: Option<(&str, &str)>,
) -> Result<u16, RouteProbeError> {
    let (addr, tls) = address.ok_or(RouteProbeError::NoAddress)?;
    let url = url(hostname, addr, tls, path);
    let fail = |why: String| RouteProbeError::Http { url: url.clone(), addr, why };
    let mut request = client(hostname, addr).map_err(fail)?.get(&url);
    if let Some((user, password)) = credential {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.map_err(|e| fail(error_chain(&e)))?;
    Ok(response.status().as_u16())
}

/// `GET /` for `hostname` answers 200 and a websocket upgrade of `/ws` (ttyd's `tty`
/// subprotocol) answers 101, both through the gateway.
pub async fn terminal_routed(
    address: Option<(SocketAddr, bool)>,
    hostname: &str,
    credential: Option<(&str, &str)>,
) -> Result<(), RouteProbeError> {
    let (addr, tls) = address.ok_or(RouteProbeError::NoAddress)?;
    let status = http_status(address, hostname, credential).await?;
    if status != 200 {
        return Err(RouteProbeError::Status { url: url(hostname, addr, tls, "/"), addr, status, expected: 200 });
    }
    let ws_url = url(hostname, addr, tls, "/ws");
    let fail = |why: String| RouteProbeError::Http { url: ws_url.clone(), addr, why };
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let mut request = client(hostname, addr)
        .map_err(fail)?
        .get(&ws_url)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", key)
        .header("Sec-WebSocket-Protocol", "tty");
    if let Some((user, password)) = credential {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.map_err(|e| fail(error_chain(&e)))?;
    match response.status().as_u16() {
        101 => Ok(()),
        status => Err(RouteProbeError::Status { url: ws_url, addr, status, expected: 101 }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::backends::docker::PortPublish;

    fn gateway(entrypoints: &str, published: Vec<PortPublish>) -> ContainerInfo {
        ContainerInfo {
            name: "edge".into(),
            running: true,
            labels: BTreeMap::from([
                (MANAGED_LABEL.to_string(), "true".to_string()),
                (LABEL_ROLE.to_string(), ROLE_GATEWAY.to_string()),
                (LABEL_GATEWAY.to_string(), "edge".to_string()),
                (LABEL_ENTRYPOINTS.to_string(), entrypoints.to_string()),
                (LABEL_URL_SCHEME.to_string(), "http".to_string()),
                (LABEL_URL_PORT.to_string(), "8080".to_string()),
            ]),
            published,
            ..Default::default()
        }
    }

    #[test]
    fn urls_leave_out_default_ports() {
        assert_eq!(url_for("http", "lab-a.x", Some(8080)), "http://lab-a.x:8080");
        assert_eq!(url_for("https", "lab-a.x", Some(443)), "https://lab-a.x");
        assert_eq!(url_for("http", "lab-a.x", Some(80)), "http://lab-a.x");
        assert_eq!(url_for("https", "lab-a.x", None), "https://lab-a.x");
        assert_eq!(url_for("https", "lab-a.x", Some(8443)), "https://lab-a.x:8443");
    }

    #[test]
    fn route_is_read_from_the_gateway_labels() {
        let publish = |container_port, host_ip: &str, host_port| PortPublish {
            container_port,
            host_ip: host_ip.into(),
            host_port: Some(host_port),
        };
        let info = gateway("web,websecure", vec![publish(80, "0.0.0.0", 8080), publish(443, "127.0.0.2", 8443)]);
        let route = GatewayRoute::from_container(&info).unwrap();
        assert_eq!(
            (route.name.as_str(), route.network.as_str(), route.http, route.https),
            ("edge", "edge", true, true)
        );
        assert_eq!(route.url("lab-abc.lab.localhost"), "http://lab-abc.lab.localhost:8080");
        assert_eq!(route.probe_address, Some(("127.0.0.1:8080".parse().unwrap(), false)));

        let https_only = gateway("websecure", vec![publish(443, "127.0.0.2", 8443)]);
        assert_eq!(probe_address(&https_only), Some(("127.0.0.2:8443".parse().unwrap(), true)));

        let mut terminal = info.clone();
        terminal.labels.remove(LABEL_ROLE);
        assert!(GatewayRoute::from_container(&terminal).unwrap_err().contains("is not a lab_gateway"));
    }
}
