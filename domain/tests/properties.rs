//! Properties over generated inputs.
#![allow(clippy::unwrap_used)]

mod support;

use paracell_domain::http::ApiRequest;
use paracell_domain::{Amount, Currency};
use proptest::prelude::*;
use support::*;

const CURRENCIES: [&str; 6] = ["EUR", "JPY", "BHD", "CLF", "USD", "KWD"];

fn amount_text() -> impl Strategy<Value = (String, &'static str)> {
    (
        prop::sample::select(CURRENCIES.to_vec()),
        "[1-9][0-9]{0,11}",
        prop::option::of("[0-9]{1,4}"),
    )
        .prop_map(|(currency, integer, fraction)| {
            let minor = usize::from(Currency::parse(currency).unwrap().minor_units());
            let text = match fraction {
                Some(f) if minor > 0 => format!("{integer}.{}", &f[..f.len().min(minor)]),
                _ => integer,
            };
            (text, currency)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(prop::test_runner::FileFailurePersistence::Direct("tests/properties.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn accepted_amounts_render_back_to_themselves((text, code) in amount_text()) {
        let currency = Currency::parse(code).unwrap();
        let amount = Amount::parse(&text, currency).unwrap();
        let rendered = amount.to_string();
        // Canonical: exactly the currency's minor units …
        let fraction = rendered.split_once('.').map_or(0, |(_, f)| f.len());
        prop_assert_eq!(fraction, usize::from(currency.minor_units()));
        // … the same value …
        prop_assert_eq!(Amount::parse(&rendered, currency).unwrap(), amount);
        // … and a fixed point.
        prop_assert_eq!(Amount::parse(&rendered, currency).unwrap().to_string(), rendered);
    }

    #[test]
    fn no_input_makes_the_cell_panic(
        method in prop::sample::select(vec!["GET", "POST", "HEAD", "OPTIONS", "DELETE", "get", ""]),
        path in prop_oneof![
            Just("/v1/transactions".to_string()),
            Just("/health".to_string()),
            "/v1/transactions/[a-z0-9%-]{0,40}",
            "/v1/accounts/[ -~]{0,20}/balances",
            "\\PC{0,30}",
        ],
        headers in prop::collection::vec((
            prop::sample::select(vec!["Content-Type", "X-Tenant-ID", "x-tenant-id", "Idempotency-Key", "Other"]),
            "\\PC{0,40}",
        ), 0..6),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            "\\PC{0,200}".prop_map(String::into_bytes),
            amount_text().prop_map(|(a, c)| tx("A", "credit", &a, c).into_bytes()),
        ],
        authenticated in prop::option::of("\\PC{0,10}"),
    ) {
        let (cell, _) = cell();
        let mut request = ApiRequest::new(method, path).with_body(body);
        for (name, value) in headers {
            request = request.with_header(name, value);
        }
        request.authenticated_tenant = authenticated;
        let response = paracell_domain::testing::block_on(cell.handle(request));
        // Every outcome is a well-formed response.
        assert_wire_invariants(&response);
    }

    #[test]
    fn the_balance_is_credits_minus_accepted_debits(ops in prop::collection::vec((any::<bool>(), 1u32..5000), 1..40)) {
        let (cell, _) = cell();
        let mut expected: i64 = 0;
        for (i, (credit, cents)) in ops.into_iter().enumerate() {
            let amount = format!("{}.{:02}", cents / 100, cents % 100);
            let kind = if credit { "credit" } else { "debit" };
            let r = send(&cell, create("coop-1", &format!("k{i}"), &tx("A", kind, &amount, "EUR")));
            match (credit, r.status) {
                (true, 201) => expected += i64::from(cents),
                (false, 201) => expected -= i64::from(cents),
                (false, 409) => prop_assert!(i64::from(cents) > expected, "a debit within the balance was refused"),
                other => prop_assert!(false, "unexpected outcome {:?}", other),
            }
            prop_assert!(expected >= 0);
        }
        let r = send(&cell, get("/v1/accounts/A/balances", "coop-1"));
        if r.status == 200 {
            let available = json(&r)["balances"][0]["available"].as_str().unwrap().to_owned();
            prop_assert_eq!(available, format!("{}.{:02}", expected / 100, expected % 100));
        } else {
            prop_assert_eq!(expected, 0);
        }
    }
}
