//! `examples/idle-stop` through the real terraform, in the rig, with the session records in a real
//! Knot (RFC 2136, in the rig's netns): two students, ada and bob. bob keeps a browser on his URL;
//! ada never comes. Once ada's session is older than the idle limit, the scheduled apply stops her
//! VM (libvirt says `shut off`) and keeps bob's running. Then ada opens her URL (her VM down, her
//! terminal up): the next apply starts her VM again, and her terminal reconnects to it by itself.
//! Her `until` passed: the next apply removes her session, VM and terminal. Destroy leaves nothing.
//!
//! `flock /tmp/lab-boot.lock cargo test --test acc_idle_stop -- --nocapture` (rig up; boots 2 VMs).

#[path = "../tests/support/knot.rs"]
mod knot;
mod support;

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use knot::{KEY_NAME, Knot, TUNNEL_TARGET, ZONE};
use serde_json::{Value, json};
use support::{DestroyOnDrop, Workspace, browser_check_in, docker, domain_exists, plan_counts, rig_exec, rig_var};

const FUTURE: &str = "2099-06-30T16:00:00Z";
const PAST: &str = "2020-01-31T12:00:00Z";
const IDLE_LIMIT_S: u64 = 40;

fn out_dir() -> PathBuf {
    support::out_dir(env!("CARGO_TARGET_TMPDIR"), "acc-idle-stop")
}

fn roster(ada_until: &str) -> String {
    format!("email,name,until\nada@example.edu,Ada,{ada_until}\nbob@example.edu,Bob,{FUTURE}\n")
}

/// libvirt's own word on a domain (`running`, `shut off`), not the provider's.
fn domstate(name: &str) -> String {
    let out = rig_exec(&["virsh", "-q", "domstate", name]);
    assert!(out.status.success(), "virsh domstate {name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The browser check of one student in a thread: it holds at its `hold` step until released.
fn browser(case: Value, name: &str) -> JoinHandle<Vec<Value>> {
    let out = out_dir();
    let file = out.join(format!("{name}-cases.json"));
    std::fs::write(&file, serde_json::to_string(&json!([case])).unwrap()).unwrap();
    std::thread::spawn(move || {
        browser_check_in(
            &[],
            "exec",
            &[("LAB_HOST_RESOLVER_RULES", &format!("MAP *.{ZONE} 127.0.0.1"))],
            &file,
            &out,
            0,
            1,
        )
    })
}

fn hold_file(name: &str, hold: &str, what: &str) -> PathBuf {
    out_dir().join(format!("{name}.{hold}.{what}"))
}

fn wait_holding(path: &Path, browser: &JoinHandle<Vec<Value>>) {
    let t = Instant::now();
    while !path.exists() {
        assert!(!browser.is_finished(), "the browser check ended before {}", path.display());
        assert!(t.elapsed() < Duration::from_secs(400), "the browser did not reach {}", path.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_students_vms_stop_and_start_again_when_they_come_back() {
    let knot = Knot::start_in(Some(&rig_var("LAB_NETNS"))).await;
    let ws = Workspace::example_in_rig("idle-stop");
    let run_id = format!("{:x}", std::process::id());
    let course = format!("idle{run_id}");
    let port = 18900 + (std::process::id() % 90);
    ws.write(
        "dns_override.tf",
        &format!(
            r#"provider "lab" {{
  domain = "{ZONE}"
  dns {{
    rfc2136 {{
      server     = "127.0.0.1:{}"
      zone       = "{ZONE}"
      key_name   = "{KEY_NAME}"
      key_secret = "{}"
      target     = "{TUNNEL_TARGET}"
    }}
  }}
}}
"#,
            knot.port, knot.secret
        ),
    );
    let key = rig_var("LAB_SSH_KEY");
    ws.write(
        "terraform.tfvars",
        &format!(
            "course = \"{course}\"\nroster_file = \"roster.csv\"\nidle_limit = \"{IDLE_LIMIT_S}s\"\n\
             base_image = \"{}\"\nkernel = \"{}\"\ninitrd = \"{}\"\ncmdline = \"{}\"\nnetwork = \"{}\"\n\
             domain_type = \"{}\"\nssh_private_key_file = \"{key}\"\nssh_public_key_file = \"{key}.pub\"\n\
             terminal_image = \"{}\"\ngateway_image = \"{}\"\ngateway_port = {port}\nmemory_mb = 512\n",
            rig_var("LAB_BASE_IMAGE"),
            rig_var("LAB_KERNEL"),
            rig_var("LAB_INITRD"),
            rig_var("LAB_CMDLINE"),
            rig_var("LAB_NETWORK"),
            rig_var("LAB_DOMAIN_TYPE"),
            rig_var("LAB_TERMINAL_IMAGE"),
            rig_var("LAB_GATEWAY_IMAGE"),
        ),
    );
    ws.write("roster.csv", &roster(FUTURE));
    let guard = DestroyOnDrop(&ws);
    let (ada_vm, bob_vm) = (format!("{course}-ada"), format!("{course}-bob"));

    let created = Instant::now();
    ws.apply(&[]);
    let urls = ws.output_json()["urls"]["value"].clone();
    let students = ws.output_json()["students"]["value"].clone();
    assert_eq!(students["ada@example.edu"]["running"], true, "{students}");
    assert_eq!(students["bob@example.edu"]["running"], true, "{students}");

    // bob stays: a browser on his URL, held open across the scheduled run.
    let bob_url = urls["bob@example.edu"].as_str().expect("bob's url").to_string();
    for what in ["holding", "release"] {
        let _ = std::fs::remove_file(hold_file("bob", "away", what));
        let _ = std::fs::remove_file(hold_file("ada", "back", what));
    }
    let bob = browser(json!({ "name": "bob", "url": bob_url, "expect": bob_vm, "steps": [{ "hold": "away" }] }), "bob");
    wait_holding(&hold_file("bob", "away", "holding"), &bob);
    let idle_limit = Duration::from_secs(IDLE_LIMIT_S + 5);
    if let Some(left) = idle_limit.checked_sub(created.elapsed()) {
        std::thread::sleep(left);
    }

    // The scheduled run: ada (never came) is away, bob is here.
    let t = Instant::now();
    ws.apply(&[]);
    println!("scheduled apply (stop ada): {:.1} s", t.elapsed().as_secs_f64());
    let students = ws.output_json()["students"]["value"].clone();
    std::fs::write(hold_file("bob", "away", "release"), "").unwrap();
    assert_eq!(students["ada@example.edu"]["idle"], true, "{students}");
    assert_eq!(students["ada@example.edu"]["running"], false, "{students}");
    assert_eq!(students["bob@example.edu"]["idle"], false, "{students}");
    assert_eq!(students["bob@example.edu"]["clients"], 1, "{students}");
    assert_eq!(domstate(&ada_vm), "shut off");
    assert_eq!(domstate(&bob_vm), "running");
    let results = bob.join().expect("bob's browser");
    assert_eq!(results[0]["hostname_found"], true, "{}", results[0]);

    // ada comes back: her terminal answers (VM down), the next run starts her VM, and her session
    // reconnects to it by itself.
    let ada_url = urls["ada@example.edu"].as_str().expect("ada's url").to_string();
    let steps = json!([
        { "hold": "back" },
        { "match": r"\$\s*$", "timeout_s": 180 },
        { "type": "hostname" },
        { "line": ada_vm },
    ]);
    let ada = browser(json!({ "name": "ada", "url": ada_url, "no_prompt": true, "steps": steps }), "ada");
    wait_holding(&hold_file("ada", "back", "holding"), &ada);
    let t = Instant::now();
    ws.apply(&[]);
    println!("scheduled apply (ada is back): {:.1} s", t.elapsed().as_secs_f64());
    std::fs::write(hold_file("ada", "back", "release"), "").unwrap();
    let students = ws.output_json()["students"]["value"].clone();
    assert_eq!(students["ada@example.edu"]["running"], true, "{students}");
    assert_eq!(students["ada@example.edu"]["clients"], 1, "{students}");
    assert_eq!(domstate(&ada_vm), "running");
    let results = ada.join().expect("ada's browser");
    println!("ada's steps: {}", results[0]["steps"]);

    // ada's time is up: her session, VM and terminal go; bob's stay.
    ws.write("roster.csv", &roster(PAST));
    let plan = ws.terraform(&["plan", "-no-color"]).ok("plan after ada's until");
    assert_eq!(plan_counts(&plan.stdout).2, 3, "{}", plan.stdout);
    ws.apply(&[]);
    // bob left when his browser check ended, so by now he may be idle too (his VM stopped, as
    // the first scheduled run did to ada's): what must hold is that his session stays.
    let students = ws.output_json()["students"]["value"].clone();
    assert!(students["ada@example.edu"].is_null(), "{students}");
    assert_eq!(students["bob@example.edu"]["vm"], bob_vm.as_str(), "{students}");
    assert!(!domain_exists(&ada_vm), "ada's VM is still defined after her session ended");
    let bob_state = domstate(&bob_vm);
    assert!(["running", "shut off"].contains(&bob_state.as_str()), "bob's VM: {bob_state}");

    std::mem::forget(guard);
    ws.destroy();
    let left = docker(&["ps", "-aq", "--filter", &format!("label=lab.course={course}")]);
    assert!(left.status.success(), "docker ps: {}", String::from_utf8_lossy(&left.stderr));
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty(), "terminals left after destroy");
    let domains = rig_exec(&["virsh", "-q", "list", "--all", "--name"]);
    assert!(domains.status.success(), "virsh list: {}", String::from_utf8_lossy(&domains.stderr));
    assert!(!String::from_utf8_lossy(&domains.stdout).contains(&course), "domains left after destroy");
}
