//! Bad input through the real terraform: every case's diagnostic must sit on the attribute
//! (Terraform's JSON `range`/`snippet` highlight the value in the configuration, not the resource
//! block) and say in the user's words what is wrong. Nested attributes (`publish.host_port`,
//! `credential.username`), a timeouts block, a list element and decode errors (a fraction or
//! a huge number where a whole number is needed) included.
//! Needs no rig: validation runs before the provider is configured.

mod support;

use serde_json::Value;
use support::Workspace;

/// One bad value: the resource it is in, the attribute's line as written, and what the user
/// must see.
struct Case {
    /// `lab_vm.<label>` or `lab_terminal.<label>`: one resource per case.
    address: &'static str,
    /// The body of the resource; the bad attribute is written on a line of its own.
    body: &'static str,
    summary: &'static str,
    /// The detail, exactly.
    detail: &'static str,
    /// The text Terraform highlights: the bad value itself.
    highlight: &'static str,
}

const VM: &str = r#"name = "vm-1"
  base_image = "/nonexistent/base.qcow2"
  domain_type = "qemu""#;

const TERMINAL: &str = r#"name = "t-1"
  persistent = false
  target_host = "192.0.2.1"
  ssh_private_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----""#;

fn cases() -> Vec<Case> {
    vec![
        Case {
            address: "lab_vm.memory_fraction",
            body: "memory_mb = 512.5",
            summary: "Invalid memory_mb",
            detail: "memory_mb must be a whole number of MiB, got 512.5",
            highlight: "512.5",
        },
        Case {
            address: "lab_vm.memory_huge",
            body: "memory_mb = 1e20",
            summary: "Invalid memory_mb",
            // Terraform sends the number as its digits.
            detail: "memory_mb is too large: 100000000000000000000 MiB (at most 9223372036854775807 MiB)",
            highlight: "1e20",
        },
        Case {
            address: "lab_vm.vcpus_negative",
            body: "vcpus = -1",
            summary: "Invalid vcpus",
            detail: "must be between 1 and 256 virtual CPUs, got -1",
            highlight: "-1",
        },
        Case {
            address: "lab_vm.key_element",
            body: r#"ssh_authorized_keys = ["ssh-ed25519 AAAA a@b", "two\nlines"]"#,
            summary: "Invalid ssh_authorized_keys[1]",
            detail: "each entry is one non-empty authorized_keys line (one trailing newline, as `file()` of a \
                     .pub file gives, is fine)",
            highlight: r#""two\nlines""#,
        },
        Case {
            address: "lab_vm.timeout_words",
            body: "timeouts {\n    create = \"soon\"\n  }",
            summary: "Invalid timeouts.create",
            detail: "`soon` is not a duration; use e.g. \"90s\", \"5m\" or \"1h30m\"",
            highlight: r#""soon""#,
        },
        Case {
            address: "lab_terminal.port_too_high",
            body: "publish = { host_port = 70000 }",
            summary: "Invalid publish.host_port",
            detail: "must be a port between 1 and 65535, got 70000",
            highlight: "70000",
        },
        Case {
            address: "lab_terminal.user_with_colon",
            body: r#"credential = { username = "a:b", password = "p" }"#,
            summary: "Invalid credential.username",
            detail: "must be non-empty, without `:` or control characters",
            highlight: "a:b",
        },
    ]
}

fn bad_tf(cases: &[Case]) -> String {
    let mut tf = String::new();
    for case in cases {
        let (kind, label) = case.address.split_once('.').expect("address");
        let common = if kind == "lab_vm" { VM } else { TERMINAL };
        tf.push_str(&format!("resource \"{kind}\" \"{label}\" {{\n  {common}\n  {}\n}}\n\n", case.body));
    }
    tf
}

/// The text a diagnostic's snippet highlights.
fn highlighted(diag: &Value) -> String {
    let snippet = &diag["snippet"];
    let code = snippet["code"].as_str().unwrap_or_default();
    let (start, end) = (snippet["highlight_start_offset"].as_u64(), snippet["highlight_end_offset"].as_u64());
    match (start, end) {
        (Some(s), Some(e)) => code.get(s as usize..e as usize).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// The resource a diagnostic's snippet sits in, from its context (`resource "lab_vm" "x"`).
fn resource_of(diag: &Value) -> String {
    let context = diag["snippet"]["context"].as_str().unwrap_or_default();
    let words: Vec<&str> = context.split('"').filter(|w| !w.trim().is_empty()).collect();
    match words.as_slice() {
        ["resource ", kind, label, ..] => format!("{kind}.{label}"),
        _ => format!("(no resource in context {context:?})"),
    }
}

fn assert_on_the_attribute(case: &Case, diag: &Value, header_lines: &[u64]) {
    let what = case.address;
    assert_eq!(diag["severity"], "error", "{what}: {diag:#}");
    assert_eq!(diag["summary"], case.summary, "{what}: {diag:#}");
    assert_eq!(diag["detail"], case.detail, "{what}: {diag:#}");
    // Terraform 1.11 highlights a string inside an object without its quotes, 1.15 with them.
    let unquoted = |s: &str| s.trim_matches('"').to_string();
    assert_eq!(unquoted(&highlighted(diag)), unquoted(case.highlight), "{what}: highlight in {diag:#}");
    let line = diag["range"]["start"]["line"].as_u64().expect("range.start.line");
    assert!(!header_lines.contains(&line), "{what}: the diagnostic underlines the resource block, line {line}");
    let detail = diag["detail"].as_str().unwrap_or_default();
    for word in ["i64", "u16", "u32", "out of range for", "reading "] {
        assert!(!detail.contains(word), "{what}: implementation words ({word:?}) in {detail:?}");
    }
}

#[test]
fn validate_puts_each_bad_value_on_its_attribute_in_the_users_words() {
    let ws = Workspace::new("diags-bad");
    let cases = cases();
    let tf = bad_tf(&cases);
    ws.write("bad.tf", &tf);
    let headers: Vec<u64> =
        tf.lines().enumerate().filter(|(_, l)| l.starts_with("resource ")).map(|(i, _)| i as u64 + 1).collect();

    let run = ws.terraform(&["validate", "-json", "-no-color"]);
    assert_eq!(run.code, 1, "validate must fail:\n{}\n{}", run.stdout, run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).expect("validate -json is JSON");
    let errors: Vec<&Value> =
        doc["diagnostics"].as_array().expect("diagnostics").iter().filter(|d| d["severity"] == "error").collect();
    for case in &cases {
        let found: Vec<&&Value> = errors.iter().filter(|d| resource_of(d) == case.address).collect();
        assert_eq!(found.len(), 1, "{}: expected one error, got {found:#?}", case.address);
        assert_on_the_attribute(case, found[0], &headers);
    }
    assert_eq!(errors.len(), cases.len(), "an error no case expects: {errors:#?}");
}

/// `plan -json` reports the same diagnostics, each with its resource's address.
#[test]
fn plan_reports_the_same_diagnostics_with_the_resource_address() {
    let ws = Workspace::new("diags-bad");
    let cases = cases();
    let tf = bad_tf(&cases);
    ws.write("bad.tf", &tf);
    let headers: Vec<u64> =
        tf.lines().enumerate().filter(|(_, l)| l.starts_with("resource ")).map(|(i, _)| i as u64 + 1).collect();

    let run = ws.terraform(&["plan", "-json", "-no-color"]);
    assert_eq!(run.code, 1, "plan must fail:\n{}\n{}", run.stdout, run.stderr);
    let diags: Vec<Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["type"] == "diagnostic" && m["diagnostic"]["severity"] == "error")
        .map(|m| m["diagnostic"].clone())
        .collect();
    for case in &cases {
        let found: Vec<&Value> = diags.iter().filter(|d| d["address"] == case.address).collect();
        assert_eq!(found.len(), 1, "{}: expected one error, got {found:#?}", case.address);
        assert_on_the_attribute(case, found[0], &headers);
    }
    assert_eq!(diags.len(), cases.len(), "an error no case expects: {diags:#?}");
}
