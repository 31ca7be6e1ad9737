//! The instructor's side end to end, inside the rig: `terraform apply` of a `lab_gateway` with an
//! instructor credential, ann and bob (a session and a terminal each, aimed at stand-in SSH ports:
//! ann's answers with an SSH banner, so her "VM" runs; bob's does not). No VM boots. Then, through the gateway: the
//! class hostname refuses a missing or wrong credential (401) and answers the right one; only
//! the bcrypt hash is in the gateway's labels, never the password; a re-plan is empty (the hash
//! is kept). In Chromium, for each student: the watch route (`<url>/watch/`) refuses a missing or
//! wrong credential (401); a second page on it sees the student's typed text within 1 s (printed);
//! it cannot type into ann's session (read-only) and can into bob's (`watch_takeover`). Then the
//! class page lists both students with their states and refreshes itself; its screenshot is
//! saved. Destroy leaves no container or network.
//!
//! `cargo test --test acc_watch -- --nocapture` (rig up; no VM).
//! Screenshots: $LAB_TEST_OUT or target/tmp/acc-watch/.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use support::{DestroyOnDrop, Workspace, docker_ok, repo_root, rig_exec, rig_var};

fn out_dir() -> PathBuf {
    support::out_dir(env!("CARGO_TARGET_TMPDIR"), "acc-watch")
}

/// `curl` inside the rig's netns: the HTTP status, or the curl exit code as an error.
fn curl_status(args: &[&str]) -> Result<u16, String> {
    let mut all = vec!["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "40"];
    all.extend_from_slice(args);
    let out = rig_exec(&all);
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        code.parse().map_err(|_| format!("curl printed `{code}`"))
    } else {
        Err(format!("curl exit {:?} (status `{code}`): {}", out.status.code(), String::from_utf8_lossy(&out.stderr)))
    }
}

/// A stand-in SSH port inside the rig's netns: accepts, sends `banner` (none: "not answering" on
/// the class page; an SSH banner: "running") and closes.
struct Listener(std::process::Child);

impl Listener {
    fn start(port: u16, banner: &str) -> Self {
        let script = format!(
            "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',{port}))\ns.listen(128)\ns.settimeout(1)\nend=time.time()+900\n\
             while time.time()<end:\n  try:\n    c,_=s.accept()\n    c.sendall({banner:?}.encode())\n    \
             time.sleep(0.2)\n    c.close()\n  except OSError:\n    pass\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &rig_var("LAB_NETNS"), "python3", "-c", &script])
            .spawn()
            .expect("starting the stand-in listener");
        std::thread::sleep(std::time::Duration::from_millis(300));
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The watch browser check (`acceptance-tests/browser/watch.mjs`) inside the rig's netns.
fn watch_check(case_file: &std::path::Path, out: &std::path::Path) -> Vec<serde_json::Value> {
    let browser = Command::new(repo_root().join("acceptance-tests/rig.sh"))
        .args(["exec", "node"])
        .arg(repo_root().join("acceptance-tests/browser/watch.mjs"))
        .arg(case_file)
        .arg(out)
        .output()
        .expect("running the browser check");
    let stdout = String::from_utf8_lossy(&browser.stdout);
    println!("{stdout}");
    let results: Vec<serde_json::Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        browser.status.success() && !results.is_empty(),
        "browser check failed\n{stdout}\n{}",
        String::from_utf8_lossy(&browser.stderr)
    );
    results
}

#[test]
fn instructor_credential_and_class_page_through_the_gateway() {
    let ws = Workspace::in_rig("watch");
    let run_id = format!("{:x}", std::process::id());
    let gateway = format!("watchtest-{run_id}");
    let http_port = 18900 + (std::process::id() % 400) as u16;
    let stand_in_port = 23000 + (std::process::id() % 1000) as u16;
    let banner_port = stand_in_port + 1;
    let _stand_in = Listener::start(stand_in_port, "");
    let _banner = Listener::start(banner_port, "SSH-2.0-standin\r\n");
    let password = format!("pw-{:016x}", rand::random::<u64>());
    let key = rig_var("LAB_SSH_KEY");
    let tfvars = format!(
        "run_id = \"{run_id}\"\nssh_private_key_file = \"{key}\"\n\
         terminal_image = \"{}\"\ngateway_image = \"{}\"\nclass_page_image = \"{}\"\n\
         http_port = {http_port}\nstand_in_host = \"{}\"\nstand_in_port = {stand_in_port}\n\
         banner_port = {banner_port}\ninstructor_password = \"{password}\"\n",
        rig_var("LAB_TERMINAL_IMAGE"),
        rig_var("LAB_GATEWAY_IMAGE"),
        // A rig.env written by an older rig.sh lacks it; the name is rig.sh's.
        support::rig_vars_in(&support::rig_env_file())
            .remove("LAB_CLASS_PAGE_IMAGE")
            .unwrap_or_else(|| "lab/class-page:1".into()),
        rig_var("LAB_DOCKER_CIDR").replace(".0/24", ".1"),
    );
    ws.write("terraform.tfvars", &tfvars);
    let guard = DestroyOnDrop(&ws);

    let t0 = Instant::now();
    let apply = ws.terraform(&["apply", "-auto-approve", "-no-color", "-parallelism=10"]);
    assert_eq!(apply.code, 0, "terraform apply failed\n{}\n{}", apply.stdout, apply.stderr);
    println!("terraform apply: {:.1} s", t0.elapsed().as_secs_f64());
    assert!(!apply.stdout.contains(&password) && !apply.stderr.contains(&password), "the password was printed");

    let outputs = ws.output_json();
    let gw = &outputs["gateway"]["value"];
    assert_eq!(gw["ready"], true, "{gw}");
    let class_url = gw["class_url"].as_str().expect("class_url").to_string();
    assert_eq!(class_url, format!("http://class.lab.localhost:{http_port}"));
    let hash = gw["instructor_password_hash"].as_str().expect("hash").to_string();
    assert!(hash.starts_with("$2b$10$") && hash.len() == 60, "{hash}");

    // Only the hash is on the gateway; the password is nowhere in either container's config.
    for name in [gateway.clone(), format!("{gateway}-class")] {
        let inspect = docker_ok(&["inspect", &name]);
        assert!(!inspect.contains(&password), "{name}: the password is in its config");
    }
    let users = docker_ok(&[
        "inspect",
        "-f",
        &format!("{{{{index .Config.Labels \"traefik.http.middlewares.{gateway}-instructor.basicauth.users\"}}}}"),
        &gateway,
    ]);
    assert_eq!(users.trim(), format!("prof:{hash}"));

    // The class hostname: 401 without or with a wrong credential, Traefik's own `OK` with it.
    let ping = format!("{class_url}/ping");
    assert_eq!(curl_status(&[&ping]), Ok(401), "no credential");
    assert_eq!(curl_status(&["-u", "prof:wrong-password", &ping]), Ok(401), "wrong credential");
    assert_eq!(curl_status(&["-u", &format!("prof:{password}"), &ping]), Ok(200), "the credential");
    assert_eq!(curl_status(&[&format!("{class_url}/")]), Ok(401), "class page without credential");
    // The gateway's own container name as Host: no default router to Traefik itself.
    assert_eq!(curl_status(&["-H", &format!("Host: {gateway}"), &format!("http://127.0.0.1:{http_port}/")]), Ok(404));

    // The hash is kept: nothing to change.
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "re-plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // Chromium: the class page lists both students with their states, and refreshes itself.
    let students = outputs["students"]["value"].clone();
    for (student, takeover) in [("ann", false), ("bob", true)] {
        let s = &students[student];
        assert_eq!(s["watch_url"], format!("{}/watch/", s["url"].as_str().unwrap()), "{student}: {s}");
        assert_eq!(s["ready"], true, "{student}: {s}");
        let watch = s["watch_url"].as_str().unwrap();
        assert_eq!(curl_status(&[watch]), Ok(401), "{student}: watch without credential");
        assert_eq!(curl_status(&["-u", &format!("prof:{password}"), watch]), Ok(200), "{student}: watch");
        // The student's own URL needs no credential and is not the watch view.
        assert_eq!(curl_status(&[s["url"].as_str().unwrap()]), Ok(200), "{student}: session URL");
        let _ = takeover;
    }
    let case = serde_json::json!({
        "username": "prof",
        "password": password,
        "students": [
            { "name": "ann", "url": students["ann"]["url"], "watch_url": students["ann"]["watch_url"],
              "takeover": false, "shell": false },
            { "name": "bob", "url": students["bob"]["url"], "watch_url": students["bob"]["watch_url"],
              "takeover": true, "shell": false },
        ],
        "class_url": class_url,
    });
    let case_file = ws.path().join("watch-case.json");
    std::fs::write(&case_file, case.to_string()).unwrap();
    let out = out_dir();
    let results = watch_check(&case_file, &out);
    for r in results.iter().filter(|r| r["check"] == "watch") {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!((r["no_credential_status"].as_u64(), r["wrong_credential_status"].as_u64()), (Some(401), Some(401)));
        let latency = r["watch_latency_s"].as_f64().expect("latency");
        println!("{}: typed text seen in the watch view after {latency:.3} s", r["name"]);
        assert!(latency <= 1.0, "{r}");
        assert_eq!(r["watch_typed_reached_student"], r["takeover"], "{r}");
    }
    let page = results.iter().find(|r| r["check"] == "class_page").expect("class page result");
    assert_eq!(page["ok"], true, "{page}");
    let rows = page["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{page}");
    for (row, student, vm_state) in [(&rows[0], "ann", "running"), (&rows[1], "bob", "not answering")] {
        let s = &students[student];
        assert_eq!(row["student"], student, "{row}");
        assert_eq!(row["url"], s["url"], "{row}");
        assert!(row["vm"].as_str().unwrap().starts_with(vm_state), "{student}: {row}");
        assert_eq!(row["expires"], s["expires"], "{row}");
        assert!(row["activity"].as_str().unwrap().ends_with("ago"), "{student} opened their terminal: {row}");
        assert_eq!(row["watch"], "watch", "{row}");
    }
    println!("class page: {rows:?}; screenshot {}", page["screenshot"]);

    std::mem::forget(guard);
    ws.destroy();
    let left = docker_ok(&["ps", "-aq", "--filter", &format!("label=watchtest.run={run_id}")]);
    assert!(left.trim().is_empty(), "terminal containers left after destroy: {left}");
    for name in [gateway.clone(), format!("{gateway}-class")] {
        let left = docker_ok(&["ps", "-aq", "--filter", &format!("name=^{name}$")]);
        assert!(left.trim().is_empty(), "{name} left after destroy: {left}");
    }
    let left = docker_ok(&["network", "ls", "-q", "--filter", &format!("name=^{gateway}$")]);
    assert!(left.trim().is_empty(), "gateway network left after destroy: {left}");
}
