//! The docs cannot drift from the schemas: every page's "Schema" section must equal what the
//! schema renders (descriptions live in the schema). `UPDATE_DOCS=1 cargo test --test docs`
//! rewrites the sections; the rest of each page (intro, examples, import) is hand-written.

use std::path::{Path, PathBuf};

use terraform_provider_lab::protocol::Provider;
use terraform_provider_lab::protocol::docs::schema_markdown;
use terraform_provider_lab::provider::LabProvider;

const BEGIN: &str = "<!-- schema:begin (generated from the schema by tests/docs.rs) -->\n";
const END: &str = "<!-- schema:end -->";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Checks (or with UPDATE_DOCS=1, rewrites) the generated section of one page.
fn check_page(page: &Path, rendered: &str, problems: &mut Vec<String>) {
    let text = match std::fs::read_to_string(page) {
        Ok(t) => t,
        Err(e) => return problems.push(format!("{}: {e}", page.display())),
    };
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        return problems.push(format!("{}: no schema markers", page.display()));
    };
    let current = &text[start + BEGIN.len()..end];
    if current == rendered {
        return;
    }
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let updated = format!("{}{BEGIN}{rendered}{}", &text[..start], &text[end..]);
        std::fs::write(page, updated).expect("rewrite docs page");
    } else {
        problems.push(format!(
            "{}: schema section is out of date (run `UPDATE_DOCS=1 cargo test --test docs`)",
            page.display()
        ));
    }
}

#[test]
fn every_schema_is_documented_and_has_an_example() {
    let provider = LabProvider::new();
    let mut problems = Vec::new();
    check_page(&root().join("docs/index.md"), &schema_markdown(&provider.schema().block), &mut problems);
    for r in provider.resources() {
        let short = r.type_name().trim_start_matches("lab_");
        check_page(
            &root().join(format!("docs/resources/{short}.md")),
            &schema_markdown(&r.schema().block),
            &mut problems,
        );
        let example = root().join(format!("examples/resources/{}/resource.tf", r.type_name()));
        if !example.exists() {
            problems.push(format!("{}: missing example", example.display()));
        }
    }
    for d in provider.data_sources() {
        let short = d.type_name().trim_start_matches("lab_");
        check_page(
            &root().join(format!("docs/data-sources/{short}.md")),
            &schema_markdown(&d.schema().block),
            &mut problems,
        );
    }
    assert!(problems.is_empty(), "docs problems:\n{}", problems.join("\n"));
}

#[test]
fn every_attribute_has_a_description() {
    fn walk(block: &terraform_provider_lab::protocol::Block, path: &str, missing: &mut Vec<String>) {
        for a in &block.attributes {
            if a.description.trim().is_empty() {
                missing.push(format!("{path}.{}", a.name));
            }
            if let Some(n) = &a.nested {
                for inner in &n.attributes {
                    if inner.description.trim().is_empty() {
                        missing.push(format!("{path}.{}.{}", a.name, inner.name));
                    }
                }
            }
        }
        for b in &block.blocks {
            walk(&b.block, &format!("{path}.{}", b.type_name), missing);
        }
    }
    let provider = LabProvider::new();
    let mut missing = Vec::new();
    walk(&provider.schema().block, "provider", &mut missing);
    for r in provider.resources() {
        walk(&r.schema().block, r.type_name(), &mut missing);
    }
    for d in provider.data_sources() {
        walk(&d.schema().block, d.type_name(), &mut missing);
    }
    assert!(missing.is_empty(), "attributes without a description: {missing:?}");
}
