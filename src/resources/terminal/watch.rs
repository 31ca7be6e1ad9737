//! The instructor's live view of a routed, persistent terminal: a second ttyd in the same
//! container, on its own port and base path (`/watch` on the session hostname), attached to the
//! student's tmux session (`TMUX_SESSION` on `TMUX_SOCKET`, the contract in `container.rs`).
//! Read-only by default: ttyd without `--writable` drops the browser's input, and tmux attaches
//! the client `read-only`. With `watch_takeover`, both let the instructor type. Either way the
//! client is `ignore-size`, so the watcher's window never resizes the student's screen.
//!
//! Its Traefik router names the gateway's instructor middleware (basicAuth), so the student's URL
//! alone never reaches it. The container's entrypoint becomes a small fixed `sh` script that
//! keeps the watch ttyd running and then `exec`s the student's ttyd with its usual arguments
//! (`"$@"`): no user value is ever parsed by a shell.

use std::collections::BTreeMap;

use super::container::{TMUX_SESSION, TMUX_SOCKET};
use crate::resources::gateway::route::GatewayRoute;

/// The watch ttyd's port inside the container.
pub const WATCH_PORT: u16 = 7682;
/// Its base path on the session hostname.
pub const WATCH_PATH: &str = "/watch";
/// `$0` of the entrypoint script: how import recognises a watched terminal.
const LAUNCHER_NAME: &str = "lab-watch";
const LAUNCHER_NAME_TAKEOVER: &str = "lab-watch-takeover";

/// The entrypoint of a watched terminal: `sh -c <script> <name>`, then Docker appends the
/// student's ttyd arguments (the container's cmd).
pub fn entrypoint(takeover: bool) -> Vec<String> {
    let (writable, flags, name) = if takeover {
        ("--writable ", "ignore-size", LAUNCHER_NAME_TAKEOVER)
    } else {
        ("", "read-only,ignore-size", LAUNCHER_NAME)
    };
    let tmux = format!("tmux -u -S {TMUX_SOCKET}");
    // The student's session exists from their first connection on: until then, say so.
    let attach = format!(
        "until {tmux} has-session -t {TMUX_SESSION} 2>/dev/null; do \
         printf '[lab] Waiting for the student to open the terminal...\\r\\n'; sleep 2; done; \
         exec {tmux} attach-session -f {flags} -t {TMUX_SESSION}"
    );
    let script = format!(
        "attach=\"{attach}\"\n\
         while :; do ttyd --port {WATCH_PORT} --base-path {WATCH_PATH} {writable}\
         --client-option titleFixed=watch sh -c \"$attach\"; sleep 1; done &\n\
         exec ttyd \"$@\""
    );
    vec!["sh".into(), "-c".into(), script, name.into()]
}

/// Whether an entrypoint read back from a container is a watched one, and with take-over.
pub fn read_back(entrypoint: &[String]) -> Option<bool> {
    match entrypoint {
        [sh, c, _, name] if sh == "sh" && c == "-c" && name == LAUNCHER_NAME => Some(false),
        [sh, c, _, name] if sh == "sh" && c == "-c" && name == LAUNCHER_NAME_TAKEOVER => Some(true),
        _ => None,
    }
}

/// The watch routers (one per gateway entrypoint, as the student's) and their service, behind
/// the gateway's instructor middleware. Higher priority than the student's `Host` router by rule
/// length, as Traefik orders them.
pub fn labels(name: &str, host: &str, route: &GatewayRoute, middleware: &str, labels: &mut BTreeMap<String, String>) {
    let service = format!("{name}-watch");
    let mut router = |router: String, entrypoint: &str, tls: bool| {
        let prefix = format!("traefik.http.routers.{router}");
        // `host` is a validated DNS name: no backtick can break out of the rule.
        labels.insert(
            format!("{prefix}.rule"),
            format!("Host(`{host}`) && (Path(`{WATCH_PATH}`) || PathPrefix(`{WATCH_PATH}/`))"),
        );
        labels.insert(format!("{prefix}.entrypoints"), entrypoint.into());
        labels.insert(format!("{prefix}.service"), service.clone());
        labels.insert(format!("{prefix}.middlewares"), middleware.into());
        if tls {
            labels.insert(format!("{prefix}.tls"), "true".into());
        }
    };
    use crate::resources::gateway::route::{ENTRYPOINT_HTTP, ENTRYPOINT_HTTPS};
    if route.http {
        router(format!("{name}-watch"), ENTRYPOINT_HTTP, false);
    }
    if route.https {
        router(format!("{name}-watch-tls"), ENTRYPOINT_HTTPS, true);
    }
    labels.insert(format!("traefik.http.services.{service}.loadbalancer.server.port"), WATCH_PORT.to_string());
}

/// The instructor's URL of a session: `<session URL>/watch/`.
pub fn url(session_url: &str) -> String {
    format!("{}{WATCH_PATH}/", session_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_is_fixed_text_and_read_back() {
        for takeover in [false, true] {
            let e = entrypoint(takeover);
            assert_eq!(read_back(&e), Some(takeover));
            assert!(e[2].ends_with("exec ttyd \"$@\""), "{}", e[2]);
            assert_eq!(e[2].contains("--writable"), takeover);
            assert_eq!(e[2].contains("read-only"), !takeover);
            assert!(e[2].contains(&format!("--port {WATCH_PORT} --base-path {WATCH_PATH}")));
            assert!(e[2].contains("attach-session -f "));
        }
        assert_eq!(read_back(&["ttyd".to_string()]), None);
        assert_eq!(url("http://lab-a.lab.localhost:8080"), "http://lab-a.lab.localhost:8080/watch/");
    }

    #[test]
    fn watch_router_asks_for_the_instructor() {
        let route = GatewayRoute {
            name: "edge".into(),
            network: "edge".into(),
            http: true,
            https: true,
            url_scheme: "http".into(),
            url_port: 8080,
            probe_address: None,
            instructor_middleware: Some("edge-instructor@docker".into()),
        };
        let mut l = BTreeMap::new();
        labels("lab-a", "lab-a.lab.localhost", &route, "edge-instructor@docker", &mut l);
        assert_eq!(
            l["traefik.http.routers.lab-a-watch.rule"],
            "Host(`lab-a.lab.localhost`) && (Path(`/watch`) || PathPrefix(`/watch/`))"
        );
        assert_eq!(l["traefik.http.routers.lab-a-watch.middlewares"], "edge-instructor@docker");
        assert_eq!(l["traefik.http.routers.lab-a-watch-tls.tls"], "true");
        assert_eq!(l["traefik.http.services.lab-a-watch.loadbalancer.server.port"], "7682");
    }
}
