//! The orgs part of the metadata-store contract, on every store: orgs, members, teams and
//! grants behind the core's check of the acting user, listings with the reader's standing,
//! scope reservations, and concurrent changes.

use std::sync::Arc;

use packr::audit::AuditEvent;
use packr::orgs::OrgError;
use packr::store::Store;
use packr::store::audit::AuditQuery;
use packr::store::orgs::{
    Authorize, ListedPackage, OrgAnswer, OrgChange, OrgFacts, OrgOutcome, OrgQuery, ReserveOutcome,
    ScopeStanding,
};
use packr::store::packages::{NewVersion, PublishPlan, VersionRow};
use serde_json::json;

use crate::store_packages::add_user;
use crate::support::stores::{StoreUnderTest, on_each_store};

fn event(action: &'static str) -> Vec<AuditEvent> {
    vec![AuditEvent::by_operator(action, json!({}))]
}

fn anyone() -> Authorize {
    Box::new(|_, _| Ok(()))
}

/// The core's check in miniature: only org admins.
fn admins_only() -> Authorize {
    Box::new(|org, role| match role {
        Some("admin") => Ok(()),
        _ => Err(OrgError::Forbidden(format!("not an admin of {}", org.slug))),
    })
}

async fn count(store: &Store, action: &str) -> i64 {
    let query = AuditQuery {
        action: Some(action.to_owned()),
        limit: 1,
        ..AuditQuery::default()
    };
    store.query_audit_log(query).await.unwrap().1
}

async fn change(store: &Store, actor: i64, change: OrgChange) -> OrgOutcome {
    store
        .change_org("acme", actor, change, anyone(), event("org.changed"))
        .await
        .unwrap()
}

async fn publish(store: &Store, package: &str, access: &str, publisher_id: i64) {
    let new = NewVersion {
        attestations: Vec::new(),
        package: package.to_owned(),
        access: access.to_owned(),
        row: VersionRow {
            version: "1.0.0".into(),
            manifest: "{}".into(),
            integrity: "sha512-x".into(),
            shasum: "x".into(),
            blob_key: "x".into(),
            size: 1,
            deprecated: None,
            readme: None,
            published_at: 1,
            signatures: Vec::new(),
        },
        tag: "latest".into(),
        publisher_id,
    };
    store
        .commit_publish(new, vec![], Box::new(|_| Ok(PublishPlan::default())))
        .await
        .unwrap();
}

async fn orgs_are_created_once_and_listed(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    let org = store
        .create_org("acme", "Acme Inc.", event("org.created"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (org.slug.as_str(), org.display_name.as_str()),
        ("acme", "Acme Inc.")
    );
    let again = store
        .create_org("acme", "Other", event("org.created"))
        .await;
    assert!(again.unwrap().is_none());
    store.create_org("beta", "Beta", vec![]).await.unwrap();
    let slugs: Vec<_> = store
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.slug)
        .collect();
    assert_eq!(slugs, ["acme", "beta"]);
    assert_eq!(count(&store, "org.created").await, 1);

    let set = OrgChange::SetMember {
        user: "alice".into(),
        role: "admin".into(),
    };
    assert_eq!(
        change(&store, alice, set).await,
        OrgOutcome::MemberSet { members: 1 }
    );
    let orgs = store.user_orgs(alice).await.unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(
        (orgs[0].0.slug.as_str(), orgs[0].1.as_str()),
        ("acme", "admin")
    );
}

on_each_store!(orgs_are_created_once_and_listed);

async fn changes_need_the_check_to_pass_and_name_what_is_missing(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let bob = add_user(&under, "bob").await;
    add_user(&under, "carol").await;
    let store = under.store.clone();
    store.create_org("acme", "Acme", vec![]).await.unwrap();
    let set = |user: &str, role: &str| OrgChange::SetMember {
        user: user.into(),
        role: role.into(),
    };
    let nobody = store
        .change_org("nope", alice, set("bob", "reader"), anyone(), vec![])
        .await
        .unwrap();
    assert_eq!(nobody, OrgOutcome::NoOrg);
    change(&store, alice, set("alice", "admin")).await;
    change(&store, alice, set("bob", "reader")).await;
    let refused = store
        .change_org(
            "acme",
            bob,
            set("carol", "admin"),
            admins_only(),
            event("x"),
        )
        .await;
    assert!(
        matches!(refused, Err(OrgError::Forbidden(_))),
        "{refused:?}"
    );
    let by_admin = store
        .change_org(
            "acme",
            alice,
            set("carol", "maintainer"),
            admins_only(),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(by_admin, OrgOutcome::MemberSet { members: 3 });
    assert_eq!(
        change(&store, alice, set("dave", "reader")).await,
        OrgOutcome::NoUser
    );
    assert_eq!(count(&store, "x").await, 0);

    let team = |team: &str| OrgChange::CreateTeam {
        team: team.into(),
        description: String::new(),
    };
    assert_eq!(change(&store, alice, team("devs")).await, OrgOutcome::Done);
    assert_eq!(
        change(&store, alice, team("devs")).await,
        OrgOutcome::TeamExists
    );
    let add = |user: &str| OrgChange::AddTeamMember {
        team: "devs".into(),
        user: user.into(),
    };
    assert_eq!(change(&store, alice, add("bob")).await, OrgOutcome::Done);
    let remove = OrgChange::RemoveMember {
        user: "carol".into(),
    };
    assert_eq!(
        change(&store, alice, remove.clone()).await,
        OrgOutcome::Done
    );
    assert_eq!(change(&store, alice, remove).await, OrgOutcome::NotAMember);
    assert_eq!(
        change(&store, alice, add("carol")).await,
        OrgOutcome::NotAMember
    );
    let ghost_team = OrgChange::AddTeamMember {
        team: "ghosts".into(),
        user: "bob".into(),
    };
    assert_eq!(change(&store, alice, ghost_team).await, OrgOutcome::NoTeam);
    let leave = OrgChange::RemoveTeamMember {
        team: "devs".into(),
        user: "alice".into(),
    };
    assert_eq!(change(&store, alice, leave).await, OrgOutcome::NotInTeam);

    let grant = OrgChange::Grant {
        team: "devs".into(),
        package: "@acme/app".into(),
        permission: "write".into(),
    };
    assert_eq!(change(&store, alice, grant).await, OrgOutcome::Done);
    let revoke = |package: &str| OrgChange::Revoke {
        team: "devs".into(),
        package: package.into(),
    };
    assert_eq!(
        change(&store, alice, revoke("@acme/other")).await,
        OrgOutcome::NoGrant
    );

    let ask = |query| store.query_org("acme", bob, query, anyone());
    let members = ask(OrgQuery::Members).await.unwrap();
    let OrgAnswer::Map(members) = members else {
        panic!("{members:?}")
    };
    assert_eq!(members.len(), 2);
    assert_eq!(members.get("bob").map(String::as_str), Some("reader"));
    assert_eq!(
        ask(OrgQuery::Teams).await.unwrap(),
        OrgAnswer::List(vec!["devs".into()])
    );
    assert_eq!(
        ask(OrgQuery::TeamMembers("devs".into())).await.unwrap(),
        OrgAnswer::List(vec!["bob".into()])
    );
    let OrgAnswer::Map(grants) = ask(OrgQuery::TeamPackages("devs".into())).await.unwrap() else {
        panic!("a map")
    };
    assert_eq!(grants.get("@acme/app").map(String::as_str), Some("write"));
    assert_eq!(
        ask(OrgQuery::TeamMembers("ghosts".into())).await.unwrap(),
        OrgAnswer::NoTeam
    );
    let refused = store
        .query_org("acme", bob, OrgQuery::Teams, admins_only())
        .await;
    assert!(matches!(refused, Err(OrgError::Forbidden(_))));
    assert_eq!(
        store
            .query_org("nope", bob, OrgQuery::Teams, anyone())
            .await
            .unwrap(),
        OrgAnswer::NoOrg
    );

    let facts = store.org_facts("acme", "@acme/app", bob).await.unwrap();
    assert_eq!(
        facts,
        OrgFacts {
            slug: "acme".into(),
            member_role: Some("reader".into()),
            team_grant: Some("write".into())
        }
    );
    let delete = OrgChange::DeleteTeam {
        team: "devs".into(),
    };
    assert_eq!(
        change(&store, alice, delete.clone()).await,
        OrgOutcome::Done
    );
    assert_eq!(change(&store, alice, delete).await, OrgOutcome::NoTeam);
    let facts = store.org_facts("acme", "@acme/app", bob).await.unwrap();
    assert_eq!(facts.team_grant, None);
}

on_each_store!(changes_need_the_check_to_pass_and_name_what_is_missing);

async fn listings_carry_the_readers_standing(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let bob = add_user(&under, "bob").await;
    let store = under.store.clone();
    store.create_org("acme", "Acme", vec![]).await.unwrap();
    let set = OrgChange::SetMember {
        user: "alice".into(),
        role: "maintainer".into(),
    };
    change(&store, alice, set).await;
    publish(&store, "@acme/secret", "restricted", alice).await;
    publish(&store, "@acme/open", "public", alice).await;
    publish(&store, "@acmeish/other", "restricted", alice).await;
    publish(&store, "plain", "public", alice).await;

    assert_eq!(store.org_packages("nope", None).await.unwrap(), None);
    let mut listed = store
        .org_packages("acme", Some(bob))
        .await
        .unwrap()
        .unwrap();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let bobs = OrgFacts {
        slug: "acme".into(),
        member_role: None,
        team_grant: None,
    };
    assert_eq!(
        listed,
        [
            ListedPackage {
                name: "@acme/open".into(),
                access: "public".into(),
                org: Some(bobs.clone()),
            },
            ListedPackage {
                name: "@acme/secret".into(),
                access: "restricted".into(),
                org: Some(bobs),
            },
        ]
    );
    let as_alice = store
        .org_packages("acme", Some(alice))
        .await
        .unwrap()
        .unwrap();
    assert!(
        as_alice
            .iter()
            .all(|p| p.org.as_ref().unwrap().member_role.as_deref() == Some("maintainer"))
    );

    assert_eq!(
        store.maintained_packages("nobody", None).await.unwrap(),
        None
    );
    assert_eq!(
        store.maintained_packages("bob", None).await.unwrap(),
        Some(vec![])
    );
    let mut mine = store
        .maintained_packages("alice", None)
        .await
        .unwrap()
        .unwrap();
    mine.sort_by(|a, b| a.name.cmp(&b.name));
    let orgs: Vec<_> = mine
        .iter()
        .map(|p| (p.name.as_str(), p.org.as_ref().map(|o| o.slug.as_str())))
        .collect();
    assert_eq!(
        orgs,
        [
            ("@acme/open", Some("acme")),
            ("@acme/secret", Some("acme")),
            ("@acmeish/other", None),
            ("plain", None)
        ]
    );
    let facts = store.write_facts("@acme/new", bob).await.unwrap();
    assert_eq!(facts.org.unwrap().member_role, None);
}

on_each_store!(listings_carry_the_readers_standing);

async fn scopes_are_reserved_unless_they_are_orgs(under: StoreUnderTest) {
    let alice = add_user(&under, "alice").await;
    let store = under.store.clone();
    store.create_org("acme", "Acme", vec![]).await.unwrap();
    let event = || {
        Box::new(|id: i64, name: &str| {
            let mut event = AuditEvent::by_operator("scope.reserved", json!({ "owner": name }));
            event.actor_id = Some(id);
            event
        }) as packr::store::orgs::ReserveEvent
    };
    let outcome = store
        .reserve_scope("acme", "alice", "operator", event())
        .await;
    assert_eq!(outcome.unwrap(), ReserveOutcome::IsOrg);
    let outcome = store
        .reserve_scope("mine", "nobody", "operator", event())
        .await;
    assert_eq!(outcome.unwrap(), ReserveOutcome::NoUser);
    assert_eq!(
        store.scope_standing("mine", alice).await.unwrap(),
        ScopeStanding::Free
    );
    let outcome = store
        .reserve_scope("mine", "alice", "operator", event())
        .await;
    assert_eq!(outcome.unwrap(), ReserveOutcome::Reserved);
    assert_eq!(
        store.scope_standing("mine", alice).await.unwrap(),
        ScopeStanding::Owned {
            owner_id: alice,
            owner: "alice".into()
        }
    );
    assert_eq!(count(&store, "scope.reserved").await, 1);
    assert_eq!(
        store.scope_standing("acme", alice).await.unwrap(),
        ScopeStanding::Org {
            member_role: None,
            writes_a_package: false
        }
    );
}

on_each_store!(scopes_are_reserved_unless_they_are_orgs);

async fn concurrent_org_changes_all_land_and_one_create_wins(under: StoreUnderTest) {
    let mut users = Vec::new();
    for n in 0..8 {
        users.push(format!("user{n}"));
        add_user(&under, &format!("user{n}")).await;
    }
    let store = under.store.clone();
    let creates: Vec<_> = (0..8)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .create_org("acme", &format!("Acme {n}"), event("org.created"))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in creates {
        if task.await.unwrap().unwrap().is_some() {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(count(&store, "org.created").await, 1);

    let joins: Vec<_> = users
        .into_iter()
        .map(|user| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let set = OrgChange::SetMember {
                    user,
                    role: "reader".into(),
                };
                store
                    .change_org("acme", 0, set, anyone(), event("org.member.added"))
                    .await
            })
        })
        .collect();
    let mut sizes = Vec::new();
    for task in joins {
        match task.await.unwrap().unwrap() {
            OrgOutcome::MemberSet { members } => sizes.push(members),
            other => panic!("{other:?}"),
        }
    }
    sizes.sort_unstable();
    assert_eq!(
        sizes,
        (1..=8).collect::<Vec<_>>(),
        "changes to one org are serialized"
    );
    assert_eq!(count(&store, "org.member.added").await, 8);
}

on_each_store!(concurrent_org_changes_all_land_and_one_create_wins);
