//! Generative parity: random requests (and short sequences of them) through every envelope in
//! process must give identical client-visible responses and identical final state, except where a
//! named platform fact groups envelopes (see `docs/conformance.md`). The number of cases comes from
//! `PROPTEST_CASES` (CI: 2000); shrunk failures are kept in `tests/generative.proptest-regressions`.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_conformance::case::{Case, CellSpec, RequestSpec, Step};
use paracell_conformance::{Envelope, Suite, report};
use proptest::prelude::*;

fn casing(name: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
        name.chars()
            .zip(upper)
            .map(|(c, u)| {
                if u {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    })
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("coop-1".to_owned()),
        Just("coop-2".to_owned()),
        Just("coop-9".to_owned()),
        Just(String::new()),
        "[ -~]{0,12}",
        "[a-z0-9 ,;=é€]{0,10}",
    ]
}

fn content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("application/json".to_owned()),
        Just("application/json; charset=utf-8".to_owned()),
        Just("APPLICATION/JSON; Charset=\"UTF-8\"".to_owned()),
        Just("application/json; charset=latin1".to_owned()),
        Just("application/vnd.api+json".to_owned()),
        Just("text/plain".to_owned()),
        Just("application/octet-stream".to_owned()),
        Just("multipart/form-data; boundary=b".to_owned()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let tenant = (casing("x-tenant-id"), header_value());
    let key = (
        casing("idempotency-key"),
        prop_oneof![Just("k-1".to_owned()), Just("k-2".to_owned()), "[!-~]{0,8}"],
    );
    let ct = (casing("content-type"), content_type());
    let other = (
        prop::sample::select(vec![
            "accept",
            "cookie",
            "user-agent",
            "x-request-id",
            "authorization",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,16}",
    );
    (
        prop::collection::vec(tenant, 0..3),
        prop::collection::vec(key, 0..2),
        prop::collection::vec(ct, 0..2),
        prop::collection::vec(other, 0..3),
    )
        .prop_map(|(a, b, c, d)| a.into_iter().chain(b).chain(c).chain(d).collect())
}

fn path() -> impl Strategy<Value = String> {
    let segment = "([A-Za-z0-9._~:-]|%[0-9A-F]{2}){0,8}";
    prop_oneof![
        3 => Just("/v1/transactions".to_owned()),
        1 => Just("/health".to_owned()),
        1 => Just("/v1/transactions/01900000-0000-7000-8000-000000000001".to_owned()),
        1 => segment.prop_map(|s| format!("/v1/transactions/{s}")),
        1 => segment.prop_map(|s| format!("/v1/accounts/{s}/balances")),
        1 => Just("/v1/accounts/ACC-1/balances".to_owned()),
        1 => prop::collection::vec(segment, 0..4).prop_map(|s| format!("/{}", s.join("/"))),
        1 => Just("/v1/transactions/".to_owned()),
    ]
}

fn body() -> impl Strategy<Value = (Option<String>, Option<String>)> {
    let amount = prop_oneof![
        Just("1".to_owned()),
        Just("0.5".to_owned()),
        Just("100.255".to_owned()),
        "[0-9.]{1,6}"
    ];
    let currency = prop::sample::select(vec!["EUR", "JPY", "BHD", "XAU", "eur"]);
    let kind = prop::sample::select(vec!["credit", "debit", "loan"]);
    let valid = (amount, currency, kind, prop::option::of("\\PC{0,6}")).prop_map(|(a, c, k, r)| {
        let mut v =
            serde_json::json!({"account_id": "ACC-1", "type": k, "amount": a, "currency": c});
        if let Some(r) = r {
            v["reference"] = serde_json::json!(r);
        }
        (Some(v.to_string()), None)
    });
    prop_oneof![
        4 => valid,
        1 => Just((None, None)),
        1 => "\\PC{0,30}".prop_map(|s| (Some(s), None)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| (None, Some(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)))),
    ]
}

fn request() -> impl Strategy<Value = RequestSpec> {
    (
        prop::sample::select(vec![
            "GET", "POST", "POST", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "get",
        ]),
        path(),
        prop_oneof![Just(String::new()), "([a-z]{1,3}=[a-z0-9%]{0,4}&?){1,3}"],
        headers(),
        body(),
        prop::bool::weighted(0.1),
        prop::option::weighted(
            0.1,
            prop::sample::select(vec!["coop-1", "coop-2", "coop-7"]).prop_map(str::to_owned),
        ),
    )
        .prop_map(
            |(method, path, query, headers, (body, body_base64), chunked, auth)| RequestSpec {
                method: method.to_owned(),
                path,
                query,
                headers,
                body,
                body_json: None,
                body_base64,
                pad_to: None,
                chunked,
                authenticated_tenant: auth,
            },
        )
}

fn regressions() -> Option<Box<dyn prop::test_runner::FailurePersistence>> {
    Some(Box::new(prop::test_runner::FileFailurePersistence::Direct(
        "tests/generative.proptest-regressions",
    )))
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: regressions(), ..ProptestConfig::default() })]

    #[test]
    fn every_envelope_answers_alike(requests in prop::collection::vec(request(), 1..4), max_body in prop::option::of(40usize..200)) {
        let case = Case {
            format: 1,
            id: "GEN".into(),
            title: "generated".into(),
            requirements: vec![],
            cell: CellSpec { max_body_bytes: max_body, ..CellSpec::default() },
            standby: None,
            converged: None,
            steps: requests.into_iter().map(Step::request).collect(),
            expect_outbox: None,
        };
        let suite = Suite { cases: vec![case], envelopes: Envelope::ALL.to_vec() };
        let reports = suite.run_in_process();
        prop_assert!(reports[0].passed(), "{}", report::table(&reports, &Envelope::ALL));
    }
}
