//! Schemas as resources declare them. The protocol layer converts them to tfplugin6 `Schema`s
//! and applies the plan modifiers (`default`, `requires_replace`, `keep_prior`) generically.

use super::value::{Type, Value};

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Block {
    /// The object type of this block's values (attributes and nested blocks), as Terraform
    /// sends them in DynamicValues. Implemented with the codec.
    pub fn value_type(&self) -> Type {
        Type::Object(Default::default())
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
    /// Optional + computed with a default planned when unset.
    pub fn default(mut self, v: Value) -> Self {
        self.optional = true;
        self.computed = true;
        self.default = Some(v);
        self
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
