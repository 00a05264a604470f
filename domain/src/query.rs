//! DynamicQuery: parsing, validating and evaluating an audience's MongoDB-style `where` clause
//! against contact documents (api.md section 5; the user guide is `docs/dynamic-query.md`).
//!
//! Parsing does all the work that does not depend on a contact: operands are checked, regexes
//! compiled and dot paths split, so [`Filter::matches`] allocates nothing and can run over a
//! million contacts.

use std::cmp::Ordering;

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Number, Value};

use crate::error::FieldError;

mod sql;
pub use sql::SqlPredicate;

/// How deeply objects and arrays may nest in a `where` clause; the clause itself is level 1.
pub const MAX_DEPTH: usize = 32;
/// The longest `$regex` pattern accepted, in characters.
pub const MAX_REGEX_CHARS: usize = 512;
/// The most memory one compiled `$regex` may take (and its lazy DFA cache), in bytes.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The most `$regex` operators one filter may hold, so a 1 MiB body cannot pin gigabytes of
/// compiled automata.
pub const MAX_REGEXES: usize = 32;

const MUST_BE_OBJECT: &str = "must be an object";
const MUST_BE_ARRAY: &str = "must be an array";
const MUST_BE_QUERY_LIST: &str = "must be a non-empty array of query objects";
const MUST_BE_OPERATOR_OBJECT: &str = "must be an operator object like {\"$gt\": 5}";
const REGEX_FLAGS: &str = "imsx";

/// A parsed and validated DynamicQuery; evaluate it with [`Filter::matches`].
#[derive(Debug, Clone)]
pub struct Filter {
    query: Query,
    /// The top-level document keys the filter reads: all [`Filter::matches_json`] parses.
    roots: Vec<String>,
}

/// Parses a whole audience filter, `{"datatype": "contact", "where": {...}}`.
///
/// Errors name fields from the filter's root (`datatype`, `where.tags.$in`); every problem is
/// reported at once.
pub fn parse_filter(filter: &Value) -> Result<Filter, Vec<FieldError>> {
    let Some(obj) = filter.as_object() else {
        return Err(vec![FieldError::new("filter", MUST_BE_OBJECT)]);
    };
    let mut errors = Vec::new();
    if obj.get("datatype").and_then(Value::as_str) != Some("contact") {
        errors.push(FieldError::new("datatype", "must be \"contact\""));
    }
    let parsed = match obj.get("where") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new("where", "is required"));
            None
        }
        Some(where_) => parse_where(where_, "where")
            .map_err(|found| errors.extend(found))
            .ok(),
    };
    match parsed {
        Some(filter) if errors.is_empty() => Ok(filter),
        _ => Err(errors),
    }
}

/// Parses a `where` clause on its own. `path_prefix` is where the clause sits in the caller's
/// body (`"where"`, `"audience.filter.where"`); error fields start with it.
pub fn parse_where(where_: &Value, path_prefix: &str) -> Result<Filter, Vec<FieldError>> {
    if let Some(path) = too_deep(where_, path_prefix, 1) {
        return Err(vec![FieldError::new(
            path,
            format!("nests deeper than {MAX_DEPTH} levels"),
        )]);
    }
    let Some(obj) = where_.as_object() else {
        return Err(vec![FieldError::new(path_prefix, MUST_BE_OBJECT)]);
    };
    let mut parser = Parser::default();
    let query = parser.query(obj, path_prefix);
    if parser.errors.is_empty() {
        let mut roots: Vec<String> = Vec::new();
        query.collect_roots(&mut roots);
        Ok(Filter { query, roots })
    } else {
        Err(parser.errors)
    }
}

impl Filter {
    /// Whether the contact document (as `GET /crm/contacts/:id` returns it) is in the audience.
    pub fn matches(&self, doc: &Value) -> bool {
        self.query.matches(doc)
    }

    /// [`Filter::matches`] on a contact document given as JSON text, parsing only the top-level
    /// fields the filter reads (a filter reads nothing else, so the answer is the same); the
    /// rest of the text is skipped without being built. `None` when the text is not a JSON
    /// object.
    pub fn matches_json(&self, doc: &str) -> Option<bool> {
        use serde::de::DeserializeSeed;
        let mut deserializer = serde_json::Deserializer::from_str(doc);
        let fields = Fields(&self.roots).deserialize(&mut deserializer).ok()?;
        Some(self.query.matches(&Value::Object(fields)))
    }

    /// The document paths the filter reads, in first-use order without repeats (`tags`,
    /// `attributes.plan`). Paths inside `$elemMatch` are relative to the array's elements, so
    /// only the array's own path is listed.
    pub fn referenced_fields(&self) -> Vec<String> {
        let mut fields = Vec::new();
        self.query.collect_fields(&mut fields);
        fields
    }
}

/// A conjunction: every clause must hold.
#[derive(Debug, Clone)]
struct Query {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone)]
enum Clause {
    /// Every operator must hold for the field, each on its own (as in MongoDB, two operators
    /// may be satisfied by different elements of an array).
    Field {
        path: Path,
        ops: Vec<Op>,
    },
    And(Vec<Query>),
    Or(Vec<Query>),
    Nor(Vec<Query>),
}

#[derive(Debug, Clone)]
struct Path {
    dotted: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
struct Segment {
    key: String,
    /// The segment as an array index, when it is all digits.
    index: Option<usize>,
}

#[derive(Debug, Clone)]
enum Op {
    Eq(Value),
    Ne(Value),
    Cmp(Comparison, Value),
    In(ValueSet),
    Nin(ValueSet),
    Exists(bool),
    Regex(Regex),
    Not(Vec<Op>),
    All(Vec<Value>),
    Size(usize),
    ElemMatch(Box<ElemMatch>),
}

#[derive(Debug, Clone, Copy)]
enum Comparison {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone)]
enum ElemMatch {
    /// `{"$elemMatch": {"sku": "A1"}}`: a query over object elements.
    Query(Query),
    /// `{"$elemMatch": {"$gte": 80, "$lt": 90}}`: operators one element must satisfy together.
    Ops(Vec<Op>),
}

impl Query {
    fn matches(&self, doc: &Value) -> bool {
        self.clauses.iter().all(|clause| clause.matches(doc))
    }

    fn collect_fields(&self, fields: &mut Vec<String>) {
        for clause in &self.clauses {
            match clause {
                Clause::Field { path, .. } => {
                    if !fields.contains(&path.dotted) {
                        fields.push(path.dotted.clone());
                    }
                }
                Clause::And(queries) | Clause::Or(queries) | Clause::Nor(queries) => {
                    queries.iter().for_each(|q| q.collect_fields(fields));
                }
            }
        }
    }
}

impl Query {
    fn collect_roots(&self, roots: &mut Vec<String>) {
        for clause in &self.clauses {
            match clause {
                Clause::Field { path, .. } => {
                    if let Some(first) = path.segments.first() {
                        if !roots.contains(&first.key) {
                            roots.push(first.key.clone());
                        }
                    }
                }
                Clause::And(queries) | Clause::Or(queries) | Clause::Nor(queries) => {
                    queries.iter().for_each(|q| q.collect_roots(roots));
                }
            }
        }
    }
}

/// Reads a JSON object keeping only the listed keys (the others are skipped unbuilt).
struct Fields<'a>(&'a [String]);

impl<'de> serde::de::DeserializeSeed<'de> for Fields<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Fields<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kept = Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if self.0.iter().any(|wanted| *wanted == *key) {
                kept.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(kept)
    }
}

/// An object key, borrowed from the text unless it has escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl Clause {
    fn matches(&self, doc: &Value) -> bool {
        match self {
            Clause::Field { path, ops } => ops.iter().all(|op| op.matches(doc, &path.segments)),
            Clause::And(queries) => queries.iter().all(|q| q.matches(doc)),
            Clause::Or(queries) => queries.iter().any(|q| q.matches(doc)),
            Clause::Nor(queries) => !queries.iter().any(|q| q.matches(doc)),
        }
    }
}

impl Op {
    /// Whether the operator holds for the field at `segments` of `value`.
    ///
    /// The negative operators are the negation of their positive twin over the whole path,
    /// which is why `$ne`, `$nin` and `$not` match a missing field.
    fn matches(&self, value: &Value, segments: &[Segment]) -> bool {
        match self {
            Op::Eq(v) => any_item(value, segments, &mut |item| eq_item(item, v)),
            Op::Ne(v) => !any_item(value, segments, &mut |item| eq_item(item, v)),
            Op::Cmp(cmp, v) => any_item(value, segments, &mut |item| cmp.holds(item, v)),
            Op::In(vs) => any_item(value, segments, &mut |item| in_item(item, vs)),
            Op::Nin(vs) => !any_item(value, segments, &mut |item| in_item(item, vs)),
            Op::Exists(wanted) => any_item(value, segments, &mut |item| item.is_some()) == *wanted,
            Op::Regex(re) => any_item(value, segments, &mut |item| regex_item(item, re)),
            Op::Not(ops) => !ops.iter().all(|op| op.matches(value, segments)),
            Op::All(vs) => {
                !vs.is_empty()
                    && vs
                        .iter()
                        .all(|v| any_item(value, segments, &mut |item| eq_item(item, v)))
            }
            Op::Size(n) => any_item(
                value,
                segments,
                &mut |item| matches!(item, Some(Value::Array(xs)) if xs.len() == *n),
            ),
            Op::ElemMatch(elem_match) => any_item(value, segments, &mut |item| match item {
                Some(Value::Array(xs)) => xs.iter().any(|x| elem_match.matches(x)),
                _ => false,
            }),
        }
    }
}

impl ElemMatch {
    fn matches(&self, element: &Value) -> bool {
        match self {
            ElemMatch::Query(query) => element.is_object() && query.matches(element),
            ElemMatch::Ops(ops) => ops.iter().all(|op| op.matches(element, &[])),
        }
    }
}

impl Comparison {
    fn holds(self, item: Option<&Value>, operand: &Value) -> bool {
        match item {
            // A missing field compares like null, so `{"$gte": null}` matches it.
            None => operand.is_null() && matches!(self, Comparison::Gte | Comparison::Lte),
            Some(whole @ Value::Array(xs)) => {
                self.test(whole, operand) || xs.iter().any(|x| self.test(x, operand))
            }
            Some(x) => self.test(x, operand),
        }
    }

    fn test(self, value: &Value, operand: &Value) -> bool {
        let Some(order) = compare_same_type(value, operand) else {
            return false;
        };
        match self {
            Comparison::Gt => order == Ordering::Greater,
            Comparison::Gte => order != Ordering::Less,
            Comparison::Lt => order == Ordering::Less,
            Comparison::Lte => order != Ordering::Greater,
        }
    }
}

/// Calls `f` on every value the path reaches, stopping at the first `true`; `None` stands for
/// "missing". Over an array, a numeric segment indexes it and any other segment fans out over
/// its object elements (scalars and nested arrays have no fields). A leaf array is passed whole:
/// each operator decides whether it looks at the array, its elements, or both.
fn any_item<'a>(
    value: &'a Value,
    segments: &[Segment],
    f: &mut impl FnMut(Option<&'a Value>) -> bool,
) -> bool {
    let Some((segment, rest)) = segments.split_first() else {
        return f(Some(value));
    };
    match value {
        Value::Object(fields) => match fields.get(&segment.key) {
            Some(v) => any_item(v, rest, f),
            None => f(None),
        },
        Value::Array(items) => {
            if let Some(i) = segment.index {
                return match items.get(i) {
                    Some(v) => any_item(v, rest, f),
                    None => f(None),
                };
            }
            let mut reached_an_object = false;
            for item in items.iter().filter(|item| item.is_object()) {
                reached_an_object = true;
                if any_item(item, segments, f) {
                    return true;
                }
            }
            !reached_an_object && f(None)
        }
        _ => f(None),
    }
}

/// `$eq`: null matches null or missing; an array matches when it equals the operand or one of
/// its elements does.
fn eq_item(item: Option<&Value>, operand: &Value) -> bool {
    match item {
        None => operand.is_null(),
        Some(whole @ Value::Array(xs)) => {
            values_equal(whole, operand) || xs.iter().any(|x| values_equal(x, operand))
        }
        Some(x) => values_equal(x, operand),
    }
}

/// The operands of `$in`/`$nin`, sorted in the canonical order so a lookup is a binary search:
/// a 1 MiB list costs each contact a few dozen comparisons, not one per operand.
/// `canonical_cmp` is `Equal` exactly when [`values_equal`] holds (values of different type
/// ranks are never equal), so this matches what a linear scan with `eq_item` would.
#[derive(Debug, Clone)]
struct ValueSet(Vec<Value>);

impl ValueSet {
    fn new(mut values: Vec<Value>) -> ValueSet {
        values.sort_by(canonical_cmp);
        values.dedup_by(|a, b| canonical_cmp(a, b).is_eq());
        ValueSet(values)
    }

    fn contains(&self, value: &Value) -> bool {
        self.0
            .binary_search_by(|member| canonical_cmp(member, value))
            .is_ok()
    }
}

/// [`eq_item`] against any of the set's values.
fn in_item(item: Option<&Value>, set: &ValueSet) -> bool {
    match item {
        None => set.contains(&Value::Null),
        Some(whole @ Value::Array(xs)) => set.contains(whole) || xs.iter().any(|x| set.contains(x)),
        Some(x) => set.contains(x),
    }
}

fn regex_item(item: Option<&Value>, re: &Regex) -> bool {
    match item {
        Some(Value::String(s)) => re.is_match(s),
        Some(Value::Array(xs)) => xs
            .iter()
            .any(|x| x.as_str().is_some_and(|s| re.is_match(s))),
        _ => false,
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    compare_same_type(a, b) == Some(Ordering::Equal)
}

/// MongoDB's type bracketing: values of different type classes are not ordered at all.
fn compare_same_type(a: &Value, b: &Value) -> Option<Ordering> {
    (type_rank(a) == type_rank(b)).then(|| canonical_cmp(a, b))
}

/// The BSON canonical order of the JSON types: null < numbers < strings < objects < arrays <
/// booleans.
fn type_rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Object(_) => 3,
        Value::Array(_) => 4,
        Value::Bool(_) => 5,
    }
}

/// A total order over JSON values following BSON's: by type rank, then by value. Strings compare
/// by code point (UTF-8 byte order is code point order), arrays and objects element by element.
/// Objects compare by their sorted keys, so key order never matters.
fn canonical_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(xs), Value::Array(ys)) => xs
            .iter()
            .zip(ys)
            .map(|(x, y)| canonical_cmp(x, y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| xs.len().cmp(&ys.len())),
        (Value::Object(xs), Value::Object(ys)) => xs
            .iter()
            .zip(ys)
            .map(|((kx, vx), (ky, vy))| {
                type_rank(vx)
                    .cmp(&type_rank(vy))
                    .then_with(|| kx.cmp(ky))
                    .then_with(|| canonical_cmp(vx, vy))
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| xs.len().cmp(&ys.len())),
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

/// Numbers compare by value whatever their representation: `1 == 1.0`, and integers beyond
/// 2^53 are not rounded through `f64`.
fn number_cmp(a: &Number, b: &Number) -> Ordering {
    match (exact(a), exact(b)) {
        (Exact::Int(x), Exact::Int(y)) => x.cmp(&y),
        (Exact::Float(x), Exact::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Exact::Int(x), Exact::Float(y)) => int_float_cmp(x, y),
        (Exact::Float(x), Exact::Int(y)) => int_float_cmp(y, x).reverse(),
    }
}

enum Exact {
    Int(i128),
    Float(f64),
}

fn exact(n: &Number) -> Exact {
    if let Some(i) = n.as_i64() {
        Exact::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Exact::Int(i128::from(u))
    } else {
        // JSON has no NaN or infinities, so this is a finite float.
        Exact::Float(n.as_f64().unwrap_or_default())
    }
}

fn int_float_cmp(int: i128, float: f64) -> Ordering {
    const LIMIT: f64 = 1.0e38; // well inside i128, well beyond any JSON integer
    let floor = float.floor();
    if floor >= LIMIT {
        return Ordering::Less;
    }
    if floor <= -LIMIT {
        return Ordering::Greater;
    }
    // `floor` is integral and in range, so the cast is exact.
    match int.cmp(&(floor as i128)) {
        Ordering::Equal if float > floor => Ordering::Less,
        order => order,
    }
}

/// The path of the first object or array nested deeper than [`MAX_DEPTH`], if any.
fn too_deep(value: &Value, path: &str, depth: usize) -> Option<String> {
    let nests = |v: &Value| v.is_object() || v.is_array();
    match value {
        Value::Object(_) | Value::Array(_) if depth > MAX_DEPTH => Some(path.to_string()),
        Value::Object(fields) => fields
            .iter()
            .filter(|(_, v)| nests(v))
            .find_map(|(k, v)| too_deep(v, &join(path, k), depth + 1)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter(|(_, v)| nests(v))
            .find_map(|(i, v)| too_deep(v, &format!("{path}[{i}]"), depth + 1)),
        _ => None,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn is_operator(key: &str) -> bool {
    key.starts_with('$')
}

fn is_logical(key: &str) -> bool {
    matches!(key, "$and" | "$or" | "$nor")
}

/// Collects every error while building the query, so a client sees all of them at once.
#[derive(Default)]
struct Parser {
    errors: Vec<FieldError>,
    regexes: usize,
}

impl Parser {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// A query object: field conditions and `$and`/`$or`/`$nor`, all of which must hold.
    fn query(&mut self, obj: &Map<String, Value>, path: &str) -> Query {
        let mut clauses = Vec::with_capacity(obj.len());
        for (key, value) in obj {
            let here = join(path, key);
            if is_logical(key) {
                let queries = self.query_list(value, &here);
                clauses.push(match key.as_str() {
                    "$and" => Clause::And(queries),
                    "$or" => Clause::Or(queries),
                    _ => Clause::Nor(queries),
                });
            } else if is_operator(key) {
                self.error(
                    here,
                    "is not allowed at the top of a query: only $and, $or and $nor are; \
                     put other operators under a field, like {\"age\": {\"$gt\": 18}}",
                );
            } else if let Some(field_path) = self.field_path(key, path, &here) {
                let ops = self.condition(value, &here);
                clauses.push(Clause::Field {
                    path: field_path,
                    ops,
                });
            }
        }
        Query { clauses }
    }

    fn query_list(&mut self, value: &Value, here: &str) -> Vec<Query> {
        let items = match value {
            Value::Array(items) if !items.is_empty() => items,
            _ => {
                self.error(here, MUST_BE_QUERY_LIST);
                return Vec::new();
            }
        };
        let mut queries = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{here}[{i}]");
            match item.as_object() {
                Some(obj) => queries.push(self.query(obj, &item_path)),
                None => self.error(item_path, MUST_BE_OBJECT),
            }
        }
        queries
    }

    fn field_path(&mut self, key: &str, parent: &str, here: &str) -> Option<Path> {
        if key.is_empty() {
            self.error(parent, "must not have a field with an empty name");
            return None;
        }
        let mut segments = Vec::new();
        for segment in key.split('.') {
            if segment.is_empty() {
                self.error(here, "must not have an empty segment between dots");
                return None;
            }
            if is_operator(segment) {
                self.error(here, "must not have a path segment that starts with $");
                return None;
            }
            let index = segment
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| segment.parse().ok())
                .flatten();
            segments.push(Segment {
                key: segment.to_string(),
                index,
            });
        }
        Some(Path {
            dotted: key.to_string(),
            segments,
        })
    }

    /// A field's condition: an operator object, or a plain value meaning `$eq`.
    fn condition(&mut self, value: &Value, here: &str) -> Vec<Op> {
        match value {
            Value::Object(obj) if obj.keys().any(|k| is_operator(k)) => self.operators(obj, here),
            _ => {
                self.literal(value, here);
                vec![Op::Eq(value.clone())]
            }
        }
    }

    /// An operator object like `{"$gte": 18, "$lt": 65}`; every operator must hold.
    fn operators(&mut self, obj: &Map<String, Value>, here: &str) -> Vec<Op> {
        if obj.keys().any(|k| !is_operator(k)) {
            self.error(
                here,
                "mixes operators with field names; to reach a nested field write its dot path, \
                 like {\"attributes.plan\": \"pro\"}",
            );
            return Vec::new();
        }
        let mut ops = Vec::with_capacity(obj.len());
        for (key, operand) in obj {
            let at = join(here, key);
            let op = match key.as_str() {
                "$eq" => self.literal(operand, &at).then(|| Op::Eq(operand.clone())),
                "$ne" => self.literal(operand, &at).then(|| Op::Ne(operand.clone())),
                "$gt" => self.comparison(Comparison::Gt, operand, &at),
                "$gte" => self.comparison(Comparison::Gte, operand, &at),
                "$lt" => self.comparison(Comparison::Lt, operand, &at),
                "$lte" => self.comparison(Comparison::Lte, operand, &at),
                "$in" => self
                    .values(operand, &at)
                    .map(|vs| Op::In(ValueSet::new(vs))),
                "$nin" => self
                    .values(operand, &at)
                    .map(|vs| Op::Nin(ValueSet::new(vs))),
                "$all" => self.values(operand, &at).map(Op::All),
                "$exists" => self.exists(operand, &at),
                "$regex" => self.regex(operand, obj.get("$options"), &at),
                "$options" => {
                    self.options(operand, obj.contains_key("$regex"), &at);
                    None
                }
                "$not" => self.not(operand, &at),
                "$size" => self.size(operand, &at),
                "$elemMatch" => self.elem_match(operand, &at),
                k if is_logical(k) => {
                    self.error(
                        at,
                        "is not allowed under a field; put $and, $or and $nor at the top of a \
                         query",
                    );
                    None
                }
                _ => {
                    self.error(at, "is not a known operator");
                    None
                }
            };
            ops.extend(op);
        }
        ops
    }

    /// Checks that a plain value holds no operators, which would otherwise be compared as
    /// literal keys and silently never match (contacts have no `$` keys).
    fn literal(&mut self, value: &Value, here: &str) -> bool {
        match value {
            Value::Object(fields) => {
                let mut ok = true;
                for (key, v) in fields {
                    let at = join(here, key);
                    if is_operator(key) {
                        self.error(
                            at,
                            "is an operator inside a plain value; to reach a nested field \
                             write its dot path, like {\"attributes.score\": {\"$gt\": 5}}",
                        );
                        ok = false;
                    } else {
                        ok &= self.literal(v, &at);
                    }
                }
                ok
            }
            Value::Array(items) => {
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    ok &= self.literal(item, &format!("{here}[{i}]"));
                }
                ok
            }
            _ => true,
        }
    }

    fn comparison(&mut self, cmp: Comparison, operand: &Value, at: &str) -> Option<Op> {
        self.literal(operand, at)
            .then(|| Op::Cmp(cmp, operand.clone()))
    }

    fn values(&mut self, operand: &Value, at: &str) -> Option<Vec<Value>> {
        let Value::Array(items) = operand else {
            self.error(at, MUST_BE_ARRAY);
            return None;
        };
        self.literal(operand, at).then(|| items.clone())
    }

    fn exists(&mut self, operand: &Value, at: &str) -> Option<Op> {
        match operand {
            Value::Bool(b) => Some(Op::Exists(*b)),
            Value::Number(n) => Some(Op::Exists(n.as_f64() != Some(0.0))),
            _ => {
                self.error(at, "must be true or false");
                None
            }
        }
    }

    fn size(&mut self, operand: &Value, at: &str) -> Option<Op> {
        let size = operand.as_u64().or_else(|| {
            operand
                .as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= u32::MAX as f64)
                .map(|f| f as u64)
        });
        match size.and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Some(Op::Size(n)),
            None => {
                self.error(at, "must be a non-negative integer");
                None
            }
        }
    }

    fn not(&mut self, operand: &Value, at: &str) -> Option<Op> {
        match operand {
            Value::Object(obj) if !obj.is_empty() && obj.keys().all(|k| is_operator(k)) => {
                let ops = self.operators(obj, at);
                Some(Op::Not(ops))
            }
            _ => {
                self.error(at, MUST_BE_OPERATOR_OBJECT);
                None
            }
        }
    }

    fn elem_match(&mut self, operand: &Value, at: &str) -> Option<Op> {
        let Value::Object(obj) = operand else {
            self.error(at, MUST_BE_OBJECT);
            return None;
        };
        let on_scalars = obj.keys().any(|k| is_operator(k) && !is_logical(k));
        let elem_match = if on_scalars {
            ElemMatch::Ops(self.operators(obj, at))
        } else {
            ElemMatch::Query(self.query(obj, at))
        };
        Some(Op::ElemMatch(Box::new(elem_match)))
    }

    fn options(&mut self, operand: &Value, with_regex: bool, at: &str) {
        if !with_regex {
            self.error(at, "is only allowed together with $regex");
        } else if flags(operand).is_none() {
            self.error(at, "must be a string of the flags i, m, s and x");
        }
    }

    fn regex(&mut self, operand: &Value, options: Option<&Value>, at: &str) -> Option<Op> {
        let Value::String(pattern) = operand else {
            self.error(at, "must be a string");
            return None;
        };
        if pattern.chars().count() > MAX_REGEX_CHARS {
            self.error(at, format!("must be at most {MAX_REGEX_CHARS} characters"));
            return None;
        }
        self.regexes += 1;
        if self.regexes > MAX_REGEXES {
            self.error(
                at,
                format!("is one too many: a filter may hold at most {MAX_REGEXES} $regex"),
            );
            return None;
        }
        // An invalid `$options` is reported on its own key; compile with no flags meanwhile.
        let flags = options.and_then(flags).unwrap_or_default();
        let built = RegexBuilder::new(pattern)
            .case_insensitive(flags.contains('i'))
            .multi_line(flags.contains('m'))
            .dot_matches_new_line(flags.contains('s'))
            .ignore_whitespace(flags.contains('x'))
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build();
        match built {
            Ok(re) => Some(Op::Regex(re)),
            Err(regex::Error::CompiledTooBig(_)) => {
                self.error(
                    at,
                    format!(
                        "is too complex: it compiles to more than {} KiB",
                        REGEX_SIZE_LIMIT / 1024
                    ),
                );
                None
            }
            Err(err) => {
                self.error(
                    at,
                    format!("is not a valid regular expression: {}", regex_reason(&err)),
                );
                None
            }
        }
    }
}

/// The `$options` string, when it holds only supported flags.
fn flags(operand: &Value) -> Option<&str> {
    operand
        .as_str()
        .filter(|s| s.chars().all(|c| REGEX_FLAGS.contains(c)))
}

/// The one-line reason out of the regex crate's multi-line, caret-pointing message.
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or(text.lines().last().unwrap_or_default())
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;

    fn filter(where_: Value) -> Filter {
        parse_where(&where_, "where").unwrap_or_else(|e| panic!("{where_} should parse: {e:?}"))
    }

    fn matches(doc: &Value, where_: Value) -> bool {
        filter(where_).matches(doc)
    }

    /// The errors for a `where` clause, as (field, message) pairs.
    fn refused(where_: Value) -> Vec<FieldError> {
        match parse_where(&where_, "where") {
            Ok(_) => panic!("{where_} should be refused"),
            Err(errors) => errors,
        }
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn every_operator_follows_mongodb_semantics() {
        let contact = json!({
            "email": "ada@example.com",
            "tags": ["vip", "prospect"],
            "attributes": {
                "plan": "pro", "score": 87, "ratio": 0.5, "trial": false, "nickname": null,
                "company": {"name": "Engines", "size": 12, "offices": ["London", "Paris"]},
                "orders": [{"sku": "A1", "total": 120.5, "lines": [{"qty": 2}]},
                           {"sku": "B2", "total": 30}, "not-an-object"],
                "matrix": [[1, 2], [3]],
                "big": 9007199254740993u64
            }
        });
        let cases: Vec<(Value, bool)> = vec![
            // $eq and plain values
            (json!({"email": "ada@example.com"}), true),
            (json!({"email": {"$eq": "ada@example.com"}}), true),
            (json!({"email": "ADA@example.com"}), false),
            (json!({"attributes.score": 87.0}), true),
            (json!({"attributes.big": 9007199254740992u64}), false),
            (json!({"attributes.big": {"$gt": 9007199254740992.0}}), true),
            (
                json!({"attributes.company": {"size": 12, "name": "Engines", "offices": ["London", "Paris"]}}),
                true,
            ),
            (json!({"attributes.company": {"size": 12}}), false),
            // $ne
            (json!({"attributes.plan": {"$ne": "free"}}), true),
            (json!({"attributes.plan": {"$ne": "pro"}}), false),
            (json!({"tags": {"$ne": "vip"}}), false),
            (json!({"attributes.missing": {"$ne": 1}}), true),
            // comparisons
            (json!({"attributes.score": {"$gt": 86}}), true),
            (json!({"attributes.score": {"$gt": 87}}), false),
            (json!({"attributes.score": {"$gte": 87}}), true),
            (json!({"attributes.score": {"$lt": 87.5}}), true),
            (json!({"attributes.score": {"$lte": 86.9}}), false),
            (json!({"attributes.ratio": {"$gt": 0, "$lt": 1}}), true),
            (json!({"attributes.score": {"$gt": "1"}}), false),
            (
                json!({"attributes.plan": {"$gt": "pra", "$lt": "prp"}}),
                true,
            ),
            (json!({"attributes.plan": {"$lt": "Z"}}), false),
            (json!({"attributes.plan": {"$gt": 0}}), false),
            (json!({"attributes.trial": {"$lt": true}}), true),
            (json!({"attributes.trial": {"$gt": 0}}), false),
            (json!({"attributes.score": {"$gt": null}}), false),
            (json!({"attributes.missing": {"$gte": null}}), true),
            (json!({"attributes.missing": {"$gt": null}}), false),
            (json!({"attributes.missing": {"$lt": 5}}), false),
            (json!({"tags": {"$gte": "w"}}), false),
            (json!({"tags": {"$gte": "vip"}}), true),
            // $in / $nin
            (json!({"attributes.plan": {"$in": ["free", "pro"]}}), true),
            (json!({"attributes.plan": {"$in": []}}), false),
            (json!({"tags": {"$in": ["customer", "prospect"]}}), true),
            (json!({"attributes.missing": {"$in": [null]}}), true),
            (json!({"attributes.plan": {"$nin": ["free"]}}), true),
            (json!({"tags": {"$nin": ["prospect"]}}), false),
            (json!({"attributes.missing": {"$nin": ["x"]}}), true),
            (json!({"attributes.missing": {"$nin": [null]}}), false),
            // $exists
            (json!({"attributes.nickname": {"$exists": true}}), true),
            (json!({"attributes.missing": {"$exists": true}}), false),
            (json!({"attributes.missing": {"$exists": false}}), true),
            (json!({"attributes.missing": {"$exists": 0}}), true),
            (json!({"attributes.orders.sku": {"$exists": true}}), true),
            (
                json!({"attributes.orders.lines.qty": {"$exists": true}}),
                true,
            ),
            (json!({"tags.length": {"$exists": true}}), false),
            // $regex
            (json!({"email": {"$regex": "^ada@"}}), true),
            (json!({"email": {"$regex": "^ADA@"}}), false),
            (json!({"email": {"$regex": "^ADA@", "$options": "i"}}), true),
            (json!({"tags": {"$regex": "^pro"}}), true),
            (json!({"attributes.score": {"$regex": "8"}}), false),
            (json!({"attributes.missing": {"$regex": ".*"}}), false),
            (
                json!({"email": {"$regex": "ada @ example", "$options": "x"}}),
                true,
            ),
            (
                json!({"email": {"$not": {"$regex": "@example\\.com$"}}}),
                false,
            ),
            // $not
            (json!({"attributes.score": {"$not": {"$gt": 90}}}), true),
            (
                json!({"attributes.score": {"$not": {"$gt": 80, "$lt": 90}}}),
                false,
            ),
            (json!({"attributes.missing": {"$not": {"$eq": 1}}}), true),
            (json!({"tags": {"$not": {"$eq": "vip"}}}), false),
            // $all
            (json!({"tags": {"$all": ["prospect", "vip"]}}), true),
            (json!({"tags": {"$all": ["vip", "customer"]}}), false),
            (json!({"tags": {"$all": []}}), false),
            (json!({"attributes.plan": {"$all": ["pro"]}}), true),
            // $size
            (json!({"tags": {"$size": 2}}), true),
            (json!({"tags": {"$size": 2.0}}), true),
            (json!({"tags": {"$size": 1}}), false),
            (json!({"attributes.plan": {"$size": 3}}), false),
            (json!({"attributes.matrix": {"$size": 2}}), true),
            // $elemMatch
            (
                json!({"attributes.orders": {"$elemMatch": {"sku": "A1", "total": {"$gt": 100}}}}),
                true,
            ),
            (
                json!({"attributes.orders": {"$elemMatch": {"sku": "B2", "total": {"$gt": 100}}}}),
                false,
            ),
            (
                json!({"attributes.orders": {"$elemMatch": {"$or": [{"sku": "Z9"}, {"total": 30}]}}}),
                true,
            ),
            (json!({"attributes.orders": {"$elemMatch": {}}}), true),
            (json!({"tags": {"$elemMatch": {}}}), false),
            (
                json!({"tags": {"$elemMatch": {"$regex": "^v", "$ne": "vip"}}}),
                false,
            ),
            (
                json!({"attributes.company.offices": {"$elemMatch": {"$gte": "M"}}}),
                true,
            ),
            (
                json!({"attributes.plan": {"$elemMatch": {"$eq": "pro"}}}),
                false,
            ),
            // $and / $or / $nor and implicit AND
            (
                json!({"$and": [{"tags": "vip"}, {"attributes.plan": "pro"}]}),
                true,
            ),
            (
                json!({"$and": [{"tags": "vip"}, {"attributes.plan": "free"}]}),
                false,
            ),
            (
                json!({"$or": [{"tags": "nope"}, {"attributes.plan": "pro"}]}),
                true,
            ),
            (
                json!({"$or": [{"tags": "nope"}, {"attributes.plan": "free"}]}),
                false,
            ),
            (
                json!({"$nor": [{"tags": "nope"}, {"attributes.plan": "free"}]}),
                true,
            ),
            (json!({"$nor": [{"tags": "vip"}]}), false),
            (json!({"tags": "vip", "attributes.plan": "free"}), false),
            (
                json!({"$or": [{"tags": "vip"}], "attributes.plan": "free"}),
                false,
            ),
            // arrays and dot paths
            (json!({"tags": "prospect"}), true),
            (json!({"tags": ["vip", "prospect"]}), true),
            (json!({"tags": ["prospect", "vip"]}), false),
            (json!({"tags.0": "vip"}), true),
            (json!({"tags.1": "vip"}), false),
            (json!({"tags.5": null}), true),
            (json!({"attributes.orders.sku": "B2"}), true),
            (json!({"attributes.orders.total": {"$lt": 50}}), true),
            (json!({"attributes.orders.0.total": {"$lt": 50}}), false),
            (json!({"attributes.orders.lines.qty": 2}), true),
            (json!({"attributes.orders.lines.0.qty": 2}), true),
            (json!({"attributes.company.offices": "Paris"}), true),
            (json!({"attributes.company.offices.1": "Paris"}), true),
            (json!({"attributes.matrix": [3]}), true),
            (json!({"attributes.matrix": 3}), false),
            (json!({"attributes.matrix.0": 2}), true),
            (json!({"attributes.matrix.0.1": 2}), true),
            (json!({"attributes.plan.name": null}), true),
            // null and missing
            (json!({"attributes.nickname": null}), true),
            (json!({"attributes.missing": null}), true),
            (json!({"attributes.plan": null}), false),
            (json!({"attributes.orders.sku": null}), false),
            (json!({"attributes.orders.coupon": null}), true),
            (json!({"attributes.nickname": {"$eq": null}}), true),
            (json!({"attributes.nickname": {"$ne": null}}), false),
            (json!({"email": {"$ne": null}}), true),
            (json!({}), true),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(where_, expected)| matches(&contact, where_.clone()) != *expected)
            .map(|(where_, expected)| format!("{where_} should give {expected}"))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn every_worked_example_in_the_docs_holds() {
        let doc = include_str!("../../docs/dynamic-query.md");
        let section = doc
            .split("## Worked examples")
            .nth(1)
            .expect("the docs have a worked examples section");
        let contacts: Vec<Value> = section
            .split("```json\n")
            .skip(1)
            .map(|block| serde_json::from_str(block.split("```").next().unwrap()).unwrap())
            .collect();
        let [ada, bob] = contacts.as_slice() else {
            panic!(
                "expected the two contacts, Ada and Bob, got {}",
                contacts.len()
            );
        };
        let mut rows = 0;
        for line in section.lines().filter(|l| l.starts_with("| ")) {
            let line = line.replace("\\|", "\u{1}");
            let cells: Vec<String> = line
                .split('|')
                .map(|c| c.trim().replace('\u{1}', "|"))
                .collect();
            if cells[1].parse::<u32>().is_err() {
                continue;
            }
            let where_: Value = serde_json::from_str(cells[2].trim_matches('`'))
                .unwrap_or_else(|e| panic!("row {}: {e}", cells[1]));
            let filter = filter(where_);
            for (contact, expected) in [(ada, &cells[3]), (bob, &cells[4])] {
                let expected = match expected.as_str() {
                    "yes" => true,
                    "no" => false,
                    other => panic!("row {}: {other} is neither yes nor no", cells[1]),
                };
                assert_eq!(
                    filter.matches(contact),
                    expected,
                    "row {} for {}",
                    cells[1],
                    contact["firstName"]
                );
            }
            rows += 1;
        }
        assert!(rows >= 15, "the docs have only {rows} worked examples");
    }

    #[test]
    fn a_whole_filter_needs_the_contact_datatype_and_a_where_object() {
        let ok = parse_filter(&json!({"datatype": "contact", "where": {"tags": "vip"}})).unwrap();
        assert!(ok.matches(&json!({"tags": ["vip"]})));
        let errors = |filter: Value| parse_filter(&filter).unwrap_err();
        assert_eq!(
            errors(json!({"datatype": "deal", "where": {}})),
            [FieldError::new("datatype", "must be \"contact\"")]
        );
        assert_eq!(
            errors(json!({"datatype": "contact"})),
            [FieldError::new("where", "is required")]
        );
        assert_eq!(
            errors(json!({"datatype": "contact", "where": "tags = vip"})),
            [FieldError::new("where", "must be an object")]
        );
        assert_eq!(
            errors(json!([])),
            [FieldError::new("filter", "must be an object")]
        );
        assert_eq!(
            fields(&errors(json!({"where": {"tags": {"$in": 1}}}))),
            ["datatype", "where.tags.$in"]
        );
    }

    #[test]
    fn an_unknown_operator_is_refused_at_its_path() {
        let errors = refused(json!({"tags": {"$foo": 1}}));
        assert_eq!(fields(&errors), ["where.tags.$foo"]);
        assert_eq!(errors[0].message, "is not a known operator");
        assert_eq!(
            fields(&refused(json!({"$or": [{"a": 1}, {"b": {"$where": "1"}}]}))),
            ["where.$or[1].b.$where"]
        );
    }

    #[test]
    fn operands_of_the_wrong_type_are_refused_at_their_path() {
        let cases = [
            (
                json!({"tags": {"$in": "vip"}}),
                "where.tags.$in",
                "must be an array",
            ),
            (
                json!({"tags": {"$nin": {"a": 1}}}),
                "where.tags.$nin",
                "must be an array",
            ),
            (
                json!({"tags": {"$all": "vip"}}),
                "where.tags.$all",
                "must be an array",
            ),
            (
                json!({"tags": {"$size": "2"}}),
                "where.tags.$size",
                "must be a non-negative integer",
            ),
            (
                json!({"tags": {"$size": -1}}),
                "where.tags.$size",
                "must be a non-negative integer",
            ),
            (
                json!({"tags": {"$size": 1.5}}),
                "where.tags.$size",
                "must be a non-negative integer",
            ),
            (
                json!({"email": {"$exists": "yes"}}),
                "where.email.$exists",
                "must be true or false",
            ),
            (
                json!({"email": {"$regex": 5}}),
                "where.email.$regex",
                "must be a string",
            ),
            (
                json!({"email": {"$regex": "a", "$options": "g"}}),
                "where.email.$options",
                "must be a string of the flags i, m, s and x",
            ),
            (
                json!({"email": {"$options": "i"}}),
                "where.email.$options",
                "is only allowed together with $regex",
            ),
            (
                json!({"email": {"$not": "a"}}),
                "where.email.$not",
                MUST_BE_OPERATOR_OBJECT,
            ),
            (
                json!({"email": {"$not": {}}}),
                "where.email.$not",
                MUST_BE_OPERATOR_OBJECT,
            ),
            (
                json!({"email": {"$not": {"a": 1}}}),
                "where.email.$not",
                MUST_BE_OPERATOR_OBJECT,
            ),
            (
                json!({"tags": {"$elemMatch": "vip"}}),
                "where.tags.$elemMatch",
                "must be an object",
            ),
            (json!({"$and": {"a": 1}}), "where.$and", MUST_BE_QUERY_LIST),
            (json!({"$or": []}), "where.$or", MUST_BE_QUERY_LIST),
            (json!({"$nor": [1]}), "where.$nor[0]", "must be an object"),
        ];
        for (where_, field, message) in cases {
            assert_eq!(
                refused(where_.clone()),
                [FieldError::new(field, message)],
                "{where_}"
            );
        }
    }

    #[test]
    fn query_shapes_mongodb_would_misread_are_refused() {
        assert_eq!(fields(&refused(json!({"$gt": 1}))), ["where.$gt"]);
        assert_eq!(fields(&refused(json!({"": 1}))), ["where"]);
        assert_eq!(fields(&refused(json!({"a..b": 1}))), ["where.a..b"]);
        assert_eq!(fields(&refused(json!({"a.": 1}))), ["where.a."]);
        assert_eq!(fields(&refused(json!({"a.$b": 1}))), ["where.a.$b"]);
        assert_eq!(
            fields(&refused(json!({"a": {"$gt": 1, "b": 2}}))),
            ["where.a"]
        );
        assert_eq!(
            fields(&refused(json!({"attributes": {"plan": {"$gt": 1}}}))),
            ["where.attributes.plan.$gt"]
        );
        assert_eq!(
            fields(&refused(json!({"tags": {"$in": ["a", {"$gt": 1}]}}))),
            ["where.tags.$in[1].$gt"]
        );
        assert_eq!(
            fields(&refused(json!({"tags": {"$or": [{"a": 1}]}}))),
            ["where.tags.$or"]
        );
        let many = refused(json!({"tags": {"$in": 1}, "email": {"$foo": 1}, "$bar": 2}));
        assert_eq!(
            fields(&many),
            ["where.$bar", "where.email.$foo", "where.tags.$in"]
        );
    }

    #[test]
    fn a_regex_that_does_not_compile_is_refused_with_the_reason() {
        let errors = refused(json!({"email": {"$regex": "(unclosed"}}));
        assert_eq!(fields(&errors), ["where.email.$regex"]);
        assert_eq!(
            errors[0].message,
            "is not a valid regular expression: unclosed group"
        );
        let errors = refused(json!({"email": {"$regex": "(?=look)ahead"}}));
        assert_eq!(fields(&errors), ["where.email.$regex"]);
        assert!(errors[0].message.contains("look-around"), "{errors:?}");
    }

    #[test]
    fn a_catastrophic_backtracking_pattern_runs_in_linear_time() {
        let filter = filter(json!({"email": {"$regex": "(a+)+$"}}));
        let doc = json!({"email": format!("{}b", "a".repeat(50_000))});
        let anchored = parse_where(&json!({"email": {"$regex": "^(a+)+$"}}), "where").unwrap();
        // A backtracking engine would need about 2^50 steps for 50 `a`s and this test would not
        // end; this one is linear in the 50 000 characters. How fast: `bench/timings.sh`.
        assert!(!filter.matches(&doc));
        assert!(!anchored.matches(&doc));
        assert!(filter.matches(&json!({"email": "baaa"})));
    }

    #[test]
    fn an_enormous_pattern_is_refused() {
        let long = refused(json!({"email": {"$regex": "a".repeat(MAX_REGEX_CHARS + 1)}}));
        assert_eq!(
            long,
            [FieldError::new(
                "where.email.$regex",
                "must be at most 512 characters"
            )]
        );
        assert!(parse_where(
            &json!({"email": {"$regex": "a".repeat(MAX_REGEX_CHARS)}}),
            "w"
        )
        .is_ok());

        let huge = refused(json!({"email": {"$regex": "\\w{1000}"}}));
        assert_eq!(
            huge,
            [FieldError::new(
                "where.email.$regex",
                "is too complex: it compiles to more than 1024 KiB"
            )]
        );

        let regexes: Vec<Value> = (0..=MAX_REGEXES)
            .map(|i| json!({"email": {"$regex": format!("x{i}")}}))
            .collect();
        let errors = refused(json!({"$or": regexes}));
        assert_eq!(fields(&errors), ["where.$or[32].email.$regex"]);
    }

    /// `{"f": {"$not": {"$not": ... {"$eq": 1}}}}` with `levels` objects in all.
    fn nested(levels: usize) -> Value {
        let mut value = json!({"$eq": 1});
        for _ in 0..levels - 2 {
            value = json!({ "$not": value });
        }
        json!({ "f": value })
    }

    #[test]
    fn nesting_deeper_than_32_levels_is_refused_where_it_happens() {
        assert!(parse_where(&nested(32), "where").is_ok());
        let errors = refused(nested(33));
        let path = format!("where.f{}", ".$not".repeat(31));
        assert_eq!(
            errors,
            [FieldError::new(path, "nests deeper than 32 levels")]
        );
        // Arrays count too, and a deep literal is no way around the limit.
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!([deep]);
        }
        let errors = refused(json!({"tags": {"$in": deep}}));
        assert_eq!(
            fields(&errors),
            [format!("where.tags.$in{}", "[0]".repeat(30))]
        );
    }

    #[test]
    fn an_invalid_inline_audience_names_the_path_in_the_campaign_body() {
        let body = json!({
            "name": "Spring", "type": "one-shot", "channels": ["email"],
            "audience": {"type": "dynamic", "filter": {"datatype": "contact", "where": {
                "tags": {"$in": "vip"}, "attributes.score": {"$size": "2"}
            }}}
        });
        assert_eq!(
            crate::spec::parse_campaign(&body).unwrap_err(),
            [
                FieldError::new(
                    "audience.filter.where.attributes.score.$size",
                    "must be a non-negative integer"
                ),
                FieldError::new("audience.filter.where.tags.$in", "must be an array"),
            ]
        );
    }

    #[test]
    fn referenced_fields_lists_each_top_level_path_once() {
        let filter = filter(json!({
            "tags": "vip",
            "$or": [{"attributes.plan": "pro"}, {"tags": {"$size": 0}}],
            "attributes.orders": {"$elemMatch": {"sku": "A1"}}
        }));
        // serde_json keeps keys sorted, so `$or` is visited first.
        assert_eq!(
            filter.referenced_fields(),
            ["attributes.plan", "tags", "attributes.orders"]
        );
    }
}

/// Properties over random small contacts and filters built from a few fields and operators.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    const FIELDS: [&str; 5] = [
        "tags",
        "attributes.plan",
        "attributes.score",
        "email",
        "age",
    ];

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-2i64..=3).prop_map(Value::from),
            prop::sample::select(vec![0.5, 1.0, 2.5]).prop_map(Value::from),
            prop::sample::select(vec!["a", "b", "pro", "free", "vip", "Pro"]).prop_map(Value::from),
        ]
    }

    /// A field value: a scalar or a short array of scalars.
    fn field_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => scalar(),
            1 => prop::collection::vec(scalar(), 0..4).prop_map(Value::from),
        ]
    }

    fn contact() -> impl Strategy<Value = Value> {
        (
            prop::option::of(field_value()),
            prop::option::of(field_value()),
            prop::option::of(field_value()),
            prop::option::of(field_value()),
            prop::option::of(field_value()),
        )
            .prop_map(|(tags, plan, score, email, age)| {
                let mut attributes = Map::new();
                attributes.extend(plan.map(|v| ("plan".to_string(), v)));
                attributes.extend(score.map(|v| ("score".to_string(), v)));
                let mut doc = Map::new();
                doc.insert("id".into(), json!("ct-1"));
                doc.insert("attributes".into(), Value::Object(attributes));
                doc.extend(tags.map(|v| ("tags".to_string(), v)));
                doc.extend(email.map(|v| ("email".to_string(), v)));
                doc.extend(age.map(|v| ("age".to_string(), v)));
                Value::Object(doc)
            })
    }

    /// One operator with a valid operand, as `{"$op": operand}`.
    fn operator() -> impl Strategy<Value = Value> {
        let values = || prop::collection::vec(scalar(), 0..3).prop_map(Value::from);
        prop_oneof![
            (
                prop::sample::select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]),
                scalar()
            )
                .prop_map(|(op, v)| json!({ op: v })),
            (prop::sample::select(vec!["$in", "$nin", "$all"]), values())
                .prop_map(|(op, v)| json!({ op: v })),
            any::<bool>().prop_map(|b| json!({"$exists": b})),
            (0u64..3).prop_map(|n| json!({"$size": n})),
            (
                prop::sample::select(vec!["^p", "o", "^$", "[ab]"]),
                any::<bool>()
            )
                .prop_map(|(re, i)| if i {
                    json!({"$regex": re, "$options": "i"})
                } else {
                    json!({"$regex": re})
                }),
            (prop::sample::select(vec!["$gt", "$lte", "$eq"]), scalar())
                .prop_map(|(op, v)| json!({"$elemMatch": { op: v }})),
        ]
    }

    /// A condition: a plain value or an operator object.
    fn condition() -> impl Strategy<Value = Value> {
        prop_oneof![1 => field_value(), 3 => operator()]
    }

    fn atom() -> impl Strategy<Value = Value> {
        (prop::sample::select(FIELDS.to_vec()), condition()).prop_map(|(f, c)| json!({ f: c }))
    }

    fn eval(doc: &Value, where_: Value) -> bool {
        parse_where(&where_, "where")
            .unwrap_or_else(|e| panic!("{where_} should parse: {e:?}"))
            .matches(doc)
    }

    /// Any JSON up to a few levels deep, with keys that are often operators.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            scalar(),
            "[a-z(+*)\\[]{0,6}".prop_map(Value::from),
            (-5.0f64..5.0).prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 40, 4, |inner| {
            let key = prop::sample::select(vec![
                "$and",
                "$or",
                "$nor",
                "$not",
                "$eq",
                "$in",
                "$nin",
                "$all",
                "$size",
                "$regex",
                "$options",
                "$exists",
                "$elemMatch",
                "$gt",
                "$foo",
                "tags",
                "a.b",
                "a.0",
                "",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(key, inner, 0..4).prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn nor_is_the_negation_of_or(doc in contact(), a in atom(), b in atom()) {
            prop_assert_eq!(
                eval(&doc, json!({"$nor": [a.clone(), b.clone()]})),
                !eval(&doc, json!({"$or": [a, b]}))
            );
        }

        #[test]
        fn nin_is_the_negation_of_in(
            doc in contact(),
            f in prop::sample::select(FIELDS.to_vec()),
            xs in prop::collection::vec(scalar(), 0..4),
        ) {
            // Holds for missing fields too: `$nin` matches them unless `null` is listed.
            prop_assert_eq!(
                eval(&doc, json!({ f: {"$nin": xs.clone()} })),
                !eval(&doc, json!({ f: {"$in": xs} }))
            );
        }

        #[test]
        fn and_of_disjoint_queries_is_their_merge(
            doc in contact(),
            pair in prop::sample::subsequence(FIELDS.to_vec(), 2),
            c1 in condition(),
            c2 in condition(),
        ) {
            let (f1, f2) = (pair[0], pair[1]);
            prop_assert_eq!(
                eval(&doc, json!({"$and": [{ f1: c1.clone() }, { f2: c2.clone() }]})),
                eval(&doc, json!({ f1: c1, f2: c2 }))
            );
        }

        #[test]
        fn not_is_the_negation_of_its_operator(
            doc in contact(),
            f in prop::sample::select(FIELDS.to_vec()),
            op in operator(),
        ) {
            prop_assert_eq!(
                eval(&doc, json!({ f: {"$not": op.clone()} })),
                !eval(&doc, json!({ f: op }))
            );
        }

        #[test]
        fn ne_is_the_negation_of_eq(
            doc in contact(),
            f in prop::sample::select(FIELDS.to_vec()),
            v in field_value(),
        ) {
            prop_assert_eq!(
                eval(&doc, json!({ f: {"$ne": v.clone()} })),
                !eval(&doc, json!({ f: {"$eq": v.clone()} }))
            );
            prop_assert_eq!(eval(&doc, json!({ f: {"$eq": v.clone()} })), eval(&doc, json!({ f: v })));
        }

        #[test]
        fn gte_is_gt_or_eq_and_lte_is_lt_or_eq(
            doc in contact(),
            f in prop::sample::select(FIELDS.to_vec()),
            v in scalar(),
        ) {
            prop_assert_eq!(
                eval(&doc, json!({ f: {"$gte": v.clone()} })),
                eval(&doc, json!({"$or": [{ f: {"$gt": v.clone()} }, { f: v.clone() }]}))
            );
            prop_assert_eq!(
                eval(&doc, json!({ f: {"$lte": v.clone()} })),
                eval(&doc, json!({"$or": [{ f: {"$lt": v.clone()} }, { f: v.clone() }]}))
            );
        }

        #[test]
        fn comparisons_hold_only_within_one_type(
            doc in contact(),
            f in prop::sample::select(FIELDS.to_vec()),
            v in scalar(),
        ) {
            // A number never passes a string bound and vice versa: `$gt` and `$lte` are not
            // complements across types, so at least one of them fails on a mismatch.
            let gt = eval(&doc, json!({ f: {"$gt": v.clone()} }));
            let lte = eval(&doc, json!({ f: {"$lte": v.clone()} }));
            let field = filter_value(&doc, f);
            let same_type_scalar = field.is_some_and(|x| !x.is_array() && type_rank(x) == type_rank(&v));
            if same_type_scalar {
                prop_assert!(gt != lte, "{} on {}", v, doc);
            } else if field.is_some_and(|x| !x.is_array()) {
                prop_assert!(!gt && !lte, "{} on {}", v, doc);
            }
        }

        #[test]
        fn in_is_an_or_of_equalities(
            doc in contact(),
            f in prop::sample::select(FIELDS.to_vec()),
            xs in prop::collection::vec(scalar(), 1..4),
        ) {
            let ors: Vec<Value> = xs.iter().map(|x| json!({ f: x })).collect();
            prop_assert_eq!(
                eval(&doc, json!({ f: {"$in": xs} })),
                eval(&doc, json!({"$or": ors}))
            );
        }

        #[test]
        fn matching_the_text_agrees_with_matching_the_document(
            doc in contact(),
            a in atom(),
            b in atom(),
        ) {
            // The text path parses only the fields the filter reads; the answer must not change.
            for where_ in [a.clone(), json!({"$or": [a.clone(), b.clone()]}), json!({"$nor": [a, b]}), json!({})] {
                let filter = parse_where(&where_, "where").expect("generated filters parse");
                prop_assert_eq!(
                    filter.matches_json(&doc.to_string()),
                    Some(filter.matches(&doc)),
                    "{} on {}", where_, doc
                );
            }
        }

        #[test]
        fn parsing_any_json_never_panics_and_errors_name_where(where_ in any_json(), doc in contact()) {
            match parse_where(&where_, "where") {
                Ok(filter) => {
                    filter.matches(&doc);
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    for error in errors {
                        prop_assert!(error.field.starts_with("where"), "{}", error);
                    }
                }
            }
        }
    }

    /// The value at a plain dot path (no arrays on the way), for checking results by hand.
    fn filter_value<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(doc, |v, key| v.get(key))
    }
}
