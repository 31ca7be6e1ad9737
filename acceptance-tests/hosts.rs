//! A class across two hosts (`rig.sh hosts-up 2`): terraform runs in the control namespace, the
//! provider names both hosts (`qemu+ssh://` libvirt, `ssh://` Docker), and one student is placed
//! on each (`element(local.host_names, index)`) with a gateway per host. Each session URL shows
//! that student's own VM prompt in headless Chromium (in the control namespace, every session
//! hostname resolved to its host's gateway, as DNS would), a second apply plans nothing, and
//! destroy leaves no domain, volume, container or network on either host (checked through each daemon's
//! own socket from the root namespace, so a failing check fails the test).
//!
//! `flock /tmp/lab-boot.lock cargo test --test acc_hosts -- --nocapture`. The rig of hosts is
//! `LAB_HOSTS_NETNS` (default `labh`) and `LAB_HOSTS_CACHE` (default `/var/tmp/lab-cache-hosts`);
//! the test brings it up (idempotent) and leaves it up.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use support::{DestroyOnDrop, Workspace, browser_check_in, plan_counts, repo_root, rig_vars_in};

const STUDENTS: [&str; 2] = ["ann", "bob"];
const HOSTS: [&str; 2] = ["h1", "h2"];

fn hosts_rig() -> (String, String) {
    let var = |k: &str, d: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| d.to_string());
    (var("LAB_HOSTS_NETNS", "labh"), var("LAB_HOSTS_CACHE", "/var/tmp/lab-cache-hosts"))
}

fn rig_sh(netns: &str, cache: &str, args: &[&str]) -> std::process::Output {
    Command::new(repo_root().join("acceptance-tests/rig.sh"))
        .env("LAB_NETNS", netns)
        .env("LAB_CACHE", cache)
        .args(args)
        .output()
        .expect("running rig.sh")
}

/// `virsh`/`docker` against a host's daemon through its unix socket (root namespace): the
/// output, or a panic when the tool itself fails (a check of "nothing left" must not pass then).
fn on_host(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(out.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn leftovers(host: &BTreeMap<String, String>, run_id: &str) -> Vec<String> {
    let uri = &host["LAB_HOST_LOCAL_LIBVIRT_URI"];
    let docker = &host["LAB_HOST_LOCAL_DOCKER_HOST"];
    let mut left: Vec<String> = on_host("virsh", &["-q", "-c", uri, "list", "--all", "--name"])
        .lines()
        .chain(on_host("docker", &["-H", docker, "ps", "-a", "--format", "{{.Names}}"]).lines())
        .chain(on_host("docker", &["-H", docker, "network", "ls", "--format", "{{.Name}}"]).lines())
        .chain(on_host("virsh", &["-q", "-c", uri, "vol-list", &host["LAB_HOST_STORAGE_POOL"]]).lines())
        .filter(|n| n.contains(run_id))
        .map(str::to_string)
        .collect();
    left.sort();
    left
}

#[test]
fn one_student_per_host_each_url_shows_that_students_vm() {
    let (netns, cache) = hosts_rig();
    let t = Instant::now();
    let up = rig_sh(&netns, &cache, &["hosts-up", "2"]);
    assert!(
        up.status.success(),
        "rig.sh hosts-up 2 failed:\n{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    println!("rig.sh hosts-up 2: {:.1} s", t.elapsed().as_secs_f64());
    let control = rig_vars_in(&PathBuf::from(&cache).join("hosts.env"));
    let hosts: BTreeMap<&str, BTreeMap<String, String>> = HOSTS
        .iter()
        .map(|h| (*h, rig_vars_in(&PathBuf::from(&cache).join(format!("hosts/{h}.env"))).into_iter().collect()))
        .collect();

    let ws = Workspace::in_hosts("hosts", &netns, &cache);
    let run_id = format!("{:x}", std::process::id());
    let gateway_port = 18600 + std::process::id() % 300;
    let host_vars: Vec<String> = hosts
        .iter()
        .map(|(name, h)| {
            format!(
                "  {name} = {{ libvirt_uri = \"{}\", docker_host = \"{}\", storage_pool = \"{}\", docker_socket = \"{}\", network = \"{}\" }}",
                h["LAB_HOST_LIBVIRT_URI"],
                h["LAB_HOST_DOCKER_HOST"],
                h["LAB_HOST_STORAGE_POOL"],
                h["LAB_HOST_DOCKER_SOCKET"],
                h["LAB_HOST_NETWORK"],
            )
        })
        .collect();
    let key = &control["LAB_SSH_KEY"];
    let tfvars = format!(
        "run_id = \"{run_id}\"\nstudents = {STUDENTS:?}\nhosts = {{\n{}\n}}\nbase_image = \"{}\"\nkernel = \"{}\"\n\
         initrd = \"{}\"\ncmdline = \"{}\"\nssh_private_key_file = \"{key}\"\n\
         ssh_public_key_file = \"{key}.pub\"\nterminal_image = \"{}\"\ngateway_image = \"{}\"\ngateway_port = {gateway_port}\n",
        host_vars.join("\n"),
        control["LAB_BASE_IMAGE"],
        control["LAB_KERNEL"],
        control["LAB_INITRD"],
        control["LAB_CMDLINE"],
        control["LAB_TERMINAL_IMAGE"],
        control["LAB_GATEWAY_IMAGE"],
    );
    ws.write("terraform.tfvars", &tfvars);
    let host_blocks: Vec<String> = hosts
        .iter()
        .map(|(name, h)| {
            format!(
                "  host \"{name}\" {{\n    libvirt_uri  = \"{}\"\n    docker_host  = \"{}\"\n    storage_pool = \"{}\"\n  }}\n",
                h["LAB_HOST_LIBVIRT_URI"], h["LAB_HOST_DOCKER_HOST"], h["LAB_HOST_STORAGE_POOL"]
            )
        })
        .collect();
    ws.write("provider.tf", &format!("provider \"lab\" {{\n  domain = \"lab.test\"\n{}}}\n", host_blocks.concat()));
    // A host no block names: a plan-time error on that resource's `host`.
    ws.write(
        "bad.tf",
        "resource \"lab_gateway\" \"bad\" {\n  name = \"bad\"\n  host = \"h9\"\n  http = { host_port = 18599 }\n}\n",
    );
    let plan = ws.terraform(&["plan", "-no-color"]);
    assert_ne!(plan.code, 0, "a plan with host = \"h9\" passed:\n{}", plan.stdout);
    for expected in ["Error: Unknown host", "host = \"h9\"", "No `host \"h9\"` block", "`h1`, `h2`"] {
        assert!(plan.stderr.contains(expected), "no `{expected}` in:\n{}", plan.stderr);
    }
    ws.remove("bad.tf");
    // The default `wait_for = "ssh"` would connect from here to an address private to h1: the plan
    // warns on that attribute (and plans the VM anyway: the address may be routable elsewhere).
    ws.write(
        "ssh-wait.tf",
        "resource \"lab_vm\" \"ssh_wait\" {\n  host = \"h1\"\n  name = \"hosts-ssh-wait\"\n  \
         base_image = var.base_image\n  kernel = var.kernel\n  initrd = var.initrd\n  cmdline = var.cmdline\n  \
         network = var.hosts[\"h1\"].network\n  domain_type = \"qemu\"\n  memory_mb = 512\n}\n",
    );
    let plan = ws.terraform(&["plan", "-no-color", "-target=lab_vm.ssh_wait"]);
    assert_eq!(plan.code, 0, "plan of a VM with the default wait_for failed:\n{}\n{}", plan.stdout, plan.stderr);
    let warnings = format!("{}{}", plan.stdout, plan.stderr);
    for expected in ["Warning: The SSH wait connects from this machine", "wait_for = \"ip\""] {
        assert!(warnings.contains(expected), "no `{expected}` in:\n{warnings}");
    }
    ws.remove("ssh-wait.tf");
    let guard = DestroyOnDrop(&ws);

    let t0_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let t0 = Instant::now();
    let apply = ws.terraform(&["apply", "-auto-approve", "-no-color", "-parallelism=10"]);
    let apply_s = t0.elapsed().as_secs_f64();
    assert_eq!(apply.code, 0, "terraform apply failed\n{}\n{}", apply.stdout, apply.stderr);
    println!("two-host apply (2 gateways, 2 sessions, 2 VMs, 2 terminals): {apply_s:.1} s");

    // Each student on their own host, their VM there and nowhere else.
    let students = ws.output_json()["students"]["value"].clone();
    let mut cases = Vec::new();
    let mut rules = Vec::new();
    for (i, s) in STUDENTS.iter().enumerate() {
        let st = &students[s];
        let host = st["host"].as_str().expect("host");
        assert_eq!(host, HOSTS[i], "{s}: element(local.host_names, index) places student {i} on {}", HOSTS[i]);
        assert_eq!(st["ready"], true, "{s}: {st}");
        let vm = st["vm"].as_str().expect("vm");
        for (name, h) in &hosts {
            // Its overlay is a volume in its own host's pool, made through libvirt.
            let pool = &h["LAB_HOST_STORAGE_POOL"];
            let volumes = on_host("virsh", &["-q", "-c", &h["LAB_HOST_LOCAL_LIBVIRT_URI"], "vol-list", pool]);
            assert_eq!(volumes.contains(vm), *name == host, "{vm}'s overlay in pool {pool} of {name}: {volumes}");
            let domains = on_host("virsh", &["-q", "-c", &h["LAB_HOST_LOCAL_LIBVIRT_URI"], "list", "--name"]);
            assert_eq!(domains.lines().any(|d| d == vm), *name == host, "{vm} on {name}: {domains}");
        }
        let hostname = st["hostname"].as_str().expect("hostname");
        rules.push(format!("MAP {hostname} {}", hosts[host]["LAB_HOST_GATEWAY_ADDRESS"]));
        let others: Vec<&str> =
            STUDENTS.iter().filter(|o| *o != s).map(|o| students[o]["vm"].as_str().unwrap()).collect();
        cases.push(serde_json::json!({ "name": s, "url": st["url"], "expect": vm, "forbid": others }));
    }
    let cases_file = ws.path().join("browser-cases.json");
    std::fs::write(&cases_file, serde_json::to_string(&cases).unwrap()).unwrap();
    let out = support::out_dir(env!("CARGO_TARGET_TMPDIR"), "acc-hosts");
    let rules = rules.join(", ");
    let rig_env = [("LAB_NETNS", netns.as_str()), ("LAB_CACHE", cache.as_str())];
    let env = [("LAB_HOST_RESOLVER_RULES", rules.as_str())];
    let results = browser_check_in(&rig_env, "hosts-exec", &env, &cases_file, &out, t0_ms, STUDENTS.len());
    for r in &results {
        assert_eq!(r["hostname_found"], true, "{r}");
        assert_eq!(r["foreign_found"], serde_json::json!([]), "{r}");
    }
    let last_prompt = results.iter().map(|r| r["prompt_s"].as_f64().unwrap_or(f64::NAN)).fold(0.0, f64::max);
    println!("apply start -> last prompt in the browser: {last_prompt:.1} s; screenshots in {}", out.display());

    // A second apply changes nothing.
    let plan = ws.terraform(&["plan", "-no-color", "-detailed-exitcode"]);
    assert_eq!(plan.code, 0, "second plan is not empty:\n{}\n{}", plan.stdout, plan.stderr);
    assert_eq!(plan_counts(&plan.stdout), (0, 0, 0));

    std::mem::forget(guard);
    let t = Instant::now();
    let destroy = ws.terraform(&["destroy", "-auto-approve", "-no-color"]);
    assert_eq!(destroy.code, 0, "destroy failed\n{}\n{}", destroy.stdout, destroy.stderr);
    println!("two-host destroy: {:.1} s", t.elapsed().as_secs_f64());
    for (name, h) in &hosts {
        assert_eq!(leftovers(h, &run_id), Vec::<String>::new(), "left on {name} after destroy");
    }
}
