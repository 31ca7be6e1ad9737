//! The Docker backend and `lab_terminal` (through its typed `Resource` API, no terraform) against
//! the acceptance rig's real dockerd. Containers and their addresses live in the rig's network
//! namespace, so each test re-runs itself in there (`ip netns exec`) when started outside it.
//! Every container is named `dockertest-*` and removed by the test.

#[path = "support/rig.rs"]
mod rig;
use rig::rig_var;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::query_parameters::DownloadFromContainerOptions;
use futures::TryStreamExt;
use terraform_provider_lab::backends::docker::{
    ContainerSpec, DockerClient, DockerError, DockerHost, PortPublish, UploadFile,
};
use terraform_provider_lab::lifecycle::Timeouts;
use terraform_provider_lab::protocol::{Attr, OpContext, Resource};
use terraform_provider_lab::resources::terminal::{Credential, Publish, TerminalResource, TerminalState};
use terraform_provider_lab::settings::{ProviderHandle, Settings};

/// True when this process runs inside the rig's netns. Otherwise runs `test` in there (same test
/// binary, `--exact`), asserts that exactly that one test ran and passed (a name that matches no
/// test runs nothing and exits 0), and returns false so the caller stops.
fn in_rig(test: &str) -> bool {
    let netns = rig_var("LAB_NETNS");
    let ours = std::fs::metadata("/proc/self/ns/net").unwrap();
    let rig = std::fs::metadata(format!("/run/netns/{netns}"))
        .unwrap_or_else(|e| panic!("rig netns {netns} is not there ({e}); run `acceptance-tests/rig.sh up`"));
    if (ours.dev(), ours.ino()) == (rig.dev(), rig.ino()) {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &netns])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("DOCKER_HOST", rig_var("DOCKER_HOST"))
        .env("LAB_TERMINAL_IMAGE", rig_var("LAB_TERMINAL_IMAGE"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("running the test inside the rig netns");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    assert!(out.status.success(), "{test} failed inside netns {netns}");
    assert!(
        stdout.contains("test result: ok. 1 passed; 0 failed"),
        "`--exact {test}` inside netns {netns} did not run exactly one passing test (renamed?):\n{stdout}"
    );
    false
}

/// Removes the named container when a test ends, also when it fails half-way.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.0])
            .env("DOCKER_HOST", rig_var("DOCKER_HOST"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn client() -> DockerClient {
    DockerClient::connect(&DockerHost::parse(&rig_var("DOCKER_HOST"), None).unwrap()).unwrap()
}

fn image() -> String {
    rig_var("LAB_TERMINAL_IMAGE")
}

const FAKE_KEY: &str =
    "-----BEGIN OPENSSH PRIVATE KEY-----\nZG9ja2VydGVzdC1ub3QtYS1yZWFsLWtleQ==\n-----END OPENSSH PRIVATE KEY-----";

/// GET `url`, returning the status code.
async fn http_status(url: &str, auth: Option<(&str, &str)>) -> Result<u16, reqwest::Error> {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(3)).build()?;
    let mut req = client.get(url);
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    Ok(req.send().await?.status().as_u16())
}

/// One file out of a container, through Docker's archive API: (mode, uid, contents).
async fn read_file(docker: &bollard::Docker, container: &str, path: &str) -> (u32, u64, Vec<u8>) {
    let options = DownloadFromContainerOptions { path: path.into() };
    let chunks: Vec<Vec<u8>> =
        docker.download_from_container(container, Some(options)).map_ok(|b| b.to_vec()).try_collect().await.unwrap();
    let tar_bytes: Vec<u8> = chunks.concat();
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let (mode, uid) = (entry.header().mode().unwrap(), entry.header().uid().unwrap());
    let mut contents = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut contents).unwrap();
    (mode, uid, contents)
}

#[tokio::test]
async fn image_presence_without_pull() {
    if !in_rig("image_presence_without_pull") {
        return;
    }
    let docker = client();
    docker.ping().await.unwrap();
    assert!(docker.image_present(&image()).await.unwrap(), "{} missing on the rig", image());
    assert!(!docker.image_present("dockertest/absent:none").await.unwrap());
    let err = docker.ensure_image("dockertest/absent:none", false).await.unwrap_err();
    assert!(matches!(err, DockerError::ImageMissing { .. }), "{err}");
    assert!(err.to_string().contains("dockertest/absent:none"), "{err}");
}

#[tokio::test]
async fn container_lifecycle_with_uploaded_key() {
    if !in_rig("container_lifecycle_with_uploaded_key") {
        return;
    }
    let docker = client();
    let name = format!("dockertest-backend-{}", std::process::id());
    let _cleanup = Cleanup(name.clone());
    let run_label = format!("{}", std::process::id());
    let spec = ContainerSpec {
        name: name.clone(),
        image: image(),
        entrypoint: Some(vec!["ttyd".into()]),
        cmd: ["--port", "7681", "--credential", "ann:pw", "ssh", "-i", "/lab/ssh/id", "--", "127.0.0.1"]
            .map(String::from)
            .to_vec(),
        labels: BTreeMap::from([("lab.managed".into(), "true".into()), ("dockertest.run".into(), run_label.clone())]),
        publish: vec![PortPublish { container_port: 7681, host_ip: "127.0.0.1".into(), host_port: None }],
        expose: vec![7681],
        ..Default::default()
    };
    let t = Instant::now();
    let id = docker.create_container(&spec).await.unwrap();
    let key =
        UploadFile { path: "/lab/ssh/id".into(), contents: FAKE_KEY.as_bytes().to_vec(), mode: 0o600, uid: 0, gid: 0 };
    docker.upload_files(&id, &[key], false).await.unwrap();
    docker.start_container(&id).await.unwrap();
    let info = docker.inspect_container(&name).await.unwrap().unwrap();
    assert!(info.running, "{info:?}");
    assert_eq!(info.id, id);
    assert_eq!(info.labels["lab.managed"], "true");
    let found = docker.find_by_label("dockertest.run", &run_label).await.unwrap();
    assert_eq!(found, vec![(id.clone(), name.clone())]);

    // ttyd answers on its container address and on the published loopback port.
    let ip = info.networks.values().flatten().next().copied().expect("container address");
    let port = info.published[0].host_port.expect("published port");
    let mut status = None;
    for _ in 0..50 {
        if let Ok(code) = http_status(&format!("http://{ip}:7681/"), Some(("ann", "pw"))).await {
            status = Some(code);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("ttyd HTTP {status:?} after {:?}", t.elapsed());
    assert_eq!(status, Some(200));
    assert_eq!(http_status(&format!("http://127.0.0.1:{port}/"), Some(("ann", "pw"))).await.unwrap(), 200);
    assert_eq!(http_status(&format!("http://{ip}:7681/"), Some(("ann", "wrong"))).await.unwrap(), 401);
    assert_eq!(http_status(&format!("http://{ip}:7681/"), None).await.unwrap(), 401);

    // The key: 0600, root's, in a 0700 directory, and nowhere in `docker inspect`.
    let raw = bollard::Docker::connect_with_unix(&rig_var("DOCKER_HOST"), 30, bollard::API_DEFAULT_VERSION).unwrap();
    let (mode, uid, contents) = read_file(&raw, &id, "/lab/ssh/id").await;
    assert_eq!((mode & 0o7777, uid, contents.as_slice()), (0o600, 0, FAKE_KEY.as_bytes()));
    let (dir_mode, _, _) = read_file(&raw, &id, "/lab/ssh").await;
    assert_eq!(dir_mode & 0o7777, 0o700);
    let inspect_json = serde_json::to_string(&raw.inspect_container(&id, None).await.unwrap()).unwrap();
    assert!(!inspect_json.contains("ZG9ja2VydGVzdC1ub3QtYS1yZWFsLWtleQ"), "key leaked into docker inspect");

    // Stop with a grace period, remove; both idempotent.
    docker.stop_container(&id, Duration::from_secs(5)).await.unwrap();
    assert!(!docker.inspect_container(&id).await.unwrap().unwrap().running);
    docker.stop_container(&id, Duration::from_secs(5)).await.unwrap();
    assert!(docker.remove_container(&id).await.unwrap());
    assert!(!docker.remove_container(&id).await.unwrap());
    assert!(docker.inspect_container(&id).await.unwrap().is_none());
}

fn resource() -> TerminalResource {
    let settings = Settings { docker_host: Some(rig_var("DOCKER_HOST")), ..Default::default() };
    TerminalResource::new(ProviderHandle::with_settings(settings))
}

/// A planned state as the protocol layer would hand it over (defaults filled).
fn planned(name: &str, target_port: i64) -> TerminalState {
    TerminalState {
        id: Attr::Unknown,
        name: Attr::Known(name.into()),
        // The rig's docker bridge gateway: the test listens there as a stand-in SSH port.
        target_host: Attr::Known(rig_var("LAB_DOCKER_CIDR").replace(".0/24", ".1")),
        target_port: Attr::Known(target_port),
        ssh_user: Attr::Known("student".into()),
        ssh_private_key: Attr::Known(FAKE_KEY.into()),
        image: Attr::Known(image()),
        pull_image: Attr::Known(false),
        traefik: Attr::Known(false),
        traefik_entrypoint: Attr::Known("websecure".into()),
        traefik_tls: Attr::Known(true),
        publish: Attr::Known(Publish { host_ip: Attr::Known("127.0.0.1".into()), host_port: Attr::Null }),
        credential: Attr::Known(Credential { username: Attr::Known("ann".into()), password: Attr::Known("pw".into()) }),
        writable: Attr::Known(true),
        labels: Attr::Known(BTreeMap::from([("lab.session".into(), Attr::Known("dockertest".into()))])),
        running: Attr::Known(true),
        timeouts: Some(Timeouts { create: Attr::Known("20s".into()), delete: Attr::Null }),
        url: Attr::Unknown,
        ready: Attr::Unknown,
        ..Default::default()
    }
}

#[tokio::test]
async fn terminal_resource_create_read_stop_start_import_delete() {
    if !in_rig("terminal_resource_create_read_stop_start_import_delete") {
        return;
    }
    let ssh_stand_in = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let ssh_port = ssh_stand_in.local_addr().unwrap().port();
    let res = resource();
    let ctx = OpContext::default();
    let name = format!("dockertest-res-{}", std::process::id());
    let _cleanup = Cleanup(name.clone());

    let t = Instant::now();
    let state = res.create(planned(&name, i64::from(ssh_port)), &ctx).await.unwrap();
    println!("create -> ready in {:?}: {:?}", t.elapsed(), state.url);
    assert_eq!(state.ready, Attr::Known(true));
    let id = state.id.known().unwrap().clone();
    let url = state.url.known().unwrap().clone();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(http_status(&url, Some(("ann", "pw"))).await.unwrap(), 200);
    assert_eq!(http_status(&url, Some(("ann", "nope"))).await.unwrap(), 401);

    // Read: unchanged, then stopped out of band shows `running = false`.
    let read = res.read(state.clone(), &ctx).await.unwrap().unwrap();
    assert_eq!((read.running.clone(), read.ready.clone()), (Attr::Known(true), Attr::Known(true)));
    assert_eq!(read.labels, state.labels);
    let docker = client();
    docker.stop_container(&id, Duration::from_secs(2)).await.unwrap();
    let read = res.read(state.clone(), &ctx).await.unwrap().unwrap();
    assert_eq!((read.running.clone(), read.ready.clone()), (Attr::Known(false), Attr::Known(false)));
    // Update back to running: started in place and ready again.
    let updated = res.update(read.clone(), state.clone(), &ctx).await.unwrap();
    assert_eq!(updated.ready, Attr::Known(true));
    assert_eq!(updated.id, state.id);

    // Import by name rebuilds the state (the key stays unknown to it).
    let imported = res.import(&name, &ctx).await.unwrap().unwrap();
    assert_eq!(imported.id, state.id);
    assert_eq!(imported.target_port, Attr::Known(i64::from(ssh_port)));
    assert_eq!(imported.credential, state.credential);
    assert_eq!(imported.labels, state.labels);
    assert_eq!(imported.ssh_private_key, Attr::Null);

    // Delete, twice (idempotent); afterwards read says gone.
    res.delete(updated.clone(), &ctx).await.unwrap();
    res.delete(updated.clone(), &ctx).await.unwrap();
    assert!(res.read(updated, &ctx).await.unwrap().is_none());
    assert!(docker.find_by_label("lab.terminal", &name).await.unwrap().is_empty());
}

#[tokio::test]
async fn terminal_create_rolls_back_when_ssh_target_is_closed() {
    if !in_rig("terminal_create_rolls_back_when_ssh_target_is_closed") {
        return;
    }
    // Bind then drop: a port nobody listens on.
    let closed_port = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap().local_addr().unwrap().port();
    let name = format!("dockertest-rb-{}", std::process::id());
    let _cleanup = Cleanup(name.clone());
    let mut state = planned(&name, i64::from(closed_port));
    state.timeouts = Some(Timeouts { create: Attr::Known("3s".into()), delete: Attr::Null });
    let err = resource().create(state, &OpContext::default()).await.unwrap_err();
    let text = format!("{:?}", err.0);
    assert!(text.contains("did not become ready") && text.contains("SSH port"), "{text}");
    assert!(client().inspect_container(&name).await.unwrap().is_none(), "container left behind");
}

#[tokio::test]
async fn terminal_on_a_user_network_with_traefik_labels() {
    if !in_rig("terminal_on_a_user_network_with_traefik_labels") {
        return;
    }
    let network = format!("dockertest-net-{}", std::process::id());
    let made = Command::new("docker")
        .args(["network", "create", &network])
        .env("DOCKER_HOST", rig_var("DOCKER_HOST"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let name = format!("dockertest-tr-{}", std::process::id());
    let _cleanup = Cleanup(name.clone());
    let ssh_stand_in = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let mut state = planned(&name, i64::from(ssh_stand_in.local_addr().unwrap().port()));
    state.publish = Attr::Null;
    state.credential = Attr::Null;
    state.network = Attr::Known(network.clone());
    state.traefik = Attr::Known(true);
    state.hostname = Attr::Known("lab-dockertest.lab.localhost".into());
    let res = resource();
    let ctx = OpContext::default();
    let created = res.create(state, &ctx).await;
    let info = client().inspect_container(&name).await.unwrap();
    res.delete(created.as_ref().unwrap().clone(), &ctx).await.unwrap();
    let removed = Command::new("docker")
        .args(["network", "rm", &network])
        .env("DOCKER_HOST", rig_var("DOCKER_HOST"))
        .output()
        .unwrap();
    let created = created.unwrap();
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    // Routed URL; readiness was checked on the container's address on the user network.
    assert_eq!(created.url, Attr::Known("https://lab-dockertest.lab.localhost".into()));
    assert_eq!(created.ready, Attr::Known(true));
    let info = info.unwrap();
    assert!(info.networks.contains_key(&network), "{:?}", info.networks);
    assert_eq!(info.labels["traefik.docker.network"], network);
    assert_eq!(info.labels[&format!("traefik.http.routers.{name}.rule")], "Host(`lab-dockertest.lab.localhost`)");
    assert_eq!(info.labels[&format!("traefik.http.services.{name}.loadbalancer.server.port")], "7681");
}
