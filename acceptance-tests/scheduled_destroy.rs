//! `examples/scheduled-destroy` through the real terraform, with each session's DNS record in a
//! real Knot server (RFC 2136, TSIG key per run, on 127.0.0.1): a scheduled apply keeps the
//! students whose time is not up and removes the others, records included; a record deleted out
//! of band is re-created by the next apply; `lab_sessions` lists the live sessions; destroy leaves
//! no record behind.

#[path = "../tests/support/knot.rs"]
mod knot;
mod support;

use knot::{KEY_NAME, Knot, TUNNEL_TARGET, ZONE};
use support::{Workspace, plan_counts};

const FUTURE: &str = "2099-06-30T16:00:00Z";
const PAST: &str = "2020-01-31T12:00:00Z";

fn roster(ada_until: &str, alan_until: &str) -> String {
    roster_with_ttl(ada_until, alan_until, "4h")
}

fn roster_with_ttl(ada_until: &str, alan_until: &str, ada_ttl: &str) -> String {
    format!(
        "email,name,until,ttl\nada@example.edu,Ada Lovelace,{ada_until},{ada_ttl}\nalan@example.edu,Alan Turing,{alan_until},\n"
    )
}

fn hostnames(ws: &Workspace) -> Vec<(String, String)> {
    let out = ws.output_json();
    let mut v: Vec<(String, String)> = out["sessions"]["value"]
        .as_object()
        .expect("sessions output")
        .iter()
        .map(|(k, s)| (k.clone(), s["hostname"].as_str().expect("hostname").to_string()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_apply_removes_expired_students_and_their_records() {
    let knot = Knot::start().await;
    let ws = Workspace::example("scheduled-destroy");
    ws.write(
        "dns_override.tf",
        &format!(
            r#"provider "lab" {{
  domain = "{ZONE}"
  dns {{
    rfc2136 {{
      server     = "127.0.0.1:{port}"
      zone       = "{ZONE}"
      key_name   = "{KEY_NAME}"
      key_secret = "{secret}"
      target     = "{TUNNEL_TARGET}"
    }}
  }}
}}
"#,
            port = knot.port,
            secret = knot.secret
        ),
    );
    ws.write(
        "dashboard.tf",
        "data \"lab_sessions\" \"live\" {\n  depends_on = [lab_session.student]\n}\n\n\
         output \"live\" {\n  value = sort([for s in data.lab_sessions.live.sessions : s.hostname])\n}\n\n\
         output \"live_detail\" {\n  value = { for s in data.lab_sessions.live.sessions : s.hostname => s }\n}\n",
    );
    let roster_var = "-var=roster_file=roster.csv";

    // Both students active: two sessions, two CNAMEs to the tunnel.
    ws.write("roster.csv", &roster(FUTURE, FUTURE));
    ws.apply(&[roster_var]);
    let both = hostnames(&ws);
    assert_eq!(both.len(), 2, "{both:?}");
    for (_, host) in &both {
        assert_eq!(knot.dig(host, "CNAME"), vec![format!("{TUNNEL_TARGET}.")], "record of {host}");
    }
    let plan = ws.terraform(&["plan", "-detailed-exitcode", "-no-color", roster_var]);
    assert_eq!(plan.code, 0, "second plan not empty:\n{}", plan.stdout);

    // A record deleted out of band: the next plan re-creates it in place (same session, same URL).
    let ada_host = &both[0].1;
    knot.nsupdate(&format!("update delete {ada_host}. CNAME"));
    assert!(knot.dig(ada_host, "CNAME").is_empty());
    let plan = ws.terraform(&["plan", "-no-color", roster_var]).ok("plan after out-of-band delete");
    assert_eq!(plan_counts(&plan.stdout), (0, 1, 0), "{}", plan.stdout);
    ws.apply(&[roster_var]);
    assert_eq!(knot.dig(ada_host, "CNAME"), vec![format!("{TUNNEL_TARGET}.")]);
    assert_eq!(hostnames(&ws), both, "re-creating the record must keep the session");

    // Alan's time is up: the scheduled apply removes his session and its record, keeps Ada's.
    ws.write("roster.csv", &roster(FUTURE, PAST));
    let apply = ws.apply(&[roster_var]);
    assert!(apply.stdout.contains("0 added, 0 changed, 1 destroyed"), "{}", apply.stdout);
    let kept = hostnames(&ws);
    assert_eq!(kept, vec![both[0].clone()]);
    let alan_host = &both[1].1;
    assert!(knot.dig(alan_host, "CNAME").is_empty(), "record of the removed session is still there");
    assert_eq!(knot.dig(ada_host, "CNAME"), vec![format!("{TUNNEL_TARGET}.")]);
    let out = ws.output_json();
    assert_eq!(out["ended"]["value"], serde_json::json!(["alan@example.edu"]));
    assert_eq!(out["live"]["value"], serde_json::json!([ada_host]));
    // lab_sessions reads student and expiry back from the record's ownership marker.
    let listed = &out["live_detail"]["value"][ada_host.as_str()];
    assert_eq!(listed["student"], "ada@example.edu", "{listed}");
    assert_eq!(listed["expires_at"], out["sessions"]["value"]["ada@example.edu"]["expires_at"], "{listed}");
    assert_eq!(listed["expired"], false, "{listed}");

    // A longer ttl moves expires_at in place, and the record's marker follows.
    ws.write("roster.csv", &roster_with_ttl(FUTURE, PAST, "6h"));
    let apply = ws.apply(&[roster_var]);
    assert!(apply.stdout.contains("0 added, 1 changed, 0 destroyed"), "{}", apply.stdout);
    let out = ws.output_json();
    let listed = &out["live_detail"]["value"][ada_host.as_str()];
    assert_eq!(listed["expires_at"], out["sessions"]["value"]["ada@example.edu"]["expires_at"], "{listed}");
    assert_ne!(listed["expires_at"], serde_json::Value::Null);
    assert_eq!(hostnames(&ws), vec![both[0].clone()], "a ttl change must keep the session");

    // End of term.
    ws.terraform(&["destroy", "-auto-approve", "-no-color", roster_var]).ok("destroy");
    assert!(ws.state_list().is_empty());
    assert!(knot.dig(ada_host, "CNAME").is_empty(), "destroy left a DNS record");
    assert!(knot.dig(&format!("_lab-owner.{ada_host}"), "TXT").is_empty(), "destroy left an ownership record");
}
