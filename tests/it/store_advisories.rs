//! The advisories part of the metadata-store contract, on every store.

use std::collections::BTreeSet;

use packr::audit::AuditEvent;
use packr::store::advisories::{AdvisoryRow, Cvss, NewAdvisory};
use packr::store::audit::AuditQuery;
use serde_json::json;

use crate::support::stores::{StoreUnderTest, on_each_store};

fn advisory(package: &str, range: &str) -> NewAdvisory {
    NewAdvisory {
        package: package.to_owned(),
        vulnerable_versions: range.to_owned(),
        patched_versions: Some(">=1.1.0".to_owned()),
        severity: "high".to_owned(),
        title: format!("Bad {package}"),
        url: Some("https://example.com/advisories/1".to_owned()),
        cwe: vec!["CWE-79".to_owned(), "CWE-1321".to_owned()],
        cvss: Some(Cvss {
            score: 7.5,
            vector: Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N".to_owned()),
        }),
        created_at: 1_700_000_000_000,
        created_by: Some("root".to_owned()),
    }
}

fn event(action: &'static str) -> Box<dyn FnOnce(&AdvisoryRow) -> AuditEvent + Send> {
    Box::new(move |row| {
        AuditEvent::by_operator(action, json!({ "advisory_id": row.id })).on_package(&row.package)
    })
}

async fn advisories_are_created_listed_and_deleted_with_their_events(under: StoreUnderTest) {
    let store = under.store;
    let first = store
        .create_advisory(advisory("@acme/vuln", "<1.1.0"), event("advisory.created"))
        .await
        .unwrap();
    assert_eq!(first.package, "@acme/vuln");
    assert_eq!(first.vulnerable_versions, "<1.1.0");
    assert_eq!(first.cwe, ["CWE-79", "CWE-1321"]);
    assert_eq!(first.cvss.as_ref().unwrap().score, 7.5);
    assert_eq!(first.created_by.as_deref(), Some("root"));
    let mut bare = advisory("left-pad", "1.0.0 || >=2.0.0 <2.1.0");
    bare.patched_versions = None;
    bare.url = None;
    bare.cwe = Vec::new();
    bare.cvss = None;
    bare.created_by = None;
    let second = store
        .create_advisory(bare, event("advisory.created"))
        .await
        .unwrap();
    assert!(second.id > first.id);
    assert_eq!((second.patched_versions, second.cvss), (None, None));

    let all = store.list_advisories(None).await.unwrap();
    assert_eq!(
        all.iter().map(|a| a.id).collect::<Vec<_>>(),
        [first.id, second.id]
    );
    assert_eq!(all[0], first, "a listed row is the row created");
    let one = store
        .list_advisories(Some("left-pad".into()))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let of = store
        .advisories_of(vec!["@acme/vuln".into(), "lodash".into()])
        .await
        .unwrap();
    assert_eq!(of, std::slice::from_ref(&first));

    let deleted = store
        .delete_advisory(first.id, event("advisory.deleted"))
        .await
        .unwrap();
    assert_eq!(deleted, Some(first.clone()));
    assert_eq!(
        store
            .delete_advisory(first.id, event("advisory.deleted"))
            .await
            .unwrap(),
        None,
        "a second delete finds nothing and records nothing"
    );
    assert_eq!(store.list_advisories(None).await.unwrap().len(), 1);

    let (rows, _) = store
        .query_audit_log(AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let events: Vec<_> = rows
        .iter()
        .map(|r| (r.action.as_str(), r.package.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        events,
        [
            ("advisory.deleted", "@acme/vuln"),
            ("advisory.created", "left-pad"),
            ("advisory.created", "@acme/vuln"),
        ]
    );
}

on_each_store!(advisories_are_created_listed_and_deleted_with_their_events);

async fn many_names_are_looked_up_at_once(under: StoreUnderTest) {
    let store = under.store;
    store
        .create_advisory(advisory("pkg-777", "*"), event("advisory.created"))
        .await
        .unwrap();
    let names: Vec<String> = (0..1500).map(|n| format!("pkg-{n}")).collect();
    let found = store.advisories_of(names.clone()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].package, "pkg-777");
    assert!(store.hosted_names(names).await.unwrap().is_empty());
}

on_each_store!(many_names_are_looked_up_at_once);

async fn hosted_names_are_packages_retired_names_and_names_under_owned_scopes(
    under: StoreUnderTest,
) {
    under
        .execute(
            "INSERT INTO users (id, name, role, created_at) VALUES (1, 'alice', 'maintainer', 0);
             INSERT INTO packages (name, created_at, modified_at) VALUES ('left-pad', 0, 0);
             INSERT INTO retired_packages (name, retired_at) VALUES ('gone', 0);
             INSERT INTO orgs (id, slug, display_name, created_at) VALUES (1, 'acme', 'Acme', 0);
             INSERT INTO scope_owners (scope, user_id, created_at) VALUES ('mine', 1, 0);",
        )
        .await;
    let asked = [
        "left-pad",
        "gone",
        "@acme/not-yet-published",
        "@mine/y",
        "@other/z",
        "lodash",
        "acme",
    ];
    let hosted: BTreeSet<String> = under
        .store
        .hosted_names(asked.iter().map(|n| (*n).to_owned()).collect())
        .await
        .unwrap()
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = ["left-pad", "gone", "@acme/not-yet-published", "@mine/y"]
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    assert_eq!(hosted, expected);
}

on_each_store!(hosted_names_are_packages_retired_names_and_names_under_owned_scopes);
