//! `attrsync get` and `attrsync set` against the simulator.

use crate::support::{Run, TestOrg, latest_run, output};

fn customer_of(
    call: &genesys_core::models::CallConversation,
) -> &genesys_core::models::CallMediaParticipant {
    call.participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .expect("every simulated call has a customer")
}

#[tokio::test]
async fn get_shows_every_participant_with_purpose_state_and_attributes() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    let call = org.live_calls().remove(0);
    let run = org.run(&["get", &call.id]).await;
    run.assert_code(0);
    for p in &call.participants {
        assert!(
            run.stdout.contains(&p.id),
            "participant {} missing:\n{}",
            p.id,
            run.stdout
        );
        for (k, v) in &p.attributes {
            assert!(
                run.stdout.contains(&format!("{k} = \"{v}\"")),
                "{k} missing:\n{}",
                run.stdout
            );
        }
    }
    assert!(run.stdout.contains("customer"));
}

#[tokio::test]
async fn get_json_is_the_call_conversation() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let call = org.live_calls().remove(0);
    let run = org.run(&["get", &call.id, "--json"]).await;
    run.assert_code(0);
    let parsed: genesys_core::models::CallConversation =
        serde_json::from_str(&run.stdout).expect("JSON call");
    assert_eq!(parsed, call);
}

#[tokio::test]
async fn get_of_an_unknown_conversation_fails_with_the_genesys_error_code() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let run = org
        .run(&["get", "00000000-0000-4000-8000-000000000000"])
        .await;
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("conversation.error.conversation.not.found"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn missing_credentials_are_named_in_the_error() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let out = output(
        org.command(&["get", "00000000-0000-4000-8000-000000000000"])
            .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
    )
    .await;
    let stderr = &out.stderr;
    assert_eq!(out.code, 1, "{stderr}");
    assert!(
        stderr.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
        "{stderr}"
    );
}

#[tokio::test]
async fn apply_without_credentials_fails_before_recording_a_run() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let call = org.live_calls().remove(0);
    org.write(
        "desired.csv",
        &format!("conversation_id,campaign\n{},spring\n", call.id),
    );
    let out = output(
        org.command(&["apply", "desired.csv"])
            .env_remove("GENESYSCLOUD_OAUTHCLIENT_ID"),
    )
    .await;
    let stderr = &out.stderr;
    assert_eq!(out.code, 1, "{stderr}");
    assert!(stderr.contains("GENESYSCLOUD_OAUTHCLIENT_ID"), "{stderr}");
    assert!(
        !org.audit_path().exists(),
        "no run is recorded for a configuration error"
    );
}

#[tokio::test]
async fn set_patches_only_the_keys_that_differ_then_verifies() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let call = org.live_calls().remove(0);
    let customer = customer_of(&call).clone();
    let run = org
        .run(&["set", &call.id, "campaign=spring", "tier=gold"])
        .await;
    run.assert_code(0);
    assert!(run.stdout.contains("verified"), "{}", run.stdout);

    let now = org
        .live_calls()
        .into_iter()
        .find(|c| c.id == call.id)
        .unwrap();
    let attrs = &customer_of(&now).attributes;
    assert_eq!(attrs.get("campaign").map(String::as_str), Some("spring"));
    assert_eq!(attrs.get("tier").map(String::as_str), Some("gold"));
    let patches: Vec<_> = org
        .state()
        .request_log()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "one PATCH for one participant");
    assert!(patches[0].path.contains(&customer.id));

    // The same values again: nothing differs, so nothing is sent.
    let again = org
        .run(&["set", &call.id, "campaign=spring", "tier=gold"])
        .await;
    again.assert_code(0);
    assert!(again.stdout.contains("unchanged"), "{}", again.stdout);
    assert_eq!(org.count_requests("PATCH", "/attributes"), 1);
}

#[tokio::test]
async fn set_on_an_ended_call_is_skipped_with_a_reason_and_exits_as_its_run_recorded() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let call = org.live_calls().remove(0);
    org.state().end_call(&call.id);
    let run: Run = org.run(&["set", &call.id, "campaign=spring"]).await;
    // A call that ended is nothing left to do, for `set` as for `apply`: exit 0, recorded 0.
    run.assert_code(0);
    assert!(run.stdout.contains("skipped"), "{}", run.stdout);
    assert_eq!(org.count_requests("PATCH", "/attributes"), 0);
    assert_eq!(latest_run(&org).await["exit_code"], 0);
}

#[tokio::test]
async fn no_secret_or_token_appears_in_output_even_at_trace_level() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let call = org.live_calls().remove(0);
    let out = output(
        org.command(&["-vvv", "set", &call.id, "campaign=spring"])
            .env("RUST_LOG", "trace"),
    )
    .await;
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 0, "{all}");
    let (_, secret) = org.sim.demo_credentials();
    assert!(!all.contains(&secret), "the client secret leaked");
    for token in org.state().issued_tokens() {
        assert!(!all.contains(&token), "a bearer token leaked");
    }
    assert!(
        all.contains("TRACE") || all.contains("DEBUG"),
        "trace logging was on"
    );
}
