//! A class across two hosts (`rig.sh hosts-up 2`): terraform runs in the control namespace, the
//! provider names both hosts (`qemu+ssh://` libvirt, `ssh://` Docker), and one student is placed
//! on each (`element(local.host_names, index)`) with a gateway per host. The base image reaches
//! each host as a `lab_image` uploaded from the control namespace's file through that host's
//! libvirt, once per host (the provider's log says so), and the VMs there are clones of it. Each
//! session URL shows that student's own VM prompt in headless Chromium (in the control namespace,
//! every session hostname resolved to its host's gateway, as DNS would), a second apply uploads
//! nothing and plans nothing, and destroy leaves no domain, volume, container or network on either
//! host (checked through each daemon's own socket from the root namespace, so a failing check
//! fails the test). Then the same class (2 students) on one host of the same rig, for the apply
//! and destroy times of one host against two in one run.
//!
//! `flock /tmp/lab-boot.lock cargo test --test acc_hosts -- --nocapture`. The rig of hosts is
//! `LAB_HOSTS_NETNS` (default `labh`) and `LAB_HOSTS_CACHE` (default `/var/tmp/lab-cache-hosts`);
//! the test brings it up (idempotent) and leaves it up.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use support::{
    DestroyOnDrop, Workspace, apply_with_provider_log, browser_check_in, plan_counts, repo_root, rig_vars_in,
};

const STUDENTS: [&str; 2] = ["ann", "bob"];
const HOSTS: [&str; 2] = ["h1", "h2"];
/// The provider's name for h2's dockerd reached over TLS `tcp://` instead of `ssh://`.
const TLS_HOST: &str = "h2-tls";

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

type Hosts = BTreeMap<&'static str, BTreeMap<String, String>>;

/// The `hosts` case for this run in the control namespace: its tfvars (the class on `class_hosts`,
/// or on every host) and a provider block naming every host.
fn hosts_case(
    netns: &str,
    cache: &str,
    control: &HashMap<String, String>,
    hosts: &Hosts,
    run_id: &str,
    class_hosts: Option<&[&str]>,
) -> Workspace {
    let ws = Workspace::in_hosts("hosts", netns, cache);
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
    let class_hosts = class_hosts.map_or("null".to_string(), |h| format!("{h:?}"));
    let tfvars = format!(
        "run_id = \"{run_id}\"\nstudents = {STUDENTS:?}\nhosts = {{\n{}\n}}\nclass_hosts = {class_hosts}\n\
         base_image = \"{}\"\nkernel = \"{}\"\ninitrd = \"{}\"\ncmdline = \"{}\"\nssh_private_key_file = \"{key}\"\n\
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
    // h2's dockerd once more, as a `tcp://` host with TLS: the rig's client files as docker_cert_path.
    let h2 = &hosts["h2"];
    let tls_block = format!(
        "  host \"{TLS_HOST}\" {{\n    docker_host      = \"{}\"\n    docker_cert_path = \"{}\"\n  }}\n",
        h2["LAB_HOST_DOCKER_TLS_HOST"], h2["LAB_HOST_DOCKER_CERT_PATH"]
    );
    ws.write(
        "provider.tf",
        &format!("provider \"lab\" {{\n  domain = \"lab.test\"\n{}{tls_block}}}\n", host_blocks.concat()),
    );
    ws
}

/// The hosts `lab_image` uploaded to, by the provider's log: one entry per "uploading" line
/// (`lab_image <name>: uploading <file> (N MiB) into pool <pool> of host <host>`).
fn uploads_by_host(log: &str) -> BTreeMap<String, usize> {
    let mut by_host = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(": uploading ")) {
        // Host names never hold `:`, which ends the message in either log format.
        let host = line.rsplit_once(" of host ").map_or("(no host)", |(_, h)| h.split(':').next().unwrap_or(h).trim());
        *by_host.entry(host.to_string()).or_insert(0) += 1;
    }
    by_host
}

fn h2_address(hosts: &Hosts) -> &str {
    &hosts["h2"]["LAB_HOST_ADDRESS"]
}

fn lab_image_lines(line: &str) -> bool {
    line.contains("lab_image ")
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
    let hosts: Hosts = HOSTS
        .iter()
        .map(|h| (*h, rig_vars_in(&PathBuf::from(&cache).join(format!("hosts/{h}.env"))).into_iter().collect()))
        .collect();

    let run_id = format!("{:x}", std::process::id());
    let ws = hosts_case(&netns, &cache, &control, &hosts, &run_id, None);
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
         base_image = lab_image.base[\"h1\"].path\n  kernel = var.kernel\n  initrd = var.initrd\n  cmdline = var.cmdline\n  \
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
    let (apply, log) = apply_with_provider_log(&ws, "INFO", &["-parallelism=10"], lab_image_lines);
    let apply_s = t0.elapsed().as_secs_f64();
    assert_eq!(apply.code, 0, "terraform apply failed\n{}\n{}", apply.stdout, apply.stderr);
    println!("two-host apply (2 images, 2 gateways, 2 sessions, 2 VMs, 2 terminals): {apply_s:.1} s");
    println!("lab_image log:\n{log}");
    // The base image went to each host once, through that host's libvirt.
    let once_each: BTreeMap<String, usize> = HOSTS.iter().map(|h| (h.to_string(), 1)).collect();
    assert_eq!(uploads_by_host(&log), once_each, "uploads by host in the provider's log:\n{log}");
    let image_name = format!("hosts-{run_id}-base.qcow2");
    let mut image_paths = BTreeMap::new();
    for (name, h) in &hosts {
        let (uri, pool) = (&h["LAB_HOST_LOCAL_LIBVIRT_URI"], &h["LAB_HOST_STORAGE_POOL"]);
        let path = on_host("virsh", &["-q", "-c", uri, "vol-path", "--pool", pool, &image_name]);
        let xml = on_host("virsh", &["-q", "-c", uri, "vol-dumpxml", "--pool", pool, &image_name]);
        assert!(xml.contains("<mode>0444</mode>"), "{image_name} on {name} is not read-only:\n{xml}");
        image_paths.insert(*name, path.trim().to_string());
    }

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
        // Its base image is its own host's copy.
        assert_eq!(st["image"].as_str(), Some(image_paths[host].as_str()), "{s}'s base image: {st}");
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

    // A second apply uploads nothing and changes nothing; a plan after it is empty.
    let (again, log) = apply_with_provider_log(&ws, "INFO", &["-parallelism=10"], lab_image_lines);
    assert_eq!(again.code, 0, "second apply failed\n{}\n{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("No changes."), "second apply planned something:\n{}", again.stdout);
    assert_eq!(uploads_by_host(&log), BTreeMap::new(), "second apply uploaded:\n{log}");
    let plan = ws.terraform(&["plan", "-no-color", "-detailed-exitcode"]);
    assert_eq!(plan.code, 0, "second plan is not empty:\n{}\n{}", plan.stdout, plan.stderr);
    assert_eq!(plan_counts(&plan.stdout), (0, 0, 0));

    // A terminal placed through the TLS `tcp://` host block (h2's dockerd, its own cert files): it
    // reaches bob's VM on h2 and its published ttyd answers at h2's address; then it goes again.
    let tls_port = 18300 + std::process::id() % 300;
    ws.write(
        "tls.tf",
        &format!(
            "resource \"lab_terminal\" \"tls\" {{\n  host            = \"{TLS_HOST}\"\n  \
             name            = \"hosts-${{var.run_id}}-tls\"\n  target_host     = lab_vm.student[\"bob\"].ip\n  \
             ssh_private_key = file(var.ssh_private_key_file)\n  image           = var.terminal_image\n  \
             publish         = {{ host_ip = \"0.0.0.0\", host_port = {tls_port} }}\n  traefik         = false\n}}\n\
             output \"tls\" {{\n  value = {{ ready = lab_terminal.tls.ready, url = lab_terminal.tls.url }}\n}}\n"
        ),
    );
    let tls = ws.terraform(&["apply", "-auto-approve", "-no-color"]);
    if tls.code != 0 {
        ws.remove("tls.tf"); // a configuration that does not plan would fail the cleanup's destroy too
    }
    assert_eq!(tls.code, 0, "apply of the TLS host's terminal failed\n{}\n{}", tls.stdout, tls.stderr);
    assert!(tls.stdout.contains("1 added, 0 changed, 0 destroyed"), "{}", tls.stdout);
    let out = ws.output_json()["tls"]["value"].clone();
    assert_eq!(out["ready"], true, "{out}");
    assert_eq!(out["url"].as_str(), Some(format!("http://{}:{tls_port}", h2_address(&hosts)).as_str()), "{out}");
    let tls_name = format!("hosts-{run_id}-tls");
    let running = |h: &BTreeMap<String, String>| {
        on_host("docker", &["-H", &h["LAB_HOST_LOCAL_DOCKER_HOST"], "ps", "--format", "{{.Names}}"])
            .lines()
            .any(|n| n == tls_name)
    };
    assert!(running(&hosts["h2"]) && !running(&hosts["h1"]), "{tls_name} runs on h2 only");
    ws.remove("tls.tf");
    let gone = ws.terraform(&["apply", "-auto-approve", "-no-color"]);
    assert_eq!(gone.code, 0, "removing the TLS host's terminal failed\n{}\n{}", gone.stdout, gone.stderr);
    assert!(!running(&hosts["h2"]), "{tls_name} still runs after its removal");

    std::mem::forget(guard);
    let t = Instant::now();
    let destroy = ws.terraform(&["destroy", "-auto-approve", "-no-color"]);
    let destroy_s = t.elapsed().as_secs_f64();
    assert_eq!(destroy.code, 0, "destroy failed\n{}\n{}", destroy.stdout, destroy.stderr);
    println!("two-host destroy: {destroy_s:.1} s");
    for (name, h) in &hosts {
        assert_eq!(leftovers(h, &run_id), Vec::<String>::new(), "left on {name} after destroy");
    }

    // The same class on one host of the same rig, right after: both students, their image,
    // gateway, VMs and terminals on h1, for one-host figures from this machine and this run.
    let one_id = format!("{run_id}o");
    let one = hosts_case(&netns, &cache, &control, &hosts, &one_id, Some(&["h1"]));
    let guard = DestroyOnDrop(&one);
    let t = Instant::now();
    let (apply, log) = apply_with_provider_log(&one, "INFO", &["-parallelism=10"], lab_image_lines);
    let one_apply_s = t.elapsed().as_secs_f64();
    assert_eq!(apply.code, 0, "one-host apply failed\n{}\n{}", apply.stdout, apply.stderr);
    assert_eq!(uploads_by_host(&log), BTreeMap::from([("h1".to_string(), 1)]), "one-host uploads:\n{log}");
    let students = one.output_json()["students"]["value"].clone();
    for s in STUDENTS {
        assert_eq!((students[s]["host"].as_str(), &students[s]["ready"]), (Some("h1"), &serde_json::json!(true)));
    }
    std::mem::forget(guard);
    let t = Instant::now();
    let destroy = one.terraform(&["destroy", "-auto-approve", "-no-color"]);
    let one_destroy_s = t.elapsed().as_secs_f64();
    assert_eq!(destroy.code, 0, "one-host destroy failed\n{}\n{}", destroy.stdout, destroy.stderr);
    for (name, h) in &hosts {
        assert_eq!(leftovers(h, &one_id), Vec::<String>::new(), "left on {name} after the one-host destroy");
    }
    println!(
        "2 students, same rig, same run: apply two hosts {apply_s:.1} s / one host {one_apply_s:.1} s = {:.2}; \
         destroy two hosts {destroy_s:.1} s / one host {one_destroy_s:.1} s = {:.2}",
        apply_s / one_apply_s,
        destroy_s / one_destroy_s
    );
}
