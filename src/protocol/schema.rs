//! Schemas as resources declare them. The protocol layer converts them to tfplugin6 `Schema`s
//! and applies the plan modifiers (`default`, `requires_replace`, `keep_prior`) generically.

use super::value::{Number, Type, Value};

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Block {
    /// The object type of this block's values (attributes and nested blocks), as Terraform
    /// sends them in DynamicValues.
    pub fn value_type(&self) -> Type {
        let attributes = self.attributes.iter().map(|a| (a.name.clone(), a.value_type()));
        let blocks = self.blocks.iter().map(|b| (b.type_name.clone(), b.value_type()));
        Type::Object(attributes.chain(blocks).collect())
    }
}

impl NestedBlock {
    /// Single/Group: the block's object; List/Set/Map: a collection of them.
    pub fn value_type(&self) -> Type {
        nest(self.nesting, self.block.value_type())
    }
}

impl Attribute {
    /// `ty`, or for nested attributes the object type wrapped per nesting. An attribute with
    /// neither is a schema bug; it is typed `Dynamic` so values still travel.
    pub fn value_type(&self) -> Type {
        match (&self.nested, &self.ty) {
            (Some(nested), _) => {
                let object = Type::Object(nested.attributes.iter().map(|a| (a.name.clone(), a.value_type())).collect());
                nest(nested.nesting, object)
            }
            (None, Some(ty)) => ty.clone(),
            (None, None) => Type::Dynamic,
        }
    }
}

fn nest(nesting: Nesting, object: Type) -> Type {
    match nesting {
        Nesting::Single | Nesting::Group => object,
        Nesting::List => Type::List(Box::new(object)),
        Nesting::Set => Type::Set(Box::new(object)),
        Nesting::Map => Type::Map(Box::new(object)),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    /// Markdown.
    pub description: String,
    pub deprecated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nesting {
    #[default]
    Single,
    Group,
    List,
    Set,
    Map,
}

#[derive(Debug, Clone)]
pub struct NestedBlock {
    pub type_name: String,
    pub block: Block,
    pub nesting: Nesting,
    pub min_items: i64,
    pub max_items: i64,
}

/// Nested attributes (`attr = { ... }` syntax, protocol 6 only).
#[derive(Debug, Clone)]
pub struct NestedAttributes {
    pub attributes: Vec<Attribute>,
    pub nesting: Nesting,
}

#[derive(Debug, Clone, Default)]
pub struct Attribute {
    pub name: String,
    /// Ignored when `nested` is set.
    pub ty: Option<Type>,
    pub nested: Option<NestedAttributes>,
    /// Markdown; also the source of the registry docs.
    pub description: String,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    pub write_only: bool,
    pub deprecated: bool,
    /// What a number counts (`MiB`, `GiB`, `virtual CPUs`): the words diagnostics about the
    /// value use ("must be a whole number of MiB"). Empty for none.
    pub unit: String,
    // --- plan modifiers, applied by the protocol layer; never sent to Terraform ---
    /// Value planned when the config leaves the attribute null (attribute must be optional+computed).
    pub default: Option<Value>,
    /// A planned change to this attribute replaces the resource.
    pub requires_replace: bool,
    /// Computed attribute that keeps its prior value when the config does not set it, instead of
    /// becoming unknown whenever anything else changes (framework: UseStateForUnknown).
    pub keep_prior: bool,
}

impl Attribute {
    fn new(name: &str, ty: Type) -> Self {
        Attribute { name: name.to_string(), ty: Some(ty), ..Default::default() }
    }
    pub fn string(name: &str) -> Self {
        Self::new(name, Type::String)
    }
    pub fn number(name: &str) -> Self {
        Self::new(name, Type::Number)
    }
    pub fn bool(name: &str) -> Self {
        Self::new(name, Type::Bool)
    }
    pub fn dynamic(name: &str) -> Self {
        Self::new(name, Type::Dynamic)
    }
    pub fn of_type(name: &str, ty: Type) -> Self {
        Self::new(name, ty)
    }
    pub fn nested(name: &str, nesting: Nesting, attributes: Vec<Attribute>) -> Self {
        Attribute {
            name: name.to_string(),
            nested: Some(NestedAttributes { attributes, nesting }),
            ..Default::default()
        }
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    pub fn computed(mut self) -> Self {
        self.computed = true;
        self
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    pub fn deprecated(mut self) -> Self {
        self.deprecated = true;
        self
    }
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_string();
        self
    }
    /// See `unit`.
    pub fn unit(mut self, unit: &str) -> Self {
        self.unit = unit.to_string();
        self
    }
    /// Optional + computed with a default planned when unset.
    pub fn default(mut self, v: Value) -> Self {
        self.optional = true;
        self.computed = true;
        self.default = Some(v);
        self
    }
    /// `default` with a string, so resources need not build protocol values.
    pub fn default_str(self, v: &str) -> Self {
        self.default(Value::String(v.to_string()))
    }
    /// `default` with a whole number.
    pub fn default_int(self, v: i64) -> Self {
        self.default(Value::Number(Number::Int(v)))
    }
    /// `default` with a bool.
    pub fn default_bool(self, v: bool) -> Self {
        self.default(Value::Bool(v))
    }
    pub fn requires_replace(mut self) -> Self {
        self.requires_replace = true;
        self
    }
    pub fn keep_prior(mut self) -> Self {
        self.keep_prior = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn typed_defaults_are_optional_computed_values() {
        let port = Attribute::number("port").default_int(22);
        assert!(port.optional && port.computed);
        assert_eq!(port.default, Some(Value::Number(Number::Int(22))));
        assert_eq!(Attribute::string("user").default_str("student").default, Some(Value::String("student".into())));
        assert_eq!(Attribute::bool("running").default_bool(true).default, Some(Value::Bool(true)));
    }

    #[test]
    fn value_type_covers_attributes_nested_attributes_and_blocks() {
        let timeouts = Block { attributes: vec![Attribute::string("create")], ..Default::default() };
        let block = Block {
            attributes: vec![
                Attribute::string("name").required(),
                Attribute::of_type("tags", Type::Map(Box::new(Type::String))),
                Attribute::nested("disks", Nesting::List, vec![Attribute::number("size")]),
                Attribute::nested("net", Nesting::Single, vec![Attribute::bool("dhcp")]),
            ],
            blocks: vec![
                NestedBlock {
                    type_name: "timeouts".into(),
                    block: timeouts.clone(),
                    nesting: Nesting::Single,
                    min_items: 0,
                    max_items: 1,
                },
                NestedBlock {
                    type_name: "rule".into(),
                    block: timeouts,
                    nesting: Nesting::Set,
                    min_items: 0,
                    max_items: 0,
                },
            ],
            ..Default::default()
        };
        let create = Type::Object(BTreeMap::from([("create".to_string(), Type::String)]));
        let expected = Type::Object(BTreeMap::from([
            ("name".to_string(), Type::String),
            ("tags".to_string(), Type::Map(Box::new(Type::String))),
            (
                "disks".to_string(),
                Type::List(Box::new(Type::Object(BTreeMap::from([("size".to_string(), Type::Number)])))),
            ),
            ("net".to_string(), Type::Object(BTreeMap::from([("dhcp".to_string(), Type::Bool)]))),
            ("timeouts".to_string(), create.clone()),
            ("rule".to_string(), Type::Set(Box::new(create))),
        ]));
        assert_eq!(block.value_type(), expected);
    }
}
