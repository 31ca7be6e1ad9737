//! The student's URL end to end, inside the rig: `terraform apply` of a `lab_gateway` (the real
//! upstream Traefik) and, for two students, a session, a VM and a terminal routed through it.
//! Then, on the session URLs exactly as students get them (`http://lab-<id>.lab.localhost:<port>`):
//! headless Chromium finds each student's own VM hostname and never the other's; an unknown
//! `lab-xxxxxxxx` host gets 404; the HTTPS entrypoint serves a session with a test CA's
//! certificate (curl checks it against that CA); a stopped gateway is planned back, a removed one
//! (its network left) replaced with its terminals, and an imported one adopted; a destroyed terminal's URL stops serving; destroy leaves no container or network.
//!
//! `cargo test --test acc_gateway -- --nocapture` (rig up). Screenshots: $LAB_TEST_OUT or
//! target/tmp/acc-gateway/.

mod support;

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use support::{DestroyOnDrop, Workspace, browser_check, docker_ok, plan_counts, rig_exec, rig_var};

const STUDENTS: [&str; 2] = ["ann", "bob"];

fn out_dir() -> PathBuf {
    support::out_dir(env!("CARGO_TARGET_TMPDIR"), "acc-gateway")
}

/// A CA and a `*.lab.localhost` certificate it signed, as PEM files in `dir`: (ca, cert, key).
fn test_ca(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "lab acceptance test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let params = CertificateParams::new(vec!["*.lab.localhost".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
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

#[test]
fn session_urls_open_each_students_terminal_through_the_gateway() {
    let ws = Workspace::in_rig("gateway");
    let run_id = format!("{:x}", std::process::id());
    let gateway = format!("gwtest-{run_id}");
    let key = rig_var("LAB_SSH_KEY");
    let overlays = ws.path().join("overlays");
    std::fs::create_dir_all(&overlays).expect("overlay dir");
    let http_port = 18100 + (std::process::id() % 400) * 2;
    let https_port = http_port + 1;
    let (ca, cert, tls_key) = test_ca(ws.path());
    let tfvars = format!(
        "run_id = \"{run_id}\"\nstudents = {students:?}\nbase_image = \"{}\"\nkernel = \"{}\"\ninitrd = \"{}\"\n\
         cmdline = \"{}\"\nnetwork = \"{}\"\ndomain_type = \"{}\"\nssh_private_key_file = \"{key}\"\n\
         ssh_public_key_file = \"{key}.pub\"\noverlay_dir = \"{overlays}\"\nterminal_image = \"{}\"\n\
         gateway_image = \"{}\"\nhttp_port = {http_port}\nhttps_port = {https_port}\n\
         tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        rig_var("LAB_BASE_IMAGE"),
        rig_var("LAB_KERNEL"),
        rig_var("LAB_INITRD"),
        rig_var("LAB_CMDLINE"),
        rig_var("LAB_NETWORK"),
        rig_var("LAB_DOMAIN_TYPE"),
        rig_var("LAB_TERMINAL_IMAGE"),
        rig_var("LAB_GATEWAY_IMAGE"),
        cert.display(),
        tls_key.display(),
        students = STUDENTS,
        overlays = overlays.display(),
    );
    ws.write("terraform.tfvars", &tfvars);
    let guard = DestroyOnDrop(&ws);

    let t0_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let t0 = Instant::now();
    let apply = ws.terraform(&["apply", "-auto-approve", "-no-color", "-parallelism=10"]);
    let apply_s = t0.elapsed().as_secs_f64();
    assert_eq!(apply.code, 0, "terraform apply failed\n{}\n{}", apply.stdout, apply.stderr);
    println!("terraform apply: {apply_s:.1} s");

    let outputs = ws.output_json();
    let gw = &outputs["gateway"]["value"];
    assert_eq!(gw["ready"], true, "{gw}");
    assert_eq!(gw["network"], gateway.as_str(), "{gw}");
    assert_eq!((gw["url_scheme"].as_str(), gw["url_port"].as_i64()), (Some("http"), Some(i64::from(http_port as u16))));
    let students = outputs["students"]["value"].clone();
    let mut cases = Vec::new();
    for s in STUDENTS {
        let st = &students[s];
        let url = st["url"].as_str().expect("url");
        let hostname = st["hostname"].as_str().expect("hostname");
        assert_eq!(url, format!("http://{hostname}:{http_port}"), "{s}: the session URL is the one that works");
        assert!(hostname.starts_with("lab-") && hostname.ends_with(".lab.localhost"), "{s}: {hostname}");
        assert_eq!(st["terminal_url"], url, "{s}: {st}");
        assert_eq!(st["ready"], true, "{s}: {st}");
        let others: Vec<&str> =
            STUDENTS.iter().filter(|o| **o != s).map(|o| students[o]["vm"].as_str().unwrap()).collect();
        cases.push(serde_json::json!({ "name": s, "url": url, "expect": st["vm"], "forbid": others }));
    }
    let cases_file = ws.path().join("browser-cases.json");
    std::fs::write(&cases_file, serde_json::to_string(&cases).unwrap()).unwrap();

    // The browser inside the netns: `*.localhost` is its loopback, where the gateway listens.
    let out = out_dir();
    let results = browser_check(&cases_file, &out, t0_ms, STUDENTS.len());
    for r in &results {
        assert_eq!(r["hostname_found"], true, "{r}");
        assert_eq!(r["foreign_found"], serde_json::json!([]), "{r}");
        assert!(PathBuf::from(r["screenshot"].as_str().unwrap()).exists(), "{r}");
    }
    let last_prompt = results.iter().map(|r| r["prompt_s"].as_f64().unwrap()).fold(0.0, f64::max);
    println!(
        "class ready (apply start -> last prompt in the browser): {last_prompt:.1} s; screenshots in {}",
        out.display()
    );

    // A session id nobody has: the gateway's 404, not someone's terminal.
    let unknown = format!("http://lab-zzzzzzzz.lab.localhost:{http_port}/");
    assert_eq!(curl_status(&[&unknown]), Ok(404), "unknown session host");

    // HTTPS: the certificate verifies against the test CA, and not without it.
    let ann_host = students["ann"]["hostname"].as_str().unwrap();
    let https_url = format!("https://{ann_host}:{https_port}/");
    assert_eq!(curl_status(&["--cacert", ca.to_str().unwrap(), &https_url]), Ok(200), "HTTPS with the test CA");
    let unverified = curl_status(&[&https_url]);
    assert!(unverified.as_ref().is_err_and(|e| e.contains("exit Some(60)")), "HTTPS without the CA: {unverified:?}");

    let plan = ws.plan();
    assert_eq!(plan.code, 0, "re-plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // Stopped out of band: planned back and started in place.
    docker_ok(&["stop", "-t", "2", &gateway]);
    let plan = ws.terraform(&["plan", "-no-color"]).ok("plan after stop");
    assert_eq!(plan_counts(&plan.stdout), (0, 1, 0), "{}", plan.stdout);
    ws.apply(&[]);
    assert_eq!(ws.output_json()["gateway"]["value"]["ready"], true);

    // Removed out of band: its network, still holding the terminals, keeps it in state (so a
    // destroy would remove that too); replaced, and its terminals with it (they follow its id).
    docker_ok(&["rm", "-f", &gateway]);
    let plan = ws.terraform(&["plan", "-no-color"]).ok("plan after removal");
    assert!(plan.stdout.contains("lab_gateway.edge must be replaced"), "{}", plan.stdout);
    assert_eq!(plan_counts(&plan.stdout), (3, 0, 3), "{}", plan.stdout);
    ws.apply(&[]);
    let gw = ws.output_json()["gateway"]["value"].clone();
    assert_eq!(gw["ready"], true, "{gw}");
    assert_eq!(curl_status(&[&format!("{}/", students["ann"]["url"].as_str().unwrap())]), Ok(200));

    // Import by name adopts the gateway without replacing it: the TLS digest label matches.
    ws.reimport_adopts("lab_gateway.edge", &gateway);
    assert_eq!(ws.output_json()["gateway"]["value"]["id"], gw["id"]);

    // One terminal destroyed: its URL stops serving by the time destroy returns; the other's stays.
    let bob_url = format!("{}/", students["bob"]["url"].as_str().unwrap());
    let ann_url = format!("{}/", students["ann"]["url"].as_str().unwrap());
    let t = Instant::now();
    ws.terraform(&["destroy", "-auto-approve", "-no-color", "-target=lab_terminal.t[\"bob\"]"]).ok("destroy bob");
    let destroy_s = t.elapsed().as_secs_f64();
    let after = curl_status(&[&bob_url]);
    println!("bob's terminal destroyed in {destroy_s:.1} s; his URL then answered {after:?}");
    assert_eq!(after, Ok(404), "bob's URL after his terminal was destroyed");
    assert_eq!(curl_status(&[&ann_url]), Ok(200), "ann's URL after bob's terminal was destroyed");

    std::mem::forget(guard);
    ws.destroy();
    let left = docker_ok(&["ps", "-aq", "--filter", &format!("label=gwtest.run={run_id}")]);
    assert!(left.trim().is_empty(), "terminal containers left after destroy: {left}");
    let left = docker_ok(&["ps", "-aq", "--filter", &format!("name=^{gateway}$")]);
    assert!(left.trim().is_empty(), "gateway container left after destroy: {left}");
    let left = docker_ok(&["network", "ls", "-q", "--filter", &format!("name=^{gateway}$")]);
    assert!(left.trim().is_empty(), "gateway network left after destroy: {left}");
}
