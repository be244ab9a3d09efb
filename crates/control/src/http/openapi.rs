//! The OpenAPI 3.1 document of the API, served at `/openapi.json`. Schemas come from the wire
//! types themselves (`rampart-api`) through one generator whose definitions live under
//! `#/components/schemas`, so every `$ref` resolves inside the document and the document cannot
//! drift from what the server parses. Every status an operation can answer is listed: the
//! success, 400 (a request it cannot read), 401 (no or unknown token), 403 (a role too low), and
//! the operation's own.

use rampart_api::*;
use schemars::JsonSchema;
use schemars::Schema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::transform::RecursiveTransform;
use serde_json::{Map, Value, json};

mod paths;
mod policies;
mod replicas;

/// Builds the document: operations reference schemas through [`Doc::schema`], which registers
/// each type (and the types inside it) once.
pub(super) struct Doc {
    generator: SchemaGenerator,
    paths: Map<String, Value>,
}

/// A parameter: name, where (`path` or `query`), its type (`string`, `boolean`, `integer`: a
/// signed 64-bit number, `count`: an unsigned one, or `enum:a|b|c`), description.
pub(super) type Param = (&'static str, &'static str, &'static str, &'static str);

/// One operation as [`Doc::op`] takes it.
pub(super) struct Op<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub summary: &'a str,
    /// The least role that may call it; `None` for public pages.
    pub role: Option<&'a str>,
    pub params: &'a [Param],
    /// The request body's schema (JSON).
    pub body: Option<Value>,
    /// Success status, description, and the response's content (`None`: no body).
    pub ok: (&'a str, &'a str, Option<Value>),
    /// Other statuses this operation answers, and why.
    pub errors: &'a [(&'a str, &'a str)],
}

impl Doc {
    fn new() -> Doc {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
            s.transforms
                .push(Box::new(RecursiveTransform(bound_integers)));
        });
        Doc {
            generator: settings.into_generator(),
            paths: Map::new(),
        }
    }

    /// A reference to `T`'s schema, registering it.
    pub fn schema<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    /// `application/json` content of `T`.
    pub fn json<T: JsonSchema>(&mut self) -> Option<Value> {
        Some(json!({ "application/json": { "schema": self.schema::<T>() } }))
    }

    /// `application/json` content of a list of `T`.
    pub fn list<T: JsonSchema>(&mut self) -> Option<Value> {
        Some(
            json!({ "application/json": { "schema": { "type": "array", "items": self.schema::<T>() } } }),
        )
    }

    pub fn op(&mut self, op: Op<'_>) {
        let error = self.schema::<ErrorBody>();
        let error_content = json!({ "application/json": { "schema": error } });
        let mut responses = Map::new();
        let (code, description, content) = op.ok;
        let mut ok = json!({ "description": description });
        if let Some(c) = content {
            ok["content"] = c;
        }
        responses.insert(code.into(), ok);
        let mut errors: Vec<(&str, &str)> = op.errors.to_vec();
        if !op.params.is_empty() || op.body.is_some() {
            errors.push((
                "400",
                "the request cannot be read: bad JSON, or a parameter of the wrong type",
            ));
        }
        match op.role {
            Some("agent") => {
                errors.push((
                    "401",
                    "no token or instance credential, or an unknown token",
                ));
                errors.push((
                    "403",
                    "not an agent token, one bound to other environments, or not this instance's credential",
                ));
            }
            Some(_) => {
                errors.push(("401", "no token, or an unknown one"));
                errors.push(("403", "the token's role is too low"));
            }
            None => {}
        }
        for (code, why) in errors {
            responses
                .entry(code)
                .or_insert_with(|| json!({ "description": why, "content": error_content.clone() }));
        }
        let mut o = json!({ "summary": op.summary, "responses": responses });
        match op.role {
            Some("agent") => o["description"] = json!("Role: agent, and no other."),
            Some(role) => o["description"] = json!(format!("Role: {role} or above.")),
            None => {
                o["description"] = json!("Public: no token.");
                o["security"] = json!([]);
            }
        }
        if !op.params.is_empty() {
            o["parameters"] = op
                .params
                .iter()
                .map(|(name, place, kind, description)| {
                    json!({ "name": name, "in": place, "required": *place == "path", "description": description, "schema": param_schema(kind) })
                })
                .collect();
        }
        if let Some(body) = op.body {
            o["requestBody"] =
                json!({ "required": true, "content": { "application/json": { "schema": body } } });
        }
        let entry = self.paths.entry(op.path).or_insert_with(|| json!({}));
        entry[op.method] = o;
    }

    /// A second success status of an operation already added.
    pub fn also(
        &mut self,
        method: &str,
        path: &str,
        code: &str,
        description: &str,
        content: Option<Value>,
    ) {
        let mut answer = json!({ "description": description });
        if let Some(c) = content {
            answer["content"] = c;
        }
        if let Some(responses) = self
            .paths
            .get_mut(path)
            .and_then(|p| p.get_mut(method))
            .and_then(|o| o.get_mut("responses"))
        {
            responses[code] = answer;
        }
    }

    fn finish(mut self) -> Value {
        let schemas = self.generator.take_definitions(true);
        json!({
            "openapi": "3.1.0",
            "info": { "title": "rampart control plane", "version": env!("CARGO_PKG_VERSION") },
            "components": {
                "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } },
                "schemas": schemas,
            },
            "security": [{ "token": [] }],
            "paths": self.paths,
        })
    }
}

/// Integers carry the bounds of the type the server reads them into, so a number the schema
/// allows is one the server can hold.
fn bound_integers(schema: &mut Schema) {
    let bounds: Option<(Value, Value)> = match schema.get("format").and_then(Value::as_str) {
        Some("uint64") | Some("uint") => Some((json!(0), json!(u64::MAX))),
        Some("int64") | Some("int") => Some((json!(i64::MIN), json!(i64::MAX))),
        Some("uint32") => Some((json!(0), json!(u32::MAX))),
        Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
        _ => None,
    };
    if let (Some((min, max)), Some(object)) = (bounds, schema.as_object_mut()) {
        object.entry("minimum").or_insert(min);
        object.entry("maximum").or_insert(max);
    }
}

fn param_schema(kind: &str) -> Value {
    match kind {
        "integer" => {
            json!({ "type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX })
        }
        "count" => {
            json!({ "type": "integer", "format": "uint64", "minimum": 0, "maximum": u64::MAX })
        }
        _ => match kind.strip_prefix("enum:") {
            Some(values) => {
                json!({ "type": "string", "enum": values.split('|').collect::<Vec<_>>() })
            }
            None => json!({ "type": kind }),
        },
    }
}

pub fn document() -> Value {
    let mut doc = Doc::new();
    paths::core(&mut doc);
    paths::operations(&mut doc);
    policies::policies(&mut doc);
    replicas::replicas(&mut doc);
    doc.finish()
}
