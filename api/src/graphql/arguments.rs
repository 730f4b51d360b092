//! The one validation rule that depends on the request rather than the document: the values of
//! variables checked against the arguments they feed.
//!
//! A document in the document cache passed async-graphql's full validation once. Every rule
//! of that validation but one judges the document alone, so it cannot fail on the same
//! document again; the exception is "arguments of correct type", which fills the request's
//! variables into the arguments and checks the values. A cached document therefore runs under
//! async-graphql's fast validation (which skips the rules but keeps the complexity bound) when
//! this module finds that every value fits, by the rule's own test: the same arguments (those
//! of every fragment definition and of the operation that runs) against the same types. When
//! one does not fit, the request is validated fully, so its errors are exactly what an uncached
//! document gets (the rule's message, and any the complexity bound adds).
//!
//! The types come from the schema's SDL ([`InputTypes::from_sdl`]): async-graphql does not
//! expose its type registry. A document that reaches a field the SDL does not show
//! (introspection's `__schema` and `__type`) is validated fully every time
//! ([`InputTypes::uses`] answers `None`).

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    BaseType, Directive, ExecutableDocument, Selection, SelectionSet, ServiceDocument, Type,
    TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Positioned, Variables};
use async_graphql_value::{ConstValue, Value};

/// The input side of a schema: what argument values may be.
pub struct InputTypes {
    types: HashMap<Name, Kind>,
    directives: HashMap<Name, Arguments>,
    roots: Roots,
}

/// The root type of each operation type.
struct Roots {
    query: Name,
    mutation: Name,
    subscription: Name,
}

type Arguments = HashMap<Name, Type>;

enum Kind {
    Scalar(Scalar),
    Enum(HashSet<Name>),
    Input {
        fields: Vec<InputField>,
        one_of: bool,
    },
    /// An object or interface type (a union's map is empty): the fields and what they return.
    Output(HashMap<Name, Field>),
}

/// What async-graphql's scalars accept as an argument value before execution parses it.
#[derive(Clone, Copy)]
enum Scalar {
    Int,
    Float,
    String,
    Boolean,
    Id,
    /// A scalar of the schema's own (`DateTime`, `JSON`, …): any value, parsed at execution.
    Custom,
}

struct InputField {
    name: Name,
    ty: Type,
    has_default: bool,
}

struct Field {
    arguments: Arguments,
    /// The named type the field returns, lists and non-null stripped.
    returns: Name,
}

/// The arguments of a document whose values hold variables.
pub struct Uses {
    /// Those of every fragment definition: the rule checks them whichever operation runs.
    fragments: Vec<Use>,
    /// Those of each operation, with its name.
    operations: Vec<(Option<Name>, Vec<Use>)>,
}

struct Use {
    ty: Type,
    value: Value,
}

fn named_type(ty: &Type) -> &Name {
    match &ty.base {
        BaseType::Named(name) => name,
        BaseType::List(inner) => named_type(inner),
    }
}

fn arguments(
    definitions: &[Positioned<async_graphql::parser::types::InputValueDefinition>],
) -> Arguments {
    definitions
        .iter()
        .map(|a| (a.node.name.node.clone(), a.node.ty.node.clone()))
        .collect()
}

/// Whether `value` is or holds a variable.
pub(super) fn holds_variable(value: &Value) -> bool {
    match value {
        Value::Variable(_) => true,
        Value::List(items) => items.iter().any(holds_variable),
        Value::Object(fields) => fields.values().any(holds_variable),
        _ => false,
    }
}

impl InputTypes {
    /// The types of the schema printed as `sdl`, with the directives every schema has.
    pub fn from_sdl(sdl: &str) -> Result<Self, async_graphql::parser::Error> {
        let ServiceDocument { definitions } = async_graphql::parser::parse_schema(sdl)?;
        let mut types = HashMap::new();
        let if_argument = || {
            HashMap::from([(
                Name::new("if"),
                Type {
                    base: BaseType::Named(Name::new("Boolean")),
                    nullable: false,
                },
            )])
        };
        let mut directives = HashMap::from([
            (Name::new("skip"), if_argument()),
            (Name::new("include"), if_argument()),
        ]);
        let mut roots = Roots {
            query: Name::new("Query"),
            mutation: Name::new("Mutation"),
            subscription: Name::new("Subscription"),
        };
        for builtin in ["Int", "Float", "String", "Boolean", "ID"] {
            types.insert(Name::new(builtin), Kind::Scalar(Scalar::named(builtin)));
        }
        for definition in definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    let schema = schema.node;
                    for (root, name) in [
                        (&mut roots.query, schema.query),
                        (&mut roots.mutation, schema.mutation),
                        (&mut roots.subscription, schema.subscription),
                    ] {
                        if let Some(name) = name {
                            *root = name.node;
                        }
                    }
                }
                TypeSystemDefinition::Directive(directive) => {
                    let directive = directive.node;
                    directives.insert(directive.name.node, arguments(&directive.arguments));
                }
                TypeSystemDefinition::Type(ty) => {
                    let ty = ty.node;
                    let kind = match ty.kind {
                        TypeKind::Scalar => Kind::Scalar(Scalar::named(&ty.name.node)),
                        TypeKind::Enum(e) => {
                            Kind::Enum(e.values.into_iter().map(|v| v.node.value.node).collect())
                        }
                        TypeKind::InputObject(input) => Kind::Input {
                            fields: input
                                .fields
                                .into_iter()
                                .map(|f| InputField {
                                    name: f.node.name.node,
                                    ty: f.node.ty.node,
                                    has_default: f.node.default_value.is_some(),
                                })
                                .collect(),
                            one_of: ty.directives.iter().any(|d| d.node.name.node == "oneOf"),
                        },
                        TypeKind::Object(object) => Kind::output(object.fields),
                        TypeKind::Interface(interface) => Kind::output(interface.fields),
                        TypeKind::Union(_) => Kind::Output(HashMap::new()),
                    };
                    types.insert(ty.name.node, kind);
                }
            }
        }
        Ok(Self {
            types,
            directives,
            roots,
        })
    }

    /// The arguments of `doc` that hold variables, or `None` when the document reaches a field
    /// these types do not show.
    pub fn uses(&self, doc: &ExecutableDocument) -> Option<Uses> {
        let mut fragments = Vec::new();
        for fragment in doc.fragments.values() {
            let fragment = &fragment.node;
            self.directives(&fragment.directives, &mut fragments);
            self.selections(
                &fragment.type_condition.node.on.node,
                &fragment.selection_set.node,
                &mut fragments,
            )?;
        }
        let mut operations = Vec::new();
        for (name, operation) in doc.operations.iter() {
            use async_graphql::parser::types::OperationType;
            let operation = &operation.node;
            let root = match operation.ty {
                OperationType::Query => &self.roots.query,
                OperationType::Mutation => &self.roots.mutation,
                OperationType::Subscription => &self.roots.subscription,
            };
            let mut uses = Vec::new();
            self.directives(&operation.directives, &mut uses);
            self.selections(root, &operation.selection_set.node, &mut uses)?;
            operations.push((name.cloned(), uses));
        }
        Some(Uses {
            fragments,
            operations,
        })
    }

    fn selections(&self, parent: &str, set: &SelectionSet, uses: &mut Vec<Use>) -> Option<()> {
        for selection in &set.items {
            match &selection.node {
                // The rule does not look at `__typename`, nor at its directives.
                Selection::Field(field) if field.node.name.node == "__typename" => {}
                Selection::Field(field) => {
                    let field = &field.node;
                    let Some(Kind::Output(fields)) = self.types.get(parent) else {
                        return None;
                    };
                    let definition = fields.get(&field.name.node)?;
                    Self::arguments(&field.arguments, &definition.arguments, uses);
                    self.directives(&field.directives, uses);
                    self.selections(&definition.returns, &field.selection_set.node, uses)?;
                }
                Selection::FragmentSpread(spread) => {
                    self.directives(&spread.node.directives, uses);
                }
                Selection::InlineFragment(inline) => {
                    let inline = &inline.node;
                    self.directives(&inline.directives, uses);
                    let on = inline
                        .type_condition
                        .as_ref()
                        .map_or(parent, |c| c.node.on.node.as_str());
                    self.selections(on, &inline.selection_set.node, uses)?;
                }
            }
        }
        Some(())
    }

    fn directives(&self, directives: &[Positioned<Directive>], uses: &mut Vec<Use>) {
        for directive in directives {
            if let Some(definition) = self.directives.get(&directive.node.name.node) {
                Self::arguments(&directive.node.arguments, definition, uses);
            }
        }
    }

    fn arguments(
        given: &[(Positioned<Name>, Positioned<Value>)],
        definition: &Arguments,
        uses: &mut Vec<Use>,
    ) {
        for (name, value) in given {
            if let Some(ty) = definition.get(&name.node)
                && holds_variable(&value.node)
            {
                uses.push(Use {
                    ty: ty.clone(),
                    value: value.node.clone(),
                });
            }
        }
    }

    /// Whether async-graphql's rule lets `value` through as a `ty`.
    fn fits(&self, ty: &Type, value: &ConstValue) -> bool {
        if !ty.nullable && *value == ConstValue::Null {
            return false;
        }
        let name = match &ty.base {
            BaseType::List(element) => {
                return match value {
                    ConstValue::List(items) => items.iter().all(|item| self.fits(element, item)),
                    ConstValue::Null => true,
                    // A single value stands for a list of one.
                    _ => self.fits(element, value),
                };
            }
            BaseType::Named(name) => name,
        };
        if *value == ConstValue::Null {
            return true;
        }
        match self.types.get(name) {
            Some(Kind::Scalar(scalar)) => scalar.accepts(value),
            Some(Kind::Enum(values)) => match value {
                ConstValue::Enum(v) => values.contains(v),
                ConstValue::String(v) => values.contains(v.as_str()),
                _ => false,
            },
            Some(Kind::Input { fields, one_of }) => match value {
                ConstValue::Object(given) => self.object_fits(fields, *one_of, given),
                // The rule leaves other values to execution.
                _ => true,
            },
            Some(Kind::Output(_)) | None => true,
        }
    }

    fn object_fits(
        &self,
        fields: &[InputField],
        one_of: bool,
        given: &async_graphql::indexmap::IndexMap<Name, ConstValue>,
    ) -> bool {
        if one_of
            && (given.len() != 1 || given.first().is_some_and(|(_, v)| *v == ConstValue::Null))
        {
            return false;
        }
        let known = given
            .keys()
            .all(|name| fields.iter().any(|f| f.name == *name));
        known
            && fields.iter().all(|field| match given.get(&field.name) {
                Some(value) => self.fits(&field.ty, value),
                None => field.ty.nullable || field.has_default,
            })
    }
}

impl Kind {
    fn output(fields: Vec<Positioned<async_graphql::parser::types::FieldDefinition>>) -> Self {
        Self::Output(
            fields
                .into_iter()
                .map(|f| {
                    let f = f.node;
                    let field = Field {
                        arguments: arguments(&f.arguments),
                        returns: named_type(&f.ty.node).clone(),
                    };
                    (f.name.node, field)
                })
                .collect(),
        )
    }
}

impl Scalar {
    fn named(name: &str) -> Self {
        match name {
            "Int" => Self::Int,
            "Float" => Self::Float,
            "String" => Self::String,
            "Boolean" => Self::Boolean,
            "ID" => Self::Id,
            _ => Self::Custom,
        }
    }

    fn accepts(self, value: &ConstValue) -> bool {
        match (self, value) {
            (Self::Int | Self::Id, ConstValue::Number(n)) => n.is_i64(),
            (Self::Float, ConstValue::Number(_))
            | (Self::String | Self::Id, ConstValue::String(_))
            | (Self::Boolean, ConstValue::Boolean(_)) => true,
            (Self::Custom, _) => true,
            _ => false,
        }
    }
}

impl Uses {
    /// Whether every value of `variables` fits the arguments it feeds when `operation` runs,
    /// as async-graphql's rule judges it.
    pub fn fit(&self, types: &InputTypes, operation: Option<&str>, variables: &Variables) -> bool {
        // The rule skips an operation only when both it and the request are named, differently.
        let running = self.operations.iter().filter(|(name, _)| {
            operation
                .zip(name.as_deref())
                .is_none_or(|(wanted, name)| wanted == name)
        });
        self.fragments
            .iter()
            .chain(running.flat_map(|(_, uses)| uses))
            .all(|u| {
                let value = u
                    .value
                    .clone()
                    .into_const_with(|name| variables.get(&name).cloned().ok_or(()));
                match value {
                    Ok(value) => types.fits(&u.ty, &value),
                    // An argument whose variable the request leaves out is not checked.
                    Err(()) => true,
                }
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fit(
        types: &InputTypes,
        query: &str,
        operation: Option<&str>,
        vars: serde_json::Value,
    ) -> bool {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        let uses = types.uses(&doc).unwrap();
        uses.fit(types, operation, &Variables::from_json(vars))
    }

    #[test]
    fn finds_the_arguments_that_hold_variables_wherever_they_are() {
        let types = InputTypes::from_sdl(&super::super::sdl()).unwrap();
        let query = "query($id: ID!, $flag: Boolean!, $n: Int, $s: InvitationStatus) {
            invitation(id: $id) { id events(first: 5) { nodes { id } } }
            viewer @include(if: $flag) { organizationId }
            invitations(companyId: \"c\", filter: { status: $s }) { totalCount }
            ... on Query { companies(first: 3) { id } }
            ...F
        }
        fragment F on Query { companies(first: $n) { id __typename @skip(if: $n) } }";
        let doc = async_graphql::parser::parse_query(query).unwrap();
        let uses = types.uses(&doc).unwrap();
        let values = |uses: &[Use]| {
            uses.iter()
                .map(|u| format!("{}: {}", u.value, u.ty))
                .collect::<Vec<_>>()
        };
        // Literal-only arguments (`first: 5`, `first: 3`) need no check per request, and the
        // rule does not look at `__typename`'s directives.
        assert_eq!(values(&uses.fragments), ["$n: Int"]);
        assert_eq!(uses.operations.len(), 1);
        assert_eq!(
            values(&uses.operations[0].1),
            [
                "$id: ID!",
                "$flag: Boolean!",
                "{status: $s}: InvitationFilter"
            ]
        );
        // Introspection's fields are not in the SDL: such a document is validated every time.
        for query in [
            "{ __schema { types { name } } }",
            "query($n: String!) { __type(name: $n) { name } }",
        ] {
            let doc = async_graphql::parser::parse_query(query).unwrap();
            assert!(types.uses(&doc).is_none(), "{query}");
        }
    }

    #[test]
    fn judges_values_as_async_graphql_does() {
        let types = InputTypes::from_sdl(&super::super::sdl()).unwrap();
        let lookup = "query($id: ID!) { invitation(id: $id) { id } }";
        for (vars, fits) in [
            (json!({ "id": "x" }), true),
            (json!({ "id": 7 }), true),
            // Left out: not the rule's to judge (execution reports it).
            (json!({}), true),
            (json!({ "id": true }), false),
            (json!({ "id": null }), false),
            (json!({ "id": 1.5 }), false),
            (json!({ "id": ["x"] }), false),
        ] {
            assert_eq!(fit(&types, lookup, None, vars.clone()), fits, "{vars}");
        }
        let filter = "query($s: InvitationStatus, $n: Int) { invitations(companyId: \"c\", first: $n, filter: { status: $s }) { totalCount } }";
        for (vars, fits) in [
            (json!({ "s": "ACTIVE", "n": -1 }), true),
            (json!({ "s": null, "n": 10_000_000_000_i64 }), true),
            (json!({ "s": "NOPE" }), false),
            (json!({ "s": 3 }), false),
            (json!({ "n": 1.5 }), false),
            (json!({ "n": "5" }), false),
        ] {
            assert_eq!(fit(&types, filter, None, vars.clone()), fits, "{vars}");
        }
        let many = "mutation($in: [InvitationInput!]!) { createContributorInvitations(companyId: \"c\", inputs: $in) { id } }";
        for (vars, fits) in [
            (json!({ "in": [{}, { "allowedEmails": ["a@b.co"] }] }), true),
            // A single value stands for a list of one.
            (json!({ "in": { "maxUses": 2 } }), true),
            // An input object given as something else is left to execution.
            (json!({ "in": ["x"] }), true),
            (
                json!({ "in": [{}, { "allowedEmails": ["a@b.co", 1] }] }),
                false,
            ),
            (json!({ "in": [null] }), false),
            (json!({ "in": [{ "nope": 1 }] }), false),
            (
                json!({ "in": [{ "prefill": { "lockedFields": ["NOPE"] } }] }),
                false,
            ),
        ] {
            assert_eq!(fit(&types, many, None, vars.clone()), fits, "{vars}");
        }
        let company = "mutation($i: CreateCompanyInput!) { createCompany(input: $i) { id } }";
        assert!(fit(&types, company, None, json!({ "i": { "name": "x" } })));
        assert!(!fit(
            &types,
            company,
            None,
            json!({ "i": { "displayName": "x" } })
        ));
        // Only the operation that runs is checked.
        let two = "query A($id: ID!) { invitation(id: $id) { id } } query B($n: Int) { companies(first: $n) { id } }";
        assert!(fit(&types, two, Some("B"), json!({ "id": true, "n": 1 })));
        assert!(!fit(&types, two, Some("A"), json!({ "id": true, "n": 1 })));
        // A fragment is checked whichever operation runs.
        let fragment =
            "query A { ...F } query B { ...F } fragment F on Query { companies(first: $n) { id } }";
        assert!(!fit(&types, fragment, Some("A"), json!({ "n": "x" })));
    }

    #[test]
    fn follows_the_schema_it_is_given() {
        // Root types of other names, a one-of input and a default value.
        let sdl = "schema { query: Root }
            type Root { pick(by: By!, page: Page): Int }
            input By @oneOf { id: ID name: String }
            input Page { size: Int! = 10 }";
        let types = InputTypes::from_sdl(sdl).unwrap();
        let query = "query($by: By!, $page: Page) { pick(by: $by, page: $page) }";
        assert!(fit(
            &types,
            query,
            None,
            json!({ "by": { "id": "1" }, "page": {} })
        ));
        assert!(!fit(
            &types,
            query,
            None,
            json!({ "by": { "id": "1", "name": "x" } })
        ));
        assert!(!fit(&types, query, None, json!({ "by": { "name": null } })));
        assert!(!fit(
            &types,
            query,
            None,
            json!({ "by": { "id": "1" }, "page": { "size": null } })
        ));
    }
}
