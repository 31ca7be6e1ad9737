//! lab_session through the real terraform: for_each over 200 students, empty re-plan, update in
//! place, replacement, `import {}` blocks, plan-time diagnostics naming the attribute, destroy; and
//! `examples/roster` itself with a roster of 200.
//! Needs no rig: sessions without a `dns` block touch nothing outside the provider, and those
//! with one use a real Knot server on 127.0.0.1 (RFC 2136, TSIG key per run): an apply whose state
//! is lost (`terraform state rm`, or terraform killed with SIGKILL once the records exist) leaves
//! records that the next apply adopts, and destroy leaves none.

#[path = "../tests/support/knot.rs"]
mod knot;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use knot::{KEY_NAME, Knot, TUNNEL_TARGET, ZONE};
use support::{Workspace, plan_counts};

const ADOPTED: &str = "Adopted the DNS record of an unfinished apply";

fn sessions(ws: &Workspace) -> serde_json::Map<String, serde_json::Value> {
    ws.output_json()["sessions"]["value"].as_object().expect("sessions output").clone()
}

#[test]
fn session_lifecycle_200_students() {
    let ws = Workspace::new("session");

    let apply = ws.apply(&[]);
    assert!(apply.stdout.contains("200 added"), "{}", apply.stdout);
    let first = sessions(&ws);
    assert_eq!(first.len(), 200);
    let ids: HashSet<&str> = first.values().map(|s| s["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), 200, "session ids must be unique");
    for s in first.values() {
        let id = s["id"].as_str().unwrap();
        assert!(id.len() == 8 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{id}");
        assert_eq!(s["hostname"], format!("lab-{id}.lab.example.edu"));
        assert_eq!(s["expired"], false);
    }
    let urls = ws.output_json()["urls"]["value"].clone();
    assert_eq!(urls["student007"], format!("https://{}", first["student007"]["hostname"].as_str().unwrap()));

    // No perpetual diff.
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "second plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // ttl updates in place and moves expires_at; the id stays.
    let ttl_override = r#"-var=overrides={"student001"={ttl="90m"}}"#;
    let plan = ws.terraform(&["plan", "-no-color", ttl_override]).ok("plan ttl change");
    assert_eq!(plan_counts(&plan.stdout), (0, 1, 0), "{}", plan.stdout);
    ws.apply(&[ttl_override]);
    let after = sessions(&ws);
    assert_eq!(after["student001"]["id"], first["student001"]["id"]);
    assert_eq!(after["student001"]["created_at"], first["student001"]["created_at"]);
    assert_ne!(after["student001"]["expires_at"], first["student001"]["expires_at"]);

    // A new student replaces the session: new id, new URL.
    let both = r#"-var=overrides={"student001"={ttl="90m"},"student002"={student="grace@example.edu"}}"#;
    let plan = ws.terraform(&["plan", "-no-color", both]).ok("plan student change");
    assert_eq!(plan_counts(&plan.stdout), (1, 0, 1), "{}", plan.stdout);
    assert!(plan.stdout.contains("forces replacement"), "{}", plan.stdout);
    ws.apply(&[both]);
    let replaced = sessions(&ws);
    assert_ne!(replaced["student002"]["id"], first["student002"]["id"]);
    let plan = ws.terraform(&["plan", "-detailed-exitcode", "-no-color", both]);
    assert_eq!(plan.code, 0, "plan after replacement not empty:\n{}", plan.stdout);

    ws.destroy();
    assert!(ws.state_list().is_empty(), "destroy left resources in state");
}

#[test]
fn session_import_block_adopts_an_existing_id() {
    let ws = Workspace::new("session-bad");
    ws.apply(&[]);
    let id = ws.state_resources()[0]["values"]["id"].as_str().expect("id").to_string();
    ws.terraform(&["state", "rm", "lab_session.one"]).ok("state rm");

    ws.write("import.tf", &format!("import {{\n  to = lab_session.one\n  id = \"{id}\"\n}}\n"));
    let plan = ws.terraform(&["plan", "-no-color"]).ok("plan import");
    assert!(plan.stdout.contains("1 to import"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("must be replaced"), "import must adopt, not replace:\n{}", plan.stdout);
    ws.apply(&[]);
    assert_eq!(ws.state_resources()[0]["values"]["id"], id.as_str());
    ws.remove("import.tf");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after import not empty:\n{}", plan.stdout);
    ws.destroy();
}

#[test]
fn bad_inputs_are_plan_time_errors_naming_the_attribute() {
    let ws = Workspace::new("session-bad");
    let cases = [
        ("-var=ttl=4 parsecs", "Invalid ttl", "ttl     = var.ttl", "`parsecs` is not a unit of time"),
        ("-var=student=", "Empty student", "student = var.student", "must name the student"),
    ];
    for (var, summary, source_line, detail) in cases {
        let plan = ws.terraform(&["plan", "-no-color", var]);
        assert_eq!(plan.code, 1, "plan with {var} should fail:\n{}", plan.stdout);
        // Terraform quotes the offending line of the configuration when the diagnostic carries
        // the attribute path.
        for expected in [summary, source_line, detail] {
            assert!(plan.stderr.contains(expected), "missing {expected:?} for {var}:\n{}", plan.stderr);
        }
    }
    assert!(ws.state_list().is_empty(), "a failed plan must not create anything");
}

/// The example an instructor starts from, unchanged but for a CSV of 200 students.
#[test]
fn roster_example_with_200_students_applies_replans_empty_and_destroys() {
    let ws = Workspace::example("roster");
    let mut csv = String::from("email,name,ttl\n");
    for i in 0..200 {
        csv.push_str(&format!("student{i:03}@example.edu,Student {i},4h\n"));
    }
    ws.write("students.csv", &csv);

    let apply = ws.apply(&[]);
    assert!(apply.stdout.contains("200 added"), "{}", apply.stdout);
    let urls = ws.output_json()["urls"]["value"].as_object().expect("urls output").clone();
    assert_eq!(urls.len(), 200);
    let url = urls["student042@example.edu"].as_str().expect("url");
    let id = url.strip_prefix("https://lab-").and_then(|u| u.strip_suffix(".lab.localhost")).expect(url);
    assert!(id.len() == 8 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{url}");

    let plan = ws.plan();
    assert_eq!(plan.code, 0, "second plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

    ws.destroy();
    assert_eq!(ws.state_list(), Vec::<String>::new(), "destroy leaves an empty state");
}

/// The `session-dns` case with its provider block pointed at `knot`.
fn dns_workspace(knot: &Knot) -> Workspace {
    dns_workspace_at(knot, knot.port)
}

/// The same, with the provider talking to `knot` through `port` (e.g. a slow forwarder).
fn dns_workspace_at(knot: &Knot, port: u16) -> Workspace {
    let ws = Workspace::new("session-dns");
    ws.write(
        "provider.tf",
        &format!(
            "provider \"lab\" {{\n  domain = \"{ZONE}\"\n  dns {{\n    rfc2136 {{\n      server     = \"127.0.0.1:{}\"\n      \
             zone       = \"{ZONE}\"\n      key_name   = \"{KEY_NAME}\"\n      key_secret = \"{}\"\n      \
             target     = \"{TUNNEL_TARGET}\"\n    }}\n  }}\n}}\n",
            port, knot.secret
        ),
    );
    ws
}

/// student -> (id, hostname), from the outputs.
fn dns_sessions(ws: &Workspace) -> BTreeMap<String, (String, String)> {
    sessions(ws)
        .into_iter()
        .map(|(student, s)| {
            let field = |name: &str| s[name].as_str().unwrap_or_else(|| panic!("{name} of {student}: {s}")).to_string();
            (student.clone(), (field("id"), field("hostname")))
        })
        .collect()
}

/// `terraform apply -json`: the summary and detail of each warning (Terraform's human output folds
/// similar warnings into "and 2 more similar warnings").
fn apply_warnings(ws: &Workspace) -> Vec<(String, String)> {
    let run = ws.terraform(&["apply", "-auto-approve", "-json"]).ok("terraform apply -json");
    run.stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["type"] == "diagnostic" && msg["diagnostic"]["severity"] == "warning")
        .map(|msg| {
            let text = |k: &str| msg["diagnostic"][k].as_str().unwrap_or_default().to_string();
            (text("summary"), text("detail"))
        })
        .collect()
}

fn adoptions(warnings: &[(String, String)]) -> Vec<&str> {
    warnings.iter().filter(|(summary, _)| summary == ADOPTED).map(|(_, detail)| detail.as_str()).collect()
}

/// The session hostnames that have an ownership record in the zone, by a signed AXFR (which fails
/// the test when the transfer fails).
async fn owned_hostnames(knot: &Knot) -> BTreeSet<String> {
    let owned = knot.backend().list_owned().await.expect("zone transfer of the test zone");
    owned.into_iter().map(|r| r.hostname).collect()
}

/// Both records of a session, as an independent client (kdig) sees them; kdig failing fails the test.
fn records_of(knot: &Knot, hostname: &str) -> (Vec<String>, Vec<String>) {
    (knot.dig(hostname, "CNAME"), knot.dig(&format!("_lab-owner.{hostname}"), "TXT"))
}

fn assert_no_records(knot: &Knot, hostnames: impl IntoIterator<Item = String>) {
    for hostname in hostnames {
        assert_eq!(records_of(knot, &hostname), (vec![], vec![]), "destroy left a record of {hostname}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_state_leaves_records_that_the_next_apply_adopts() {
    let knot = Knot::start().await;
    let ws = dns_workspace(&knot);
    ws.apply(&[]);
    let first = dns_sessions(&ws);
    assert_eq!(first.len(), 3);
    let hostnames: BTreeSet<String> = first.values().map(|(_, h)| h.clone()).collect();
    assert_eq!(owned_hostnames(&knot).await, hostnames);
    for (_, hostname) in first.values() {
        let (cname, txt) = records_of(&knot, hostname);
        assert_eq!(cname, vec![format!("{TUNNEL_TARGET}.")]);
        assert!(txt.len() == 1 && txt[0].contains(" pending"), "not saved yet as far as DNS knows: {txt:?}");
    }

    // What a killed apply leaves: the records, and no state.
    ws.terraform(&["state", "rm", "lab_session.s"]).ok("state rm");
    assert!(ws.state_list().is_empty());
    let warnings = apply_warnings(&ws);
    let adopted = adoptions(&warnings);
    assert_eq!(adopted.len(), 3, "one visible adoption per session: {warnings:#?}");
    for (id, hostname) in first.values() {
        assert!(
            adopted.iter().any(|d| d.contains(hostname) && d.contains(id)),
            "a warning names {hostname}: {adopted:#?}"
        );
    }
    assert_eq!(dns_sessions(&ws), first, "the sessions keep their ids");
    assert_eq!(owned_hostnames(&knot).await, hostnames, "no new records");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after adoption not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // That refresh saw the sessions in state: their records are no orphans any more, so a new
    // session for the same student is a new one and never takes a live session's record.
    for (_, hostname) in first.values() {
        let (_, txt) = records_of(&knot, hostname);
        assert!(txt.len() == 1 && !txt[0].contains(" pending"), "confirmed by the refresh: {txt:?}");
    }
    ws.write(
        "twin.tf",
        "resource \"lab_session\" \"twin\" {\n  student = \"ada@example.edu\"\n  ttl     = \"4h\"\n}\n",
    );
    let warnings = apply_warnings(&ws);
    assert!(adoptions(&warnings).is_empty(), "{warnings:#?}");
    let twin = ws
        .state_resources()
        .into_iter()
        .find(|r| r["name"] == "twin")
        .and_then(|r| r["values"]["hostname"].as_str().map(str::to_string))
        .expect("twin in state");
    assert!(!hostnames.contains(&twin), "{twin}");
    assert_eq!(owned_hostnames(&knot).await.len(), 4);

    ws.destroy();
    assert!(ws.state_list().is_empty());
    assert!(owned_hostnames(&knot).await.is_empty(), "destroy left ownership records");
    assert_no_records(&knot, hostnames.into_iter().chain([twin]));
}

/// Two unfinished applies for one student leave two pending records of one identity. The next
/// create cannot know which was its own, so it adopts neither: its warning names both records,
/// it makes a session of its own, and both orphans are left as they were for the user to remove.
#[tokio::test(flavor = "multi_thread")]
async fn two_orphans_of_one_student_are_named_and_neither_is_adopted() {
    const SEVERAL: &str = "Several DNS records of unfinished applies match this session";
    let knot = Knot::start().await;
    let ws = dns_workspace(&knot);
    let session = |name: &str| {
        format!("resource \"lab_session\" \"{name}\" {{\n  student = \"ada@example.edu\"\n  ttl     = \"4h\"\n}}\n")
    };
    ws.write("terraform.tfvars", "students = []\n");
    ws.write("ada.tf", &format!("{}{}", session("first"), session("second")));
    ws.apply(&[]);
    let orphans = owned_hostnames(&knot).await;
    assert_eq!(orphans.len(), 2, "{orphans:?}");
    ws.terraform(&["state", "rm", "lab_session.first", "lab_session.second"]).ok("state rm");
    let before: Vec<_> = orphans.iter().map(|h| records_of(&knot, h)).collect();

    ws.write("ada.tf", &session("again"));
    let warnings = apply_warnings(&ws);
    assert!(adoptions(&warnings).is_empty(), "an ambiguous orphan was adopted: {warnings:#?}");
    let several: Vec<&str> = warnings.iter().filter(|(s, _)| s == SEVERAL).map(|(_, d)| d.as_str()).collect();
    assert_eq!(several.len(), 1, "one warning for the one create: {warnings:#?}");
    for hostname in &orphans {
        assert!(several[0].contains(hostname.as_str()), "the warning names {hostname}: {}", several[0]);
    }
    let again = ws
        .state_resources()
        .into_iter()
        .find(|r| r["name"] == "again")
        .and_then(|r| r["values"]["hostname"].as_str().map(str::to_string))
        .expect("the new session in state");
    assert!(!orphans.contains(&again), "the new session took an orphan's name: {again}");
    let after: Vec<_> = orphans.iter().map(|h| records_of(&knot, h)).collect();
    assert_eq!(after, before, "the orphans were changed");

    ws.destroy();
    assert_no_records(&knot, [again]);
    let backend = knot.backend();
    for record in backend.list_owned().await.expect("zone transfer of the test zone") {
        backend.delete_record(&record.hostname, &record.id).await.expect("removing an orphan");
    }
    assert!(owned_hostnames(&knot).await.is_empty());
}

/// How many ownership records the zone holds, by a TSIG-signed AXFR with kdig (sync, for
/// `apply_killed`'s trigger); kdig failing fails the test.
fn owner_records(knot: &Knot) -> usize {
    let out = std::process::Command::new(knot::find_tool("kdig", "knot-dnsutils"))
        .args(["@127.0.0.1", "-p", &knot.port.to_string(), "+noall", "+answer", "-y"])
        .arg(format!("hmac-sha256:{KEY_NAME}:{}", knot.secret))
        .args([ZONE, "AXFR"])
        .output()
        .expect("running kdig");
    assert!(out.status.success(), "kdig AXFR failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("_lab-owner.")).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_killed_after_the_records_exist_converges_on_the_next_apply() {
    let knot = Knot::start().await;
    let ws = dns_workspace(&knot);
    // Terraform goes on after the sessions (a wait of 15 s, then one more session, so the
    // provider stays up) and is killed once every first session's record is in the zone and a
    // create has reported complete (the records land a moment before terraform prints that).
    ws.write(
        "after.tf",
        "resource \"terraform_data\" \"wait\" {\n  depends_on = [lab_session.s]\n  provisioner \"local-exec\" {\n    \
         command = \"sleep 15\"\n  }\n}\n\nresource \"lab_session\" \"late\" {\n  student    = \"late@example.edu\"\n  \
         depends_on = [terraform_data.wait]\n}\n",
    );
    let (killed, providers, _) =
        ws.apply_killed_when(&[], false, |out| out.contains("Creation complete") && owner_records(&knot) == 3);
    assert!(!providers.is_empty(), "terraform had no provider child to watch");
    assert_ne!(killed.code, 0, "terraform was killed:\n{}", killed.stdout);
    assert!(killed.stdout.contains("Creation complete"), "{}", killed.stdout);
    let left = owned_hostnames(&knot).await;
    assert_eq!(left.len(), 3, "{left:?}");
    let saved = ws.state_list().iter().filter(|a| a.starts_with("lab_session.s[")).count();
    eprintln!("after SIGKILL: {} records, {saved} sessions in state, providers {providers:?}", left.len());

    // The next apply converges with no manual step, onto the records the killed one made.
    let warnings = apply_warnings(&ws);
    assert_eq!(adoptions(&warnings).len(), 3 - saved, "{warnings:#?}");
    let sessions = dns_sessions(&ws);
    let hostnames: BTreeSet<String> = sessions.values().map(|(_, h)| h.clone()).collect();
    assert_eq!(hostnames, left, "the sessions are the ones the killed apply made");
    let late = ws
        .state_resources()
        .into_iter()
        .find(|r| r["name"] == "late")
        .and_then(|r| r["values"]["hostname"].as_str().map(str::to_string))
        .expect("late in state");
    let mut all = left.clone();
    all.insert(late);
    assert_eq!(owned_hostnames(&knot).await, all, "no record but the late session's is new");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after convergence not empty:\n{}\n{}", plan.stdout, plan.stderr);

    ws.destroy();
    assert!(owned_hostnames(&knot).await.is_empty(), "destroy left ownership records");
    assert_no_records(&knot, all);
}

/// SIGKILL while 30 creates are under way: records exist whose sessions Terraform never saved.
/// The next apply adopts exactly those, so every record ends up in state and none is left over.
#[tokio::test(flavor = "multi_thread")]
async fn an_apply_killed_amid_creates_leaves_orphans_that_the_next_apply_adopts() {
    let knot = Knot::start().await;
    // Every exchange with the server takes 300 ms more, so creates are under way for seconds.
    let slow = knot::slow_forwarder(&knot, Duration::from_millis(300)).await;
    let ws = dns_workspace_at(&knot, slow);
    let students: Vec<String> = (0..30).map(|i| format!("\"student{i:02}@example.edu\"")).collect();
    ws.write("students.auto.tfvars", &format!("students = [{}]\n", students.join(", ")));
    let (killed, providers) = ws.apply_killed(|| owner_records(&knot) >= 1, Duration::ZERO);
    assert_ne!(killed.code, 0, "terraform was killed:\n{}", killed.stdout);
    // A provider that outlives terraform may still finish the creates it had begun: wait until the
    // zone stops changing.
    let mut records = owner_records(&knot);
    let mut stable_since = std::time::Instant::now();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stable_since.elapsed() < Duration::from_secs(3) {
        assert!(std::time::Instant::now() < deadline, "the zone kept changing for 60 s");
        std::thread::sleep(Duration::from_millis(500));
        let now = owner_records(&knot);
        if now != records {
            (records, stable_since) = (now, std::time::Instant::now());
        }
    }
    let left = owned_hostnames(&knot).await;
    let in_state: BTreeSet<String> =
        ws.state_resources().into_iter().filter_map(|r| r["values"]["hostname"].as_str().map(str::to_string)).collect();
    assert!(in_state.is_subset(&left), "a saved session without its record: {in_state:?} vs {left:?}");
    let orphans = left.difference(&in_state).count();
    eprintln!(
        "after SIGKILL: {} records, {} sessions in state, {orphans} orphans, providers {providers:?}",
        left.len(),
        in_state.len()
    );

    let warnings = apply_warnings(&ws);
    assert_eq!(adoptions(&warnings).len(), orphans, "each orphan adopted once: {warnings:#?}");
    let hostnames: BTreeSet<String> = dns_sessions(&ws).values().map(|(_, h)| h.clone()).collect();
    assert_eq!(hostnames.len(), 30);
    assert!(left.is_subset(&hostnames), "every record the killed apply left belongs to a session now");
    assert_eq!(owned_hostnames(&knot).await, hostnames, "no record outside the state");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after convergence not empty:\n{}\n{}", plan.stdout, plan.stderr);

    ws.destroy();
    assert!(owned_hostnames(&knot).await.is_empty(), "destroy left ownership records");
    assert_no_records(&knot, hostnames);
}

/// `lab_session.dns_target` through terraform against the real Knot server: each session's CNAME
/// points at the gateway of its host (or, unset, at the provider's `target`), a changed target is
/// an in-place update that repoints the record and keeps the id, a target the record type cannot
/// hold is a plan-time error on `dns_target`, and destroy leaves no record.
#[tokio::test(flavor = "multi_thread")]
async fn dns_target_points_each_record_at_its_hosts_gateway() {
    let knot = Knot::start().await;
    let ws = dns_workspace(&knot);
    let (gw1, gw2) = (format!("gw-h1.{ZONE}"), format!("gw-h2.{ZONE}"));
    ws.write(
        "hosts.tf",
        "variable \"targets\" { type = map(string) }\n\
         resource \"lab_session\" \"h\" {\n  for_each = var.targets\n\n  student    = each.key\n  \
         dns_target = each.value\n}\n\
         output \"by_student\" {\n  value = { for k, s in lab_session.h : k => { id = s.id, hostname = s.hostname } }\n}\n",
    );
    let targets = |ann: &str, bob: &str| {
        ws.write("terraform.tfvars", &format!("students = []\ntargets = {{ ann = {ann}, bob = {bob}, cy = null }}\n"))
    };

    // A CNAME cannot point at an address: refused at plan, on the attribute, nothing written.
    targets("\"10.77.1.2\"", &format!("\"{gw2}\""));
    let plan = ws.terraform(&["plan", "-no-color"]);
    assert_ne!(plan.code, 0, "a CNAME to an IP address was planned:\n{}", plan.stdout);
    for expected in ["Error: Invalid dns_target", "dns_target = each.value", "\"10.77.1.2\" is an IP address"] {
        assert!(plan.stderr.contains(expected), "no `{expected}` in:\n{}", plan.stderr);
    }
    assert!(owned_hostnames(&knot).await.is_empty());

    targets(&format!("\"{gw1}\""), &format!("\"{gw2}\""));
    ws.apply(&[]);
    let by_student = |ws: &Workspace| -> BTreeMap<String, (String, String)> {
        let out = ws.output_json()["by_student"]["value"].clone();
        ["ann", "bob", "cy"]
            .iter()
            .map(|s| {
                let field = |k: &str| out[s][k].as_str().unwrap_or_else(|| panic!("{s}.{k}: {out}")).to_string();
                (s.to_string(), (field("id"), field("hostname")))
            })
            .collect()
    };
    let first = by_student(&ws);
    let cname = |s: &str, map: &BTreeMap<String, (String, String)>| knot.dig(&map[s].1, "CNAME");
    assert_eq!(cname("ann", &first), vec![format!("{gw1}.")]);
    assert_eq!(cname("bob", &first), vec![format!("{gw2}.")]);
    assert_eq!(cname("cy", &first), vec![format!("{TUNNEL_TARGET}.")], "no dns_target: the provider's target");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "second plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // bob moves to h1: one in-place update, the same session and hostname, the record repointed.
    targets(&format!("\"{gw1}\""), &format!("\"{gw1}\""));
    let plan = ws.plan();
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    assert_eq!(plan_counts(&plan.stdout), (0, 1, 0), "{}", plan.stdout);
    ws.apply(&[]);
    assert_eq!(by_student(&ws), first, "ids and hostnames stay");
    assert_eq!(cname("bob", &first), vec![format!("{gw1}.")]);
    assert_eq!(cname("ann", &first), vec![format!("{gw1}.")]);
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after the move not empty:\n{}\n{}", plan.stdout, plan.stderr);

    ws.destroy();
    assert!(owned_hostnames(&knot).await.is_empty(), "destroy left ownership records");
    assert_no_records(&knot, first.into_values().map(|(_, h)| h));
}
