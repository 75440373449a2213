//! The logins part of the metadata-store contract, on every store: device authorizations, OAuth
//! states, and identity sign-ins, with single use and one user per identity under concurrency.

use std::sync::{Arc, Mutex};

use packr::audit::AuditEvent;
use packr::clock;
use packr::store::Store;
use packr::store::accounts::UserRow;
use packr::store::audit::AuditQuery;
use packr::store::logins::{
    DeviceRow, IdentityFacts, IdentitySignIn, LinkDecision, LinkRefusal, LinkStep, NewAccount,
    NewDevice, SignInOutcome, StateRow,
};
use serde_json::json;

use crate::support::stores::{StoreUnderTest, on_each_store};

const HOUR: i64 = 3_600_000;

fn new_device(code: &str, expires_at: i64) -> NewDevice {
    NewDevice {
        device_code_hash: format!("device-{code}"),
        user_code_hash: format!("user-{code}"),
        row: DeviceRow {
            id: 0,
            client: "npm".into(),
            requested_role: Some("maintainer".into()),
            scopes: vec!["@acme".into(), "@other".into()],
            ip: Some("10.0.0.7".into()),
            created_at: clock::now_ms(),
            expires_at,
            interval_secs: 5,
            last_polled_at: None,
            status: "pending".into(),
            user_id: None,
        },
    }
}

fn state(hash: &str, expires_at: i64) -> StateRow {
    StateRow {
        state_hash: hash.into(),
        provider: "oidc".into(),
        pkce_verifier: "verifier".into(),
        nonce: "nonce".into(),
        return_code: "BCDF-GHJK".into(),
        redirect_uri: "http://127.0.0.1/api/auth/callback/oidc".into(),
        created_at: 0,
        expires_at,
    }
}

fn identity(provider: &str, subject: &str, email: Option<&str>) -> IdentitySignIn {
    IdentitySignIn {
        provider: provider.into(),
        subject: subject.into(),
        email: email.map(str::to_owned),
    }
}

fn event(user: &UserRow, step: LinkStep) -> AuditEvent {
    let action = match step {
        LinkStep::Created => "user.created",
        LinkStep::Linked => "user.identity.linked",
        LinkStep::SignedIn => "user.login",
    };
    let mut event = AuditEvent::by_operator(action, json!({}));
    event.actor_id = Some(user.id);
    event.actor_name = Some(user.name.clone());
    event
}

fn account(names: &[&str], email: &str, role: &str) -> NewAccount {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    NewAccount {
        names: Box::new(names.into_iter()),
        email: email.into(),
        role: role.into(),
    }
}

/// Signs `who` in with a decision made by `decide`; returns the outcome and the facts it saw.
async fn sign_in(
    store: &Store,
    who: IdentitySignIn,
    decide: impl FnOnce(&IdentityFacts) -> LinkDecision + Send + 'static,
) -> (SignInOutcome, IdentityFacts) {
    let seen = Arc::new(Mutex::new(None));
    let keep = Arc::clone(&seen);
    let outcome = store
        .sign_in_identity(
            who,
            Box::new(move |facts: &IdentityFacts| {
                *keep.lock().unwrap() = Some(facts.clone());
                decide(facts)
            }),
            Box::new(event),
        )
        .await
        .unwrap();
    let facts = seen.lock().unwrap().take().expect("decide was called");
    (outcome, facts)
}

/// Creates a user for `subject` at provider `seed` (a sign-in that always creates).
async fn create_user(store: &Store, subject: &str, name: &str, email: &str, role: &str) -> UserRow {
    let account = account(&[name], email, role);
    let (outcome, _) = sign_in(store, identity("seed", subject, Some(email)), move |_| {
        LinkDecision::Create(account)
    })
    .await;
    match outcome {
        SignInOutcome::SignedIn(user) => user,
        other => panic!("creating {name}: {other:?}"),
    }
}

async fn actions(store: &Store) -> Vec<(String, String)> {
    let (rows, _) = store
        .query_audit_log(AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    rows.into_iter()
        .rev()
        .map(|r| (r.action, r.actor.unwrap_or_default()))
        .collect()
}

async fn device_authorizations_are_found_by_either_code_and_polls_are_recorded(
    under: StoreUnderTest,
) {
    let store = under.store;
    let expires = clock::now_ms() + HOUR;
    store
        .insert_device_authorization(new_device("a", expires))
        .await
        .unwrap();
    store
        .insert_device_authorization(new_device("b", expires))
        .await
        .unwrap();

    let by_device = store
        .find_device_by_device_code("device-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_device.client, "npm");
    assert_eq!(by_device.requested_role.as_deref(), Some("maintainer"));
    assert_eq!(by_device.scopes, ["@acme", "@other"]);
    assert_eq!(by_device.ip.as_deref(), Some("10.0.0.7"));
    assert_eq!(by_device.expires_at, expires);
    assert_eq!(by_device.interval_secs, 5);
    assert_eq!(by_device.last_polled_at, None);
    assert_eq!(by_device.status, "pending");
    assert_eq!(by_device.user_id, None);
    let by_user = store
        .find_device_by_user_code("user-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_user.id, by_device.id);
    assert!(
        store
            .find_device_by_device_code("user-a")
            .await
            .unwrap()
            .is_none(),
        "a user code is not a device code"
    );
    assert!(
        store
            .find_device_by_user_code("user-zzz")
            .await
            .unwrap()
            .is_none()
    );

    store
        .record_device_poll(by_device.id, 1234, 10)
        .await
        .unwrap();
    let polled = store
        .find_device_by_device_code("device-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(polled.last_polled_at, Some(1234));
    assert_eq!(polled.interval_secs, 10);
    let other = store
        .find_device_by_device_code("device-b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (other.last_polled_at, other.interval_secs),
        (None, 5),
        "only the polled authorization changes"
    );
}

on_each_store!(device_authorizations_are_found_by_either_code_and_polls_are_recorded);

async fn a_device_authorization_is_decided_once_while_pending_and_unexpired(under: StoreUnderTest) {
    let store = under.store;
    let alice = create_user(&store, "1", "alice", "alice@example.test", "maintainer").await;
    let now = clock::now_ms();
    store
        .insert_device_authorization(new_device("a", now + HOUR))
        .await
        .unwrap();
    store
        .insert_device_authorization(new_device("b", now + HOUR))
        .await
        .unwrap();
    store
        .insert_device_authorization(new_device("old", now - 1))
        .await
        .unwrap();

    assert!(
        store
            .decide_device_authorization("user-a", true, alice.id, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .decide_device_authorization("user-a", false, alice.id, now)
            .await
            .unwrap(),
        "a decided authorization is not decided again"
    );
    let approved = store
        .find_device_by_user_code("user-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (approved.status.as_str(), approved.user_id),
        ("approved", Some(alice.id))
    );

    assert!(
        store
            .decide_device_authorization("user-b", false, alice.id, now)
            .await
            .unwrap()
    );
    let denied = store
        .find_device_by_user_code("user-b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(denied.status, "denied");
    assert!(
        store
            .consume_device_authorization(denied.id)
            .await
            .unwrap()
            .is_none(),
        "a denied authorization is never consumed"
    );

    assert!(
        !store
            .decide_device_authorization("user-old", true, alice.id, now)
            .await
            .unwrap(),
        "an expired authorization cannot be approved"
    );
    assert!(
        !store
            .decide_device_authorization("user-none", true, alice.id, now)
            .await
            .unwrap()
    );
}

on_each_store!(a_device_authorization_is_decided_once_while_pending_and_unexpired);

async fn an_approved_device_authorization_is_consumed_once_by_one_of_many_polls(
    under: StoreUnderTest,
) {
    let store = under.store;
    let alice = create_user(&store, "1", "alice", "alice@example.test", "maintainer").await;
    let now = clock::now_ms();
    store
        .insert_device_authorization(new_device("a", now + HOUR))
        .await
        .unwrap();
    let id = store
        .find_device_by_device_code("device-a")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert!(
        store
            .consume_device_authorization(id)
            .await
            .unwrap()
            .is_none(),
        "a pending authorization is not consumed"
    );
    assert!(
        store
            .decide_device_authorization("user-a", true, alice.id, now)
            .await
            .unwrap()
    );
    warm_up(&store, 8).await;

    let polls: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume_device_authorization(id).await })
        })
        .collect();
    let mut winners = Vec::new();
    for poll in polls {
        if let Some(user) = poll.await.unwrap().expect("no store error") {
            winners.push(user);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one poll gets the token");
    assert_eq!(winners[0].id, alice.id);
    assert_eq!(winners[0].name, "alice");
    assert_eq!(winners[0].role, "maintainer");
    let row = store
        .find_device_by_device_code("device-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "consumed");
    assert!(
        store
            .consume_device_authorization(id)
            .await
            .unwrap()
            .is_none()
    );
}

on_each_store!(an_approved_device_authorization_is_consumed_once_by_one_of_many_polls);

async fn expired_device_authorizations_are_deleted(under: StoreUnderTest) {
    let store = under.store;
    store
        .insert_device_authorization(new_device("a", 100))
        .await
        .unwrap();
    store
        .insert_device_authorization(new_device("b", 200))
        .await
        .unwrap();
    store
        .insert_device_authorization(new_device("c", 300))
        .await
        .unwrap();
    assert_eq!(
        store
            .delete_expired_device_authorizations(250)
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .find_device_by_device_code("device-a")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_device_by_device_code("device-c")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .delete_expired_device_authorizations(250)
            .await
            .unwrap(),
        0
    );
}

on_each_store!(expired_device_authorizations_are_deleted);

async fn an_oauth_state_is_taken_once_and_expired_ones_are_swept(under: StoreUnderTest) {
    let store = under.store;
    store.insert_oauth_state(state("old", 5), 0).await.unwrap();
    store
        .insert_oauth_state(state("new", 100), 10)
        .await
        .unwrap();
    assert!(
        store.take_oauth_state("old").await.unwrap().is_none(),
        "storing a state sweeps the expired ones"
    );
    let taken = store.take_oauth_state("new").await.unwrap().unwrap();
    assert_eq!(taken.provider, "oidc");
    assert_eq!(taken.pkce_verifier, "verifier");
    assert_eq!(taken.nonce, "nonce");
    assert_eq!(taken.return_code, "BCDF-GHJK");
    assert_eq!(
        taken.redirect_uri,
        "http://127.0.0.1/api/auth/callback/oidc"
    );
    assert_eq!((taken.created_at, taken.expires_at), (0, 100));
    assert!(store.take_oauth_state("new").await.unwrap().is_none());
    assert!(store.take_oauth_state("unknown").await.unwrap().is_none());
}

on_each_store!(an_oauth_state_is_taken_once_and_expired_ones_are_swept);

async fn one_of_many_concurrent_takes_of_a_state_gets_it(under: StoreUnderTest) {
    let store = under.store;
    warm_up(&store, 8).await;
    let expires = clock::now_ms() + HOUR;
    store
        .insert_oauth_state(state("s", expires), 0)
        .await
        .unwrap();
    let takes: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_oauth_state("s").await })
        })
        .collect();
    let mut taken = 0;
    for take in takes {
        if take.await.unwrap().expect("no store error").is_some() {
            taken += 1;
        }
    }
    assert_eq!(taken, 1);
}

on_each_store!(one_of_many_concurrent_takes_of_a_state_gets_it);

async fn a_first_sign_in_creates_and_links_its_user_and_the_next_signs_in_as_it(
    under: StoreUnderTest,
) {
    let store = under.store;
    let who = || identity("github", "42", Some("Octo@Example.test"));
    let (outcome, facts) = sign_in(&store, who(), |_| {
        LinkDecision::Create(account(&["octocat"], "Octo@Example.test", "maintainer"))
    })
    .await;
    assert!(facts.linked.is_none() && facts.same_email.is_empty());
    let SignInOutcome::SignedIn(octocat) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (octocat.name.as_str(), octocat.email.as_str()),
        ("octocat", "Octo@Example.test")
    );
    assert_eq!(octocat.role, "maintainer");
    assert_eq!(octocat.password_hash, None);

    let (outcome, facts) = sign_in(&store, who(), |facts| {
        LinkDecision::SignIn(facts.linked.as_ref().unwrap().user.clone())
    })
    .await;
    let linked = facts.linked.expect("the identity is linked now");
    assert_eq!(linked.user.id, octocat.id);
    assert!(linked.enabled);
    assert!(
        facts.same_email.is_empty(),
        "e-mail matches are not loaded for a linked identity"
    );
    assert!(matches!(outcome, SignInOutcome::SignedIn(ref user) if user.id == octocat.id));

    let (_, facts) = sign_in(&store, identity("gitlab", "42", None), |_| {
        LinkDecision::Refuse(LinkRefusal::NoAccount)
    })
    .await;
    assert!(
        facts.linked.is_none(),
        "an identity is one provider's subject"
    );

    let octo = || "octocat".to_owned();
    assert_eq!(
        actions(&store).await,
        [
            ("user.created".to_owned(), octo()),
            ("user.identity.linked".to_owned(), octo()),
            ("user.login".to_owned(), octo()),
            ("user.login".to_owned(), octo()),
        ]
    );
}

on_each_store!(a_first_sign_in_creates_and_links_its_user_and_the_next_signs_in_as_it);

async fn a_new_user_takes_the_first_free_name_or_none(under: StoreUnderTest) {
    let store = under.store;
    create_user(&store, "1", "jane", "", "maintainer").await;
    create_user(&store, "2", "JANE-2", "", "maintainer").await;
    let (outcome, _) = sign_in(&store, identity("github", "7", None), |_| {
        LinkDecision::Create(account(&["jane", "jane-2", "jane-3"], "", "maintainer"))
    })
    .await;
    assert!(
        matches!(outcome, SignInOutcome::SignedIn(ref user) if user.name == "jane-3"),
        "names are taken regardless of case: {outcome:?}"
    );

    let before = actions(&store).await.len();
    let (outcome, _) = sign_in(&store, identity("github", "8", None), |_| {
        LinkDecision::Create(account(&["jane", "Jane-2"], "", "maintainer"))
    })
    .await;
    assert!(matches!(outcome, SignInOutcome::NoFreeName), "{outcome:?}");
    assert_eq!(actions(&store).await.len(), before, "nothing is recorded");
    let (_, facts) = sign_in(&store, identity("github", "8", None), |_| {
        LinkDecision::Refuse(LinkRefusal::NoAccount)
    })
    .await;
    assert!(facts.linked.is_none(), "nothing is linked");
}

on_each_store!(a_new_user_takes_the_first_free_name_or_none);

async fn an_identity_links_to_the_users_with_its_email_regardless_of_case(under: StoreUnderTest) {
    let store = under.store;
    let alice = create_user(&store, "1", "alice", "Alice@Example.test", "admin").await;
    let (outcome, facts) = sign_in(
        &store,
        identity("google", "g-1", Some("alice@example.TEST")),
        |facts| LinkDecision::Link(facts.same_email[0].user.clone()),
    )
    .await;
    assert_eq!(facts.same_email.len(), 1);
    assert_eq!(facts.same_email[0].user.id, alice.id);
    assert_eq!(facts.same_email[0].user.role, "admin");
    assert!(facts.same_email[0].enabled);
    assert!(matches!(outcome, SignInOutcome::SignedIn(ref user) if user.id == alice.id));
    let (_, facts) = sign_in(&store, identity("google", "g-1", None), |_| {
        LinkDecision::Refuse(LinkRefusal::NoAccount)
    })
    .await;
    assert_eq!(facts.linked.map(|k| k.user.id), Some(alice.id));
    let tail: Vec<_> = actions(&store).await.split_off(3);
    assert_eq!(
        tail,
        [
            ("user.identity.linked".to_owned(), "alice".to_owned()),
            ("user.login".to_owned(), "alice".to_owned()),
        ]
    );

    let other = create_user(&store, "2", "alice2", "ALICE@example.test", "reader").await;
    let (_, facts) = sign_in(
        &store,
        identity("google", "g-2", Some("alice@example.test")),
        |_| LinkDecision::Refuse(LinkRefusal::SeveralAccounts),
    )
    .await;
    let ids: Vec<_> = facts.same_email.iter().map(|k| k.user.id).collect();
    assert_eq!(ids, [alice.id, other.id], "every match, by id");
}

on_each_store!(an_identity_links_to_the_users_with_its_email_regardless_of_case);

async fn a_refused_sign_in_writes_nothing(under: StoreUnderTest) {
    let store = under.store;
    for refusal in [
        LinkRefusal::NoAccount,
        LinkRefusal::SeveralAccounts,
        LinkRefusal::AdminNeedsLink,
        LinkRefusal::DomainNotAllowed,
        LinkRefusal::Disabled("x".into()),
    ] {
        let expected = refusal.clone();
        let (outcome, _) = sign_in(
            &store,
            identity("github", "1", Some("a@example.test")),
            move |_| LinkDecision::Refuse(refusal),
        )
        .await;
        assert!(matches!(outcome, SignInOutcome::Refused(ref r) if *r == expected));
    }
    assert!(actions(&store).await.is_empty());
    let (_, facts) = sign_in(&store, identity("github", "1", None), |_| {
        LinkDecision::Refuse(LinkRefusal::NoAccount)
    })
    .await;
    assert!(facts.linked.is_none());
}

on_each_store!(a_refused_sign_in_writes_nothing);

/// Opens connections for `n` concurrent callers, so that a race starts with all of them at once
/// rather than behind the opening of a connection.
async fn warm_up(store: &Store, n: usize) {
    let reads: Vec<_> = (0..n)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.find_device_by_user_code("none").await })
        })
        .collect();
    for read in reads {
        read.await.unwrap().unwrap();
    }
}

async fn concurrent_first_sign_ins_of_one_identity_make_one_user(under: StoreUnderTest) {
    let store = under.store;
    warm_up(&store, 8).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                sign_in(
                    &store,
                    identity("github", "42", Some("octo@example.test")),
                    |facts| match (&facts.linked, facts.same_email.as_slice()) {
                        (Some(linked), _) => LinkDecision::SignIn(linked.user.clone()),
                        (None, [one]) => LinkDecision::Link(one.user.clone()),
                        (None, _) => LinkDecision::Create(account(
                            &["octocat", "octocat-2", "octocat-3"],
                            "octo@example.test",
                            "maintainer",
                        )),
                    },
                )
                .await
                .0
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            SignInOutcome::SignedIn(user) => ids.push(user.id),
            other => panic!("{other:?}"),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1, "every sign-in is the same user");
    let all = actions(&store).await;
    let count = |action: &str| all.iter().filter(|(a, _)| a == action).count();
    assert_eq!(count("user.created"), 1);
    assert_eq!(count("user.identity.linked"), 1);
    assert_eq!(count("user.login"), 8);
    if let Some(database) = &under.database {
        let client = database.connect().await;
        let users: i64 = client
            .query_one("SELECT COUNT(*) FROM users", &[])
            .await
            .unwrap()
            .get(0);
        let identities: i64 = client
            .query_one("SELECT COUNT(*) FROM user_identities", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!((users, identities), (1, 1));
    }
}

on_each_store!(concurrent_first_sign_ins_of_one_identity_make_one_user);

/// A disabled user is reported so, linked or matched by e-mail. Runs without `on_each_store!`:
/// disabling belongs to the accounts part of the store, so each backend does it directly.
async fn disabled_users_are_reported_disabled(store: Store, disable: impl AsyncFn(i64)) {
    let bob = create_user(&store, "1", "bob", "bob@example.test", "maintainer").await;
    disable(bob.id).await;
    let (_, facts) = sign_in(
        &store,
        identity("seed", "1", Some("bob@example.test")),
        |_| LinkDecision::Refuse(LinkRefusal::Disabled("bob".into())),
    )
    .await;
    let linked = facts.linked.unwrap();
    assert_eq!(linked.user.id, bob.id);
    assert!(!linked.enabled);
    let (_, facts) = sign_in(
        &store,
        identity("github", "9", Some("bob@example.test")),
        |_| LinkDecision::Refuse(LinkRefusal::Disabled("bob".into())),
    )
    .await;
    assert!(!facts.same_email[0].enabled);
}

mod disabled_users_are_reported_disabled {
    use std::sync::Arc;

    use packr::store::Sqlite;

    use crate::support::stores::{Backend, StoreUnderTest};

    #[tokio::test]
    async fn on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Sqlite::open(dir.path()).unwrap());
        let path = dir.path().join("packr.db");
        super::disabled_users_are_reported_disabled(store, async |id| {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute("UPDATE users SET disabled_at = 1 WHERE id = ?1", [id])
                .unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn on_postgres() {
        let under = StoreUnderTest::open(Backend::Postgres).await;
        let client = under.database.as_ref().unwrap().connect().await;
        super::disabled_users_are_reported_disabled(under.store.clone(), async |id| {
            client
                .execute("UPDATE users SET disabled_at = 1 WHERE id = $1", &[&id])
                .await
                .unwrap();
        })
        .await;
    }
}

async fn one_of_many_concurrent_decisions_on_a_user_code_counts(under: StoreUnderTest) {
    let store = under.store;
    let alice = create_user(&store, "1", "alice", "alice@example.test", "maintainer").await;
    let now = clock::now_ms();
    store
        .insert_device_authorization(new_device("a", now + HOUR))
        .await
        .unwrap();
    warm_up(&store, 8).await;
    let decisions: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let approve = n % 2 == 0;
                let decided = store
                    .decide_device_authorization("user-a", approve, alice.id, now)
                    .await;
                (approve, decided)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for decision in decisions {
        let (approve, decided) = decision.await.unwrap();
        if decided.expect("no store error") {
            winners.push(approve);
        }
    }
    assert_eq!(winners.len(), 1, "one decision counts");
    let row = store
        .find_device_by_user_code("user-a")
        .await
        .unwrap()
        .unwrap();
    let expected = if winners[0] { "approved" } else { "denied" };
    assert_eq!(row.status, expected);
}

on_each_store!(one_of_many_concurrent_decisions_on_a_user_code_counts);
