//! Registry-style markdown for a schema (the "Schema" section tfplugindocs writes), so the pages
//! under `docs/` are derived from the schema descriptions and cannot drift (tests/docs.rs).

use std::fmt::Write;

use super::schema::{Attribute, Block, NestedBlock, Nesting};
use super::value::{Type, Value};

/// The markdown between `<!-- schema:begin -->` and `<!-- schema:end -->` in a docs page.
pub fn schema_markdown(block: &Block) -> String {
    let mut out = String::from("## Schema\n");
    render_block(&mut out, block, "");
    out
}

fn render_block(out: &mut String, block: &Block, path: &str) {
    let mut nested: Vec<(String, String, Block)> = Vec::new();
    type Keep = fn(&Attribute) -> bool;
    let groups: [(&str, Keep); 3] = [
        ("Required", |a| a.required),
        ("Optional", |a| a.optional),
        ("Read-Only", |a| a.computed && !a.optional && !a.required),
    ];
    for (title, keep) in groups {
        let attrs: Vec<&Attribute> = block.attributes.iter().filter(|a| keep(a)).collect();
        let blocks: Vec<&NestedBlock> =
            if title == "Optional" { block.blocks.iter().filter(|b| b.min_items == 0).collect() } else { vec![] };
        let required_blocks: Vec<&NestedBlock> =
            if title == "Required" { block.blocks.iter().filter(|b| b.min_items > 0).collect() } else { vec![] };
        if attrs.is_empty() && blocks.is_empty() && required_blocks.is_empty() {
            continue;
        }
        let _ = write!(out, "\n### {title}\n\n");
        for a in attrs {
            let anchor = format!("{path}{}", a.name);
            let _ = writeln!(out, "- `{}` ({}) {}", a.name, attribute_kind(a), attribute_notes(a));
            if let Some(n) = &a.nested {
                let _ = writeln!(out, "  (see [below for nested schema](#nestedatt--{}))", anchor.replace('.', "--"));
                let b = Block { attributes: n.attributes.clone(), ..Default::default() };
                nested.push((format!("nestedatt--{}", anchor.replace('.', "--")), anchor, b));
            }
        }
        for b in blocks.into_iter().chain(required_blocks) {
            let anchor = format!("{path}{}", b.type_name);
            let _ = writeln!(
                out,
                "- `{}` (Block {}) {} (see [below for nested schema](#nestedblock--{}))",
                b.type_name,
                block_nesting(b),
                b.block.description.trim(),
                anchor.replace('.', "--")
            );
            nested.push((format!("nestedblock--{}", anchor.replace('.', "--")), anchor, b.block.clone()));
        }
    }
    for (id, anchor, b) in nested {
        let _ = write!(out, "\n<a id=\"{id}\"></a>\n### Nested Schema for `{anchor}`\n");
        render_block(out, &b, &format!("{anchor}."));
    }
}

fn attribute_kind(a: &Attribute) -> String {
    let mut kind = match (&a.nested, &a.ty) {
        (Some(n), _) => format!("Attributes {}", nesting_name(n.nesting)),
        (None, Some(t)) => type_name(t),
        (None, None) => "Unknown".into(),
    };
    if a.sensitive {
        kind.push_str(", Sensitive");
    }
    if a.write_only {
        kind.push_str(", Write-only");
    }
    if a.deprecated {
        kind.push_str(", Deprecated");
    }
    kind
}

fn attribute_notes(a: &Attribute) -> String {
    let mut text = a.description.trim().to_string();
    if let Some(d) = &a.default {
        let _ = write!(text, " Default: `{}`.", value_literal(d));
    }
    if a.requires_replace {
        text.push_str(" Changing this forces a new resource.");
    }
    text
}

fn block_nesting(b: &NestedBlock) -> String {
    match b.nesting {
        Nesting::Single | Nesting::Group => "single".into(),
        n if b.max_items > 0 => format!("{}, Max: {}", nesting_name(n), b.max_items),
        n => nesting_name(n).into(),
    }
}

fn nesting_name(n: Nesting) -> &'static str {
    match n {
        Nesting::Single | Nesting::Group => "Single",
        Nesting::List => "List",
        Nesting::Set => "Set",
        Nesting::Map => "Map",
    }
}

fn type_name(t: &Type) -> String {
    match t {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_name(e)),
        Type::Set(e) => format!("Set of {}", type_name(e)),
        Type::Map(e) => format!("Map of {}", type_name(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

fn value_literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n {
            super::value::Number::Int(i) => i.to_string(),
            super::value::Number::Float(f) => f.to_string(),
            super::value::Number::Big(s) => s.clone(),
        },
        Value::Null => "null".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_groups_defaults_and_nested_blocks() {
        let block = Block {
            attributes: vec![
                Attribute::string("name").required().requires_replace().description("The name."),
                Attribute::number("size")
                    .default(Value::Number(super::super::value::Number::Int(4)))
                    .description("Size."),
                Attribute::string("token").optional().sensitive().description("Secret."),
                Attribute::string("id").computed().description("Id."),
            ],
            blocks: vec![NestedBlock {
                type_name: "timeouts".into(),
                nesting: Nesting::Single,
                min_items: 0,
                max_items: 1,
                block: Block {
                    attributes: vec![Attribute::string("create").optional().description("Create.")],
                    ..Default::default()
                },
            }],
            ..Default::default()
        };
        let md = schema_markdown(&block);
        assert!(md.contains("- `name` (String) The name. Changing this forces a new resource."), "{md}");
        assert!(md.contains("- `size` (Number) Size. Default: `4`."), "{md}");
        assert!(md.contains("- `token` (String, Sensitive) Secret."), "{md}");
        assert!(md.contains("### Read-Only\n\n- `id` (String) Id."), "{md}");
        assert!(md.contains("### Nested Schema for `timeouts`\n\n### Optional\n\n- `create` (String) Create."), "{md}");
    }
}
