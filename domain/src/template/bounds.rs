//! Size bounds of a template part, proven on its syntax tree before it is compiled: every value
//! it can build, all it holds at once and all it allocates in a render fit in fixed limits.
//!
//! MiniJinja has no hook on each operation, and its own caps (`*` on strings at 100 MB, `range` at
//! 100 000 items, none on `~`) bound neither intermediate values nor memory. So each expression is
//! given an upper bound of its *size* (its printed length, also inside a list, and the memory it
//! allocates) before anything runs, by abstract interpretation over `minijinja::machinery`'s
//! syntax tree (pinned to one MiniJinja release in `domain/Cargo.toml`). The source is not even
//! compiled first: MiniJinja evaluates constant expressions such as `'x' * 99999999` when it
//! compiles, and a tag thousands of operators long overflows its stack.
//!
//! - A bound is `fixed + Σ weight·|path|` ([`Size`]), where `|path|` is the printed size of a piece
//!   of the contact or campaign ([`data_bytes`]). Pieces under different keys are disjoint, so
//!   `contact.firstName ~ contact.lastName` counts the data once. Saving requires the limits to
//!   hold for data of `MAX_DATA_BYTES`; a render measures the pieces of its own contact
//!   ([`Bounded::fits`]), so larger imported contacts are checked, not assumed.
//! - `set` inside a loop body does not carry over to the next item (MiniJinja clears the loop
//!   frame's variables for each one), so variables cannot accumulate; only captured output
//!   (`{% set x %}…{% endset %}`, `{% filter %}`) and allocations do. A loop adds its body once per
//!   item: what depends on the item counts once for the whole list, the rest once per iteration
//!   (at most `FUEL_PER_PART`, as each iteration spends fuel). Each body is analysed once, so the
//!   analysis is linear in the template.
//! - `*` repeats text only by a number written in the template; `namespace()`, recursive loops,
//!   `*args` and the builtin filters without a rule here are refused. An unknown filter fails when
//!   it is called, so it bounds nothing at render; at save it is refused.
//!
//! Every value must stay under `MAX_VALUE_BYTES` of its own (beyond the data it copies),
//! everything held at once (variables, captures, loop lists, constants folded at compile, the
//! largest expression's temporaries) under `MAX_HELD_BYTES`, and all a render allocates under
//! `MAX_ALLOCATED_BYTES`.

use std::collections::BTreeMap;
use std::fmt;

use minijinja::machinery::ast::{
    self, BinOpKind, CallArg, CallType, Expr, Spanned, Stmt, UnaryOpKind,
};
use minijinja::machinery::{parse, tokenize, Span, Token, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;
use minijinja::Value as JinjaValue;
use serde_json::Value;

use super::{FUEL_PER_PART, MAX_ALLOCATED_BYTES, MAX_DATA_BYTES, MAX_HELD_BYTES, MAX_VALUE_BYTES};

/// What one more element of a list costs: `size_of::<minijinja::Value>()` (a test checks it).
const ELEMENT_BYTES: u64 = 24;
/// A new string's heap block beyond its bytes (the `Arc` counters).
const STRING_OVERHEAD: u64 = 16;
/// The longest printed number: an `f64` prints without an exponent, so
/// `-2.2250738585072014e-308` takes 327 characters.
const NUMBER_BYTES: u64 = 330;
/// An undefined value inside a list prints as `undefined`.
const UNDEFINED_REPR: u64 = 9;
/// `loop` printed: `<loop 1/3>`, with counters up to `u64::MAX`.
const LOOP_BYTES: u64 = 64;
/// HTML escaping writes at most six bytes for one (`&quot;`).
const ESCAPE_FACTOR: u64 = 6;
/// Printed inside a list, a string is quoted and escaped with at most six characters per byte
/// (`\u{1f}`).
const REPR_FACTOR: u64 = 6;
/// Upper, lower or title case takes at most three times the bytes (`ΐ` becomes `Ϊ́`).
const CASE_FACTOR: u64 = 3;
/// MiniJinja's own cap on `range()`; a larger range fails before allocating anything.
const RANGE_MAX: u64 = 100_000;
/// Loop iterations in one render: each takes at least one step of [`FUEL_PER_PART`].
const ITERATIONS_MAX: u64 = FUEL_PER_PART;

/// Why a part is refused, with the line it happens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    line: u16,
    message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (line {})", self.message, self.line)
    }
}

/// What the analysis proved about an accepted part: bounds of what a render holds at once and
/// of all it allocates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bounded {
    held: Size,
    allocated: Size,
}

impl Bounded {
    /// Whether a render for this data stays within [`MAX_HELD_BYTES`] and
    /// [`MAX_ALLOCATED_BYTES`]: the proven bounds with each piece of data the part copies
    /// measured instead of assumed.
    pub(super) fn fits(&self, contact: &Value, campaign: &Value, unsubscribe_url: &str) -> bool {
        if self.held.is_fixed() && self.allocated.is_fixed() {
            return true;
        }
        let url = Value::String(unsubscribe_url.to_string());
        let measure = |size: &Size| {
            size.data.iter().fold(size.fixed, |total, (path, weight)| {
                let root = match path.first() {
                    Some(Seg::Key(key)) if key == "contact" => Some(contact),
                    Some(Seg::Key(key)) if key == "campaign" => Some(campaign),
                    Some(Seg::Key(key)) if key == "unsubscribeUrl" => Some(&url),
                    _ => None,
                };
                let piece = root.map_or(0, |root| piece_bytes(root, &path[1..]));
                total.saturating_add(weight.saturating_mul(piece))
            })
        };
        measure(&self.held) <= MAX_HELD_BYTES && measure(&self.allocated) <= MAX_ALLOCATED_BYTES
    }
}

/// The printed size of the piece of `value` at `path`; for an element (`Item`), the largest.
fn piece_bytes(value: &Value, path: &[Seg]) -> u64 {
    let Some((seg, rest)) = path.split_first() else {
        return data_bytes(value);
    };
    match (seg, value) {
        (Seg::Key(key), Value::Object(map)) => map.get(key).map_or(0, |v| piece_bytes(v, rest)),
        (Seg::Item(_), Value::Array(items)) => items
            .iter()
            .map(|v| piece_bytes(v, rest))
            .max()
            .unwrap_or(0),
        // An entry: its key and its value.
        (Seg::Item(_), Value::Object(map)) => map
            .iter()
            .map(|(k, v)| repr_len(k) + 4 + piece_bytes(v, rest))
            .max()
            .unwrap_or(0),
        (Seg::Item(_), Value::String(s)) if rest.is_empty() => s
            .chars()
            .map(|c| repr_len(c.encode_utf8(&mut [0; 4])))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

/// Whether a filter MiniJinja does not have is refused (at save) or left to fail when it is
/// called (stored templates: a branch no contact reaches must keep rendering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unknown {
    Refuse,
    FailsAtRender,
}

/// Why a part could not be proven bounded.
#[derive(Debug)]
pub(super) enum Unproven {
    Syntax(minijinja::Error),
    Refused(Refusal),
}

/// Parses a part and proves its bounds. `escaping` is whether its output is HTML-escaped
/// (escaping grows text up to sixfold). Nothing is compiled or evaluated, so nothing large is
/// allocated, whatever the source.
pub(super) fn prove(
    source: &str,
    name: &'static str,
    escaping: bool,
    unknown: Unknown,
) -> Result<Bounded, Unproven> {
    check_tags(source).map_err(Unproven::Refused)?;
    let template = parse(source, name, syntax(), whitespace()).map_err(Unproven::Syntax)?;
    Analyzer::new(escaping, unknown)
        .template(&template)
        .map_err(Unproven::Refused)
}

/// MiniJinja's default delimiters (a unit struct unless its `custom_syntax` feature is on).
#[allow(clippy::default_constructed_unit_structs)]
fn syntax() -> SyntaxConfig {
    SyntaxConfig::default()
}

/// The whitespace rules of Herald's environment (text keeps its last line break).
fn whitespace() -> WhitespaceConfig {
    WhitespaceConfig {
        keep_trailing_newline: true,
        ..WhitespaceConfig::default()
    }
}

/// The most tokens one `{{ … }}` or `{% … %}` may hold. MiniJinja parses `a ~ b ~ c ~ …` into a
/// tree as deep as the chain is long, and compiling (even dropping) a tree some thousands deep
/// overflows the stack, which aborts the process. Real tags hold a few dozen tokens.
const MAX_TAG_TOKENS: usize = 300;

/// Refuses a tag with more than [`MAX_TAG_TOKENS`] tokens, before anything is parsed. A lexing
/// error ends the scan: the parser reports it.
fn check_tags(source: &str) -> Result<(), Refusal> {
    let mut in_tag = 0usize;
    for token in tokenize(source, false, syntax(), whitespace()) {
        let Ok((token, span)) = token else {
            return Ok(());
        };
        match token {
            Token::VariableStart | Token::BlockStart => in_tag = 0,
            Token::VariableEnd | Token::BlockEnd | Token::TemplateData(_) => {}
            _ => {
                in_tag += 1;
                if in_tag > MAX_TAG_TOKENS {
                    return Err(refuse(
                        span,
                        &format!("has a tag of more than {MAX_TAG_TOKENS} parts; split it into several tags"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The printed size of data as templates see it: strings quoted and escaped as MiniJinja prints
/// them inside a list, numbers as long as they print (an `f64` prints without an exponent),
/// separators included. Every piece a template can reach prints in at most its share of this,
/// and disjoint pieces add up to at most this.
pub(super) fn data_bytes(value: &Value) -> u64 {
    match value {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(number) => printed_number(number),
        Value::String(s) => repr_len(s),
        Value::Array(items) => items.iter().fold(2, |total, item| {
            total.saturating_add(data_bytes(item).saturating_add(2))
        }),
        Value::Object(map) => map.iter().fold(2, |total, (key, value)| {
            total
                .saturating_add(repr_len(key))
                .saturating_add(data_bytes(value))
                .saturating_add(4)
        }),
    }
}

/// The printed size of a string on its own and inside a list (quoted, escaped).
pub(super) fn repr_len(s: &str) -> u64 {
    printed(format_args!("{s:?}")).max(s.len() as u64)
}

fn printed_number(number: &serde_json::Number) -> u64 {
    match number.as_f64() {
        // Alone a float prints in full (and gains `.0`); inside a list, as `{:?}`.
        Some(f) if !number.is_i64() && !number.is_u64() => {
            (printed(format_args!("{f}")) + 2).max(printed(format_args!("{f:?}")))
        }
        _ => printed(format_args!("{number}")),
    }
}

/// How many bytes `args` print to, without printing them anywhere.
fn printed(args: fmt::Arguments<'_>) -> u64 {
    let mut counter = Counter(0);
    // Counting cannot fail.
    let _ = fmt::write(&mut counter, args);
    counter.0
}

/// A `fmt::Write` that only counts bytes.
struct Counter(u64);

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 = self.0.saturating_add(s.len() as u64);
        Ok(())
    }
}

/// One step of a path into the data. `Key` is the value at a key; `Item(0)` some element of the
/// parent (a list element, a character, or a map entry: key and value), `Item(n)` the item of
/// loop `n`. Distinct keys are disjoint; an element may overlap another element or a key, so
/// those add up.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Key(String),
    Item(u32),
}

type Path = Vec<Seg>;

/// The most pieces of data one bound tracks one by one.
const MAX_PATHS: usize = 64;

/// An upper bound: `fixed` bytes plus `weight · |path|` for each path into the data. Arithmetic
/// saturates; a saturated bound is refused like any other that is too large.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Size {
    fixed: u64,
    data: BTreeMap<Path, u64>,
}

impl Size {
    fn bytes(n: u64) -> Self {
        Size {
            fixed: n,
            data: BTreeMap::new(),
        }
    }

    fn of(path: Path) -> Self {
        Size {
            fixed: 0,
            data: BTreeMap::from([(path, 1)]),
        }
    }

    fn is_fixed(&self) -> bool {
        self.data.values().all(|w| *w == 0)
    }

    fn plus(mut self, other: &Size) -> Size {
        self.fixed = self.fixed.saturating_add(other.fixed);
        for (path, weight) in &other.data {
            let entry = self.data.entry(path.clone()).or_default();
            *entry = entry.saturating_add(*weight);
        }
        self.coarsened()
    }

    /// Past [`MAX_PATHS`] pieces, each root (`contact`, `campaign`) gets the weight of its
    /// heaviest chain: the same number of copies, without the detail that would make a long
    /// template's analysis quadratic.
    fn coarsened(self) -> Size {
        if self.data.len() <= MAX_PATHS {
            return self;
        }
        let mut roots: BTreeMap<Seg, Size> = BTreeMap::new();
        for (path, weight) in self.data {
            if let Some((root, rest)) = path.split_first() {
                let size = roots.entry(root.clone()).or_default();
                size.data.insert(rest.to_vec(), weight);
            }
        }
        Size {
            fixed: self.fixed,
            data: roots
                .into_iter()
                .map(|(root, size)| (vec![root], size.copies()))
                .collect(),
        }
    }

    fn plus_bytes(mut self, n: u64) -> Size {
        self.fixed = self.fixed.saturating_add(n);
        self
    }

    fn times(mut self, n: u64) -> Size {
        self.fixed = self.fixed.saturating_mul(n);
        for weight in self.data.values_mut() {
            *weight = weight.saturating_mul(n);
        }
        self
    }

    /// An upper bound of both.
    fn max(mut self, other: &Size) -> Size {
        self.fixed = self.fixed.max(other.fixed);
        for (path, weight) in &other.data {
            let entry = self.data.entry(path.clone()).or_default();
            *entry = (*entry).max(*weight);
        }
        self.coarsened()
    }

    /// `self · other`, when at least one side does not depend on data (otherwise the product of
    /// two data sizes is not a copy count).
    fn product(&self, other: &Size) -> Option<Size> {
        if self.is_fixed() {
            Some(other.clone().times(self.fixed))
        } else if other.is_fixed() {
            Some(self.clone().times(other.fixed))
        } else {
            None
        }
    }

    /// How many copies of the data this can hold: along each chain of nested pieces the weights
    /// add up; pieces under distinct keys are disjoint, elements may overlap anything.
    fn copies(&self) -> u64 {
        let mut root = Node::default();
        for (path, weight) in &self.data {
            let mut node = &mut root;
            for seg in path {
                node = node.children.entry(seg.clone()).or_default();
            }
            node.weight = node.weight.saturating_add(*weight);
        }
        root.chain()
    }

    /// The bound in bytes when the data prints in `data` bytes.
    fn worst(&self, data: u64) -> u64 {
        self.fixed
            .saturating_add(self.copies().saturating_mul(data))
    }

    /// Every path that starts with `from` starts with `to` instead.
    fn rebase(self, from: &[Seg], to: &[Seg]) -> Size {
        let data = self
            .data
            .into_iter()
            .map(|(path, weight)| match path.strip_prefix(from) {
                Some(rest) => ([to, rest].concat(), weight),
                None => (path, weight),
            })
            .fold(BTreeMap::new(), |mut data, (path, weight)| {
                let entry: &mut u64 = data.entry(path).or_default();
                *entry = entry.saturating_add(weight);
                data
            });
        Size {
            fixed: self.fixed,
            data,
        }
    }

    /// The total over `count` iterations of a loop over the elements of `base` whose item is
    /// `base + [item]`: what depends on the item adds up to the list once, the rest `count`
    /// times. A list of data has at most as many elements as it prints bytes, so a large fixed
    /// part per iteration is counted against the data instead (then a render measures it).
    fn over_iterations(self, base: Option<&Path>, item: &Seg, count: u64) -> Size {
        let Some(base) = base else {
            return self.times(count);
        };
        let prefix = [base.as_slice(), std::slice::from_ref(item)].concat();
        let (per_item, rest): (BTreeMap<_, _>, BTreeMap<_, _>) = self
            .data
            .into_iter()
            .partition(|(path, _)| path.starts_with(&prefix));
        let per_item = Size {
            fixed: 0,
            data: per_item
                .into_iter()
                .map(|(path, weight)| (path[prefix.len()..].to_vec(), weight))
                .collect(),
        };
        let per_iteration = self.fixed;
        let repeated = Size {
            fixed: 0,
            data: rest,
        }
        .times(count);
        let fixed = if per_iteration.saturating_mul(count) <= MAX_VALUE_BYTES / 4 {
            Size::bytes(per_iteration * count)
        } else {
            // One more than the elements: `split` makes one more piece than separators.
            Size::of(base.clone())
                .times(per_iteration)
                .plus_bytes(per_iteration)
        };
        repeated
            .plus(&fixed)
            .plus(&Size::of(base.clone()).times(per_item.copies()))
    }
}

#[derive(Default)]
struct Node {
    weight: u64,
    children: BTreeMap<Seg, Node>,
}

impl Node {
    fn chain(&self) -> u64 {
        let mut keys = 0u64;
        let mut items = 0u64;
        for (seg, child) in &self.children {
            match seg {
                Seg::Key(_) => keys = keys.max(child.chain()),
                Seg::Item(_) => items = items.saturating_add(child.chain()),
            }
        }
        self.weight.saturating_add(keys).saturating_add(items)
    }
}

/// What the analysis knows of a value.
#[derive(Clone, Debug, Default)]
struct Val {
    /// Bound of its printed length, and of how it prints inside a list unless `text`.
    bytes: Size,
    /// Bound of how many elements (or characters) iterating it yields.
    items: Size,
    /// It may be a string the template built: inside a list it prints up to
    /// `REPR_FACTOR · bytes + 2`.
    text: bool,
    kind: Kind,
    /// What its elements are, when known better than "a part of it".
    elems: Option<Box<Elems>>,
}

#[derive(Clone, Debug, Default)]
enum Kind {
    #[default]
    Plain,
    /// A number (or boolean); its value when the template wrote it.
    Number(Option<f64>),
    /// The data at `path` (`exact`), or some piece inside it.
    Data { path: Path, exact: bool },
    /// The `loop` of the n-th enclosing loop (index into `Analyzer::loops`).
    Loop(usize),
}

#[derive(Clone, Debug)]
struct Elems {
    /// The data whose elements these are (item paths use `Seg::Item(0)` under it).
    base: Option<Path>,
    item: Val,
}

impl Val {
    fn undefined() -> Val {
        Val::default()
    }

    fn number(known: Option<f64>) -> Val {
        Val {
            bytes: Size::bytes(NUMBER_BYTES),
            kind: Kind::Number(known),
            ..Val::default()
        }
    }

    fn small(bytes: u64) -> Val {
        Val {
            bytes: Size::bytes(bytes),
            ..Val::default()
        }
    }

    fn data(path: Path, exact: bool) -> Val {
        Val {
            bytes: Size::of(path.clone()),
            items: Size::of(path.clone()),
            kind: Kind::Data { path, exact },
            ..Val::default()
        }
    }

    /// A string of at most `bytes` the template builds.
    fn text(bytes: Size) -> Val {
        Val {
            items: bytes.clone(),
            bytes,
            text: true,
            ..Val::default()
        }
    }

    /// Some piece of `v`.
    fn part(v: &Val) -> Val {
        Val {
            bytes: v.bytes.clone(),
            items: v.bytes.clone(),
            text: v.text,
            ..Val::default()
        }
    }

    fn constant(value: &JinjaValue) -> Val {
        match value.kind() {
            ValueKind::Number => Val::number(f64::try_from(value.clone()).ok()),
            ValueKind::Bool => Val::number(Some(if value.is_true() { 1.0 } else { 0.0 })),
            ValueKind::String => {
                let s = value.as_str().unwrap_or_default();
                Val {
                    items: Size::bytes(s.chars().count() as u64),
                    ..Val::text(Size::bytes(s.len() as u64))
                }
            }
            _ => {
                Val::small(printed(format_args!("{value}")).max(printed(format_args!("{value:?}"))))
            }
        }
    }

    fn is_number(&self) -> bool {
        matches!(self.kind, Kind::Number(_))
    }

    fn known(&self) -> Option<f64> {
        match self.kind {
            Kind::Number(known) => known,
            _ => None,
        }
    }

    /// How it prints inside a list (where even nothing prints: `undefined`).
    fn repr(&self) -> Size {
        if self.text {
            self.bytes
                .clone()
                .times(REPR_FACTOR)
                .plus_bytes(2 + UNDEFINED_REPR)
        } else {
            self.bytes.clone().plus_bytes(UNDEFINED_REPR)
        }
    }

    /// How a list of its elements prints: each element quoted and separated.
    fn repr_of_elements(&self) -> Size {
        self.repr().plus(&self.items.clone().times(4)).plus_bytes(2)
    }

    /// Its elements when iterated by loop `id` (0 for "some element"), and the data they are the
    /// elements of.
    fn elements(&self, id: u32) -> (Option<Path>, Val) {
        if let Kind::Data { path, exact } = &self.kind {
            return if *exact {
                let item = [path.as_slice(), &[Seg::Item(id)]].concat();
                (Some(path.clone()), Val::data(item, true))
            } else {
                (None, Val::data(path.clone(), false))
            };
        }
        if let Some(elems) = &self.elems {
            return match &elems.base {
                Some(base) => {
                    let from = [base.as_slice(), &[Seg::Item(0)]].concat();
                    let to = [base.as_slice(), &[Seg::Item(id)]].concat();
                    (Some(base.clone()), elems.item.clone().rebase(&from, &to))
                }
                None => (None, elems.item.clone()),
            };
        }
        if self.is_number() {
            return (None, Val::undefined());
        }
        (None, Val::part(self))
    }

    /// A bound of its elements' printed sizes added up.
    fn elements_total(&self) -> Size {
        if let (Some(base), item) = self.elements(0) {
            let per_item = item.bytes.clone();
            let prefix = [base.as_slice(), &[Seg::Item(0)]].concat();
            let (own, rest): (BTreeMap<_, _>, BTreeMap<_, _>) = per_item
                .data
                .into_iter()
                .partition(|(path, _)| path.starts_with(&prefix));
            let rest = Size {
                fixed: per_item.fixed,
                data: rest,
            };
            if let Some(rest) = rest.product(&self.items) {
                let own = Size {
                    fixed: 0,
                    data: own,
                };
                // Each element once: together they are at most the data they come from.
                return own
                    .over_iterations(Some(&base), &Seg::Item(0), 1)
                    .plus(&rest);
            }
        }
        self.bytes.clone()
    }

    /// This value with the same elements as `of` (a list built from `of`'s elements).
    fn with_elements_of(mut self, of: &Val) -> Val {
        let (base, item) = of.elements(0);
        self.elems = Some(Box::new(Elems { base, item }));
        self
    }

    fn rebase(mut self, from: &[Seg], to: &[Seg]) -> Val {
        self.bytes = self.bytes.rebase(from, to);
        self.items = self.items.rebase(from, to);
        if let Kind::Data { path, .. } = &mut self.kind {
            if let Some(rest) = path.strip_prefix(from) {
                *path = [to, rest].concat();
            }
        }
        if let Some(elems) = self.elems.take() {
            let Elems { base, item } = *elems;
            let base = base.map(|b| match b.strip_prefix(from) {
                Some(rest) => [to, rest].concat(),
                None => b,
            });
            self.elems = Some(Box::new(Elems {
                base,
                item: item.rebase(from, to),
            }));
        }
        self
    }

    /// A bound of either value (`if`/`else`, `default`, `or`).
    fn join(&self, other: &Val) -> Val {
        let kind = match (&self.kind, &other.kind) {
            (Kind::Number(a), Kind::Number(b)) => Kind::Number(if a == b { *a } else { None }),
            (Kind::Data { path, exact }, Kind::Data { path: p, exact: e })
                if path == p && exact == e =>
            {
                return self.clone();
            }
            (Kind::Loop(a), Kind::Loop(b)) if a == b => self.kind.clone(),
            _ => Kind::Plain,
        };
        // A side without elements (undefined, `[]`) adds none to a loop over the other.
        let elems = if other.items.is_fixed() && other.items.fixed == 0 {
            self.known_elements()
        } else if self.items.is_fixed() && self.items.fixed == 0 {
            other.known_elements()
        } else {
            match (self.known_elements(), other.known_elements()) {
                (Some(a), Some(b)) if a.base == b.base => Some(Elems {
                    base: a.base,
                    item: a.item.join(&b.item),
                }),
                _ => None,
            }
        };
        Val {
            bytes: self.bytes.clone().max(&other.bytes),
            items: self.items.clone().max(&other.items),
            text: self.text || other.text,
            kind,
            elems: elems.map(Box::new),
        }
    }

    /// Its elements when known better than "a part of it" (the elements of data, or of a list
    /// built from them).
    fn known_elements(&self) -> Option<Elems> {
        match &self.kind {
            Kind::Data { path, exact: true } => Some(Elems {
                base: Some(path.clone()),
                item: Val::data([path.as_slice(), &[Seg::Item(0)]].concat(), true),
            }),
            _ => self.elems.as_deref().cloned(),
        }
    }
}

/// How many times `*` repeats the other side for a number the template wrote.
fn repeat_count(n: f64) -> u64 {
    if n.is_nan() || n <= 0.0 {
        0
    } else if n >= u64::MAX as f64 {
        u64::MAX
    } else {
        n.ceil() as u64
    }
}

/// The variables in scope, one frame per loop or `with` block, and an undo log per `if` branch
/// being analysed, so a branch's assignments can be joined with the other branch's without
/// copying every frame.
#[derive(Default)]
struct Scopes {
    frames: Vec<BTreeMap<String, Val>>,
    /// `(frame, name, value before)` of each assignment made in the open branches.
    logs: Vec<Vec<(usize, String, Option<Val>)>>,
}

/// What one branch changed: `(frame, name)` → (value before, value after).
type Changes = BTreeMap<(usize, String), (Option<Val>, Option<Val>)>;

impl Scopes {
    fn get(&self, name: &str) -> Option<&Val> {
        self.frames.iter().rev().find_map(|frame| frame.get(name))
    }

    fn set(&mut self, name: &str, value: Val) {
        let frame = self.frames.len().saturating_sub(1);
        self.set_in(frame, name, Some(value));
    }

    fn set_in(&mut self, frame: usize, name: &str, value: Option<Val>) {
        let Some(vars) = self.frames.get_mut(frame) else {
            return;
        };
        let before = match value {
            Some(value) => vars.insert(name.to_string(), value),
            None => vars.remove(name),
        };
        if let Some(log) = self.logs.last_mut() {
            log.push((frame, name.to_string(), before));
        }
    }

    fn begin_branch(&mut self) {
        self.logs.push(Vec::new());
    }

    /// Undoes the branch's assignments and returns them. Frames the branch opened are gone.
    fn end_branch(&mut self) -> Changes {
        let log = self.logs.pop().unwrap_or_default();
        let mut changes = Changes::new();
        for (frame, name, before) in log {
            if frame < self.frames.len() {
                changes.entry((frame, name)).or_insert((before, None));
            }
        }
        for ((frame, name), (before, after)) in changes.iter_mut() {
            let vars = &mut self.frames[*frame];
            *after = match before {
                Some(before) => vars.insert(name.clone(), before.clone()),
                None => vars.remove(name),
            };
        }
        changes
    }
}

struct LoopInfo {
    item: Val,
}

/// How deep the analysis recurses; the parser and [`check_tags`] keep real templates far below.
const MAX_DEPTH: usize = 400;

struct Analyzer {
    escaping: bool,
    unknown: Unknown,
    scopes: Scopes,
    loops: Vec<LoopInfo>,
    next_loop: u32,
    depth: usize,
    /// Output captured by the enclosing `{% set %}`/`{% filter %}` blocks, innermost last.
    captures: Vec<Size>,
    /// The captured value a block's filter applies to.
    block_input: Option<Val>,
    /// Allocations of the expression being analysed.
    temps: Size,
    /// The most held while any one expression was evaluated: what was held before it plus its
    /// temporaries.
    peak: Size,
    /// Variables, captures and loop lists that outlive one expression (all of them, as if none
    /// were ever released).
    sites: Size,
    /// Values MiniJinja folds at compile and keeps in the compiled template.
    consts: Size,
    /// The last statement that made the template hold data, for the message if it holds too much.
    data_span: Span,
    /// All a render allocates, per enclosing loop body (the whole part first).
    allocated: Vec<Size>,
    /// The last loop that allocated in each iteration, for the message if it allocates too much.
    loop_span: Span,
}

impl Analyzer {
    fn new(escaping: bool, unknown: Unknown) -> Self {
        Analyzer {
            escaping,
            unknown,
            scopes: Scopes {
                frames: vec![BTreeMap::new()],
                logs: Vec::new(),
            },
            loops: Vec::new(),
            next_loop: 1,
            depth: 0,
            captures: Vec::new(),
            block_input: None,
            temps: Size::default(),
            peak: Size::default(),
            sites: Size::default(),
            consts: Size::default(),
            data_span: Span::default(),
            allocated: vec![Size::default()],
            loop_span: Span::default(),
        }
    }

    /// The whole template: everything it holds at once must fit too.
    fn template(mut self, template: &Stmt<'_>) -> Result<Bounded, Refusal> {
        self.stmt(template)?;
        let held = self.held();
        if held.worst(MAX_DATA_BYTES) > MAX_HELD_BYTES {
            return Err(refuse(self.data_span, &too_much_held()));
        }
        let allocated = self.allocated.pop().unwrap_or_default();
        if allocated.worst(MAX_DATA_BYTES) > MAX_ALLOCATED_BYTES {
            return Err(refuse(self.loop_span, &too_much_allocated()));
        }
        Ok(Bounded { held, allocated })
    }

    fn held(&self) -> Size {
        self.peak.clone().max(&self.sites).plus(&self.consts)
    }

    fn escape_factor(&self) -> u64 {
        if self.escaping {
            ESCAPE_FACTOR
        } else {
            1
        }
    }

    fn stmts(&mut self, stmts: &[Stmt<'_>]) -> Result<(), Refusal> {
        stmts.iter().try_for_each(|stmt| self.stmt(stmt))
    }

    fn stmt(&mut self, stmt: &Stmt<'_>) -> Result<(), Refusal> {
        self.depth += 1;
        let result = if self.depth > MAX_DEPTH {
            Err(refuse(stmt_span(stmt), TOO_DEEP))
        } else {
            self.stmt_inner(stmt)
        };
        self.depth -= 1;
        result
    }

    // Statement variants behind MiniJinja features Herald does not enable are refused by the
    // last arm; it only matters if another crate turns them on.
    #[allow(unreachable_patterns)]
    fn stmt_inner(&mut self, stmt: &Stmt<'_>) -> Result<(), Refusal> {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitRaw(raw) => {
                self.emit(Size::bytes(raw.raw.len() as u64));
                Ok(())
            }
            Stmt::EmitExpr(emit) => self.emit_expr(&emit.expr),
            Stmt::Set(set) => self.set(set),
            Stmt::SetBlock(block) => self.set_block(block),
            Stmt::FilterBlock(block) => self.filter_block(block),
            Stmt::AutoEscape(block) => self.auto_escape(block),
            Stmt::IfCond(cond) => {
                self.root(&cond.expr)?;
                self.branches(&cond.true_body, &cond.false_body)
            }
            Stmt::WithBlock(with) => self.with_block(with),
            Stmt::ForLoop(for_loop) => self.for_loop(for_loop),
            Stmt::Do(call) => self.do_call(&call.call),
            other => Err(refuse(
                stmt_span(other),
                "uses a tag that Herald templates do not support",
            )),
        }
    }

    fn emit_expr(&mut self, expr: &Expr<'_>) -> Result<(), Refusal> {
        let value = self.root(expr)?;
        let printed = value.bytes.times(self.escape_factor());
        self.emit(printed);
        Ok(())
    }

    fn set(&mut self, set: &Spanned<ast::Set<'_>>) -> Result<(), Refusal> {
        let value = self.root(&set.expr)?;
        self.hold(set.span())?;
        self.assign(&set.target, value)
    }

    fn set_block(&mut self, block: &Spanned<ast::SetBlock<'_>>) -> Result<(), Refusal> {
        let mut value = self.captured(&block.body, block.span())?;
        if let Some(filter) = &block.filter {
            value = self.filtered(filter, value, block.span())?;
        }
        self.hold(block.span())?;
        self.assign(&block.target, value)
    }

    fn filter_block(&mut self, block: &Spanned<ast::FilterBlock<'_>>) -> Result<(), Refusal> {
        let value = self.captured(&block.body, block.span())?;
        let filtered = self.filtered(&block.filter, value, block.span())?;
        self.emit(filtered.bytes.times(self.escape_factor()));
        Ok(())
    }

    fn auto_escape(&mut self, block: &ast::AutoEscape<'_>) -> Result<(), Refusal> {
        self.root(&block.enabled)?;
        // Whatever the flag says, count the body as escaped: the bound stays an upper one.
        let outer = std::mem::replace(&mut self.escaping, true);
        let result = self.stmts(&block.body);
        self.escaping = outer;
        result
    }

    fn with_block(&mut self, with: &ast::WithBlock<'_>) -> Result<(), Refusal> {
        self.scopes.frames.push(BTreeMap::new());
        let result = with.assignments.iter().try_for_each(|(target, expr)| {
            let value = self.root(expr)?;
            self.hold(expr.span())?;
            self.assign(target, value)
        });
        let result = result.and_then(|()| self.stmts(&with.body));
        self.scopes.frames.pop();
        result
    }

    fn do_call(&mut self, call: &Spanned<ast::Call<'_>>) -> Result<(), Refusal> {
        self.temps = Size::default();
        let (value, alloc) = self.call(call)?;
        self.check(&value, &alloc, call.span())?;
        self.end_expression(call.span())
    }

    fn for_loop(&mut self, for_loop: &Spanned<ast::ForLoop<'_>>) -> Result<(), Refusal> {
        let (id, base, item, count) = self.loop_head(for_loop)?;
        let capturing = !self.captures.is_empty();
        self.allocated.push(Size::default());
        let body = self.loop_body(for_loop, item, capturing);
        self.repeat_allocations(base.as_ref(), id, count, for_loop.span())?;
        let per_iteration = body?;
        if capturing {
            let span = for_loop.span();
            let total = per_iteration.over_iterations(base.as_ref(), &Seg::Item(id), count);
            self.temps = Size::default();
            self.check(&Val::default(), &total, span)?;
            self.emit(total);
        }
        // `else` runs instead of the body, in the enclosing frame, so what it sets may remain.
        if for_loop.else_body.is_empty() {
            Ok(())
        } else {
            self.branches(&for_loop.else_body, &[])
        }
    }

    /// The loop's list, its id, the data its items are elements of, its item and how many times
    /// the body can run.
    fn loop_head(
        &mut self,
        for_loop: &Spanned<ast::ForLoop<'_>>,
    ) -> Result<(u32, Option<Path>, Val, u64), Refusal> {
        let span = for_loop.span();
        if for_loop.recursive {
            return Err(refuse(
                span,
                "uses a recursive loop, which Herald templates do not support",
            ));
        }
        let iterable = self.root(&for_loop.iter)?;
        // The list stays alive while the loop runs.
        self.hold(span)?;
        let id = self.next_loop;
        self.next_loop += 1;
        let (base, item) = iterable.elements(id);
        let count = if iterable.items.is_fixed() {
            iterable.items.fixed.min(ITERATIONS_MAX)
        } else {
            ITERATIONS_MAX
        };
        if let Some(filter) = &for_loop.filter_expr {
            // `for x in xs if cond` first collects the matching items into a list.
            self.scopes.frames.push(BTreeMap::new());
            self.allocated.push(Size::default());
            let bound = self.assign(&for_loop.target, item.clone());
            let cond = bound.and_then(|()| self.root(filter).map(drop));
            self.scopes.frames.pop();
            self.repeat_allocations(base.as_ref(), id, count, span)?;
            cond?;
            self.temps = Size::default();
            let list = iterable.items.clone().times(ELEMENT_BYTES);
            self.check(&Val::default(), &list, span)?;
            self.hold(span)?;
        }
        Ok((id, base, item, count))
    }

    /// What one iteration allocated (the top of `allocated`), added to the enclosing body for
    /// every iteration.
    fn repeat_allocations(
        &mut self,
        base: Option<&Path>,
        id: u32,
        count: u64,
        span: Span,
    ) -> Result<(), Refusal> {
        let per_iteration = self.allocated.pop().unwrap_or_default();
        if per_iteration == Size::default() {
            return Ok(());
        }
        self.loop_span = span;
        let total = per_iteration.over_iterations(base, &Seg::Item(id), count);
        let Some(allocated) = self.allocated.last_mut() else {
            return Ok(());
        };
        *allocated = std::mem::take(allocated).plus(&total);
        if allocated.fixed > MAX_ALLOCATED_BYTES {
            return Err(refuse(span, &too_much_allocated()));
        }
        Ok(())
    }

    /// Analyses the body once, for any item, and returns what one iteration captures.
    fn loop_body(
        &mut self,
        for_loop: &ast::ForLoop<'_>,
        item: Val,
        capturing: bool,
    ) -> Result<Size, Refusal> {
        // Each item starts with a fresh frame: what the body sets is gone at the next item.
        self.scopes.frames.push(BTreeMap::new());
        self.loops.push(LoopInfo { item: item.clone() });
        let loop_value = Val {
            bytes: Size::bytes(LOOP_BYTES),
            kind: Kind::Loop(self.loops.len() - 1),
            ..Val::default()
        };
        self.scopes.set("loop", loop_value);
        if capturing {
            self.captures.push(Size::default());
        }
        let body = self
            .assign(&for_loop.target, item)
            .and_then(|()| self.stmts(&for_loop.body));
        let per_iteration = if capturing {
            self.captures.pop().unwrap_or_default()
        } else {
            Size::default()
        };
        self.loops.pop();
        self.scopes.frames.pop();
        body.map(|()| per_iteration)
    }

    /// Two branches of which one runs: each variable and the captured output are bounded by the
    /// larger of the two.
    fn branches(&mut self, yes: &[Stmt<'_>], no: &[Stmt<'_>]) -> Result<(), Refusal> {
        let before_capture = self.captures.last_mut().map(std::mem::take);
        self.scopes.begin_branch();
        let yes_result = self.stmts(yes);
        let yes_changes = self.scopes.end_branch();
        yes_result?;
        let yes_capture = self.captures.last_mut().map(std::mem::take);
        self.scopes.begin_branch();
        let no_result = self.stmts(no);
        let no_changes = self.scopes.end_branch();
        no_result?;
        self.join_branches(yes_changes, no_changes, before_capture, yes_capture);
        Ok(())
    }

    fn join_branches(
        &mut self,
        yes_changes: Changes,
        no_changes: Changes,
        before_capture: Option<Size>,
        yes_capture: Option<Size>,
    ) {
        // Per variable either branch set: its value after each branch (unchanged = before).
        let mut outcomes = BTreeMap::new();
        for (key, (before, yes)) in yes_changes {
            outcomes.insert(key, (yes, before));
        }
        for (key, (before, no)) in no_changes {
            outcomes.entry(key).or_insert((before, None)).1 = no;
        }
        for ((frame, name), (yes, no)) in outcomes {
            self.scopes
                .set_in(frame, &name, join_optional(yes.as_ref(), no.as_ref()));
        }
        if let (Some(before), Some(yes), Some(no)) =
            (before_capture, yes_capture, self.captures.last_mut())
        {
            *no = before.plus(&yes.max(no));
        }
    }

    /// The text `body` captures, checked and held while it is alive.
    fn captured(&mut self, body: &[Stmt<'_>], span: Span) -> Result<Val, Refusal> {
        let captured = self.capture(body)?;
        let value = Val::text(captured.clone());
        self.temps = Size::default();
        self.check(&value, &captured, span)?;
        self.end_expression(span)?;
        Ok(value)
    }

    /// A block's filter applied to its captured text (which is alive meanwhile).
    fn filtered(&mut self, filter: &Expr<'_>, input: Val, span: Span) -> Result<Val, Refusal> {
        self.hold(span)?;
        self.block_input = Some(input);
        let value = self.root(filter);
        self.block_input = None;
        value
    }

    /// Analyses `body` with its output captured, and returns the captured size. Whatever the
    /// body holds, the text captured so far is alive beside it.
    fn capture(&mut self, body: &[Stmt<'_>]) -> Result<Size, Refusal> {
        let outer_peak = std::mem::take(&mut self.peak);
        self.captures.push(Size::default());
        let result = self.stmts(body);
        let captured = self.captures.pop().unwrap_or_default();
        let inner_peak = std::mem::replace(&mut self.peak, outer_peak);
        self.peak = std::mem::take(&mut self.peak).max(&inner_peak.plus(&captured));
        result.map(|()| captured)
    }

    fn emit(&mut self, printed: Size) {
        if let Some(capture) = self.captures.last_mut() {
            *capture = std::mem::take(capture).plus(&printed);
        }
    }

    fn assign(&mut self, target: &Expr<'_>, value: Val) -> Result<(), Refusal> {
        match target {
            Expr::Var(var) => {
                self.scopes.set(var.id, value);
                Ok(())
            }
            Expr::List(list) => {
                let (_, item) = value.elements(0);
                list.items
                    .iter()
                    .try_for_each(|target| self.assign(target, item.clone()))
            }
            other => Err(refuse(
                other.span(),
                "assigns to an attribute (namespace), which Herald templates do not support",
            )),
        }
    }

    fn lookup(&self, name: &str) -> Option<&Val> {
        self.scopes.get(name)
    }

    /// Analyses an expression evaluated on its own (a statement's), counting its temporaries.
    fn root(&mut self, expr: &Expr<'_>) -> Result<Val, Refusal> {
        self.temps = Size::default();
        let value = self.expr(expr)?;
        self.end_expression(expr.span())?;
        Ok(value)
    }

    fn end_expression(&mut self, span: Span) -> Result<(), Refusal> {
        let now = self.sites.clone().plus(&self.temps);
        self.peak = std::mem::take(&mut self.peak).max(&now);
        self.hold_check(span)
    }

    /// The last expression's temporaries stay alive (in a variable, a capture or a loop).
    fn hold(&mut self, span: Span) -> Result<(), Refusal> {
        self.sites = std::mem::take(&mut self.sites).plus(&self.temps);
        self.hold_check(span)
    }

    /// Checks the fixed part of what is held as it grows (cheap, and it names the line); the
    /// part that depends on data is checked once at the end.
    fn hold_check(&mut self, span: Span) -> Result<(), Refusal> {
        if !self.temps.is_fixed() {
            self.data_span = span;
        }
        let fixed = self
            .peak
            .fixed
            .max(self.sites.fixed)
            .saturating_add(self.consts.fixed);
        if fixed > MAX_HELD_BYTES {
            return Err(refuse(span, &too_much_held()));
        }
        Ok(())
    }

    /// Checks one value and what building it allocates, and counts the allocation.
    fn check(&mut self, value: &Val, alloc: &Size, span: Span) -> Result<(), Refusal> {
        self.check_size(value, alloc, span)?;
        self.temps = std::mem::take(&mut self.temps).plus(alloc);
        if let Some(allocated) = self.allocated.last_mut() {
            *allocated = std::mem::take(allocated).plus(alloc);
        }
        Ok(())
    }

    fn check_size(&self, value: &Val, alloc: &Size, span: Span) -> Result<(), Refusal> {
        let size = value.bytes.clone().max(alloc);
        if size.fixed > MAX_VALUE_BYTES {
            return Err(refuse(
                span,
                &format!(
                    "can build a value of more than {MAX_VALUE_BYTES} bytes; repeat less text or loop fewer times"
                ),
            ));
        }
        if size.worst(MAX_DATA_BYTES) > MAX_HELD_BYTES {
            return Err(refuse(span, &too_much_data()));
        }
        Ok(())
    }

    fn expr(&mut self, expr: &Expr<'_>) -> Result<Val, Refusal> {
        let span = expr.span();
        self.depth += 1;
        let result = if self.depth > MAX_DEPTH {
            Err(refuse(span, TOO_DEEP))
        } else {
            self.expr_inner(expr)
        };
        self.depth -= 1;
        let (value, alloc) = result?;
        if folds_at_compile(expr) {
            // MiniJinja evaluates constant expressions when it compiles and keeps the result in
            // the compiled template; a render only refers to it.
            self.check_size(&value, &alloc, span)?;
            let folded = value.bytes.clone().max(&alloc);
            self.consts = std::mem::take(&mut self.consts).plus(&folded);
        } else {
            self.check(&value, &alloc, span)?;
        }
        Ok(value)
    }

    /// A value and what evaluating this node allocates (its operands count for themselves).
    /// Each kind of node has its own function so that deep expressions keep small stack frames.
    fn expr_inner(&mut self, expr: &Expr<'_>) -> Result<(Val, Size), Refusal> {
        match expr {
            Expr::Const(c) => Ok((Val::constant(&c.value), Size::default())),
            Expr::Var(var) => self.var(var.id, var.span()),
            Expr::GetAttr(attr) => self.get_attr(attr),
            Expr::GetItem(item) => self.get_item(item),
            Expr::Slice(slice) => self.slice(slice),
            Expr::UnaryOp(op) => self.unary(op),
            Expr::BinOp(op) => self.binary(op),
            Expr::Compare(compare) => self.compare(compare),
            Expr::IfExpr(if_expr) => self.if_expr(if_expr),
            Expr::Filter(filter) => self.filter_expr(filter),
            Expr::Test(test) => self.test(test),
            Expr::Call(call) => self.call(call),
            Expr::List(list) => self.list(list),
            Expr::Map(map) => self.map(map),
        }
    }

    fn get_attr(&mut self, attr: &ast::GetAttr<'_>) -> Result<(Val, Size), Refusal> {
        let base = self.expr(&attr.expr)?;
        Ok((self.attribute(&base, attr.name), Size::default()))
    }

    fn get_item(&mut self, item: &ast::GetItem<'_>) -> Result<(Val, Size), Refusal> {
        let base = self.expr(&item.expr)?;
        self.expr(&item.subscript_expr)?;
        let value = match (literal_str(&item.subscript_expr), &base.kind) {
            (Some(key), _) => self.attribute(&base, &key),
            (None, Kind::Data { path, .. }) => Val::data(path.clone(), false),
            // An element of a list, or a value of a map.
            (None, _) => base.elements(0).1.join(&Val::part(&base)),
        };
        Ok((value, Size::default()))
    }

    fn known_or_none(&mut self, expr: Option<&Expr<'_>>) -> Result<Option<f64>, Refusal> {
        match expr {
            Some(expr) => Ok(self.expr(expr)?.known()),
            None => Ok(None),
        }
    }

    fn slice(&mut self, slice: &ast::Slice<'_>) -> Result<(Val, Size), Refusal> {
        let base = self.expr(&slice.expr)?;
        let start = self.known_or_none(slice.start.as_ref())?;
        let stop = self.known_or_none(slice.stop.as_ref())?;
        self.known_or_none(slice.step.as_ref())?;
        let known_len = match (slice.start.is_some(), start, slice.stop.is_some(), stop) {
            (true, Some(a), true, Some(b)) if (a >= 0.0) == (b >= 0.0) => Some(repeat_count(b - a)),
            (false, _, true, Some(b)) if b >= 0.0 => Some(repeat_count(b)),
            (true, Some(a), false, _) if a < 0.0 => Some(repeat_count(-a)),
            _ => None,
        };
        // A slice of nothing is an empty list, `[]`.
        let mut value = Val {
            bytes: base.bytes.clone().plus_bytes(2),
            items: base.items.clone(),
            text: base.text,
            ..Val::default()
        }
        .with_elements_of(&base);
        let alloc = match known_len {
            Some(n) => {
                value.items = Size::bytes(n);
                // `n` characters of at most four bytes, or `n` elements.
                Size::bytes(n.saturating_mul(ELEMENT_BYTES + 4))
            }
            None => base
                .bytes
                .clone()
                .plus(&base.items.clone().times(ELEMENT_BYTES)),
        };
        Ok((value, alloc))
    }

    fn unary(&mut self, op: &ast::UnaryOp<'_>) -> Result<(Val, Size), Refusal> {
        let operand = self.expr(&op.expr)?;
        let value = match op.op {
            UnaryOpKind::Not => Val::number(None),
            UnaryOpKind::Neg => Val::number(operand.known().map(|n| -n)),
        };
        Ok((value, Size::default()))
    }

    fn binary(&mut self, op: &Spanned<ast::BinOp<'_>>) -> Result<(Val, Size), Refusal> {
        let left = self.expr(&op.left)?;
        let right = self.expr(&op.right)?;
        self.binop(op.op, &left, &right, op.span())
    }

    fn compare(&mut self, compare: &ast::Compare<'_>) -> Result<(Val, Size), Refusal> {
        self.expr(&compare.expr)?;
        for op in &compare.ops {
            self.expr(&op.expr)?;
        }
        Ok((Val::number(None), Size::default()))
    }

    fn if_expr(&mut self, if_expr: &ast::IfExpr<'_>) -> Result<(Val, Size), Refusal> {
        self.expr(&if_expr.test_expr)?;
        let yes = self.expr(&if_expr.true_expr)?;
        let no = match &if_expr.false_expr {
            Some(no) => self.expr(no)?,
            None => Val::undefined(),
        };
        Ok((yes.join(&no), Size::default()))
    }

    fn filter_expr(&mut self, filter: &Spanned<ast::Filter<'_>>) -> Result<(Val, Size), Refusal> {
        let input = match &filter.expr {
            Some(input) => self.expr(input)?,
            None => self.block_input.clone().unwrap_or_default(),
        };
        let args = self.args(&filter.args)?;
        self.filter(filter.name, &input, &args, filter.span())
    }

    fn test(&mut self, test: &ast::Test<'_>) -> Result<(Val, Size), Refusal> {
        self.expr(&test.expr)?;
        self.args(&test.args)?;
        Ok((Val::number(None), Size::default()))
    }

    fn list(&mut self, list: &ast::List<'_>) -> Result<(Val, Size), Refusal> {
        let mut bytes = Size::bytes(2);
        let mut item = Val::undefined();
        for element in &list.items {
            let value = self.expr(element)?;
            bytes = bytes.plus(&value.repr()).plus_bytes(2);
            item = item.join(&value);
        }
        let n = list.items.len() as u64;
        let value = Val {
            bytes,
            items: Size::bytes(n),
            elems: Some(Box::new(Elems { base: None, item })),
            ..Val::default()
        };
        Ok((value, Size::bytes(n * ELEMENT_BYTES + STRING_OVERHEAD)))
    }

    fn map(&mut self, map: &ast::Map<'_>) -> Result<(Val, Size), Refusal> {
        let mut bytes = Size::bytes(2);
        let mut key_bound = Val::undefined();
        for (key, value) in map.keys.iter().zip(&map.values) {
            let key = self.expr(key)?;
            let value = self.expr(value)?;
            bytes = bytes.plus(&key.repr()).plus(&value.repr()).plus_bytes(4);
            key_bound = key_bound.join(&key);
        }
        let n = map.keys.len() as u64;
        let value = Val {
            bytes,
            items: Size::bytes(n),
            elems: Some(Box::new(Elems {
                base: None,
                item: key_bound,
            })),
            ..Val::default()
        };
        Ok((value, Size::bytes(n * 2 * ELEMENT_BYTES + STRING_OVERHEAD)))
    }

    fn var(&self, name: &str, span: Span) -> Result<(Val, Size), Refusal> {
        let value = if let Some(value) = self.lookup(name) {
            value.clone()
        } else {
            match name {
                "contact" | "campaign" | "unsubscribeUrl" => {
                    Val::data(vec![Seg::Key(name.to_string())], true)
                }
                "range" | "dict" | "namespace" => {
                    return Err(refuse(
                        span,
                        &format!(
                            "uses {name} without calling it; call it directly, e.g. {name}(…)"
                        ),
                    ))
                }
                _ => Val::undefined(),
            }
        };
        Ok((value, Size::default()))
    }

    fn attribute(&self, base: &Val, name: &str) -> Val {
        match &base.kind {
            Kind::Data { path, exact: true } => {
                let mut path = path.clone();
                path.push(Seg::Key(name.to_string()));
                Val::data(path, true)
            }
            Kind::Data { path, exact: false } => Val::data(path.clone(), false),
            Kind::Loop(i) => match name {
                "index" | "index0" | "revindex" | "revindex0" | "length" | "depth" | "depth0"
                | "first" | "last" => Val::number(None),
                "previtem" | "nextitem" => self
                    .loops
                    .get(*i)
                    .map(|l| l.item.clone())
                    .unwrap_or_default(),
                _ => Val::small(LOOP_BYTES),
            },
            Kind::Number(_) => Val::undefined(),
            Kind::Plain => Val::part(base),
        }
    }

    fn binop(
        &mut self,
        op: BinOpKind,
        left: &Val,
        right: &Val,
        span: Span,
    ) -> Result<(Val, Size), Refusal> {
        let none = Size::default();
        let numeric = |f: fn(f64, f64) -> f64| {
            let known = match (left.known(), right.known()) {
                (Some(a), Some(b)) => Some(f(a, b)),
                _ => None,
            };
            Val::number(known)
        };
        Ok(match op {
            BinOpKind::Eq
            | BinOpKind::Ne
            | BinOpKind::Lt
            | BinOpKind::Lte
            | BinOpKind::Gt
            | BinOpKind::Gte
            | BinOpKind::In => (Val::number(None), none),
            BinOpKind::ScAnd | BinOpKind::ScOr => (left.join(right), none),
            BinOpKind::Sub => (numeric(|a, b| a - b), none),
            BinOpKind::Div => (numeric(|a, b| a / b), none),
            BinOpKind::FloorDiv => (numeric(|a, b| (a / b).floor()), none),
            BinOpKind::Rem => (numeric(|a, b| a % b), none),
            BinOpKind::Pow => (numeric(f64::powf), none),
            // `~` prints both sides into a new string.
            BinOpKind::Concat => {
                let bytes = left.bytes.clone().plus(&right.bytes);
                let alloc = bytes.clone().plus_bytes(STRING_OVERHEAD);
                (Val::text(bytes), alloc)
            }
            // A number only adds to a number; otherwise strings or lists are joined.
            BinOpKind::Add if left.is_number() || right.is_number() => {
                (numeric(|a, b| a + b), none)
            }
            BinOpKind::Add => {
                let bytes = left.bytes.clone().plus(&right.bytes);
                let value = Val {
                    items: left.items.clone().plus(&right.items),
                    text: left.text || right.text,
                    ..Val::text(bytes.clone())
                };
                (value, bytes.plus_bytes(STRING_OVERHEAD))
            }
            BinOpKind::Mul => {
                if left.is_number() && right.is_number() {
                    return Ok((numeric(|a, b| a * b), none));
                }
                let (count, repeated) = match (left.known(), right.known()) {
                    (Some(n), _) => (n, right),
                    (_, Some(n)) => (n, left),
                    _ if left.is_number() || right.is_number() => {
                        return Err(refuse(
                            span,
                            "repeats text a number of times that is not written in the template; only a written number can repeat text, e.g. '-' * 20",
                        ))
                    }
                    _ => {
                        return Err(refuse(
                            span,
                            "multiplies values that may be text; convert numbers from data with |int or |float first",
                        ))
                    }
                };
                let n = repeat_count(count);
                // Repeated, an element comes back `n` times: no longer once per element of data.
                let (_, item) = repeated.elements(0);
                let value = Val {
                    bytes: repeated.bytes.clone().times(n),
                    items: repeated.items.clone().times(n),
                    text: repeated.text,
                    elems: Some(Box::new(Elems { base: None, item })),
                    ..Val::default()
                };
                let alloc = value.bytes.clone().plus_bytes(STRING_OVERHEAD);
                (value, alloc)
            }
        })
    }

    fn args<'a>(&mut self, args: &[CallArg<'a>]) -> Result<Args<'a>, Refusal> {
        let mut positional = Vec::new();
        let mut named = BTreeMap::new();
        for arg in args {
            match arg {
                CallArg::Pos(e) => positional.push((self.expr(e)?, literal_str(e))),
                CallArg::Kwarg(name, e) => {
                    named.insert(*name, (self.expr(e)?, literal_str(e)));
                }
                CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
                    return Err(refuse(
                        e.span(),
                        "passes *args or **kwargs, which Herald templates do not support",
                    ))
                }
            }
        }
        Ok(Args { positional, named })
    }

    fn call(&mut self, call: &Spanned<ast::Call<'_>>) -> Result<(Val, Size), Refusal> {
        let span = call.span();
        // Only globals, `loop.cycle` and `loop.changed` can be called: data is never callable and
        // the template cannot store a function (`range` without a call is refused), so any
        // other call fails at render without producing a value.
        #[allow(unreachable_patterns)]
        let (function, receiver) = match call.identify_call() {
            CallType::Function(name) if self.lookup(name).is_none() => (Some(name), None),
            CallType::Function(_) => (None, None),
            CallType::Method(receiver, name) => (Some(name), Some(self.expr(receiver)?)),
            CallType::Object(callee) => {
                self.expr(callee)?;
                (None, None)
            }
            _ => {
                return Err(refuse(
                    span,
                    "calls something Herald templates do not support",
                ))
            }
        };
        let args = self.args(&call.args)?;
        match (function, receiver) {
            (Some(name), None) => global_call(name, &args, span),
            (Some(name), Some(receiver)) => {
                Ok((method_call(&receiver, name, &args), Size::default()))
            }
            (None, _) => Ok((Val::undefined(), Size::default())),
        }
    }

    /// The value of filter `name` applied to `input`, and what it allocates.
    fn filter(
        &self,
        name: &str,
        input: &Val,
        args: &Args<'_>,
        span: Span,
    ) -> Result<(Val, Size), Refusal> {
        let esc = self.escape_factor();
        let new_string = |bytes: Size| {
            let alloc = bytes.clone().plus_bytes(STRING_OVERHEAD);
            (Val::text(bytes), alloc)
        };
        let new_list = |value: Val, per_element: u64| {
            let alloc = input
                .items
                .clone()
                .times(per_element)
                .plus_bytes(STRING_OVERHEAD);
            (value, alloc)
        };
        let product = |a: &Size, b: &Size| {
            a.product(b).ok_or_else(|| {
                refuse(
                    span,
                    &format!("uses {name} with an argument from data on data, which can grow without limit; write the argument in the template"),
                )
            })
        };
        Ok(match name {
            "length" | "count" | "int" | "float" | "round" | "abs" | "sum" | "bool" => {
                (Val::number(None), Size::default())
            }
            "string" | "safe" | "trim" => new_string(input.bytes.clone()),
            "escape" | "e" => new_string(input.bytes.clone().times(ESCAPE_FACTOR)),
            "upper" | "lower" | "title" | "capitalize" => {
                new_string(input.bytes.clone().times(CASE_FACTOR))
            }
            "default" | "d" => {
                let other = args
                    .positional
                    .first()
                    .map(|(v, _)| v.clone())
                    .unwrap_or_default();
                (input.join(&other), Size::default())
            }
            "first" | "last" | "min" | "max" => {
                let (_, item) = input.elements(0);
                // `last` may collect an iterable that cannot run backwards.
                let alloc = match (&input.kind, name) {
                    (Kind::Data { .. }, _) | (_, "first" | "min" | "max") => Size::default(),
                    _ => input.items.clone().times(ELEMENT_BYTES),
                };
                (item, alloc)
            }
            "attr" => {
                let value = match args.positional.first() {
                    Some((_, Some(key))) => self.attribute(input, key),
                    _ => match &input.kind {
                        Kind::Data { path, .. } => Val::data(path.clone(), false),
                        _ => Val::part(input),
                    },
                };
                (value, Size::default())
            }
            "list" | "sort" | "unique" | "reverse" | "select" | "reject" | "selectattr"
            | "rejectattr" => {
                let value = Val {
                    bytes: input.repr_of_elements(),
                    items: input.items.clone(),
                    text: input.text,
                    ..Val::default()
                }
                .with_elements_of(input);
                // `unique` also keeps a lowercased copy of what it has seen.
                let extra = if name == "unique" || name == "reverse" {
                    input.bytes.clone()
                } else {
                    Size::default()
                };
                let (value, alloc) = new_list(value, ELEMENT_BYTES);
                (value, alloc.plus(&extra))
            }
            "items" | "dictsort" => {
                // A pair is a map entry, bracketed: `["key", value]`.
                let (base, entry) = input.elements(0);
                let pair = Val {
                    bytes: entry.repr().plus_bytes(8),
                    items: Size::bytes(2),
                    ..Val::default()
                };
                let value = Val {
                    bytes: input.repr_of_elements().plus(&input.items.clone().times(8)),
                    items: input.items.clone(),
                    elems: Some(Box::new(Elems { base, item: pair })),
                    ..Val::default()
                };
                if name == "items" {
                    // Lazy: each pair is built as the loop reaches it.
                    (value, Size::default())
                } else {
                    new_list(value, 5 * ELEMENT_BYTES)
                }
            }
            "split" | "lines" => {
                let pieces = input.bytes.clone().plus_bytes(1);
                let (base, _) = input.elements(0);
                let item = match &base {
                    Some(base) => {
                        let path = [base.as_slice(), &[Seg::Item(0)]].concat();
                        Val {
                            text: true,
                            ..Val::data(path, false)
                        }
                    }
                    None => Val::part(input),
                };
                let value = Val {
                    bytes: input.repr().plus(&pieces.clone().times(4)).plus_bytes(2),
                    items: pieces.clone(),
                    elems: Some(Box::new(Elems { base, item })),
                    ..Val::default()
                };
                // Each piece is a new string (a block header at most per piece) in a new list.
                let alloc = input
                    .bytes
                    .clone()
                    .times(2)
                    .plus(&pieces.times(ELEMENT_BYTES));
                (value, alloc)
            }
            "join" => {
                let separator = args
                    .positional
                    .first()
                    .map(|(v, _)| v.bytes.clone())
                    .unwrap_or_default()
                    .times(esc);
                let separators = product(&input.items, &separator)?;
                let bytes = input.elements_total().times(esc).plus(&separators);
                let (value, alloc) = new_string(bytes);
                // Escaping joins collect the items first.
                let collected = if esc > 1 {
                    input.items.clone().times(ELEMENT_BYTES)
                } else {
                    Size::default()
                };
                (value, alloc.plus(&collected))
            }
            "replace" => {
                let text = input.bytes.clone().times(esc);
                let from_len = match args.positional.first() {
                    Some((_, Some(from))) => from.len() as u64,
                    _ => 0,
                };
                let with = args
                    .positional
                    .get(1)
                    .map(|(v, _)| v.bytes.clone())
                    .unwrap_or_default()
                    .times(esc);
                let occurrences = Size {
                    fixed: text.fixed / from_len.max(1) + 1,
                    data: text
                        .data
                        .iter()
                        .map(|(p, w)| (p.clone(), w.div_ceil(from_len.max(1))))
                        .collect(),
                };
                let added = product(&occurrences, &with)?;
                new_string(text.plus(&added))
            }
            "indent" => {
                let width = match args.positional.first().or(args.named.get("width")) {
                    None => Some(4.0),
                    Some((v, _)) => v.known(),
                };
                let Some(width) = width else {
                    return Err(refuse(
                        span,
                        "uses indent with a width that is not written in the template",
                    ));
                };
                let lines = input.bytes.clone().plus_bytes(1);
                new_string(input.bytes.clone().plus(&lines.times(repeat_count(width))))
            }
            "map" => self.map_filter(input, args, span)?,
            "batch" | "slice" | "groupby" | "chain" | "zip" | "pprint" | "format" | "tojson"
            | "urlencode" => {
                return Err(refuse(
                    span,
                    &format!("uses the filter {name}, which Herald templates do not support"),
                ))
            }
            _ => match self.unknown {
                Unknown::Refuse => return Err(refuse(span, &format!("filter {name} is unknown"))),
                Unknown::FailsAtRender => (Val::undefined(), Size::default()),
            },
        })
    }

    /// `map(attribute=…)` or `map('filter')` for filters that grow each element by a factor.
    fn map_filter(&self, input: &Val, args: &Args<'_>, span: Span) -> Result<(Val, Size), Refusal> {
        let alloc = input
            .items
            .clone()
            .times(ELEMENT_BYTES)
            .plus_bytes(STRING_OVERHEAD);
        if let Some((attribute, literal)) = args.named.get("attribute") {
            let default = args
                .named
                .get("default")
                .map(|(v, _)| v.repr())
                .unwrap_or_default();
            let defaults = input.items.product(&default).ok_or_else(|| {
                refuse(span, "uses map with a default from data on data, which can grow without limit; write the default in the template")
            })?;
            let (base, item) = input.elements(0);
            let item = match literal {
                Some(path) => path
                    .split('.')
                    .fold(item, |value, key| self.attribute(&value, key)),
                None => {
                    let _ = attribute;
                    Val::part(&item)
                }
            };
            let value = Val {
                bytes: input.repr_of_elements().plus(&defaults),
                items: input.items.clone(),
                elems: Some(Box::new(Elems { base, item })),
                ..Val::default()
            };
            return Ok((value, alloc));
        }
        let factor = match args.positional.first() {
            Some((_, Some(filter))) => match filter.as_str() {
                "string" | "safe" | "trim" => Some(1),
                "upper" | "lower" | "title" | "capitalize" => Some(CASE_FACTOR),
                "escape" | "e" => Some(ESCAPE_FACTOR),
                "length" | "count" | "int" | "float" | "round" | "abs" | "bool" => None,
                _ => {
                    return Err(refuse(
                        span,
                        "uses map with a filter other than attribute=, string, trim, upper, lower, title, capitalize, escape, length, int, float, round, abs or bool",
                    ))
                }
            },
            _ => return Err(refuse(span, "uses map without a filter name written in the template or attribute=")),
        };
        let value = match factor {
            Some(factor) => Val {
                bytes: input
                    .bytes
                    .clone()
                    .times(factor.saturating_mul(REPR_FACTOR))
                    .plus(&input.items.clone().times(4))
                    .plus_bytes(2),
                items: input.items.clone(),
                ..Val::default()
            },
            None => Val {
                bytes: input.items.clone().times(NUMBER_BYTES + 2).plus_bytes(2),
                items: input.items.clone(),
                elems: Some(Box::new(Elems {
                    base: None,
                    item: Val::number(None),
                })),
                ..Val::default()
            },
        };
        let alloc = match factor {
            Some(factor) => alloc.plus(&input.bytes.clone().times(factor)),
            None => alloc,
        };
        Ok((value, alloc))
    }
}

/// `range(…)`, `dict(…)` and `namespace(…)`, whose arguments are analysed; other names are
/// not functions and fail when called.
fn global_call(name: &str, args: &Args<'_>, span: Span) -> Result<(Val, Size), Refusal> {
    match name {
        "range" => {
            let known: Option<Vec<f64>> = args.positional.iter().map(|(v, _)| v.known()).collect();
            let count = match known.as_deref() {
                Some([stop]) => Some(range_len(0.0, *stop, 1.0)),
                Some([start, stop]) => Some(range_len(*start, *stop, 1.0)),
                Some([start, stop, step]) => Some(range_len(*start, *stop, *step)),
                _ => None,
            };
            if let Some(count) = count.filter(|n| *n > RANGE_MAX) {
                return Err(refuse(
                    span,
                    &format!("asks range for {count} items; the most is {RANGE_MAX}"),
                ));
            }
            let count = count.unwrap_or(RANGE_MAX);
            // Lazy, but counted as the list it becomes when collected or printed.
            let value = Val {
                bytes: Size::bytes(count * ELEMENT_BYTES),
                items: Size::bytes(count),
                elems: Some(Box::new(Elems {
                    base: None,
                    item: Val::number(None),
                })),
                ..Val::default()
            };
            Ok((value, Size::default()))
        }
        "dict" => {
            let mut bytes = Size::bytes(2);
            let mut items = Size::bytes(args.named.len() as u64);
            for (value, _) in &args.positional {
                bytes = bytes.plus(&value.bytes);
                items = items.plus(&value.items);
            }
            for (name, (value, _)) in &args.named {
                bytes = bytes.plus(&value.repr()).plus_bytes(repr_len(name) + 4);
            }
            let alloc = items.clone().times(2 * ELEMENT_BYTES);
            Ok((
                Val {
                    bytes,
                    items,
                    ..Val::default()
                },
                alloc,
            ))
        }
        "namespace" => Err(refuse(
            span,
            "uses namespace(), which Herald templates do not support",
        )),
        _ => Ok((Val::undefined(), Size::default())),
    }
}

/// `loop.cycle(…)` is one of its arguments, `loop.changed(…)` a boolean; values from data or
/// built by the template have no methods.
fn method_call(receiver: &Val, name: &str, args: &Args<'_>) -> Val {
    match (&receiver.kind, name) {
        (Kind::Loop(_), "cycle") => args
            .positional
            .iter()
            .fold(Val::undefined(), |bound, (v, _)| bound.join(v)),
        (Kind::Loop(_), "changed") => Val::number(None),
        _ => Val::undefined(),
    }
}

/// A call's arguments, each with its literal string when it is one.
struct Args<'a> {
    positional: Vec<(Val, Option<String>)>,
    named: BTreeMap<&'a str, (Val, Option<String>)>,
}

fn literal_str(expr: &Expr<'_>) -> Option<String> {
    match expr {
        Expr::Const(c) => c.value.as_str().map(str::to_string),
        _ => None,
    }
}

/// How many items `range(start, stop, step)` has, as MiniJinja counts them.
fn range_len(start: f64, stop: f64, step: f64) -> u64 {
    if step == 0.0 || step.is_nan() {
        return 0;
    }
    repeat_count(((stop - start) / step).ceil())
}

/// Whether MiniJinja's compiler evaluates this expression itself (`Expr::as_const`).
fn folds_at_compile(expr: &Expr<'_>) -> bool {
    match expr {
        Expr::Const(_) => true,
        Expr::List(list) => list.items.iter().all(|e| matches!(e, Expr::Const(_))),
        Expr::Map(map) => map
            .keys
            .iter()
            .chain(&map.values)
            .all(|e| matches!(e, Expr::Const(_))),
        Expr::UnaryOp(op) => folds_at_compile(&op.expr),
        Expr::BinOp(op) => folds_at_compile(&op.left) && folds_at_compile(&op.right),
        Expr::Compare(c) => {
            folds_at_compile(&c.expr) && c.ops.iter().all(|o| folds_at_compile(&o.expr))
        }
        _ => false,
    }
}

/// A bound of two values of a variable, either of which may be unset.
fn join_optional(a: Option<&Val>, b: Option<&Val>) -> Option<Val> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.join(b)),
        (Some(v), None) | (None, Some(v)) => Some(v.join(&Val::undefined())),
        (None, None) => None,
    }
}

fn refuse(span: Span, message: &str) -> Refusal {
    Refusal {
        line: span.start_line,
        message: message.to_string(),
    }
}

const TOO_DEEP: &str = "nests tags or expressions too deeply";

fn too_much_data() -> String {
    format!(
        "can grow too large with the contact's or campaign's data (more than {MAX_HELD_BYTES} bytes for data of {MAX_DATA_BYTES} bytes), for example by repeating text or data in a loop over it; print it directly instead of building a value"
    )
}

fn too_much_allocated() -> String {
    format!(
        "can allocate more than {MAX_ALLOCATED_BYTES} bytes in one render (a loop builds large values again and again, counting data at {MAX_DATA_BYTES} bytes); build them once, before the loop"
    )
}

fn too_much_held() -> String {
    format!(
        "holds more than {MAX_HELD_BYTES} bytes at once (variables, captured text and lists, counting data at {MAX_DATA_BYTES} bytes); build fewer or smaller values"
    )
}

#[allow(unreachable_patterns)]
fn stmt_span(stmt: &Stmt<'_>) -> Span {
    match stmt {
        Stmt::Template(s) => s.span(),
        Stmt::EmitExpr(s) => s.span(),
        Stmt::EmitRaw(s) => s.span(),
        Stmt::ForLoop(s) => s.span(),
        Stmt::IfCond(s) => s.span(),
        Stmt::WithBlock(s) => s.span(),
        Stmt::Set(s) => s.span(),
        Stmt::SetBlock(s) => s.span(),
        Stmt::AutoEscape(s) => s.span(),
        Stmt::FilterBlock(s) => s.span(),
        Stmt::Do(s) => s.span(),
        _ => Span::default(),
    }
}

/// A bound of a whole part's output, for data printing to `data` bytes: the part analysed as if
/// its output were captured. Lets tests hold the analysis against real renders.
#[cfg(test)]
pub(super) fn output_bound(source: &str, data: u64) -> Option<u64> {
    check_tags(source).ok()?;
    let template = parse(source, "sms.body", syntax(), whitespace()).ok()?;
    let mut analyzer = Analyzer::new(false, Unknown::Refuse);
    analyzer.captures.push(Size::default());
    analyzer.stmt(&template).ok()?;
    analyzer.captures.pop().map(|output| output.worst(data))
}
