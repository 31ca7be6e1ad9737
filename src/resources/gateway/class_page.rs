//! The instructor's class page: a small container the gateway owns (`<gateway>-class`), on the
//! gateway's network, routed at `class_hostname` behind the instructor middleware. busybox httpd
//! serves a static page whose script fetches `cgi-bin/class` every few seconds; that CGI asks the
//! Docker API (the socket, mounted as Traefik's is) for this gateway's terminals, their labels and
//! states, asks each running one's tmux session for its activity and clients (a Docker exec of
//! `tmux display-message`, the session contract of `lab_terminal`), and each VM's SSH port for
//! its banner. So the page stays current without an apply. The files are uploaded before the
//! start, so they always match the provider; the image only needs busybox and curl (the rig
//! builds `lab/class-page:1` from Debian binaries).

use std::collections::BTreeMap;

use super::container::GatewaySettings;
use super::instructor;
use super::route::{ENTRYPOINT_HTTP, ENTRYPOINT_HTTPS, LABEL_GATEWAY, LABEL_ROLE};
use crate::backends::docker::{BindMount, ContainerSpec, UploadFile};
use crate::lifecycle::MANAGED_LABEL;
use crate::resources::terminal::{TMUX_SESSION, TMUX_SOCKET};

pub const ROLE_CLASS_PAGE: &str = "class-page";
pub const DEFAULT_IMAGE: &str = "lab/class-page:1";
/// busybox httpd's port inside the container.
pub const PAGE_PORT: u16 = 8080;
const WEB_ROOT: &str = "/lab/www";
const SOCKET_IN_CONTAINER: &str = "/var/run/docker.sock";
const INDEX_HTML: &str = include_str!("class_page/index.html");
const CLASS_CGI: &str = include_str!("class_page/class.cgi");

/// The page container's name: `<gateway>-class`.
pub fn container_name(gateway: &str) -> String {
    format!("{gateway}-class")
}

/// The page's container, or none without an instructor (no page without its credential).
pub fn container_spec(gw: &GatewaySettings, image: &str) -> Option<ContainerSpec> {
    let host = gw.class_hostname.as_ref().filter(|_| gw.instructor.is_some())?;
    let name = container_name(&gw.name);
    let mut labels = BTreeMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (LABEL_ROLE.to_string(), ROLE_CLASS_PAGE.to_string()),
        (LABEL_GATEWAY.to_string(), gw.name.clone()),
        ("traefik.enable".to_string(), "true".to_string()),
        ("traefik.docker.network".to_string(), gw.network().to_string()),
        (format!("traefik.http.services.{name}.loadbalancer.server.port"), PAGE_PORT.to_string()),
    ]);
    let entrypoints = [(ENTRYPOINT_HTTP, gw.http.is_some(), ""), (ENTRYPOINT_HTTPS, gw.https.is_some(), "-tls")];
    for (entrypoint, _, suffix) in entrypoints.into_iter().filter(|(_, on, _)| *on) {
        let router = format!("traefik.http.routers.{name}{suffix}");
        // A validated DNS name: no backtick can break out of the rule.
        labels.insert(format!("{router}.rule"), format!("Host(`{host}`)"));
        labels.insert(format!("{router}.entrypoints"), entrypoint.into());
        labels.insert(format!("{router}.middlewares"), instructor::middleware_ref(&gw.name));
        labels.insert(format!("{router}.service"), name.clone());
        if !suffix.is_empty() {
            labels.insert(format!("{router}.tls"), "true".into());
        }
    }
    Some(ContainerSpec {
        name: name.clone(),
        image: image.to_string(),
        entrypoint: Some(vec!["httpd".into()]),
        cmd: ["-f", "-p", &PAGE_PORT.to_string(), "-h", WEB_ROOT].map(String::from).to_vec(),
        labels,
        hostname: Some(name),
        network: Some(gw.network().to_string()),
        extra_networks: Vec::new(),
        publish: Vec::new(),
        expose: vec![PAGE_PORT],
        restart_unless_stopped: true,
        mounts: vec![BindMount {
            host_path: gw.docker_socket.clone(),
            container_path: SOCKET_IN_CONTAINER.into(),
            read_only: true,
        }],
    })
}

/// The page, its data script (the gateway's name and the tmux contract set at its top: validated
/// names, no user text) and what the page needs to build URLs.
pub fn files(gw: &GatewaySettings) -> Vec<UploadFile> {
    let file = |path: &str, contents: String, mode: u32| UploadFile {
        path: format!("{WEB_ROOT}/{path}"),
        contents: contents.into_bytes(),
        mode,
        uid: 0,
        gid: 0,
    };
    let (shebang, rest) = CLASS_CGI.split_once('\n').unwrap_or(("#!/bin/sh", CLASS_CGI));
    let cgi =
        format!("{shebang}\nGATEWAY='{}'\nTMUX_SOCKET='{TMUX_SOCKET}'\nTMUX_SESSION='{TMUX_SESSION}'\n{rest}", gw.name);
    let config = serde_json::json!({ "gateway": gw.name, "url_scheme": gw.url_scheme, "url_port": gw.url_port });
    vec![
        file("index.html", INDEX_HTML.to_string(), 0o644),
        file("config.json", format!("{config}\n"), 0o644),
        file("cgi-bin/class", cgi, 0o755),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::gateway::container::{Instructor, Listen};

    fn gateway() -> GatewaySettings {
        GatewaySettings {
            name: "os101-edge".into(),
            image: "lab/traefik:3.7.15".into(),
            docker_socket: "/run/lab-rig/docker.sock".into(),
            http: Some(Listen { host_ip: "127.0.0.1".into(), host_port: 8080 }),
            https: None,
            url_scheme: "http".into(),
            url_port: 8080,
            instructor: Some(Instructor {
                username: "prof".into(),
                password_hash: "$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234".into(),
            }),
            class_hostname: Some("class.lab.localhost".into()),
        }
    }

    #[test]
    fn the_page_is_routed_only_behind_the_instructor() {
        let spec = container_spec(&gateway(), DEFAULT_IMAGE).unwrap();
        assert_eq!(spec.name, "os101-edge-class");
        assert_eq!(spec.network.as_deref(), Some("os101-edge"));
        let l = &spec.labels;
        assert_eq!(l["lab.gateway"], "os101-edge", "Traefik's constraint must include it");
        assert_eq!(l["traefik.http.routers.os101-edge-class.rule"], "Host(`class.lab.localhost`)");
        assert_eq!(l["traefik.http.routers.os101-edge-class.middlewares"], "os101-edge-instructor@docker");
        let routers: Vec<&String> = l.keys().filter(|k| k.ends_with(".rule")).collect();
        assert_eq!(routers.len(), 1, "every router asks for the instructor: {routers:?}");
        assert!(spec.mounts[0].read_only);
        let mut no_instructor = gateway();
        no_instructor.instructor = None;
        assert!(container_spec(&no_instructor, DEFAULT_IMAGE).is_none());
    }

    #[test]
    fn files_carry_the_gateway_and_the_tmux_contract() {
        let files = files(&gateway());
        let cgi = String::from_utf8(files[2].contents.clone()).unwrap();
        assert!(cgi.starts_with("#!/bin/sh\nGATEWAY='os101-edge'\n"), "{}", &cgi[..60]);
        assert!(cgi.contains(&format!("TMUX_SESSION='{TMUX_SESSION}'")));
        assert_eq!(files[2].mode, 0o755);
        let config: serde_json::Value = serde_json::from_slice(&files[1].contents).unwrap();
        assert_eq!(config["url_port"], 8080);
        assert!(!files.iter().any(|f| String::from_utf8_lossy(&f.contents).contains("$2y$")), "no hash in the page");
    }
}
