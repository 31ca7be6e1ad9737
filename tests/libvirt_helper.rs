//! The provider/helper split (src/backends/libvirt/mod.rs): the provider binary must not link
//! libvirt, and the helper must carry calls, answers, libvirt's errors and its own death across
//! the pipe. libvirt's built-in `test:///default` driver stands in for a daemon here: these tests
//! are about the process boundary; tests/libvirt_backend.rs drives the rig's real libvirtd.

use std::path::Path;
use std::process::Command;

use terraform_provider_lab::backends::libvirt::{Libvirt, LibvirtError, VmState};

const PROVIDER: &str = env!("CARGO_BIN_EXE_terraform-provider-lab");
const HELPER: &str = env!("CARGO_BIN_EXE_terraform-provider-lab-libvirt");

fn needed_libraries(binary: &str) -> Vec<String> {
    let out = Command::new("readelf").args(["--dynamic", binary]).output().expect("readelf (binutils) runs");
    assert!(out.status.success(), "readelf failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1).map(|s| s.trim_end_matches(']').to_string()))
        .collect()
}

#[test]
fn only_the_helper_links_libvirt() {
    let provider = needed_libraries(PROVIDER);
    assert!(!provider.is_empty(), "no NEEDED entries read from {PROVIDER}");
    assert!(!provider.iter().any(|l| l.starts_with("libvirt")), "the provider links libvirt: {provider:?}");
    let helper = needed_libraries(HELPER);
    assert!(helper.iter().any(|l| l.starts_with("libvirt.so")), "the helper does not link libvirt: {helper:?}");
}

#[tokio::test]
async fn calls_answers_and_libvirt_errors_cross_the_pipe() {
    let lv = Libvirt::connect_with(Path::new(HELPER), "test:///default").await.expect("connect");
    assert!(lv.is_alive().await);
    let host = lv.host_info().await.unwrap();
    assert!(host.cpus > 0 && host.total_memory_kib > 0, "{host:?}");
    // The test driver starts with one running domain named "test".
    assert_eq!(lv.domain_names().await.unwrap(), vec!["test".to_string()]);
    let test = lv.lookup("test").await.unwrap().expect("domain test");
    assert_eq!(test.state, VmState::Running);
    assert_eq!(test.summary.name, "test");
    assert!(lv.lookup_uuid(&test.summary.uuid).await.unwrap().is_some());
    // Missing things are answers, not errors...
    assert!(lv.lookup("no-such-vm").await.unwrap().is_none());
    assert!(!lv.network_exists("no-such-net").await.unwrap());
    lv.destroy("no-such-vm").await.expect("destroying a missing domain is a no-op");
    lv.undefine("no-such-vm").await.expect("undefining a missing domain is a no-op");
    // ...unless the call needs the domain: then libvirt's message comes back with our context.
    match lv.start("no-such-vm").await {
        Err(LibvirtError::Call { what, message }) => {
            assert_eq!(what, "starting domain no-such-vm");
            assert!(message.contains("Domain not found"), "{message}");
        }
        other => panic!("expected a libvirt error, got {other:?}"),
    }
    // Concurrent calls each get their own answer.
    let answers =
        futures::future::join_all((0..20).map(|i| {
            let lv = lv.clone();
            async move {
                if i % 2 == 0 { lv.lookup("test").await.map(|d| d.is_some()) } else { lv.network_exists("x").await }
            }
        }))
        .await;
    for (i, a) in answers.into_iter().enumerate() {
        assert_eq!(a.unwrap(), i % 2 == 0, "call {i}");
    }
}

#[tokio::test]
async fn a_bad_uri_fails_the_connect_with_libvirts_reason() {
    let err = Libvirt::connect_with(Path::new(HELPER), "nosuchdriver:///x").await.err().expect("connect fails");
    let text = err.to_string();
    assert!(text.starts_with("connecting to libvirt at nosuchdriver:///x: "), "{text}");
}

#[tokio::test]
async fn a_missing_helper_is_named_in_the_error() {
    let err = Libvirt::connect_with(Path::new("/nonexistent/terraform-provider-lab-libvirt"), "test:///default")
        .await
        .err()
        .expect("connect fails");
    let text = err.to_string();
    assert!(text.contains("/nonexistent/terraform-provider-lab-libvirt") && text.contains("cannot start it"), "{text}");
}

#[tokio::test]
async fn the_helper_ignores_ctrl_c_and_a_dead_one_is_replaced_instead_of_hanging() {
    let lv = Libvirt::connect_with(Path::new(HELPER), "test:///default").await.expect("connect");
    let pid = lv.helper_pid().expect("helper pid");
    // Ctrl-C in the terminal must not reach the helper: the provider still needs it to roll back.
    let (helper_group, our_group) = unsafe { (libc::getpgid(pid as i32), libc::getpgid(0)) };
    assert!(helper_group > 0 && helper_group != our_group, "helper in our process group {our_group}");
    let within = |secs| std::time::Duration::from_secs(secs);

    // A start the helper died under is looked at again on a new helper: the test driver's domain
    // `test` runs there, so the start counts as done (not repeated, not an error).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    tokio::time::timeout(within(10), lv.start("test")).await.expect("no hang").expect("start after reconnect");
    let second = lv.helper_pid().expect("a new helper");
    assert_ne!(second, pid, "the dead helper was not replaced");
    assert!(lv.is_alive().await);

    // A call that is safe to repeat is made again on a new helper and answers.
    assert_eq!(unsafe { libc::kill(second as i32, libc::SIGKILL) }, 0);
    let host = tokio::time::timeout(within(10), lv.host_info()).await.expect("no hang").expect("answered");
    assert!(host.cpus > 0, "{host:?}");
    assert_ne!(lv.helper_pid(), Some(second));
    // The replaced helpers are gone (killed when the connection let go of them), not orphaned.
    tokio::time::sleep(within(1)).await;
    for dead in [pid, second] {
        let stat = std::fs::read_to_string(format!("/proc/{dead}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z "), "helper {dead} still runs: {stat}");
    }
}

/// Pools and volumes cross the pipe too: the test driver's `default-pool` (a dir pool over
/// `/default-pool`, held in memory) takes a volume, finds it by name and path, and deletes it.
#[tokio::test]
async fn volumes_are_made_found_and_deleted_through_the_helper() {
    use terraform_provider_lab::backends::volume_xml::VolumeSpec;
    let lv = Libvirt::connect_with(Path::new(HELPER), "test:///default").await.expect("connect");
    let pool = lv.pool("default-pool").await.unwrap().expect("the test driver's pool");
    assert_eq!(pool.summary.kind, "dir");
    assert!(lv.pool("no-such-pool").await.unwrap().is_none());
    let spec = VolumeSpec {
        name: "acc-<vol>&.img".into(),
        capacity_bytes: 1 << 20,
        format: "raw".into(),
        backing: None,
        mode: None,
    };
    let made = lv.create_volume("default-pool", &spec).await.expect("create volume");
    assert_eq!(made.summary.name, spec.name);
    assert_eq!(made.summary.capacity_bytes, 1 << 20);
    let found = lv.volume("default-pool", &spec.name).await.unwrap().expect("found by name");
    assert_eq!(found.summary.path, made.summary.path);
    let by_path = lv.volume_by_path(&made.summary.path).await.unwrap().expect("found by path");
    assert_eq!((by_path.pool.as_str(), by_path.summary.name.as_str()), ("default-pool", spec.name.as_str()));
    lv.delete_volume("default-pool", &spec.name).await.expect("delete");
    assert!(lv.volume("default-pool", &spec.name).await.unwrap().is_none());
    lv.delete_volume("default-pool", &spec.name).await.expect("deleting a gone volume is fine");
}
