//! `lab_console` through the real terraform, inside the rig: a gateway (real Traefik), one real TCG
//! guest with a display, its rescue console (ttyd running `virsh console` in the rig's
//! lab/ttyd-virsh:1 image) routed under `<hostname>/console/<token>/`, and its graphical console
//! (noVNC + websockify in lab/novnc:1) under `<hostname>/vnc/<token>/`. Headless Chromium opens the
//! console URL and reaches the guest's serial login prompt; it opens the graphical console's URL,
//! noVNC connects, the canvas is not blank, and tesseract reads the guest's tty1 login prompt off
//! it. Either path without its token, or with a wrong one, is refused (404); the tokens are in no
//! label, command line or log of the containers; VNC itself listens on the hypervisor's loopback
//! only; destroy leaves no container or domain.
//!
//! Run: `acceptance-tests/rig.sh up`, then
//! `flock /tmp/lab-boot.lock cargo test --test acc_console -- --test-threads=1 --nocapture`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{DestroyOnDrop, Workspace, docker, docker_ok, domain_exists, repo_root, rig_var, virsh};

/// The token of a console URL (`.../<token>/`), checked to be 32 hex characters.
fn token_of(url: &str) -> String {
    let token = url.trim_end_matches('/').rsplit('/').next().expect("token in url").to_string();
    assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{url}");
    token
}

/// The container's inspect and log hold no token.
fn assert_secret_kept(container: &str, token: &str) {
    let inspect = docker_ok(&["inspect", container]);
    assert!(!inspect.contains(token), "the token is in `docker inspect` of {container}");
    let logs = docker(&["logs", container]);
    assert!(logs.status.success(), "docker logs {container}: {}", String::from_utf8_lossy(&logs.stderr));
    let logs = format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
    assert!(!logs.contains(token), "the token is in the log of {container}:\n{logs}");
}

/// A browser check script run in the rig on `url`: its one JSON line, with the token hidden.
fn browser_check(script: &str, url: &str, token: &str, out_dir: &std::path::Path) -> serde_json::Value {
    let browser = Command::new(repo_root().join("acceptance-tests/rig.sh"))
        .args(["exec", "node"])
        .arg(repo_root().join("acceptance-tests/browser").join(script))
        .arg(url)
        .arg(out_dir)
        .output()
        .expect("running the browser check");
    let stdout = String::from_utf8_lossy(&browser.stdout).replace(token, "<token>");
    println!("{stdout}");
    assert!(browser.status.success(), "{script} failed\n{stdout}\n{}", String::from_utf8_lossy(&browser.stderr));
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

/// The text tesseract reads in a picture (it runs on a file: no network).
fn ocr(picture: &str) -> String {
    let out = Command::new("tesseract").args([picture, "stdout", "--psm", "6"]).output().expect("running tesseract");
    assert!(out.status.success(), "tesseract {picture}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tfvars(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).expect("json string"))).collect()
}

#[test]
fn serial_and_graphical_consoles_reach_the_guest_and_need_their_tokens() {
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
        ("vnc_image", rig_var("LAB_VNC_IMAGE")),
    ];
    ws.write("terraform.tfvars", &(tfvars(&vars) + &format!("http_port = {http_port}\n")));
    let overlay = PathBuf::from(format!("{}/vms/{name}.qcow2", rig_var("LAB_CACHE")));
    let console = format!("{name}-console");
    let screen = format!("{name}-vnc");

    let cleanup = DestroyOnDrop(&ws);
    let t = std::time::Instant::now();
    ws.apply(&[]);
    eprintln!("apply (gateway, VM to its lease, both consoles routed): {:.1} s", t.elapsed().as_secs_f64());
    let url = ws.output_json()["url"]["value"].as_str().expect("console url").to_string();
    let token = token_of(&url);
    assert!(url.starts_with(&format!("http://{name}.lab.localhost:{http_port}/console/")), "{url}");
    let vnc_url = ws.output_json()["vnc_url"]["value"].as_str().expect("graphical console url").to_string();
    let vnc_token = token_of(&vnc_url);
    assert!(vnc_url.starts_with(&format!("http://{name}.lab.localhost:{http_port}/vnc/")), "{vnc_url}");
    assert_ne!(token, vnc_token);

    // The secrets are nowhere Docker shows them.
    assert_secret_kept(&console, &token);
    assert_secret_kept(&screen, &vnc_token);
    // VNC listens where the host keeps it private: the hypervisor's loopback (the bridge goes
    // through libvirt, not to this port).
    let display = virsh(&["domdisplay", &name]);
    assert!(display.status.success(), "virsh domdisplay: {}", String::from_utf8_lossy(&display.stderr));
    let display = String::from_utf8_lossy(&display.stdout).trim().to_string();
    assert!(display.starts_with("vnc://127.0.0.1:"), "the VM's VNC display is at {display}");

    let out_dir = support::out_dir(env!("CARGO_TARGET_TMPDIR"), "acc-console");
    let result = browser_check("console.mjs", &url, &token, &out_dir);
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!((result["no_token_status"].as_i64(), result["wrong_token_status"].as_i64()), (Some(404), Some(404)));

    let result = browser_check("vnc.mjs", &vnc_url, &vnc_token, &out_dir);
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["landed_on_novnc"], true, "{result}");
    let refused = ["no_token_status", "wrong_token_status", "wrong_token_socket_status"].map(|k| result[k].as_i64());
    assert_eq!(refused, [Some(404); 3], "{result}");
    let nonblank = result["canvas"]["nonblank_fraction"].as_f64().expect("nonblank_fraction");
    assert!(nonblank > 0.005, "the noVNC canvas is blank ({nonblank}): {result}");
    let text = ocr(result["ocr_image"].as_str().expect("ocr_image"));
    println!("text on the graphical console:\n{text}");
    // What the guest's tty1 shows (/etc/issue, then getty's prompt), read by OCR off the canvas.
    assert!(
        text.contains("Debian GNU/Linux 12") && text.contains("login:"),
        "no login prompt read off the graphical console:\n{text}"
    );

    assert_secret_kept(&console, &token);
    assert_secret_kept(&screen, &vnc_token);
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after apply not empty:\n{}", plan.stdout);

    std::mem::forget(cleanup);
    ws.destroy();
    assert!(ws.state_list().is_empty(), "destroy left resources in state");
    for container in [&console, &screen] {
        let left = docker(&["inspect", container]);
        assert!(!left.status.success(), "destroy left container {container}");
        assert!(
            String::from_utf8_lossy(&left.stderr).contains("No such"),
            "docker inspect failed otherwise: {}",
            String::from_utf8_lossy(&left.stderr)
        );
    }
    assert!(!domain_exists(&name), "destroy left domain {name}");
    assert!(!overlay.exists(), "destroy left overlay {}", overlay.display());
}
