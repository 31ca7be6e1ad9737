//! `lab_vm`'s plan-time capacity check through the real terraform against the rig's libvirtd:
//! `terraform plan` (never apply: nothing is defined or booted) of one VM that needs more memory
//! than the host has free warns, naming both figures, which must match the host's own
//! (`/proc/meminfo`: free is `MemFree + Buffers + Cached`, what libvirt's node memory stats
//! count and the kernel gives a guest; total is libvirt's `virsh nodeinfo`, at most `MemTotal`);
//! the same plan under the provider's `strict_capacity = true` fails; a VM that fits plans
//! without the warning.
//!
//! Run: `acceptance-tests/rig.sh up`, then `cargo test --test acc_capacity` (no boot lock: no VM boots).

mod support;

use serde_json::Value;
use support::{Workspace, rig_var, virsh};

const SUMMARY: &str = "Not enough free memory for the planned VMs";

/// `MemTotal`, and `MemFree` with buffers and page cache, of this machine (the rig's libvirtd
/// runs on it), in MiB.
fn meminfo_mib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").expect("reading /proc/meminfo");
    let field = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in /proc/meminfo"));
        let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("meminfo number");
        kib
    };
    (field("MemTotal:") / 1024, (field("MemFree:") + field("Buffers:") + field("Cached:")) / 1024)
}

/// The host's memory as libvirt counts it (`virsh nodeinfo`, "Memory size"), in MiB: the sum of
/// its NUMA nodes, which is less than /proc/meminfo's MemTotal on some machines (seen here: 22745
/// vs 24105 MiB). A failing virsh panics.
fn libvirt_total_mib() -> u64 {
    let out = virsh(&["nodeinfo"]);
    assert!(out.status.success(), "virsh nodeinfo: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with("Memory size:")).unwrap_or_else(|| panic!("no memory in {text}"));
    let kib: u64 = line.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"));
    kib / 1024
}

fn workspace(memory_mb: u64, strict: bool) -> Workspace {
    let ws = Workspace::in_rig("capacity");
    let vars = [
        ("base_image", rig_var("LAB_BASE_IMAGE")),
        ("network", rig_var("LAB_NETWORK")),
        ("overlay_dir", format!("{}/vms", rig_var("LAB_CACHE"))),
    ];
    let mut tfvars: String =
        vars.iter().map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).expect("json string"))).collect();
    tfvars.push_str(&format!("memory_mb = {memory_mb}\nstrict_capacity = {strict}\n"));
    ws.write("terraform.tfvars", &tfvars);
    ws
}

/// `terraform plan -json`: its exit code and the diagnostics it reported.
fn plan(ws: &Workspace) -> (i32, Vec<Value>) {
    let run = ws.terraform(&["plan", "-json", "-no-color"]);
    let diags = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["type"] == "diagnostic")
        .map(|m| m["diagnostic"].clone())
        .collect();
    (run.code, diags)
}

fn capacity_diags(diags: &[Value]) -> Vec<&Value> {
    diags.iter().filter(|d| d["summary"] == SUMMARY).collect()
}

/// The whole number right after `after` in `text`: `number_after(detail, "need ")`.
fn number_after(text: &str, after: &str) -> u64 {
    let rest = &text[text.find(after).unwrap_or_else(|| panic!("no {after:?} in {text:?}")) + after.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after {after:?} in {text:?}"))
}

/// The warning's (or error's) figures: MiB needed, MiB free, MiB total.
fn figures(diag: &Value) -> (u64, u64, u64) {
    let detail = diag["detail"].as_str().expect("detail");
    (number_after(detail, "need "), number_after(detail, "has "), number_after(detail, "page cache; "))
}

fn assert_figures_match_the_host(diag: &Value, memory_mb: u64, free_before: u64, free_after: u64) {
    let (needed, free, total) = figures(diag);
    assert_eq!(needed, memory_mb, "needed figure: {diag:#}");
    let (libvirt_total, (mem_total, _)) = (libvirt_total_mib(), meminfo_mib());
    assert_eq!(total, libvirt_total, "total figure vs libvirt's nodeinfo {libvirt_total} MiB: {diag:#}");
    assert!(total <= mem_total, "total figure {total} MiB above MemTotal {mem_total} MiB: {diag:#}");
    // Free memory moves while other work runs: it must lie within what /proc/meminfo said
    // around the plan, give or take 256 MiB.
    let (low, high) = (free_before.min(free_after).saturating_sub(256), free_before.max(free_after) + 256);
    assert!((low..=high).contains(&free), "free figure {free} MiB outside {low}..={high} MiB: {diag:#}");
    assert!(free < memory_mb, "the warning must only come when the VM does not fit: {diag:#}");
    // On the attribute, so Terraform shows which value to lower.
    let snippet = diag["snippet"]["code"].as_str().unwrap_or_default();
    assert!(snippet.contains("memory_mb"), "not on memory_mb: {diag:#}");
    eprintln!(
        "capacity: {diag:#}\n  needed {needed} MiB, free {free} MiB (/proc/meminfo {free_before}..{free_after}), total {total} MiB"
    );
}

#[test]
fn a_vm_larger_than_free_memory_warns_with_both_figures_and_fails_when_strict() {
    let (total, _) = meminfo_mib();
    // Twice the machine: more than it can have free whatever else runs.
    let memory_mb = total * 2;

    let ws = workspace(memory_mb, false);
    let (_, free_before) = meminfo_mib();
    let (code, diags) = plan(&ws);
    let (_, free_after) = meminfo_mib();
    assert_eq!(code, 0, "a capacity warning must not fail the plan: {diags:#?}");
    let found = capacity_diags(&diags);
    assert_eq!(found.len(), 1, "expected one capacity warning: {diags:#?}");
    assert_eq!(found[0]["severity"], "warning", "{:#}", found[0]);
    assert_figures_match_the_host(found[0], memory_mb, free_before, free_after);

    let ws = workspace(memory_mb, true);
    let (_, free_before) = meminfo_mib();
    let (code, diags) = plan(&ws);
    let (_, free_after) = meminfo_mib();
    assert_ne!(code, 0, "strict_capacity must fail the plan: {diags:#?}");
    let found = capacity_diags(&diags);
    assert_eq!(found.len(), 1, "expected one capacity error: {diags:#?}");
    assert_eq!(found[0]["severity"], "error", "{:#}", found[0]);
    assert_figures_match_the_host(found[0], memory_mb, free_before, free_after);
    assert!(ws.state_list().is_empty(), "a plan must not create anything");
}

#[test]
fn a_vm_that_fits_plans_without_the_warning() {
    // Far more than MemFree alone on a busy machine, well within free plus page cache.
    let (_, free) = meminfo_mib();
    let memory_mb = free / 2;
    assert!(memory_mb >= 128, "this machine has only {free} MiB free: cannot test a plan that fits");
    for strict in [false, true] {
        let (code, diags) = plan(&workspace(memory_mb, strict));
        assert_eq!(code, 0, "plan of a VM that fits (strict_capacity = {strict}) failed: {diags:#?}");
        assert!(capacity_diags(&diags).is_empty(), "a VM that fits got a capacity diagnostic: {diags:#?}");
        let errors: Vec<&Value> = diags.iter().filter(|d| d["severity"] == "error").collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
}
