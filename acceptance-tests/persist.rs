//! Terminal sessions that outlive the connection, through terraform and the student's URL
//! (`http://lab-<id>.lab.localhost:<port>` behind a `lab_gateway`, in headless Chromium): the
//! student types `echo marker; sleep 600 &`; a second tab shows the same screen (and the terminal
//! then reports 2 clients and a `last_activity_at` from this run, with an empty re-plan); the page
//! is closed and the URL opened again: the marker is on the screen and `jobs` shows the sleep still
//! running; the ssh connection is killed from inside the VM: the terminal says so, reconnects, and
//! the marker is still in the session's history (tmux). After the browser: 0 clients.
//!
//! `flock /tmp/lab-boot.lock cargo test --test acc_persist -- --nocapture` (rig up; boots 1 VM).
//! Screenshots: $LAB_TEST_OUT or target/tmp/acc-persist/.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use support::{DestroyOnDrop, Workspace, browser_check, docker, docker_ok, rig_var};

fn out_dir() -> PathBuf {
    support::out_dir(env!("CARGO_TARGET_TMPDIR"), "acc-persist")
}

/// Refreshes the state only (what a scheduled job or the next plan sees) and returns the output.
fn refreshed_student(ws: &Workspace) -> serde_json::Value {
    ws.terraform(&["apply", "-refresh-only", "-auto-approve", "-no-color"]).ok("apply -refresh-only");
    ws.output_json()["student"]["value"].clone()
}

fn wait_for_file(path: &Path, limit: Duration, browser: &std::thread::JoinHandle<Vec<serde_json::Value>>) {
    let t = Instant::now();
    while !path.exists() {
        assert!(!browser.is_finished(), "the browser check ended before reaching {}", path.display());
        assert!(t.elapsed() < limit, "the browser did not reach {} within {limit:?}", path.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_session_outlives_its_page_and_its_ssh_connection() {
    let ws = Workspace::in_rig("persist");
    let run_id = format!("{:x}", std::process::id());
    let key = rig_var("LAB_SSH_KEY");
    let overlays = ws.path().join("overlays");
    std::fs::create_dir_all(&overlays).expect("overlay dir");
    let http_port = 18600 + (std::process::id() % 300);
    let tfvars = format!(
        "run_id = \"{run_id}\"\nbase_image = \"{}\"\nkernel = \"{}\"\ninitrd = \"{}\"\ncmdline = \"{}\"\n\
         network = \"{}\"\ndomain_type = \"{}\"\nssh_private_key_file = \"{key}\"\n\
         ssh_public_key_file = \"{key}.pub\"\noverlay_dir = \"{}\"\nterminal_image = \"{}\"\n\
         gateway_image = \"{}\"\nhttp_port = {http_port}\n",
        rig_var("LAB_BASE_IMAGE"),
        rig_var("LAB_KERNEL"),
        rig_var("LAB_INITRD"),
        rig_var("LAB_CMDLINE"),
        rig_var("LAB_NETWORK"),
        rig_var("LAB_DOMAIN_TYPE"),
        overlays.display(),
        rig_var("LAB_TERMINAL_IMAGE"),
        rig_var("LAB_GATEWAY_IMAGE"),
    );
    ws.write("terraform.tfvars", &tfvars);
    let guard = DestroyOnDrop(&ws);

    let t0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let t = Instant::now();
    ws.apply(&[]);
    println!("terraform apply: {:.1} s", t.elapsed().as_secs_f64());
    let student = ws.output_json()["student"]["value"].clone();
    assert_eq!(student["persistent"], true, "persistent by default: {student}");
    // Nobody has opened the URL yet: no session, no clients.
    assert_eq!(student["clients"], 0, "{student}");
    assert_eq!(student["last_activity_at"], serde_json::Value::Null, "{student}");
    let container = student["terminal"].as_str().expect("terminal name").to_string();

    let marker = format!("marker-{run_id}");
    let back = format!("back-{run_id}");
    let steps = json!([
        { "type": format!("echo {marker}; sleep 600 &") },
        { "line": marker },
        { "second": true },
        { "line": marker },
        { "hold": "two-tabs" },
        { "close_second": true },
        { "reopen": true },
        { "line": marker },
        { "type": "jobs" },
        { "match": r"Running\s+sleep 600" },
        // Drops the ssh connection from the VM's side (sshd's session process is the shell's parent).
        { "type": "kill -9 $PPID" },
        { "match": r"\[lab\] The connection to the VM ended[^]*\$\s*$" },
        { "type": format!("echo {back}") },
        { "line": back },
    ]);
    let cases = json!([{ "name": "ann", "url": student["url"], "expect": student["vm"], "steps": steps }]);
    let cases_file = ws.path().join("browser-cases.json");
    std::fs::write(&cases_file, serde_json::to_string(&cases).unwrap()).unwrap();
    let out = out_dir();
    let holding = out.join("ann.two-tabs.holding");
    let release = out.join("ann.two-tabs.release");
    let _ = std::fs::remove_file(&holding);
    let _ = std::fs::remove_file(&release);
    let browser = {
        let (cases_file, out) = (cases_file.clone(), out.clone());
        std::thread::spawn(move || browser_check(&cases_file, &out, t0.as_millis(), 1))
    };

    // Two tabs on the session: the terminal counts both, and knows the student just typed.
    wait_for_file(&holding, Duration::from_secs(400), &browser);
    let seen = refreshed_student(&ws);
    std::fs::write(&release, "").expect("release the browser");
    assert_eq!(seen["clients"], 2, "two tabs open: {seen}");
    let last = seen["last_activity_at"].as_str().unwrap_or_else(|| panic!("no last_activity_at: {seen}"));
    let last = time::OffsetDateTime::parse(last, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("last_activity_at `{last}` is not RFC 3339: {e}"));
    let now = time::OffsetDateTime::now_utc();
    assert!(
        last.unix_timestamp() >= t0.as_secs() as i64 && last <= now,
        "last_activity_at {last} is not within this run ({t0:?} .. {now})"
    );

    let results = browser.join().expect("browser thread");
    let r = &results[0];
    assert_eq!(r["hostname_found"], true, "{r}");
    println!("steps: {}", r["steps"]);

    // The reconnect kept the session's history: the marker, then the loop's message.
    let history = docker_ok(&[
        "exec",
        &container,
        "tmux",
        "-S",
        "/tmp/lab-tmux.sock",
        "capture-pane",
        "-p",
        "-S",
        "-",
        "-t",
        "lab",
    ]);
    let marker_at = history.lines().position(|l| l.trim() == marker);
    let message_at = history.lines().position(|l| l.contains("[lab] The connection to the VM ended"));
    assert!(
        matches!((marker_at, message_at), (Some(m), Some(n)) if m < n),
        "history lacks the marker before the reconnect message:\n{history}"
    );

    // The browser is gone: no clients (ttyd ends its tmux client when the websocket closes).
    let t = Instant::now();
    let gone = loop {
        let s = refreshed_student(&ws);
        if s["clients"] == 0 || t.elapsed() > Duration::from_secs(20) {
            break s;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(gone["clients"], 0, "after the browser closed: {gone}");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "re-plan not empty after activity changed:\n{}\n{}", plan.stdout, plan.stderr);

    std::mem::forget(guard);
    ws.destroy();
    let left = docker(&["ps", "-aq", "--filter", &format!("label=persist.run={run_id}")]);
    assert!(left.status.success(), "docker ps failed: {}", String::from_utf8_lossy(&left.stderr));
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty(), "terminal left after destroy");
}
