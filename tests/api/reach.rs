//! Reach compiled to SQL agrees with the evaluator: random contacts and random filters, the
//! server's count and sample against `Filter::matches` over the contacts the API lists.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::db_test;
use crate::helpers::*;

/// Random cases per database: enough to meet every operator on every shape many times, few
/// enough to run in seconds.
const CASES: usize = 40;
/// Filters tried on each case's contacts.
const FILTERS: usize = 25;

/// Scalars that tempt a wrong implementation: numbers that look like strings and the reverse,
/// integers equal to decimals, case and non-ASCII, null.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0i64..=2).prop_map(Value::from),
        prop::sample::select(vec![0.5, 2.0, -1.5]).prop_map(Value::from),
        prop::sample::select(vec!["1", "2.0", "a", "B", "b", "é", "", "vip"]).prop_map(Value::from),
    ]
}

/// An object built in the order drawn, so equal objects come with different key orders.
fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// An operand: mostly a scalar, so that filters split the contacts.
fn operand() -> impl Strategy<Value = Value> {
    prop_oneof![4 => scalar(), 1 => value()]
}

/// Any value: mixed-type arrays, arrays of arrays, objects inside arrays and the reverse.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(vec!["a", "b", "0"]), inner), 0..3)
                .prop_map(object),
        ]
    })
}

/// A contact's attribute: a scalar, a flat array, or any value.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => scalar(),
        2 => prop::collection::vec(scalar(), 0..4).prop_map(Value::Array),
        2 => value(),
    ]
}

fn contact() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "c", "0"]),
                field_value(),
            ),
            0..4,
        ),
        prop::collection::vec(
            prop::sample::select(vec!["vip", "Vip", "prospect", "1"]),
            0..3,
        ),
        prop::option::of(prop::sample::select(vec!["+447700900123", "+14155550100"])),
        prop::option::of(prop::sample::select(vec![
            "ann@example.com",
            "Bob@example.org",
        ])),
        prop::option::of(prop::sample::select(vec!["Ann", "ann", "Zoë", "10"])),
    )
        .prop_map(|(attributes, tags, phone, email, first_name)| {
            let mut doc = Map::new();
            doc.insert("attributes".into(), object(attributes));
            doc.insert("tags".into(), json!(tags));
            doc.extend(phone.map(|p| ("phone".to_string(), json!(p))));
            doc.extend(email.map(|e| ("email".to_string(), json!(e))));
            doc.extend(first_name.map(|n| ("firstName".to_string(), json!(n))));
            Value::Object(doc)
        })
}

const PATHS: [&str; 18] = [
    "tags",
    "tags",
    "attributes.a",
    "attributes.b",
    "attributes.c",
    "tags.0",
    "phone",
    "email",
    "firstName",
    "attributes",
    "attributes.a",
    "attributes.b",
    "attributes.a.b",
    "attributes.a.0",
    "attributes.a.0.b",
    "attributes.a.b.a",
    "attributes.0",
    "attributes.c.a",
];

/// One operator with a valid operand, as `{"$op": operand}`.
fn operator() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        (
            prop::sample::select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]),
            operand()
        )
            .prop_map(|(op, v)| json!({ op: v })),
        (
            prop::sample::select(vec!["$in", "$nin", "$all"]),
            prop::collection::vec(operand(), 0..4)
        )
            .prop_map(|(op, v)| json!({ op: v })),
        any::<bool>().prop_map(|b| json!({"$exists": b})),
        (0u64..3).prop_map(|n| json!({"$size": n})),
        (
            prop::sample::select(vec!["^a", "b", "^$", "[0-9]", "É", "^v"]),
            any::<bool>()
        )
            .prop_map(|(re, i)| if i {
                json!({"$regex": re, "$options": "i"})
            } else {
                json!({"$regex": re})
            }),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|op| json!({"$not": op})),
            inner.clone().prop_map(|op| json!({"$elemMatch": op})),
            (prop::sample::select(vec!["a", "b", "0"]), inner)
                .prop_map(|(field, op)| json!({"$elemMatch": { field: op }})),
        ]
    })
}

/// A condition on a field: a plain value, or one or two operators.
fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => operand(),
        3 => operator(),
        1 => (operator(), operator()).prop_map(|(a, b)| {
            let mut merged = a.as_object().cloned().unwrap_or_default();
            for (k, v) in b.as_object().cloned().unwrap_or_default() {
                if k != "$options" && !(k == "$regex" && merged.contains_key("$regex")) {
                    merged.insert(k, v);
                }
            }
            Value::Object(merged)
        }),
    ]
}

/// A `where` clause: field conditions, and `$and`/`$or`/`$nor` over smaller ones.
fn query() -> impl Strategy<Value = Value> {
    let field = || (prop::sample::select(PATHS.to_vec()), condition());
    let fields = prop_oneof![
        3 => field().prop_map(|pair| object(vec![pair])),
        1 => (field(), field()).prop_map(|(a, b)| object(vec![a, b])),
    ];
    fields.prop_recursive(2, 6, 3, |inner| {
        (
            prop::sample::select(vec!["$and", "$or", "$nor"]),
            prop::collection::vec(inner, 1..3),
        )
            .prop_map(|(op, queries)| json!({ op: queries }))
    })
}

/// Ids whose order differs between byte order and a natural-language collation.
const IDS: [&str; 14] = [
    "ct-a", "ct-B", "ct-c", "ct-D", "ct-_e", "ct-0f", "ct-a-b", "ct-ab", "ct-Ab", "ct-a.b", "ct-9",
    "ct-z", "ct-Z", "ct-a_b",
];

/// Imports `rows` into `org` and checks each of `filters` (`where` clauses): the server's reach
/// count and sample against `Filter::matches` over the contacts as stored.
async fn assert_reach_agrees(app: &TestApp, org: &str, rows: &[Value], filters: Vec<Value>) {
    let admin = token(&[org], &["admin"], "reach-test");
    let imported = app
        .as_user(&admin, org, Method::POST, "/crm/contacts/import")
        .json(&Value::Array(rows.to_vec()))
        .send()
        .await;
    assert_eq!(imported.body["created"], rows.len(), "{}", imported.text);
    let listed = app
        .as_user(&admin, org, Method::GET, "/crm/contacts?limit=500")
        .send()
        .await;
    let mut stored: Vec<Value> = listed.body["items"].as_array().unwrap().clone();
    let key = |doc: &Value| {
        (
            doc["createdAt"].as_str().unwrap_or_default().to_string(),
            doc["id"].as_str().unwrap_or_default().to_string(),
        )
    };
    stored.sort_by_key(key);
    for where_ in filters {
        let filter = json!({"datatype": "contact", "where": where_});
        let parsed = herald_domain::query::parse_filter(&filter)
            .unwrap_or_else(|e| panic!("{filter} should parse: {e:?}"));
        let matching: Vec<&Value> = stored.iter().filter(|c| parsed.matches(c)).collect();
        let expected: Vec<Value> = matching.iter().take(10).map(|c| c["id"].clone()).collect();
        let reach = app
            .as_user(&admin, org, Method::POST, "/crm/audiences/preview")
            .json(&json!({ "filter": filter }))
            .send()
            .await;
        let sample: Vec<Value> = reach.body["sample"]
            .as_array()
            .unwrap_or_else(|| panic!("{filter}: {}", reach.text))
            .iter()
            .map(|c| c["id"].clone())
            .collect();
        assert_eq!(
            (reach.body["count"].as_u64(), sample),
            (Some(matching.len() as u64), expected),
            "filter {filter}\ncontacts {}",
            Value::Array(stored.clone())
        );
    }
}

db_test!(
    reach_agrees_with_the_evaluator_on_random_contacts_and_filters,
    |app: TestApp| async move {
        let mut runner = TestRunner::default();
        let contacts = prop::collection::vec(contact(), IDS.len() / 2..=IDS.len());
        let filters = prop::collection::vec(query(), FILTERS);
        for case in 0..CASES {
            let mut rows = contacts.new_tree(&mut runner).unwrap().current();
            for (row, id) in rows.iter_mut().zip(IDS) {
                row["id"] = json!(id);
            }
            let filters = filters.new_tree(&mut runner).unwrap().current();
            assert_reach_agrees(&app, &format!("reach{case}"), &rows, filters).await;
        }
    }
);

// Arrays met along a path, which PostgreSQL reads with `lax` jsonpath: one level of objects is
// stepped into, a nested array is not, and an array element that is itself an array neither
// equals nor compares with a scalar.
db_test!(
    reach_agrees_with_the_evaluator_on_arrays_along_a_path,
    |app: TestApp| async move {
        let rows = vec![
            json!({"id": "ct-1", "attributes": {"a": [{"b": [[5]]}, {"b": "x"}]}}),
            json!({"id": "ct-2", "attributes": {"a": [{"b": [5, "x"]}, 7]}}),
            json!({"id": "ct-3", "attributes": {"a": [[{"b": 5}]]}}),
            json!({"id": "ct-4", "attributes": {"a": {"b": [[5], 6.0]}}}),
            json!({"id": "ct-5", "attributes": {"a": [{"c": 1}, {"b": null}]}}),
            json!({"id": "ct-6", "attributes": {"a": [{"b": {"b": 5}}], "t": [["vip"]]}}),
            json!({"id": "ct-7", "attributes": {"a": {"b": 5}, "t": ["vip", 5]}, "tags": ["vip"]}),
        ];
        let filters = vec![
            json!({"attributes.a.b": 5}),
            json!({"attributes.a.b": {"$ne": 5}}),
            json!({"attributes.a.b": {"$in": [5, "x"]}}),
            json!({"attributes.a.b": {"$nin": [6, "y"]}}),
            json!({"attributes.a.b": {"$gte": 5}}),
            json!({"attributes.a.b": {"$lt": 6}}),
            json!({"attributes.a.b": {"$exists": true}}),
            json!({"attributes.a.b": {"$exists": false}}),
            json!({"attributes.a.b": null}),
            json!({"attributes.a.b.b": {"$gt": 4}}),
            json!({"attributes.a.b": {"$all": [5, "x"]}}),
            json!({"tags": "vip"}),
            json!({"attributes.t": "vip"}),
            json!({"attributes.t": {"$in": ["vip", 5]}}),
            json!({"attributes.t": {"$gte": 5}}),
        ];
        assert_reach_agrees(&app, "reach-arrays", &rows, filters).await;
    }
);
