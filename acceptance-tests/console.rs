//! `lab_console` through the real terraform, inside the rig: a gateway (real Traefik), one real TCG
//! guest and its rescue console (ttyd running `virsh console` in the rig's lab/ttyd-virsh:1 image)
//! routed under `<hostname>/console/<token>/`. Headless Chromium opens the console URL and reaches
//! the guest's serial login prompt; the console path without the token, or with a wrong one, is
//! refused (404); the token is in no label, command line or log of the container; destroy leaves
//! no container or domain.
//!
//! Run: `acceptance-tests/rig.sh up`, then
//! `flock /tmp/lab-boot.lock cargo test --test acc_console -- --test-threads=1 --nocapture`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{DestroyOnDrop, Workspace, docker, docker_ok, domain_exists, repo_root, rig_var};

fn tfvars(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).expect("json string"))).collect()
}

#[test]
fn the_console_route_reaches_the_serial_login_prompt_and_needs_the_token() {
    let n = rand::random::<u32>() % 100_000;
    let name = format!("vmtest-cons{n}");
    let http_port = 18900 + (std::process::id() % 50) * 2;
    let ws = Workspace::in_rig("console");
    let vars = [
        ("name", name.clone()),
        ("base_image", rig_var("LAB_BASE_IMAGE")),
        ("kernel", rig_var("LAB_KERNEL")),
        ("initrd", rig_var("LAB_INITRD")),
        ("cmdline", rig_var("LAB_CMDLINE")),
        ("network", rig_var("LAB_NETWORK")),
        ("overlay_dir", format!("{}/vms", rig_var("LAB_CACHE"))),
        ("gateway_image", rig_var("LAB_GATEWAY_IMAGE")),
        ("console_image", rig_var("LAB_CONSOLE_IMAGE")),
    ];
    ws.write("terraform.tfvars", &(tfvars(&vars) + &format!("http_port = {http_port}\n")));
    let overlay = PathBuf::from(format!("{}/vms/{name}.qcow2", rig_var("LAB_CACHE")));
    let console = format!("{name}-console");

    let cleanup = DestroyOnDrop(&ws);
    let t = std::time::Instant::now();
    ws.apply(&[]);
    eprintln!("apply (gateway, VM to its lease, console routed): {:.1} s", t.elapsed().as_secs_f64());
    let url = ws.output_json()["url"]["value"].as_str().expect("console url").to_string();
    let token = url.trim_end_matches('/').rsplit('/').next().expect("token in url").to_string();
    assert_eq!(token.len(), 32, "{url}");
    assert!(url.starts_with(&format!("http://{name}.lab.localhost:{http_port}/console/")), "{url}");

    // The secret is nowhere Docker shows it.
    let inspect = docker_ok(&["inspect", &console]);
    assert!(!inspect.contains(&token), "the token is in `docker inspect` of the console");
    let logs = docker(&["logs", &console]);
    let logs = format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
    assert!(!logs.contains(&token), "the token is in the console's log:\n{logs}");

    let out_dir = support::out_dir(env!("CARGO_TARGET_TMPDIR"), "acc-console");
    let browser = Command::new(repo_root().join("acceptance-tests/rig.sh"))
        .args(["exec", "node"])
        .arg(repo_root().join("acceptance-tests/browser/console.mjs"))
        .arg(&url)
        .arg(&out_dir)
        .output()
        .expect("running the browser check");
    let stdout = String::from_utf8_lossy(&browser.stdout).replace(&token, "<token>");
    println!("{stdout}");
    assert!(browser.status.success(), "browser check failed\n{stdout}\n{}", String::from_utf8_lossy(&browser.stderr));
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!((result["no_token_status"].as_i64(), result["wrong_token_status"].as_i64()), (Some(404), Some(404)));

    let logs = docker(&["logs", &console]);
    let logs = format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
    assert!(!logs.contains(&token), "the token reached the console's log after use:\n{logs}");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after apply not empty:\n{}", plan.stdout);

    std::mem::forget(cleanup);
    ws.destroy();
    assert!(ws.state_list().is_empty(), "destroy left resources in state");
    let left = docker(&["inspect", &console]);
    assert!(!left.status.success(), "destroy left container {console}");
    assert!(
        String::from_utf8_lossy(&left.stderr).contains("No such"),
        "docker inspect failed otherwise: {}",
        String::from_utf8_lossy(&left.stderr)
    );
    assert!(!domain_exists(&name), "destroy left domain {name}");
    assert!(!overlay.exists(), "destroy left overlay {}", overlay.display());
}
