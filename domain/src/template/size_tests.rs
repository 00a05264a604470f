//! The size bounds as a user meets them: what is refused at save, what a stored template that
//! breaks them does at send and preview, and what realistic templates keep doing.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::bounds::{self, Unknown};
use super::*;

fn sms(body: &str) -> TemplateContent {
    TemplateContent {
        sms: Some(SmsContent {
            body: body.to_string(),
        }),
        ..TemplateContent::default()
    }
}

fn html(body: &str) -> TemplateContent {
    TemplateContent {
        email: Some(EmailContent {
            subject: "Hi".to_string(),
            html: Some(body.to_string()),
            text: None,
        }),
        ..TemplateContent::default()
    }
}

fn ada() -> RenderContext {
    RenderContext {
        contact: json!({
            "id": "ct-1",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@example.com",
            "tags": ["vip", "beta"],
            "attributes": {"plan": "pro", "seats": 12, "price": "9.5", "n": 1000000000},
        }),
        campaign: json!({"id": "camp-1", "name": "Spring launch"}),
        unsubscribe_url: "https://herald.example/u/abc".to_string(),
    }
}

/// The one error saving `body` as an SMS gives.
fn refusal_at_save(body: &str) -> String {
    let errors = parse_template(&json!({"name": "n", "sms": {"body": body}}))
        .expect_err("the template should be refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "sms.body");
    errors[0].message.clone()
}

fn render_sms(body: &str, ctx: &RenderContext) -> Result<String, RenderError> {
    render(&sms(body), ctx).map(|message| message.sms.expect("an sms part").body)
}

/// Saving is refused with `message`, and a stored copy compiles but never renders.
fn refused_everywhere(body: &str, message: &str) {
    assert_eq!(refusal_at_save(body), message, "{body}");
    let compiled = CompiledTemplate::new(&sms(body)).expect("a stored template still loads");
    let expected = RenderError::Unbounded {
        field: "sms.body",
        message: message.to_string(),
    };
    assert_eq!(compiled.render(&ada()), Err(expected.clone()), "{body}");
    assert_eq!(render(&sms(body), &ada()), Err(expected), "{body}");
}

const TOO_BIG: &str =
    "can build a value of more than 4194304 bytes; repeat less text or loop fewer times";

#[test]
fn the_reported_doubling_template_is_refused_at_save_and_never_rendered() {
    refused_everywhere(
        "{% set a = 'x' * 10000000 %}{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}{{ d }}",
        &format!("{TOO_BIG} (line 1)"),
    );
    // From a size that is allowed, the doubling that crosses the limit is the one named.
    refused_everywhere(
        "{% set a = 'x' * 1000000 %}\n{% set b = a ~ a %}\n{% set c = b ~ b %}\n{% set d = c ~ c %}\n{{ d }}",
        &format!("{TOO_BIG} (line 4)"),
    );
}

#[test]
fn text_repeated_a_number_of_times_from_data_is_refused() {
    let message = "repeats text a number of times that is not written in the template; only a written number can repeat text, e.g. '-' * 20 (line 1)";
    refused_everywhere("{{ 'x' * (contact.attributes.n | int) }}", message);
    refused_everywhere(
        "{% for t in contact.tags %}{{ '-' * loop.index }}{% endfor %}",
        message,
    );
    refused_everywhere(
        "{{ contact.attributes.price * contact.attributes.seats }}",
        "multiplies values that may be text; convert numbers from data with |int or |float first (line 1)",
    );
    // Numbers made numbers first multiply as numbers.
    assert_eq!(
        render_sms(
            "{{ (contact.attributes.price|float) * (contact.attributes.seats|int) }}",
            &ada()
        ),
        Ok("114.0".to_string())
    );
    assert_eq!(render_sms("{{ '-' * 3 }}", &ada()), Ok("---".to_string()));
}

#[test]
fn a_range_minijinja_would_refuse_is_refused_at_save() {
    refused_everywhere(
        "{% for i in range(100000000) %}x{% endfor %}",
        "asks range for 100000000 items; the most is 100000 (line 1)",
    );
    refused_everywhere(
        "{{ range(100000)|list * 10 }}",
        &format!("{TOO_BIG} (line 1)"),
    );
}

#[test]
fn captured_text_that_multiplies_in_loops_is_refused() {
    refused_everywhere(
        "{% set a %}{% for i in range(1000) %}xxxxxxxxxx{% endfor %}{% endset %}\
         {% set b %}{% for i in range(1000) %}{{ a }}{% endfor %}{% endset %}{{ b }}",
        &format!("{TOO_BIG} (line 1)"),
    );
    refused_everywhere(
        "{% set a = 'x' * 3000 %}{% set b %}{% filter upper %}{% for i in range(2000) %}{{ a }}{% endfor %}{% endfilter %}{% endset %}",
        &format!("{TOO_BIG} (line 1)"),
    );
}

#[test]
fn contact_data_copied_in_every_iteration_is_refused_but_each_item_once_is_fine() {
    refused_everywhere(
        "{% set s %}{% for t in contact.tags %}{{ contact.attributes.bio }}{% endfor %}{% endset %}{{ s }}",
        "can grow too large with the contact's or campaign's data (more than 33554432 bytes for data of 524288 bytes), for example by repeating text or data in a loop over it; print it directly instead of building a value (line 1)",
    );
    // The usual idiom: each tag once, plus a separator per iteration.
    assert_eq!(
        render_sms(
            "{% set tags %}{% for t in contact.tags %}{{ t|upper }}, {% endfor %}{% endset %}Tags: {{ tags }}",
            &ada()
        ),
        Ok("Tags: VIP, BETA, ".to_string())
    );
}

#[test]
fn a_set_inside_a_loop_starts_afresh_at_each_item_so_it_cannot_accumulate() {
    // MiniJinja clears a loop's variables for every item: `s ~ s` reads the `s` from before the
    // loop each time, so this is accepted and stays small.
    assert_eq!(
        render_sms(
            "{% set s = 'ab' %}{% for i in range(40) %}{% set s = s ~ s %}{% if loop.last %}{{ s }}{% endif %}{% endfor %} {{ s }}",
            &ada()
        ),
        Ok("abab ab".to_string())
    );
}

#[test]
fn a_loop_that_rebuilds_a_large_value_at_every_iteration_is_refused() {
    refused_everywhere(
        "{% set x = 'x' * 4000000 %}\n{% for i in range(100) %}{% set y = x ~ i %}{% endfor %}",
        "can allocate more than 268435456 bytes in one render (a loop builds large values again and again, counting data at 524288 bytes); build them once, before the loop (line 2)",
    );
    // Small values per iteration, or large ones a few times, are fine.
    assert_eq!(
        render_sms(
            "{% set x = 'x' * 4000000 %}{% for i in range(3) %}{% set y = x ~ i %}{% endfor %}{% for t in contact.tags %}{{ (t ~ '!')|upper }}{% endfor %}",
            &ada()
        ),
        Ok("VIP!BETA!".to_string())
    );
}

#[test]
fn the_larger_branch_of_an_if_counts() {
    refused_everywhere(
        "{% if contact.attributes.vip %}{% set x = 'x' * 3000000 %}{% else %}{% set x = 'y' %}{% endif %}{{ x ~ x }}",
        &format!("{TOO_BIG} (line 1)"),
    );
}

#[test]
fn namespaces_recursive_loops_and_splats_are_not_supported() {
    refused_everywhere(
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "uses namespace(), which Herald templates do not support (line 1)",
    );
    refused_everywhere(
        "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
        "uses a recursive loop, which Herald templates do not support (line 1)",
    );
    refused_everywhere(
        "{{ range(*contact.tags) }}",
        "passes *args or **kwargs, which Herald templates do not support (line 1)",
    );
    refused_everywhere(
        "{% set r = range %}{{ r(10) }}",
        "uses range without calling it; call it directly, e.g. range(…) (line 1)",
    );
}

#[test]
fn builtin_filters_that_cannot_be_bounded_are_refused_by_name() {
    refused_everywhere(
        "{{ contact.tags|batch(2) }}",
        "uses the filter batch, which Herald templates do not support (line 1)",
    );
    refused_everywhere(
        "{{ '%100000000s'|format('x') }}",
        "uses the filter format, which Herald templates do not support (line 1)",
    );
}

#[test]
fn an_unknown_filter_is_refused_at_save_but_a_stored_one_fails_only_where_it_is_reached() {
    let body = "{% if contact.attributes.vip %}{{ contact.firstName|shout }}{% endif %}Hi";
    assert_eq!(refusal_at_save(body), "filter shout is unknown (line 1)");
    assert_eq!(render_sms(body, &ada()), Ok("Hi".to_string()));
}

#[test]
fn a_tag_too_long_to_compile_safely_is_refused_before_it_is_parsed() {
    // Compiling (even dropping) the tree of a 10 000-term chain overflows the stack and aborts
    // the process; the test process still running is the proof it never got there.
    let chain = vec!["contact.firstName"; 10_000].join(" ~ ");
    refused_everywhere(
        &format!("{{{{ {chain} }}}}"),
        "has a tag of more than 300 parts; split it into several tags (line 1)",
    );
    // At the limit, inside blocks nested as deep as the parser allows, it is still fine.
    let chain = vec!["'a'"; 150].join(" ~ ");
    let nested = format!(
        "{}{{{{ {chain} }}}}{}",
        "{% for t in ['x'] %}{% set y %}{% if true %}".repeat(48),
        "{% endif %}{% endset %}{{ y }}{% endfor %}".repeat(48)
    );
    parse_template(&json!({"name": "n", "sms": {"body": nested}})).expect("accepted");
    assert_eq!(render_sms(&nested, &ada()).map(|s| s.len()), Ok(150));
}

#[test]
fn realistic_templates_are_accepted_and_render() {
    let ctx = ada();
    let cases = [
        ("Hi {{ contact.firstName|default('there') }}!", "Hi Ada!"),
        ("{{ contact.firstName|upper }} {{ contact.lastName|lower }}", "ADA lovelace"),
        (
            "{{ contact.firstName ~ ' ' ~ contact.lastName ~ ' <' ~ contact.email ~ '>' }}",
            "Ada Lovelace <ada@example.com>",
        ),
        (
            "{% for t in contact.tags %}{{ loop.index }}. {{ t|title }}{% if not loop.last %}, {% endif %}{% endfor %}",
            "1. Vip, 2. Beta",
        ),
        ("{{ contact.tags|sort|join(', ') }}", "beta, vip"),
        ("{{ (contact.attributes.seats|int) * 12 + 1 }} seats", "145 seats"),
        (
            "{% if contact.attributes.plan == 'pro' %}Pro{% else %}Free{% endif %} for {{ campaign.name }}",
            "Pro for Spring launch",
        ),
        ("{{ contact.firstName[:1] }}. {{ contact.lastName }}", "A. Lovelace"),
        (
            "{% set name = contact.firstName|default('friend')|title %}{% with greeting = 'Dear ' ~ name %}{{ greeting }}{% endwith %}",
            "Dear Ada",
        ),
        ("{{ range(3)|join('-') }} {{ '=' * 5 }}", "0-1-2 ====="),
        (
            "{% for k, v in contact.attributes|items if k == 'plan' %}{{ k }}={{ v }}{% endfor %}",
            "plan=pro",
        ),
        (
            "{{ contact.tags|map('upper')|join('/') }} {{ contact.tags|length }}",
            "VIP/BETA 2",
        ),
        (
            "{% set rows %}{% for t in contact.tags %}<li>{{ t }}</li>{% endfor %}{% endset %}<ul>{{ rows }}</ul>",
            "<ul><li>vip</li><li>beta</li></ul>",
        ),
        (
            "{% set rows %}{% for t in contact.tags %}<tr><td class=\"tag\" style=\"padding: 4px\">{{ t }}</td></tr>{% endfor %}{% endset %}{{ rows|length }}",
            "109",
        ),
    ];
    for (body, expected) in cases {
        parse_template(&json!({"name": "n", "sms": {"body": body}}))
            .unwrap_or_else(|e| panic!("{body}: {e:?}"));
        assert_eq!(render_sms(body, &ctx).as_deref(), Ok(expected), "{body}");
    }
}

#[test]
fn a_contact_whose_data_would_not_fit_fails_alone_and_only_where_it_is_copied() {
    let mut big = ada();
    big.contact["attributes"]["bio"] = json!("b".repeat(2 * 1024 * 1024));
    // A list of the bio's characters would take 48 MiB.
    let body = "{{ contact.attributes.bio|list|length }}";
    assert_eq!(
        render_sms(body, &big),
        Err(RenderError::DataTooLarge { field: "sms.body" })
    );
    assert_eq!(render_sms(body, &ada()), Ok("0".to_string()));
    // Copying a small piece of the same contact, or printing the big one, is fine.
    assert_eq!(
        render_sms("{{ contact.firstName|upper }}", &big),
        Ok("ADA".to_string())
    );
    assert_eq!(
        render_sms("{{ contact.attributes.bio|length }}", &big),
        Ok((2 * 1024 * 1024).to_string())
    );
    assert_eq!(
        RenderError::DataTooLarge { field: "sms.body" }.field_errors(),
        [FieldError::new(
            "sms.body",
            "would copy too much of this contact's data to render"
        )]
    );
}

#[test]
fn a_list_printed_in_html_is_escaped_as_it_prints() {
    let message = render(&html("{{ contact.tags }}"), &ada()).unwrap();
    assert_eq!(
        message.email.unwrap().html.as_deref(),
        Some("[&quot;vip&quot;, &quot;beta&quot;]")
    );
}

#[test]
fn numbers_in_data_count_as_long_as_they_print() {
    // `1e300` is five characters of JSON but prints as 301 digits and `.0`.
    assert!(bounds::data_bytes(&json!(1e300)) >= 303);
    assert_eq!(bounds::data_bytes(&json!(12)), 2);
    assert_eq!(bounds::data_bytes(&json!(["a", 1])), 2 + 3 + 2 + 1 + 2);
}

#[test]
fn a_list_element_costs_no_more_than_the_analysis_assumes() {
    assert!(std::mem::size_of::<minijinja::Value>() <= 24);
}

/// Data for the property test: strings with escapes and long-printing numbers.
fn arb_contact() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        "[a-z]{0,12}",
        "\\PC{0,8}",
        Just("\u{1}\u{390}\"\\".to_string()),
    ];
    let number = prop_oneof![
        any::<i32>().prop_map(|n| json!(n)),
        Just(json!(1e300)),
        Just(json!(-2.2250738585072014e-308)),
        Just(json!(0.5)),
    ];
    (
        text.clone(),
        prop::collection::vec(text.clone(), 0..4),
        prop_oneof![text.clone().prop_map(Value::from), number.clone()],
        prop::collection::vec(number, 0..3),
    )
        .prop_map(|(first, tags, plan, nums)| {
            json!({"firstName": first, "tags": tags, "attributes": {"plan": plan, "nums": nums}})
        })
}

fn arb_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("contact.firstName".to_string()),
        Just("contact.tags".to_string()),
        Just("contact.attributes.plan".to_string()),
        Just("contact.attributes.nums".to_string()),
        Just("contact.attributes".to_string()),
        Just("campaign.name".to_string()),
        Just("unsubscribeUrl".to_string()),
        Just("'ab'".to_string()),
        Just("'\u{1}é\"'".to_string()),
        Just("3".to_string()),
        Just("100000".to_string()),
        Just("2.5".to_string()),
        Just("none".to_string()),
        Just("[1, 'x']".to_string()),
        Just("range(3)".to_string()),
        Just("loop.index".to_string()),
        Just("x".to_string()),
        Just("t".to_string()),
        Just("u".to_string()),
        Just("loop.cycle(t, 'ab')".to_string()),
    ];
    leaf.prop_recursive(3, 24, 3, |inner| {
        let filters = prop_oneof![
            Just("upper"),
            Just("lower"),
            Just("title"),
            Just("capitalize"),
            Just("trim"),
            Just("string"),
            Just("length"),
            Just("int"),
            Just("float"),
            Just("first"),
            Just("last"),
            Just("reverse"),
            Just("sort"),
            Just("list"),
            Just("unique"),
            Just("join(', ')"),
            Just("join"),
            Just("default('d')"),
            Just("replace('a', 'xyz')"),
            Just("escape"),
            Just("indent(2)"),
            Just("split"),
            Just("items"),
            Just("map('upper')"),
            Just("select"),
            Just("join(t)"),
            Just("replace(t, u)"),
            Just("dictsort"),
            Just("map(attribute='plan')"),
            Just("attr('plan')"),
            Just("lines"),
        ];
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} ~ {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} * {b})")),
            (inner.clone(), filters).prop_map(|(a, f)| format!("({a}|{f})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("({a} if {b} else {c})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]")),
            inner.clone().prop_map(|a| format!("({a})[1:]")),
            inner.clone().prop_map(|a| format!("({a})[0]")),
        ]
    })
}

fn arb_template() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        arb_expr().prop_map(|e| format!("{{{{ {e} }}}}")),
        arb_expr().prop_map(|e| format!("{{% set x = {e} %}}")),
        Just("text, ".to_string()),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|parts| parts.concat()),
            (arb_expr(), inner.clone())
                .prop_map(|(e, body)| format!("{{% for t in {e} %}}{body}{{% endfor %}}")),
            (arb_expr(), inner.clone(), inner.clone()).prop_map(|(e, body, other)| format!(
                "{{% for t, u in {e} if t %}}{body}{{% else %}}{other}{{% endfor %}}"
            )),
            (arb_expr(), inner.clone()).prop_map(|(e, body)| format!(
                "{{% for u in {e} %}}{{% with x = u %}}{body}{{% endwith %}}{{% endfor %}}"
            )),
            (arb_expr(), inner.clone(), inner.clone()).prop_map(|(e, yes, no)| format!(
                "{{% if {e} %}}{yes}{{% else %}}{no}{{% endif %}}"
            )),
            inner
                .clone()
                .prop_map(|body| format!("{{% set x %}}{body}{{% endset %}}{{{{ x }}}}")),
            inner
                .clone()
                .prop_map(|body| format!("{{% filter upper %}}{body}{{% endfilter %}}")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever a template built from the allowed constructs does, a render either fails with a
    /// known error or writes no more than the analysis bounded, for the data it actually had.
    #[test]
    fn an_accepted_template_never_outgrows_its_bound(
        body in arb_template(),
        contact in arb_contact(),
    ) {
        let ctx = RenderContext {
            contact,
            campaign: json!({"name": "Spring"}),
            unsubscribe_url: "https://herald.example/u/1".to_string(),
        };
        let data = bounds::data_bytes(&ctx.contact)
            + bounds::data_bytes(&ctx.campaign)
            + bounds::repr_len(&ctx.unsubscribe_url);
        let accepted = bounds::prove(&body, "sms.body", false, Unknown::Refuse).is_ok();
        match render_sms(&body, &ctx) {
            Ok(output) => {
                prop_assert!(accepted, "rendered although refused: {body}");
                if let Some(bound) = bounds::output_bound(&body, data) {
                    prop_assert!(
                        output.len() as u64 <= bound,
                        "{body} wrote {} bytes, bound {bound}", output.len()
                    );
                }
            }
            Err(RenderError::Unbounded { .. }) => prop_assert!(!accepted, "{body}"),
            Err(
                RenderError::Failed { .. }
                | RenderError::TooMuchWork { .. }
                | RenderError::TooLarge { .. }
                | RenderError::DataTooLarge { .. },
            ) => {}
            Err(other) => prop_assert!(false, "{body}: {other:?}"),
        }
    }

    #[test]
    fn any_string_compiles_or_is_refused_and_renders_without_panicking(
        source in prop_oneof!["\\PC{0,80}", "[{}%#a-z0-9 '|~*+.()\\[\\],=:-]{0,80}"],
    ) {
        if let Ok(compiled) = CompiledTemplate::new(&sms(&source)) {
            let _ = compiled.render(&ada());
        }
        let _ = parse_template(&json!({"name": "n", "sms": {"body": source}}));
    }
}
