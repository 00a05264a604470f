//! Compiles a parsed [`Filter`] into one PostgreSQL predicate over the contact document as
//! `jsonb`, with the semantics of [`Filter::matches`], which stays the oracle: what cannot be
//! compiled exactly becomes a superset (`true` at worst), and the caller checks those rows with
//! the evaluator (docs/dynamic-query.md, "How reach runs on PostgreSQL").
//!
//! The SQL mirrors the evaluator's walk: a path step into an object looks the key up, a numeric
//! step into an array indexes it, any other step into an array fans out over its object
//! elements, and every dead end is "missing", a constant each operator decides. Every piece is
//! guarded by `jsonb_typeof` inside `case`, so it never errors and never yields SQL `null`; a
//! key that is absent reads as SQL `null`, which every leaf test takes as `false`, so the walk
//! tests a key's presence only where "missing" is `true`.
//!
//! Arrays along a path are read with `jsonb_path_exists` and a `lax` path where that says
//! exactly what the walk does (keys only, leaf tests that have a jsonpath form), otherwise
//! with a correlated subquery (`exists (select … from jsonb_array_elements(…))`). PostgreSQL
//! never runs a query holding such a subquery in parallel workers, so the common filters are
//! kept free of them: a count over a large org then runs on every core.

use serde_json::Value;

use super::{Clause, Comparison, ElemMatch, Filter, Op, Query, Segment};

/// Paths with more segments than this are not compiled: the walk doubles at each step.
const MAX_SEGMENTS: usize = 6;
/// `$in`/`$nin` operands that are not strings, compiled one test each; more are not compiled.
const MAX_NON_STRING_IN: usize = 64;
/// Integers and decimals at least this large (2^53) are not compiled: PostgreSQL compares their
/// decimal text exactly, the evaluator compares the nearest `f64`, and the two can disagree.
const SAFE_MAGNITUDE: f64 = 9_007_199_254_740_992.0;

/// A filter as a PostgreSQL boolean expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlPredicate {
    /// The expression, over the `jsonb` column named to [`Filter::to_postgres`]; never `null`,
    /// never an error, for any document.
    pub sql: String,
    /// Text parameters in order, referenced as `$first_param`, `$first_param + 1`, ...
    pub params: Vec<String>,
    /// `true` when the expression holds exactly for the documents [`Filter::matches`];
    /// otherwise it holds for a superset of them and each row must be checked in memory.
    pub exact: bool,
}

impl Filter {
    /// Compiles the filter to a predicate over `column` (a `jsonb` column or expression that
    /// holds a contact document, always an object), numbering parameters from `first_param`.
    pub fn to_postgres(&self, column: &str, first_param: usize) -> SqlPredicate {
        let mut compiler = Compiler {
            params: Vec::new(),
            first_param,
            aliases: 0,
        };
        let sql = compiler.query(&self.query, column);
        SqlPredicate {
            sql: sql.text,
            params: compiler.params,
            exact: sql.exact,
        }
    }
}

/// A compiled piece: exact, or a superset of what the evaluator accepts.
struct Sql {
    text: String,
    exact: bool,
}

impl Sql {
    fn exact(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            exact: true,
        }
    }

    fn constant(value: bool) -> Sql {
        Sql::exact(if value { "true" } else { "false" })
    }

    /// Holds for everything: the piece is left to the evaluator.
    fn anything() -> Sql {
        Sql {
            text: "true".into(),
            exact: false,
        }
    }

    /// The negation, which only an exact piece has (the negation of a superset is not one).
    fn not(self) -> Sql {
        if self.exact {
            Sql::exact(format!("(not {})", self.text))
        } else {
            Sql::anything()
        }
    }

    fn all(parts: Vec<Sql>) -> Sql {
        Sql::join(parts, " and ", true)
    }

    fn any(parts: Vec<Sql>) -> Sql {
        Sql::join(parts, " or ", false)
    }

    fn join(parts: Vec<Sql>, with: &str, empty: bool) -> Sql {
        match parts.len() {
            0 => Sql::constant(empty),
            1 => parts.into_iter().next().expect("one part"),
            _ => {
                let exact = parts.iter().all(|p| p.exact);
                let texts: Vec<String> = parts.into_iter().map(|p| p.text).collect();
                Sql {
                    text: format!("({})", texts.join(with)),
                    exact,
                }
            }
        }
    }
}

/// A test on one value the path reaches, given as an SQL expression of type `jsonb` that is
/// never `null`.
type Leaf<'a> = dyn Fn(&str) -> String + 'a;

/// A leaf test in jsonpath: `filter` a predicate over `@` (none: the path's presence alone),
/// `vars` the `jsonb` expression of its variables. `jsonb_path_exists` can run in a parallel
/// worker; a subquery over `jsonb_array_elements` cannot.
struct PathTest {
    filter: Option<String>,
    vars: Option<String>,
}

/// A key as a jsonpath string literal.
fn jsonpath_string(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    out.push('"');
    for c in key.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Compiler {
    params: Vec<String>,
    first_param: usize,
    aliases: usize,
}

impl Compiler {
    /// Binds a text parameter and returns its reference.
    fn param(&mut self, text: String) -> String {
        self.params.push(text);
        format!("${}", self.first_param + self.params.len() - 1)
    }

    /// Binds a JSON value and returns a `jsonb` expression for it.
    fn json(&mut self, value: &Value) -> String {
        let text = self.param(value.to_string());
        format!("{text}::jsonb")
    }

    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("q{}", self.aliases)
    }

    /// A jsonpath leaf test whose variables `$o0`, `$o1`, … are the operands.
    fn path_test(&mut self, filter: String, operands: &[&Value]) -> PathTest {
        let vars: serde_json::Map<String, Value> = operands
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("o{i}"), (*v).clone()))
            .collect();
        PathTest {
            filter: Some(filter),
            vars: Some(self.json(&Value::Object(vars))),
        }
    }

    /// `eq_item` against any of `operands` in jsonpath, when all are scalars other than `null`
    /// (a `null` operand also matches what is missing, which a path cannot say). Equality in
    /// jsonpath holds only between values of one type, numbers by value; the type test keeps
    /// `lax` mode from unwrapping a nested array.
    fn equal_to_any(&mut self, operands: &[Value]) -> Option<PathTest> {
        let scalar = |v: &Value| v.is_string() || v.is_number() || v.is_boolean();
        if operands.is_empty() || !operands.iter().all(|v| scalar(v) && safe(v)) {
            return None;
        }
        let equal: Vec<String> = (0..operands.len()).map(|i| format!("@ == $o{i}")).collect();
        let filter = format!("@.type() != \"array\" && ({})", equal.join(" || "));
        let operands: Vec<&Value> = operands.iter().collect();
        Some(self.path_test(filter, &operands))
    }

    /// A query over `doc`, which is known to be an object.
    fn query(&mut self, query: &Query, doc: &str) -> Sql {
        let parts = query
            .clauses
            .iter()
            .map(|clause| self.clause(clause, doc))
            .collect();
        Sql::all(parts)
    }

    fn clause(&mut self, clause: &Clause, doc: &str) -> Sql {
        match clause {
            Clause::Field { path, ops } => {
                let parts = ops
                    .iter()
                    .map(|op| self.op(op, doc, &path.segments, true))
                    .collect();
                Sql::all(parts)
            }
            Clause::And(queries) => {
                let parts = queries.iter().map(|q| self.query(q, doc)).collect();
                Sql::all(parts)
            }
            Clause::Or(queries) => {
                let parts = queries.iter().map(|q| self.query(q, doc)).collect();
                Sql::any(parts)
            }
            Clause::Nor(queries) => {
                let parts = queries.iter().map(|q| self.query(q, doc)).collect();
                Sql::any(parts).not()
            }
        }
    }

    /// One operator on the field at `segments` of `value` (`Op::matches`).
    fn op(&mut self, op: &Op, value: &str, segments: &[Segment], is_object: bool) -> Sql {
        if segments.len() > MAX_SEGMENTS || segments.iter().any(|s| s.key.contains('\0')) {
            return Sql::anything();
        }
        match op {
            Op::Eq(v) => self.eq(v, value, segments, is_object),
            Op::Ne(v) => self.eq(v, value, segments, is_object).not(),
            Op::Cmp(cmp, v) => self.comparison(*cmp, v, value, segments, is_object),
            Op::In(set) => self.in_set(&set.0, value, segments, is_object),
            Op::Nin(set) => self.in_set(&set.0, value, segments, is_object).not(),
            Op::Exists(wanted) => {
                let presence = PathTest {
                    filter: None,
                    vars: None,
                };
                let present = self.walk(
                    value,
                    segments,
                    is_object,
                    &|_| "true".into(),
                    false,
                    Some(&presence),
                );
                let present = Sql::exact(present);
                if *wanted {
                    present
                } else {
                    present.not()
                }
            }
            // The `regex` crate and PostgreSQL's regular expressions differ (classes, case
            // folding), so a regex is always left to the evaluator.
            Op::Regex(_) => Sql::anything(),
            Op::Not(ops) => {
                let parts = ops
                    .iter()
                    .map(|op| self.op(op, value, segments, is_object))
                    .collect();
                Sql::all(parts).not()
            }
            Op::All(values) => {
                if values.is_empty() {
                    return Sql::constant(false);
                }
                let parts = values
                    .iter()
                    .map(|v| self.eq(v, value, segments, is_object))
                    .collect();
                Sql::all(parts)
            }
            Op::Size(n) => {
                let Ok(n) = i32::try_from(*n) else {
                    return Sql::constant(false);
                };
                let leaf = move |x: &str| {
                    format!(
                        "(case when jsonb_typeof({x}) = 'array' then jsonb_array_length({x}) = {n} \
                         else false end)"
                    )
                };
                Sql::exact(self.walk(value, segments, is_object, &leaf, false, None))
            }
            Op::ElemMatch(elem_match) => {
                let element = self.alias();
                let element_value = format!("{element}.v");
                let inner = match elem_match.as_ref() {
                    ElemMatch::Query(query) => {
                        let inner = self.query(query, &element_value);
                        Sql {
                            text: format!(
                                "(case when jsonb_typeof({element_value}) = 'object' then {} \
                                 else false end)",
                                inner.text
                            ),
                            exact: inner.exact,
                        }
                    }
                    ElemMatch::Ops(ops) => {
                        let parts = ops
                            .iter()
                            .map(|op| self.op(op, &element_value, &[], false))
                            .collect();
                        Sql::all(parts)
                    }
                };
                let leaf = |x: &str| {
                    format!(
                        "(case when jsonb_typeof({x}) = 'array' then exists (select 1 from \
                         jsonb_array_elements({x}) as {element}(v) where {}) else false end)",
                        inner.text
                    )
                };
                Sql {
                    text: self.walk(value, segments, is_object, &leaf, false, None),
                    exact: inner.exact,
                }
            }
        }
    }

    /// `$eq` (`eq_item`): the value equals the operand, or is an array with an element that
    /// does; a missing field matches `null`.
    fn eq(&mut self, operand: &Value, value: &str, segments: &[Segment], is_object: bool) -> Sql {
        if !safe(operand) {
            return Sql::anything();
        }
        let leaf = self.eq_leaf(operand);
        let test = self.equal_to_any(std::slice::from_ref(operand));
        let missing = operand.is_null();
        Sql::exact(self.walk(value, segments, is_object, &*leaf, missing, test.as_ref()))
    }

    /// Leaves are `false` for SQL `null` (an absent key), as are the others below.
    fn eq_leaf(&mut self, operand: &Value) -> Box<Leaf<'static>> {
        let json = self.json(operand);
        if operand.is_array() || operand.is_object() {
            let element = self.alias();
            Box::new(move |x: &str| {
                format!(
                    "(coalesce({x} = {json}, false) or (case when jsonb_typeof({x}) = 'array' \
                     then exists (select 1 from jsonb_array_elements({x}) as {element}(v) where \
                     {element}.v = {json}) else false end))"
                )
            })
        } else {
            // For a scalar operand, containment is exactly "equals it, or is an array with a
            // top-level element equal to it"; numbers compare by value (1 = 1.0).
            Box::new(move |x: &str| format!("coalesce({x} @> {json}, false)"))
        }
    }

    /// `$in` (`in_item`): `$eq` against any operand. Strings go through `?|` in one test.
    fn in_set(
        &mut self,
        operands: &[Value],
        value: &str,
        segments: &[Segment],
        is_object: bool,
    ) -> Sql {
        if !operands.iter().all(safe) {
            return Sql::anything();
        }
        let (strings, others): (Vec<&Value>, Vec<&Value>) =
            operands.iter().partition(|v| v.is_string());
        if others.len() > MAX_NON_STRING_IN {
            return Sql::anything();
        }
        let mut tests: Vec<Box<Leaf<'static>>> = Vec::new();
        if !strings.is_empty() {
            let list = self.json(&Value::Array(strings.into_iter().cloned().collect()));
            // `?|` also looks at an object's keys, hence the type test.
            tests.push(Box::new(move |x: &str| {
                format!(
                    "(coalesce(jsonb_typeof({x}) in ('string', 'array'), false) and {x} ?| \
                     array(select jsonb_array_elements_text({list})))"
                )
            }));
        }
        for other in &others {
            tests.push(self.eq_leaf(other));
        }
        if tests.is_empty() {
            return Sql::constant(false);
        }
        let leaf = move |x: &str| {
            let parts: Vec<String> = tests.iter().map(|test| test(x)).collect();
            format!("({})", parts.join(" or "))
        };
        let missing = others.iter().any(|v| v.is_null());
        let test = self.equal_to_any(operands);
        Sql::exact(self.walk(value, segments, is_object, &leaf, missing, test.as_ref()))
    }

    /// `$gt`, `$gte`, `$lt`, `$lte` (`Comparison::holds`): only values of the operand's type
    /// compare, the value itself or any element of an array.
    fn comparison(
        &mut self,
        cmp: Comparison,
        operand: &Value,
        value: &str,
        segments: &[Segment],
        is_object: bool,
    ) -> Sql {
        let sign = match cmp {
            Comparison::Gt => ">",
            Comparison::Gte => ">=",
            Comparison::Lt => "<",
            Comparison::Lte => "<=",
        };
        let (kind, right, as_text) = match operand {
            // Null compares equal only with null (or missing): `$gte`/`$lte` are `$eq`.
            Value::Null => {
                return match cmp {
                    Comparison::Gte | Comparison::Lte => {
                        self.eq(operand, value, segments, is_object)
                    }
                    Comparison::Gt | Comparison::Lt => Sql::constant(false),
                };
            }
            Value::Number(_) if safe(operand) => ("number", self.json(operand), false),
            Value::Bool(_) => ("boolean", self.json(operand), false),
            // Strings compare by code point, which is byte order in UTF-8: collation "C".
            Value::String(s) if !s.contains('\0') => ("string", self.param(s.clone()), true),
            // Arrays and objects order differently in `jsonb` (by size first).
            _ => return Sql::anything(),
        };
        // The value's own test, once its type is known to be the operand's.
        let holds = move |x: &str| {
            if as_text {
                format!("({x} #>> '{{}}') collate \"C\" {sign} {right}")
            } else {
                format!("{x} {sign} {right}")
            }
        };
        // Numbers compare alike in jsonpath (as `numeric`); booleans and strings are left to
        // the subquery.
        let number_test = format!("@.type() == \"number\" && @ {sign} $o0");
        let test = (kind == "number").then(|| self.path_test(number_test.clone(), &[operand]));
        let any = match &test {
            Some(test) => {
                let path = self.param(format!("strict $[*] ? ({number_test})"));
                let vars = test.vars.clone().unwrap_or_default();
                Box::new(move |x: &str| format!("jsonb_path_exists({x}, {path}::jsonpath, {vars})"))
                    as Box<Leaf<'static>>
            }
            None => {
                let element = self.alias();
                let holds = holds.clone();
                Box::new(move |x: &str| {
                    let v = format!("{element}.v");
                    format!(
                        "exists (select 1 from jsonb_array_elements({x}) as {element}(v) where \
                         jsonb_typeof({v}) = '{kind}' and {})",
                        holds(&v)
                    )
                })
            }
        };
        // One `jsonb_typeof` of the value, then one comparison: the value is read twice.
        let leaf = |x: &str| {
            format!(
                "(case jsonb_typeof({x}) when '{kind}' then {} when 'array' then {} \
                 else false end)",
                holds(x),
                any(x)
            )
        };
        Sql::exact(self.walk(value, segments, is_object, &leaf, false, test.as_ref()))
    }

    /// `any_item`: whether `leaf` holds for some value the path reaches from `value`, where a
    /// dead end counts as `missing`. `is_object` says `value` is known to be an object. `test`
    /// is the leaf in jsonpath, when it has that form, for the arrays met on the way.
    fn walk(
        &mut self,
        value: &str,
        segments: &[Segment],
        is_object: bool,
        leaf: &Leaf<'_>,
        missing: bool,
        test: Option<&PathTest>,
    ) -> String {
        let Some((segment, rest)) = segments.split_first() else {
            return leaf(value);
        };
        let key = self.param(segment.key.clone());
        let inside = self.walk(
            &format!("({value} -> {key})"),
            rest,
            false,
            leaf,
            missing,
            test,
        );
        // An absent key reads as SQL `null`, which a deeper walk's `case` takes as "missing"
        // and every leaf as `false`: the key's presence is tested only at the last step, and
        // there only when "missing" is `true` or the leaf is presence itself.
        let in_object = if !rest.is_empty() {
            inside
        } else if missing {
            format!("(case when {value} ? {key} then {inside} else true end)")
        } else if inside == "true" {
            format!("({value} ? {key})")
        } else {
            inside
        };
        if is_object {
            return in_object;
        }
        let in_array = match segment.index.map(i32::try_from) {
            Some(Ok(i)) => {
                let at = format!("({value} -> {i})");
                let inside = self.walk(&at, rest, false, leaf, missing, test);
                format!(
                    "(case when jsonb_array_length({value}) > {i} then {inside} else {missing} end)"
                )
            }
            // An index no array can reach.
            Some(Err(_)) => missing.to_string(),
            // A `lax` path steps into the object elements of an array, one level, as the walk
            // does at every key (a numeric key would index instead, so none may be left).
            None if !missing && segments.iter().all(|s| s.index.is_none()) && test.is_some() => {
                let test = test.expect("a jsonpath test");
                let mut path = String::from("lax $");
                for segment in segments {
                    path.push('.');
                    path.push_str(&jsonpath_string(&segment.key));
                }
                if let Some(filter) = &test.filter {
                    path.push_str(&format!(" ? ({filter})"));
                }
                let path = self.param(path);
                match &test.vars {
                    Some(vars) => format!("jsonb_path_exists({value}, {path}::jsonpath, {vars})"),
                    None => format!("jsonb_path_exists({value}, {path}::jsonpath)"),
                }
            }
            None => {
                let element = self.alias();
                let at = format!("{element}.v");
                let through = self.walk(&at, segments, true, leaf, missing, test);
                let fan_out = format!(
                    "exists (select 1 from jsonb_array_elements({value}) as {element}(v) \
                     where jsonb_typeof({element}.v) = 'object' and {through})"
                );
                if missing {
                    // No object element at all: the path is missing.
                    let other = self.alias();
                    format!(
                        "({fan_out} or not exists (select 1 from jsonb_array_elements({value}) \
                         as {other}(v) where jsonb_typeof({other}.v) = 'object'))"
                    )
                } else {
                    fan_out
                }
            }
        };
        format!(
            "(case jsonb_typeof({value}) when 'object' then {in_object} when 'array' then \
             {in_array} else {missing} end)"
        )
    }
}

/// Whether PostgreSQL holds and compares the operand exactly as the evaluator does: no NUL
/// (refused by `text` and `jsonb`) and no number beyond 2^53.
fn safe(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) => true,
        Value::Number(n) => n.as_f64().is_some_and(|f| f.abs() < SAFE_MAGNITUDE),
        Value::String(s) => !s.contains('\0'),
        Value::Array(items) => items.iter().all(safe),
        Value::Object(fields) => fields.iter().all(|(k, v)| !k.contains('\0') && safe(v)),
    }
}
