//! The instructor's side end to end, inside the rig: `terraform apply` of a `lab_gateway` with an
//! instructor credential, and ann and bob with a session, a `lab_vm` (the rig's base image) and a
//! terminal each. Then, through the gateway: the class hostname refuses a missing or wrong
//! credential (401) and answers the right one; only the bcrypt hash is in the gateway's labels,
//! never the password; a re-plan is empty (the hash is kept). In Chromium, for each student (at a
//! shell prompt in their VM): the watch route (`<url>/watch/`) refuses a missing or wrong
//! credential (401); a second page on it sees the student's typed text within 1 s (printed); it
//! cannot type into ann's session (read-only) and can into bob's (`watch_takeover`). Then a second
//! apply stops bob's VM (`running = false`; libvirt says it is shut off, a re-plan is empty), and
//! the class page lists ann's VM running and bob's not answering, both terminals opened, and
//! refreshes itself; its screenshot is saved. Destroy leaves no container, network or domain.
//!
//! `cargo test --test acc_watch -- --nocapture --test-threads=1` (rig up; boots two VMs: take
//! `/tmp/lab-boot.lock`).
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
    let password = format!("pw-{:016x}", rand::random::<u64>());
    let key = rig_var("LAB_SSH_KEY");
    let overlays = ws.path().join("overlays");
    std::fs::create_dir_all(&overlays).expect("overlay dir");
    let tfvars = format!(
        "run_id = \"{run_id}\"\nbase_image = \"{}\"\nkernel = \"{}\"\ninitrd = \"{}\"\ncmdline = \"{}\"\n\
         network = \"{}\"\ndomain_type = \"{}\"\noverlay_dir = \"{}\"\nssh_private_key_file = \"{key}\"\n\
         ssh_public_key_file = \"{key}.pub\"\nterminal_image = \"{}\"\ngateway_image = \"{}\"\n\
         class_page_image = \"{}\"\nhttp_port = {http_port}\ninstructor_password = \"{password}\"\n",
        rig_var("LAB_BASE_IMAGE"),
        rig_var("LAB_KERNEL"),
        rig_var("LAB_INITRD"),
        rig_var("LAB_CMDLINE"),
        rig_var("LAB_NETWORK"),
        rig_var("LAB_DOMAIN_TYPE"),
        overlays.display(),
        rig_var("LAB_TERMINAL_IMAGE"),
        rig_var("LAB_GATEWAY_IMAGE"),
        // A rig.env written by an older rig.sh lacks it; the name is rig.sh's.
        support::rig_vars_in(&support::rig_env_file())
            .remove("LAB_CLASS_PAGE_IMAGE")
            .unwrap_or_else(|| "lab/class-page:1".into()),
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

    // Chromium, at a shell prompt in each student's VM: the watch view, read-only or take-over.
    let students = outputs["students"]["value"].clone();
    for student in ["ann", "bob"] {
        let s = &students[student];
        let url = s["url"].as_str().expect("url");
        assert_eq!(s["watch_url"], format!("{url}/watch/"), "{student}: {s}");
        assert_eq!(s["ready"], true, "{student}: {s}");
        assert_eq!((s["running"].as_bool(), s["state"].as_str()), (Some(true), Some("running")), "{student}: {s}");
        let watch = s["watch_url"].as_str().unwrap();
        assert_eq!(curl_status(&[watch]), Ok(401), "{student}: watch without credential");
        assert_eq!(curl_status(&["-u", &format!("prof:{password}"), watch]), Ok(200), "{student}: watch");
        // The student's own URL needs no credential and is not the watch view.
        assert_eq!(curl_status(&[url]), Ok(200), "{student}: session URL");
    }
    let student_case = |name: &str, takeover: bool| {
        serde_json::json!({ "name": name, "url": students[name]["url"], "watch_url": students[name]["watch_url"],
                            "takeover": takeover, "shell": true })
    };
    let out = out_dir();
    let case = serde_json::json!({
        "username": "prof",
        "password": password,
        "students": [student_case("ann", false), student_case("bob", true)],
    });
    let case_file = ws.path().join("watch-case.json");
    std::fs::write(&case_file, case.to_string()).unwrap();
    let results = watch_check(&case_file, &out);
    let watched: Vec<_> = results.iter().filter(|r| r["check"] == "watch").collect();
    assert_eq!(watched.len(), 2, "{results:?}");
    for r in watched {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!((r["no_credential_status"].as_u64(), r["wrong_credential_status"].as_u64()), (Some(401), Some(401)));
        let latency = r["watch_latency_s"].as_f64().expect("latency");
        println!("{}: typed text seen in the watch view after {latency:.3} s", r["name"]);
        assert!(latency <= 1.0, "{r}");
        assert_eq!(r["watch_typed_reached_student"], r["takeover"], "{r}");
    }

    // Bob's VM stopped by a second apply: libvirt has it shut off, and nothing is left to change.
    ws.write("terraform.tfvars", &format!("{tfvars}stopped = [\"bob\"]\n"));
    let t = Instant::now();
    ws.apply(&[]);
    println!("bob's VM stopped by apply: {:.1} s", t.elapsed().as_secs_f64());
    let stopped = ws.output_json()["students"]["value"].clone();
    assert_eq!((stopped["bob"]["running"].as_bool(), stopped["bob"]["state"].as_str()), (Some(false), Some("shutoff")));
    assert_eq!(stopped["ann"]["state"], "running", "{stopped}");
    for (student, libvirt_state) in [("ann", "running"), ("bob", "shut off")] {
        let vm = students[student]["vm"].as_str().expect("vm");
        let out = rig_exec(&["virsh", "domstate", vm]);
        assert!(out.status.success(), "virsh domstate {vm}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), libvirt_state, "{vm}");
    }
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "re-plan after the stop not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // The class page lists both students with their VMs' states, and refreshes itself.
    let case = serde_json::json!({ "username": "prof", "password": password, "students": [], "class_url": class_url });
    std::fs::write(&case_file, case.to_string()).unwrap();
    let results = watch_check(&case_file, &out);
    let page = results.iter().find(|r| r["check"] == "class_page").expect("class page result");
    assert_eq!(page["ok"], true, "{page}");
    let rows = page["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{page}");
    for (row, student, vm_state) in [(&rows[0], "ann", "running"), (&rows[1], "bob", "not answering")] {
        let s = &students[student];
        assert_eq!(row["student"], student, "{row}");
        assert_eq!(row["url"], s["url"], "{row}");
        let vm = row["vm"].as_str().unwrap();
        assert!(vm.starts_with(vm_state) && vm.ends_with(s["vm"].as_str().unwrap()), "{student}: {row}");
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
    for student in ["ann", "bob"] {
        let vm = students[student]["vm"].as_str().unwrap();
        assert!(!support::domain_exists(vm), "{vm} left after destroy");
    }
}
