//! `paracell-admin`: the operator's tool. It reads the same configuration as the cell it operates
//! (`PARACELL_*`, the store and dead-letter settings), so it runs wherever the cell's settings are.
//!
//! ```text
//! paracell-admin dead-letters list [--json]          # what the relay could not deliver, and why
//! paracell-admin dead-letters replay [--limit N]     # deliver them again; remove those delivered
//! ```
//! Exit status 0 on success, 1 when something could not be done, 2 on usage or set-up errors.

use std::process::ExitCode;

const USAGE: &str = "usage: paracell-admin dead-letters list [--json]\n       paracell-admin dead-letters replay [--limit N]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["dead-letters", "list", rest @ ..] => list(rest.contains(&"--json")).await,
        ["dead-letters", "replay", rest @ ..] => {
            let limit = match rest {
                [] => 100,
                ["--limit", n] => match n.parse::<usize>() {
                    Ok(n) => n,
                    Err(_) => return usage(),
                },
                _ => return usage(),
            };
            replay(limit).await
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("paracell-admin: {what}: {e}");
    ExitCode::from(2)
}

async fn list(json: bool) -> ExitCode {
    let letters = match paracell_examples::dead_letters_from_lookup(|n| std::env::var(n).ok()).await
    {
        Ok(letters) => letters,
        Err(e) => return fail("dead letters", e),
    };
    let listed = match letters.list(1_000).await {
        Ok(listed) => listed,
        Err(e) => return fail("listing dead letters", e),
    };
    if json {
        let rows: Vec<String> = listed
            .iter()
            .map(|(id, l)| {
                format!(
                    "{{\"id\":{},\"letter\":{}}}",
                    serde_json_string(id),
                    l.render()
                )
            })
            .collect();
        println!("[{}]", rows.join(","));
    } else {
        for (id, l) in &listed {
            let e = l.entry.entry();
            println!(
                "{id}  {}  tenant {} entry {} (epoch {}, from {})  {} attempt(s) at {}\n    {}",
                l.destination, e.tenant, e.seq, e.epoch, e.origin, l.attempts, l.time, l.reason
            );
        }
        println!("{} dead letter(s)", listed.len());
    }
    ExitCode::SUCCESS
}

/// A JSON string literal (ids are printable; escaping keeps the output valid whatever they hold).
fn serde_json_string(text: &str) -> String {
    let mut out = String::new();
    paracell_domain::contract::json::push_str(&mut out, text);
    out
}

async fn replay(limit: usize) -> ExitCode {
    let env = |n: &str| std::env::var(n).ok();
    let config = match paracell_domain::CellConfig::from_env() {
        Ok(c) => c,
        Err(e) => return fail("configuration", e),
    };
    let relay = match paracell_examples::relay_from_lookup(&config, env).await {
        Ok(Some(relay)) => relay,
        Ok(None) => {
            return fail(
                "replay",
                "no destination configured (PARACELL_PEERS, PARACELL_EVENTBRIDGE_BUS, PARACELL_EVENTGRID_ENDPOINT)",
            );
        }
        Err(e) => return fail("relay", e),
    };
    let letters = match paracell_examples::dead_letters_from_lookup(env).await {
        Ok(letters) => letters,
        Err(e) => return fail("dead letters", e),
    };
    let listed = match letters.list(limit).await {
        Ok(listed) => listed,
        Err(e) => return fail("listing dead letters", e),
    };
    let (mut delivered, mut again) = (0, 0);
    for (id, letter) in listed {
        let report = relay
            .relay_only(&letter.destination, std::slice::from_ref(&letter.entry))
            .await;
        if report.delivered == 1 {
            delivered += 1;
            if let Err(e) = letters.remove(&id).await {
                eprintln!("paracell-admin: delivered {id} but could not remove it: {e}");
            }
        } else {
            // Dead-lettered again (with the new reason), or failed: the old letter stays too.
            again += 1;
        }
    }
    println!("{delivered} delivered, {again} not delivered (see `dead-letters list`)");
    if again == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
