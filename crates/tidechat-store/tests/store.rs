//! Integration tests for tidechat-store. Every test runs on SQLite and, when
//! `TIDECHAT_TEST_POSTGRES_URL` is set, on PostgreSQL (one fresh database
//! per test).
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use tidechat_domain::*;
use tidechat_store::testing::{self, TestDb};
use tidechat_store::*;

/// `name::sqlite` and `name::postgres` tests running `async fn name(&Store)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = tidechat_store::testing::sqlite().await;
                super::$name(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(db) = tidechat_store::testing::postgres().await else {
                    println!(
                        "skipping {}::postgres: {} is not set",
                        stringify!($name),
                        tidechat_store::testing::POSTGRES_URL_ENV
                    );
                    return;
                };
                super::$name(&db).await;
            }
        }
    )*};
}

both_backends!(
    bundle_round_trip,
    tenant_isolation,
    pagination,
    append_counters,
    concurrent_appends,
    status_changes,
    faq_versions,
    secrets_idempotent,
    revoke_idempotent,
    delete_persona_conflicts,
    migrate_idempotent,
    cancelled_writes_release_locks,
    external_sessions_and_end_users,
    limits_and_usage,
    tools_crud,
    moderation_and_drift,
    offset_pages_deletes_and_tickets,
    documents_embeddings_and_usage_events,
    bus_delivers_by_topic,
);

// ---------------------------------------------------------------- fixtures

/// A timestamp with nanoseconds, to check truncation to microseconds.
fn t(offset_secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
        + Duration::seconds(offset_secs)
        + Duration::nanoseconds(123_456_789)
}

fn micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    truncate_timestamp(ts)
}

struct Tenant {
    org: Organization,
    ws: Workspace,
    persona: Persona,
    key: ApiKey,
    key_hash: String,
}

fn persona(org: &OrgId, ws: &WorkspaceId, name: &str) -> Persona {
    Persona {
        id: PersonaId::generate(),
        org_id: org.clone(),
        workspace_id: ws.clone(),
        name: name.to_owned(),
        system_prompt:
            "Tu es un assistant 🤖 — réponds en français. «quotes» \"double\" 'single' \\ back"
                .to_owned(),
        model_id: "gpt-test".to_owned(),
        temperature: 0.7,
        max_output_tokens: 1024,
        guardrails: vec![
            "no medical advice".into(),
            "pas de politique 🗳️".into(),
            "".into(),
        ],
        fallback_reply: PersonaDraft::DEFAULT_FALLBACK.to_owned(),
        faq_threshold: PersonaDraft::DEFAULT_FAQ_THRESHOLD,
        redact_pii: false,
        drift_threshold: None,
        created_at: t(1),
        updated_at: t(2),
    }
}

async fn tenant(store: &Store, name: &str) -> Tenant {
    let org = Organization {
        id: OrgId::generate(),
        name: format!("{name} Ørg 🌊"),
        created_at: t(0),
    };
    let persona_id = PersonaId::generate();
    let ws = Workspace {
        id: WorkspaceId::generate(),
        org_id: org.id.clone(),
        name: "Default".to_owned(),
        default_persona_id: None,
        faq_version: 0,
        created_at: t(0),
    };
    let mut p = persona(&org.id, &ws.id, "Helper");
    p.id = persona_id;
    let key = ApiKey {
        id: ApiKeyId::generate(),
        org_id: org.id.clone(),
        workspace_id: ws.id.clone(),
        name: "bootstrap".to_owned(),
        prefix: "tc_live_abcd".to_owned(),
        scope: KeyScope::Admin,
        created_at: t(3),
        revoked_at: None,
    };
    let key_hash = format!("hash-{}", key.id);
    // The persona is the workspace's default; all four in one transaction.
    let stored_ws = Workspace {
        default_persona_id: Some(p.id.clone()),
        ..ws.clone()
    };
    store
        .transaction(async |c| {
            repo::orgs::insert_org(c, &org).await?;
            repo::orgs::insert_workspace(c, &stored_ws).await?;
            repo::personas::insert_persona(c, &p).await?;
            repo::keys::insert_api_key(c, &key, &key_hash).await
        })
        .await
        .unwrap();
    Tenant {
        org,
        ws,
        persona: p,
        key,
        key_hash,
    }
}

fn session(tn: &Tenant, user: Option<&str>) -> Session {
    let mut metadata = serde_json::Map::new();
    metadata.insert("channel".into(), json!("web ✨"));
    metadata.insert(
        "nested".into(),
        json!({"a": [1, 2.5, null, true], "b": {"c": "ü"}}),
    );
    Session {
        id: SessionId::generate(),
        org_id: tn.org.id.clone(),
        workspace_id: tn.ws.id.clone(),
        persona_id: tn.persona.id.clone(),
        user_id: user.map(str::to_owned),
        title: Some("Première question 🙂".to_owned()),
        status: SessionStatus::Active,
        message_count: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd_micros: 0,
        metadata,
        external_id: Some(format!("client-{}", SessionId::generate())),
        drift_score: None,
        started_at: t(10),
        last_active_at: t(10),
        ended_at: None,
    }
}

fn new_message(s: &Session, content: &str, billed: bool, at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        session_id: s.id.clone(),
        org_id: s.org_id.clone(),
        role: Role::Assistant,
        content: content.to_owned(),
        input_tokens: 11,
        output_tokens: 22,
        tokens_estimated: true,
        model: "gpt-test".to_owned(),
        latency_ms: 345,
        cost_usd_micros: 1_234,
        moderation_verdict: "allow".to_owned(),
        drift_score: 0.125,
        status: MessageStatus::Partial,
        created_at: at,
        billed,
        api_key_id: None,
        first_token_ms: Some(12),
        original_content: None,
        citations: vec![
            Citation::Faq {
                id: FaqId::generate(),
            },
            Citation::Document {
                id: DocumentId::generate(),
                chunk: 7,
                title: "Guide › Rückgabe 📦".to_owned(),
            },
        ],
        moderation: Vec::new(),
        drift_alpha: None,
        client_message_id: None,
        reply_to: None,
    }
}

fn faq(tn: &Tenant, q: &str) -> FaqEntry {
    FaqEntry {
        id: FaqId::generate(),
        org_id: tn.org.id.clone(),
        workspace_id: tn.ws.id.clone(),
        question: q.to_owned(),
        answer: "Réponse: oui ✅".to_owned(),
        organization_id: Some("sub-org-1".to_owned()),
        tags: vec!["billing".into(), "façade".into()],
        created_at: t(20),
        updated_at: t(21),
    }
}

/// The entity as the store returns it (timestamps truncated to µs).
fn stored_persona(p: &Persona) -> Persona {
    Persona {
        created_at: micros(p.created_at),
        updated_at: micros(p.updated_at),
        ..p.clone()
    }
}

fn stored_session(s: &Session) -> Session {
    Session {
        started_at: micros(s.started_at),
        last_active_at: micros(s.last_active_at),
        ended_at: s.ended_at.map(micros),
        ..s.clone()
    }
}

fn stored_faq(f: &FaqEntry) -> FaqEntry {
    FaqEntry {
        created_at: micros(f.created_at),
        updated_at: micros(f.updated_at),
        ..f.clone()
    }
}

// ---------------------------------------------------------------- tests

async fn bundle_round_trip(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.count_orgs().await.unwrap(), 0);
    let tn = tenant(store, "Acme").await;
    assert_eq!(store.count_orgs().await.unwrap(), 1);

    // Timestamps are truncated to microseconds, identically on both backends.
    assert_eq!(micros(t(0)).timestamp_subsec_nanos(), 123_456_000);

    let org = store.get_org(&tn.org.id).await.unwrap().unwrap();
    assert_eq!(
        org,
        Organization {
            created_at: micros(tn.org.created_at),
            ..tn.org.clone()
        }
    );
    assert!(store.get_org(&OrgId::generate()).await.unwrap().is_none());

    let ws = store.default_workspace(&tn.org.id).await.unwrap().unwrap();
    assert_eq!(
        ws,
        Workspace {
            default_persona_id: Some(tn.persona.id.clone()),
            created_at: micros(tn.ws.created_at),
            ..tn.ws.clone()
        }
    );

    let p = store
        .get_persona(&tn.org.id, &tn.persona.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p, stored_persona(&tn.persona));

    let (key, limits) = store
        .find_api_key_with_limits(&tn.key_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(limits, LimitsPair::default());
    let expected_key = ApiKey {
        created_at: micros(tn.key.created_at),
        ..tn.key.clone()
    };
    assert_eq!(key, expected_key);
    assert!(store
        .find_api_key_with_limits("nope")
        .await
        .unwrap()
        .is_none());
    // The limits of the key's organization and of the key come with it.
    let org_limits = Limits {
        requests_per_minute: Some(7),
        ..Limits::default()
    };
    let key_limits = Limits {
        monthly_tokens: Some(9),
        ..Limits::default()
    };
    let now = chrono::Utc::now();
    assert!(store
        .set_limits(&tn.org.id, None, &org_limits, now)
        .await
        .unwrap());
    assert!(store
        .set_limits(&tn.org.id, Some(&tn.key.id), &key_limits, now)
        .await
        .unwrap());
    let (_, limits) = store
        .find_api_key_with_limits(&tn.key_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        limits,
        LimitsPair {
            org: org_limits,
            key: key_limits
        }
    );
    assert_eq!(
        store.list_api_keys(&tn.org.id).await.unwrap(),
        vec![expected_key]
    );

    // Session with JSON metadata, unicode, nullable fields.
    let s = session(&tn, Some("user-ü"));
    store.insert_session(&s).await.unwrap();
    assert_eq!(
        store.get_session(&tn.org.id, &s.id).await.unwrap().unwrap(),
        stored_session(&s)
    );
    let mut bare = session(&tn, None);
    bare.title = None;
    bare.metadata = serde_json::Map::new();
    store.insert_session(&bare).await.unwrap();
    assert_eq!(
        store
            .get_session(&tn.org.id, &bare.id)
            .await
            .unwrap()
            .unwrap(),
        stored_session(&bare)
    );

    // Message: every field round-trips.
    let nm = new_message(&s, "Bonjour 👋🏽 — ½ “smart” 日本語\n\ttab", true, t(30));
    let (m, after) = store.append_message(&nm).await.unwrap();
    let expected_msg = Message {
        id: nm.id.clone(),
        session_id: s.id.clone(),
        seq: 0,
        role: Role::Assistant,
        content: nm.content.clone(),
        input_tokens: 11,
        output_tokens: 22,
        tokens_estimated: true,
        model: "gpt-test".into(),
        latency_ms: 345,
        cost_usd_micros: 1_234,
        moderation_verdict: "allow".into(),
        drift_score: 0.125,
        status: MessageStatus::Partial,
        first_token_ms: Some(12),
        original_content: None,
        citations: nm.citations.clone(),
        created_at: micros(t(30)),
    };
    assert_eq!(m, expected_msg);
    assert_eq!(after.last_active_at, micros(t(30)));
    let page = MessagePage {
        limit: 10,
        order: SortOrder::Asc,
        after_seq: None,
    };
    assert_eq!(
        store.list_messages(&tn.org.id, &s.id, &page).await.unwrap(),
        vec![expected_msg.clone()]
    );
    assert_eq!(
        store.recent_messages(&s.id, 5).await.unwrap(),
        vec![expected_msg]
    );

    // FAQ, including a NULL organization_id and empty tags.
    let f1 = faq(&tn, "Wie geht's? 🤔");
    let mut f2 = faq(&tn, "plain");
    f2.organization_id = None;
    f2.tags = vec![];
    store.insert_faqs(&[f1.clone(), f2.clone()]).await.unwrap();
    assert_eq!(
        store.get_faq(&tn.org.id, &f1.id).await.unwrap().unwrap(),
        stored_faq(&f1)
    );
    assert_eq!(
        store.get_faq(&tn.org.id, &f2.id).await.unwrap().unwrap(),
        stored_faq(&f2)
    );
    let mut all = store.workspace_faqs(&tn.ws.id).await.unwrap();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = vec![stored_faq(&f1), stored_faq(&f2)];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(all, expected);

    // Secrets table.
    assert_eq!(
        store.get_or_create_secret("jwt", "s3cr3t").await.unwrap(),
        "s3cr3t"
    );

    store.ping().await.unwrap();
    assert!(matches!(
        store.faq_version(&WorkspaceId::generate()).await,
        Err(StoreError::NotFound)
    ));
}

async fn tenant_isolation(db: &TestDb) {
    let store = &db.store;
    let a = tenant(store, "A").await;
    let b = tenant(store, "B").await;
    let sa = session(&a, Some("u1"));
    store.insert_session(&sa).await.unwrap();
    let (ma, _) = store
        .append_message(&new_message(&sa, "secret of A", true, t(30)))
        .await
        .unwrap();
    let fa = faq(&a, "A's question");
    store.insert_faqs(std::slice::from_ref(&fa)).await.unwrap();
    let page = PageRequest::first(100);
    let bo = &b.org.id;

    // Reads.
    assert!(store
        .get_persona(bo, &a.persona.id)
        .await
        .unwrap()
        .is_none());
    assert!(store.get_session(bo, &sa.id).await.unwrap().is_none());
    assert!(store.get_faq(bo, &fa.id).await.unwrap().is_none());
    let b_personas = store.list_personas(bo, &page).await.unwrap();
    assert_eq!(b_personas.len(), 1);
    assert_eq!(b_personas[0].id, b.persona.id);
    assert!(store
        .list_sessions(bo, &SessionFilter::default(), &page)
        .await
        .unwrap()
        .is_empty());
    assert!(store.list_faqs(bo, &page).await.unwrap().is_empty());
    let b_keys = store.list_api_keys(bo).await.unwrap();
    assert_eq!(b_keys.len(), 1);
    assert_eq!(b_keys[0].id, b.key.id);
    for order in [SortOrder::Asc, SortOrder::Desc] {
        let mp = MessagePage {
            limit: 10,
            order,
            after_seq: None,
        };
        assert!(store
            .list_messages(bo, &sa.id, &mp)
            .await
            .unwrap()
            .is_empty());
    }

    // Writes.
    let draft = PersonaDraft {
        name: "hijacked".into(),
        system_prompt: "x".into(),
        model_id: "x".into(),
        temperature: 0.0,
        max_output_tokens: 1,
        guardrails: vec![],
        fallback_reply: "x".into(),
        faq_threshold: 0.0,
        redact_pii: false,
        drift_threshold: None,
    };
    assert!(store
        .update_persona(bo, &a.persona.id, &draft, t(40))
        .await
        .unwrap()
        .is_none());
    assert!(!store.delete_persona(bo, &a.persona.id).await.unwrap());
    let fdraft = FaqDraft {
        question: "hijacked".into(),
        answer: "x".into(),
        organization_id: None,
        tags: vec![],
    };
    assert!(store
        .update_faq(bo, &fa.id, &fdraft, t(40))
        .await
        .unwrap()
        .is_none());
    assert!(!store.delete_faq(bo, &fa.id).await.unwrap());
    assert!(store
        .set_session_status(bo, &sa.id, SessionStatus::Ended, t(40))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .revoke_api_key(bo, &a.key.id, t(40))
        .await
        .unwrap()
        .is_none());
    assert!(!store
        .set_default_persona(bo, &a.ws.id, &a.persona.id)
        .await
        .unwrap());
    // B cannot make A's persona its default, nor A's workspace use B's.
    assert!(!store
        .set_default_persona(bo, &b.ws.id, &a.persona.id)
        .await
        .unwrap());
    assert!(!store
        .set_default_persona(&a.org.id, &a.ws.id, &b.persona.id)
        .await
        .unwrap());
    // Appending to A's session as B: not found.
    let mut foreign = new_message(&sa, "intrusion", true, t(41));
    foreign.org_id = bo.clone();
    assert!(matches!(
        store.append_message(&foreign).await,
        Err(StoreError::NotFound)
    ));
    // B cannot create records pointing at A's workspace / persona.
    let mut bad_session = session(&b, None);
    bad_session.persona_id = a.persona.id.clone();
    assert!(matches!(
        store.insert_session(&bad_session).await,
        Err(StoreError::Conflict(_))
    ));
    let mut bad_session = session(&b, None);
    bad_session.workspace_id = a.ws.id.clone();
    assert!(matches!(
        store.insert_session(&bad_session).await,
        Err(StoreError::Conflict(_))
    ));
    let mut bad_faq = faq(&b, "q");
    bad_faq.workspace_id = a.ws.id.clone();
    assert!(matches!(
        store.insert_faqs(&[bad_faq]).await,
        Err(StoreError::Conflict(_))
    ));
    let bad_persona = persona(bo, &a.ws.id, "x");
    assert!(matches!(
        store.insert_persona(&bad_persona).await,
        Err(StoreError::Conflict(_))
    ));
    let mut bad_key = b.key.clone();
    bad_key.id = ApiKeyId::generate();
    bad_key.workspace_id = a.ws.id.clone();
    assert!(matches!(
        store.insert_api_key(&bad_key, "other-hash").await,
        Err(StoreError::Conflict(_))
    ));

    // A's data is untouched.
    assert_eq!(
        store
            .get_persona(&a.org.id, &a.persona.id)
            .await
            .unwrap()
            .unwrap(),
        stored_persona(&a.persona)
    );
    let sa_now = store.get_session(&a.org.id, &sa.id).await.unwrap().unwrap();
    assert_eq!(sa_now.status, SessionStatus::Active);
    assert_eq!(sa_now.message_count, 1);
    assert_eq!(
        store.get_faq(&a.org.id, &fa.id).await.unwrap().unwrap(),
        stored_faq(&fa)
    );
    let ka = store.list_api_keys(&a.org.id).await.unwrap();
    assert_eq!(ka.len(), 1);
    assert!(ka[0].revoked_at.is_none());
    let a_ws = store.default_workspace(&a.org.id).await.unwrap().unwrap();
    assert_eq!(a_ws.default_persona_id, Some(a.persona.id.clone()));
    assert_eq!(a_ws.faq_version, 1);
    let msgs = store
        .list_messages(
            &a.org.id,
            &sa.id,
            &MessagePage {
                limit: 10,
                order: SortOrder::Asc,
                after_seq: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(msgs, vec![ma]);
}

/// Walks every page (asking `limit + 1` to detect more) and returns the ids.
async fn walk_pages<T, F, Fut>(limit: i64, mut fetch: F, id: impl Fn(&T) -> String) -> Vec<String>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Vec<T>>,
{
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let mut rows = fetch(PageRequest {
            limit: limit + 1,
            after_id: after.clone(),
        })
        .await;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        assert!(!rows.is_empty() || out.is_empty() || !has_more);
        out.extend(rows.iter().map(&id));
        if !has_more {
            return out;
        }
        after = out.last().cloned();
    }
}

async fn pagination(db: &TestDb) {
    let store = &db.store;
    let tn = tenant(store, "P").await;
    let other = tenant(store, "Other").await;
    let org = &tn.org.id;

    // Personas: 1 from the bundle + 22.
    let mut persona_ids = vec![tn.persona.id.to_string()];
    for i in 0..22 {
        let p = persona(org, &tn.ws.id, &format!("p{i}"));
        persona_ids.push(p.id.to_string());
        store.insert_persona(&p).await.unwrap();
    }
    persona_ids.sort();
    persona_ids.reverse();
    let got = walk_pages(
        5,
        |pr| async move { store.list_personas(org, &pr).await.unwrap() },
        |p: &Persona| p.id.to_string(),
    )
    .await;
    assert_eq!(got, persona_ids);

    // Sessions: 13 for user "u", 4 for "v", plus another org's.
    let mut u_ids = Vec::new();
    let mut all_ids = Vec::new();
    for i in 0..17 {
        let s = session(&tn, Some(if i < 13 { "u" } else { "v" }));
        if i < 13 {
            u_ids.push(s.id.to_string());
        }
        all_ids.push(s.id.to_string());
        store.insert_session(&s).await.unwrap();
    }
    store
        .insert_session(&session(&other, Some("u")))
        .await
        .unwrap();
    for v in [&mut u_ids, &mut all_ids] {
        v.sort();
        v.reverse();
    }
    let filter_u = SessionFilter {
        user_id: Some("u".into()),
        status: None,
    };
    let got = walk_pages(
        4,
        |pr| {
            let f = &filter_u;
            async move { store.list_sessions(org, f, &pr).await.unwrap() }
        },
        |s: &Session| s.id.to_string(),
    )
    .await;
    assert_eq!(got, u_ids);
    let everything = SessionFilter::default();
    let got = walk_pages(
        6,
        |pr| {
            let f = &everything;
            async move { store.list_sessions(org, f, &pr).await.unwrap() }
        },
        |s: &Session| s.id.to_string(),
    )
    .await;
    assert_eq!(got, all_ids);
    // limit exactly matching the count: one page, no "more".
    let got = walk_pages(
        17,
        |pr| {
            let f = &everything;
            async move { store.list_sessions(org, f, &pr).await.unwrap() }
        },
        |s: &Session| s.id.to_string(),
    )
    .await;
    assert_eq!(got, all_ids);

    // FAQs.
    let entries: Vec<FaqEntry> = (0..11).map(|i| faq(&tn, &format!("q{i}"))).collect();
    store.insert_faqs(&entries).await.unwrap();
    store.insert_faqs(&[faq(&other, "x")]).await.unwrap();
    let mut faq_ids: Vec<String> = entries.iter().map(|f| f.id.to_string()).collect();
    faq_ids.sort();
    faq_ids.reverse();
    let got = walk_pages(
        3,
        |pr| async move { store.list_faqs(org, &pr).await.unwrap() },
        |f: &FaqEntry| f.id.to_string(),
    )
    .await;
    assert_eq!(got, faq_ids);

    // Messages: 15, keyset on seq, both orders.
    let s = session(&tn, None);
    store.insert_session(&s).await.unwrap();
    for i in 0..15 {
        store
            .append_message(&new_message(&s, &format!("m{i}"), false, t(30 + i)))
            .await
            .unwrap();
    }
    for (order, expected) in [
        (SortOrder::Asc, (0..15).collect::<Vec<i64>>()),
        (SortOrder::Desc, (0..15).rev().collect::<Vec<i64>>()),
    ] {
        let mut seqs = Vec::new();
        let mut after = None;
        loop {
            let mut page = store
                .list_messages(
                    org,
                    &s.id,
                    &MessagePage {
                        limit: 5,
                        order,
                        after_seq: after,
                    },
                )
                .await
                .unwrap();
            let more = page.len() > 4;
            page.truncate(4);
            seqs.extend(page.iter().map(|m| m.seq));
            for m in &page {
                assert_eq!(m.content, format!("m{}", m.seq));
            }
            if !more {
                break;
            }
            after = seqs.last().copied();
        }
        assert_eq!(seqs, expected, "{order:?}");
    }
    let recent: Vec<i64> = store
        .recent_messages(&s.id, 3)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(recent, vec![12, 13, 14]);
    assert_eq!(store.recent_messages(&s.id, 100).await.unwrap().len(), 15);
    assert!(store.recent_messages(&s.id, 0).await.unwrap().is_empty());
}

async fn append_counters(db: &TestDb) {
    let store = &db.store;
    let tn = tenant(store, "C").await;
    let s = session(&tn, None);
    store.insert_session(&s).await.unwrap();

    let (m0, s0) = store
        .append_message(&new_message(&s, "billed", true, t(100)))
        .await
        .unwrap();
    assert_eq!(m0.seq, 0);
    assert_eq!(s0.message_count, 1);
    assert_eq!(
        (s0.input_tokens, s0.output_tokens, s0.cost_usd_micros),
        (11, 22, 1_234)
    );
    assert_eq!(s0.last_active_at, micros(t(100)));

    // Not billed: counted as a message, not in tokens / cost. An older
    // timestamp does not move last_active_at back.
    let (m1, s1) = store
        .append_message(&new_message(&s, "free", false, t(50)))
        .await
        .unwrap();
    assert_eq!(m1.seq, 1);
    assert_eq!(s1.message_count, 2);
    assert_eq!(
        (s1.input_tokens, s1.output_tokens, s1.cost_usd_micros),
        (11, 22, 1_234)
    );
    assert_eq!(s1.last_active_at, micros(t(100)));

    let (m2, s2) = store
        .append_message(&new_message(&s, "billed again", true, t(101)))
        .await
        .unwrap();
    assert_eq!(m2.seq, 2);
    assert_eq!(
        (s2.input_tokens, s2.output_tokens, s2.cost_usd_micros),
        (22, 44, 2_468)
    );
    assert_eq!(s2.last_active_at, micros(t(101)));
    assert_eq!(
        store.get_session(&tn.org.id, &s.id).await.unwrap().unwrap(),
        s2
    );

    // Unknown session.
    let mut ghost = session(&tn, None);
    ghost.id = SessionId::generate();
    assert!(matches!(
        store
            .append_message(&new_message(&ghost, "x", true, t(1)))
            .await,
        Err(StoreError::NotFound)
    ));
    // Duplicate message id: conflict, and the counters are rolled back.
    let mut dup = new_message(&s, "dup", true, t(102));
    dup.id = m0.id.clone();
    assert!(matches!(
        store.append_message(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_session(&tn.org.id, &s.id).await.unwrap().unwrap(),
        s2
    );
    let (m3, _) = store
        .append_message(&new_message(&s, "after rollback", true, t(103)))
        .await
        .unwrap();
    assert_eq!(m3.seq, 3);
}

async fn concurrent_appends(db: &TestDb) {
    let store = &db.store;
    let tn = tenant(store, "Busy").await;
    let s = session(&tn, None);
    store.insert_session(&s).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..20i64 {
        let store = store.clone();
        let mut msg = new_message(&s, &format!("c{i}"), i % 2 == 0, t(200 + i));
        msg.input_tokens = i + 1;
        msg.output_tokens = 2 * (i + 1);
        msg.cost_usd_micros = 100 * (i + 1);
        tasks.push(tokio::spawn(
            async move { store.append_message(&msg).await },
        ));
    }
    for task in futures_util::future::join_all(tasks).await {
        task.unwrap().unwrap();
    }

    let msgs = store
        .list_messages(
            &tn.org.id,
            &s.id,
            &MessagePage {
                limit: 100,
                order: SortOrder::Asc,
                after_seq: None,
            },
        )
        .await
        .unwrap();
    let seqs: Vec<i64> = msgs.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
    let mut contents: Vec<String> = msgs.iter().map(|m| m.content.clone()).collect();
    contents.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    expected.sort();
    assert_eq!(contents, expected);

    let after = store.get_session(&tn.org.id, &s.id).await.unwrap().unwrap();
    assert_eq!(after.message_count, 20);
    let billed: Vec<i64> = (0..20).filter(|i| i % 2 == 0).map(|i| i + 1).collect();
    let sum: i64 = billed.iter().sum();
    assert_eq!(after.input_tokens, sum);
    assert_eq!(after.output_tokens, 2 * sum);
    assert_eq!(after.cost_usd_micros, 100 * sum);
    assert_eq!(after.last_active_at, micros(t(219)));
}

async fn status_changes(db: &TestDb) {
    let store = &db.store;
    let tn = tenant(store, "S").await;
    let org = &tn.org.id;
    let s = session(&tn, Some("u"));
    store.insert_session(&s).await.unwrap();

    let ended = store
        .set_session_status(org, &s.id, SessionStatus::Ended, t(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.status, SessionStatus::Ended);
    assert_eq!(ended.ended_at, Some(micros(t(300))));
    // Ending again keeps the first ended_at; archiving too.
    let again = store
        .set_session_status(org, &s.id, SessionStatus::Ended, t(301))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.ended_at, Some(micros(t(300))));
    let archived = store
        .set_session_status(org, &s.id, SessionStatus::Archived, t(302))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(archived.status, SessionStatus::Archived);
    assert_eq!(archived.ended_at, Some(micros(t(300))));
    assert_eq!(
        store.get_session(org, &s.id).await.unwrap().unwrap(),
        archived
    );

    // Archiving an active session sets ended_at.
    let s2 = session(&tn, Some("u"));
    store.insert_session(&s2).await.unwrap();
    let a2 = store
        .set_session_status(org, &s2.id, SessionStatus::Archived, t(303))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a2.ended_at, Some(micros(t(303))));

    let s3 = session(&tn, Some("w"));
    store.insert_session(&s3).await.unwrap();
    let active = store
        .set_session_status(org, &s3.id, SessionStatus::Active, t(304))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.status, SessionStatus::Active);
    assert_eq!(active.ended_at, None);

    assert!(store
        .set_session_status(org, &SessionId::generate(), SessionStatus::Ended, t(305))
        .await
        .unwrap()
        .is_none());

    let by_status = |status| SessionFilter {
        user_id: None,
        status: Some(status),
    };
    let page = PageRequest::first(50);
    let archived_list = store
        .list_sessions(org, &by_status(SessionStatus::Archived), &page)
        .await
        .unwrap();
    let mut ids: Vec<_> = archived_list.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    let mut expected = vec![s.id.clone(), s2.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    let active_list = store
        .list_sessions(org, &by_status(SessionStatus::Active), &page)
        .await
        .unwrap();
    assert_eq!(active_list.len(), 1);
    assert_eq!(active_list[0].id, s3.id);
    let combined = store
        .list_sessions(
            org,
            &SessionFilter {
                user_id: Some("u".into()),
                status: Some(SessionStatus::Active),
            },
            &page,
        )
        .await
        .unwrap();
    assert!(combined.is_empty());
}

async fn faq_versions(db: &TestDb) {
    let store = &db.store;
    let tn = tenant(store, "F").await;
    let org = &tn.org.id;
    let ws = &tn.ws.id;
    assert_eq!(store.faq_version(ws).await.unwrap(), 0);

    let f1 = faq(&tn, "q1");
    let f2 = faq(&tn, "q2");
    store.insert_faqs(&[f1.clone(), f2.clone()]).await.unwrap();
    assert_eq!(store.faq_version(ws).await.unwrap(), 1);
    store.insert_faqs(&[]).await.unwrap();
    assert_eq!(store.faq_version(ws).await.unwrap(), 1);

    // All or nothing: a duplicate id rolls back the whole batch and bump.
    let f3 = faq(&tn, "q3");
    let err = store.insert_faqs(&[f3.clone(), f1.clone()]).await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    assert!(store.get_faq(org, &f3.id).await.unwrap().is_none());
    assert_eq!(store.faq_version(ws).await.unwrap(), 1);

    let draft = FaqDraft {
        question: "q1 edited ✏️".into(),
        answer: "new answer".into(),
        organization_id: None,
        tags: vec!["x".into()],
    };
    let updated = store
        .update_faq(org, &f1.id, &draft, t(400))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updated,
        FaqEntry {
            id: f1.id.clone(),
            org_id: f1.org_id.clone(),
            workspace_id: f1.workspace_id.clone(),
            question: draft.question.clone(),
            answer: draft.answer.clone(),
            organization_id: None,
            tags: draft.tags.clone(),
            created_at: micros(f1.created_at),
            updated_at: micros(t(400)),
        }
    );
    assert_eq!(store.get_faq(org, &f1.id).await.unwrap().unwrap(), updated);
    assert_eq!(store.faq_version(ws).await.unwrap(), 2);
    assert!(store
        .update_faq(org, &FaqId::generate(), &draft, t(401))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.faq_version(ws).await.unwrap(), 2);

    assert!(store.delete_faq(org, &f2.id).await.unwrap());
    assert_eq!(store.faq_version(ws).await.unwrap(), 3);
    assert!(!store.delete_faq(org, &f2.id).await.unwrap());
    assert_eq!(store.faq_version(ws).await.unwrap(), 3);
    let left = store.workspace_faqs(ws).await.unwrap();
    assert_eq!(left, vec![updated]);
    assert_eq!(
        store
            .default_workspace(org)
            .await
            .unwrap()
            .unwrap()
            .faq_version,
        3
    );
}

async fn secrets_idempotent(db: &TestDb) {
    let store = &db.store;
    assert_eq!(
        store.get_or_create_secret("jwt", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.get_or_create_secret("jwt", "second").await.unwrap(),
        "first"
    );
    assert_eq!(store.get_or_create_secret("other", "o").await.unwrap(), "o");
    // Racing creators all see one value.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .get_or_create_secret("raced", &format!("v{i}"))
                .await
                .unwrap()
        }));
    }
    let values: Vec<String> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(values.iter().all(|v| v == &values[0]), "{values:?}");
}

async fn revoke_idempotent(db: &TestDb) {
    let store = &db.store;
    let tn = tenant(store, "K").await;
    let org = &tn.org.id;
    let key2 = ApiKey {
        id: ApiKeyId::generate(),
        org_id: org.clone(),
        workspace_id: tn.ws.id.clone(),
        name: "second 🔑".into(),
        prefix: "tc_live_efgh".into(),
        scope: KeyScope::Chat,
        created_at: t(50),
        revoked_at: None,
    };
    store.insert_api_key(&key2, "hash-2").await.unwrap();
    // Same hash twice: conflict.
    let mut key3 = key2.clone();
    key3.id = ApiKeyId::generate();
    assert!(matches!(
        store.insert_api_key(&key3, "hash-2").await,
        Err(StoreError::Conflict(_))
    ));

    let listed = store.list_api_keys(org).await.unwrap();
    assert_eq!(
        listed.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        vec![key2.id.clone(), tn.key.id.clone()],
        "newest first"
    );

    let r1 = store
        .revoke_api_key(org, &key2.id, t(500))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r1.revoked_at, Some(micros(t(500))));
    let r2 = store
        .revoke_api_key(org, &key2.id, t(600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r2.revoked_at, Some(micros(t(500))));
    assert_eq!(r1, r2);
    // Revoked keys are still found by hash (the caller checks revoked_at).
    let (found, _) = store
        .find_api_key_with_limits("hash-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.revoked_at, Some(micros(t(500))));
    assert!(store
        .revoke_api_key(org, &ApiKeyId::generate(), t(700))
        .await
        .unwrap()
        .is_none());
    // The other key is unaffected.
    assert!(store
        .find_api_key_with_limits(&tn.key_hash)
        .await
        .unwrap()
        .unwrap()
        .0
        .revoked_at
        .is_none());
}

async fn delete_persona_conflicts(db: &TestDb) {
    let store = &db.store;
    let tn = tenant(store, "D").await;
    let org = &tn.org.id;

    // The workspace default.
    assert!(matches!(
        store.delete_persona(org, &tn.persona.id).await,
        Err(StoreError::Conflict(_))
    ));

    // Used by a session.
    let used = persona(org, &tn.ws.id, "used");
    store.insert_persona(&used).await.unwrap();
    let mut s = session(&tn, None);
    s.persona_id = used.id.clone();
    store.insert_session(&s).await.unwrap();
    assert!(matches!(
        store.delete_persona(org, &used.id).await,
        Err(StoreError::Conflict(_))
    ));

    // Unused: deleted once.
    let spare = persona(org, &tn.ws.id, "spare");
    store.insert_persona(&spare).await.unwrap();
    assert!(store.delete_persona(org, &spare.id).await.unwrap());
    assert!(!store.delete_persona(org, &spare.id).await.unwrap());
    assert!(store.get_persona(org, &spare.id).await.unwrap().is_none());

    // Switch the default, then the old default can go.
    assert!(store
        .set_default_persona(org, &tn.ws.id, &used.id)
        .await
        .unwrap());
    assert_eq!(
        store
            .default_workspace(org)
            .await
            .unwrap()
            .unwrap()
            .default_persona_id,
        Some(used.id.clone())
    );
    assert!(store.delete_persona(org, &tn.persona.id).await.unwrap());

    // update_persona round-trip.
    let draft = PersonaDraft {
        name: "renamed 🦀".into(),
        system_prompt: "new prompt".into(),
        model_id: "m2".into(),
        temperature: 1.25,
        max_output_tokens: 77,
        guardrails: vec!["g1".into()],
        fallback_reply: "fb".into(),
        faq_threshold: 0.5,
        redact_pii: false,
        drift_threshold: None,
    };
    let updated = store
        .update_persona(org, &used.id, &draft, t(800))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updated,
        Persona {
            id: used.id.clone(),
            org_id: org.clone(),
            workspace_id: tn.ws.id.clone(),
            name: draft.name.clone(),
            system_prompt: draft.system_prompt.clone(),
            model_id: draft.model_id.clone(),
            temperature: 1.25,
            max_output_tokens: 77,
            guardrails: draft.guardrails.clone(),
            fallback_reply: "fb".into(),
            faq_threshold: 0.5,
            redact_pii: false,
            drift_threshold: None,
            created_at: micros(used.created_at),
            updated_at: micros(t(800)),
        }
    );
    assert_eq!(
        store.get_persona(org, &used.id).await.unwrap().unwrap(),
        updated
    );
}

async fn migrate_idempotent(db: &TestDb) {
    // Already migrated by the fixture: running again is a no-op, also from
    // two stores at once.
    db.store.migrate().await.unwrap();
    let other = Store::connect(&db.url, 2).await.unwrap();
    let (a, b) = tokio::join!(db.store.migrate(), other.migrate());
    a.unwrap();
    b.unwrap();
    tenant(&other, "after").await;
    assert_eq!(db.store.count_orgs().await.unwrap(), 1);
}

/// Dropping a write future mid-transaction (client gone, timeout) must not
/// leave a transaction (and its locks) open on a pooled connection.
async fn cancelled_writes_release_locks(db: &TestDb) {
    let store = &db.store;
    let tn = tenant(store, "Cancel").await;
    let s = session(&tn, None);
    store.insert_session(&s).await.unwrap();
    // Several idle connections in the pool, so a dangling transaction on
    // one of them would block writers using the others.
    let warm: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.ping().await })
        })
        .collect();
    for w in futures_util::future::join_all(warm).await {
        w.unwrap().unwrap();
    }
    for i in 0..60u64 {
        let msg = new_message(&s, &format!("x{i}"), true, t(900));
        let _ = tokio::time::timeout(
            std::time::Duration::from_micros(i * 40),
            store.append_message(&msg),
        )
        .await;
    }
    for i in 0..5 {
        let msg = new_message(&s, &format!("after{i}"), true, t(901));
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            store.append_message(&msg),
        )
        .await
        .expect("write blocked by a cancelled transaction")
        .unwrap();
    }
    let msgs = store
        .list_messages(
            &tn.org.id,
            &s.id,
            &MessagePage {
                limit: 1000,
                order: SortOrder::Asc,
                after_seq: None,
            },
        )
        .await
        .unwrap();
    let seqs: Vec<i64> = msgs.iter().map(|m| m.seq).collect();
    println!("{} of 65 appends committed", msgs.len());
    assert_eq!(seqs, (0..msgs.len() as i64).collect::<Vec<_>>());
    let after = store.get_session(&tn.org.id, &s.id).await.unwrap().unwrap();
    assert_eq!(after.message_count, msgs.len() as i64);
    assert_eq!(after.input_tokens, 11 * msgs.len() as i64);
}

// ---------------------------------------------------------------- single-backend

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_rejects_unknown_scheme() {
    for url in [
        "mysql://u:hunter2@h/db",
        "",
        "file.db",
        "sqlite::memory:",
        "sqlite://",
    ] {
        let err = Store::connect(url, 1).await.unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("hunter2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_fresh_files_migrate_concurrently() {
    let dir = tempfile_dir();
    let path = dir.join("nested/dir/fresh.db");
    for url in [
        format!("sqlite://{}", path.display()),
        format!("sqlite:{}", path.display()),
    ] {
        let a = Store::connect(&url, 2).await.unwrap();
        let b = Store::connect(&url, 2).await.unwrap();
        assert_eq!(a.backend(), Backend::Sqlite);
        let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
        ra.unwrap();
        rb.unwrap();
        a.ping().await.unwrap();
        assert_eq!(b.count_orgs().await.unwrap(), 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tidechat-store-test-{}", OrgId::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_is_reported() {
    let db = testing::sqlite().await;
    assert_eq!(db.store.backend(), Backend::Sqlite);
    if let Some(pg) = testing::postgres().await {
        assert_eq!(pg.store.backend(), Backend::Postgres);
    }
}

async fn external_sessions_and_end_users(db: &TestDb) {
    let store = &db.store;
    let a = tenant(store, "A").await;
    let b = tenant(store, "B").await;
    let s = session(&a, Some("u1"));
    store.insert_session(&s).await.unwrap();
    let ext = s.external_id.clone().unwrap();
    let found = store
        .find_session_by_external(&a.org.id, &ext)
        .await
        .unwrap();
    assert_eq!(found.map(|f| f.id), Some(s.id.clone()));
    assert!(store
        .find_session_by_external(&b.org.id, &ext)
        .await
        .unwrap()
        .is_none());
    // The same client id cannot name two sessions of one organization.
    let mut dup = session(&a, None);
    dup.external_id = Some(ext.clone());
    assert!(store.insert_session(&dup).await.is_err());
    // ...but another organization may use it.
    let mut other = session(&b, None);
    other.external_id = Some(ext);
    store.insert_session(&other).await.unwrap();

    let (u, created) = store
        .touch_end_user(&a.org.id, "user@example.com", t(30))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(u.user_id, "user@example.com");
    let (again, created) = store
        .touch_end_user(&a.org.id, "user@example.com", t(40))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, u.id);
    assert_eq!(again.created_at, micros(t(30)));
    assert_eq!(again.last_seen_at, micros(t(40)));
    let (in_b, created) = store
        .touch_end_user(&b.org.id, "user@example.com", t(50))
        .await
        .unwrap();
    assert!(created, "end users are per organization");
    assert_ne!(in_b.id, u.id);
}

async fn limits_and_usage(db: &TestDb) {
    let store = &db.store;
    let a = tenant(store, "A").await;
    let b = tenant(store, "B").await;
    assert_eq!(
        store.get_limits(&a.org.id, None).await.unwrap(),
        Limits::default()
    );
    let org_limits = Limits {
        requests_per_minute: Some(10),
        max_concurrent_streams: Some(3),
        monthly_tokens: Some(1000),
        monthly_cost_usd_micros: None,
    };
    assert!(store
        .set_limits(&a.org.id, None, &org_limits, t(1))
        .await
        .unwrap());
    let key_limits = Limits {
        requests_per_minute: Some(5),
        ..Limits::default()
    };
    assert!(store
        .set_limits(&a.org.id, Some(&a.key.id), &key_limits, t(1))
        .await
        .unwrap());
    assert_eq!(store.get_limits(&a.org.id, None).await.unwrap(), org_limits);
    assert_eq!(
        store.get_limits(&a.org.id, Some(&a.key.id)).await.unwrap(),
        key_limits
    );
    // Replacing clears what is no longer set.
    assert!(store
        .set_limits(&a.org.id, None, &Limits::default(), t(2))
        .await
        .unwrap());
    assert_eq!(
        store.get_limits(&a.org.id, None).await.unwrap(),
        Limits::default()
    );
    // Another organization's key is refused and not changed.
    assert!(!store
        .set_limits(&b.org.id, Some(&a.key.id), &Limits::default(), t(3))
        .await
        .unwrap());
    assert_eq!(
        store.get_limits(&a.org.id, Some(&a.key.id)).await.unwrap(),
        key_limits
    );
    assert_eq!(
        store.get_limits(&b.org.id, None).await.unwrap(),
        Limits::default()
    );

    let s = session(&a, None);
    store.insert_session(&s).await.unwrap();
    let mut m1 = new_message(&s, "one", true, t(100));
    m1.api_key_id = Some(a.key.id.clone());
    let mut m2 = new_message(&s, "two", true, t(200));
    m2.model = "other".into();
    let mut user = new_message(&s, "hi", false, t(150));
    user.role = Role::User;
    user.input_tokens = 500;
    for m in [&m1, &user, &m2] {
        store.append_message(m).await.unwrap();
    }
    let (tokens, cost) = store.usage_since(&a.org.id, None, t(0)).await.unwrap();
    assert_eq!(
        (tokens, cost),
        (2 * 33, 2 * 1_234),
        "user messages are not billed"
    );
    assert_eq!(
        store
            .usage_since(&a.org.id, Some(&a.key.id), t(0))
            .await
            .unwrap(),
        (33, 1_234)
    );
    assert_eq!(
        store.usage_since(&a.org.id, None, t(150)).await.unwrap(),
        (33, 1_234)
    );
    assert_eq!(
        store.usage_since(&b.org.id, None, t(0)).await.unwrap(),
        (0, 0)
    );

    let by_model = store
        .usage(&a.org.id, t(0), t(1_000_000), UsageGroup::Model)
        .await
        .unwrap();
    assert_eq!(by_model.len(), 2);
    assert_eq!(by_model[0].key.as_deref(), Some("gpt-test"));
    assert_eq!(
        (
            by_model[0].requests,
            by_model[0].input_tokens,
            by_model[0].output_tokens,
            by_model[0].cost_usd_micros
        ),
        (1, 11, 22, 1_234)
    );
    let by_key = store
        .usage(&a.org.id, t(0), t(1_000_000), UsageGroup::ApiKey)
        .await
        .unwrap();
    let keyed: Vec<_> = by_key.iter().map(|r| (r.key.clone(), r.requests)).collect();
    assert!(
        keyed.contains(&(None, 1)) && keyed.contains(&(Some(a.key.id.to_string()), 1)),
        "{keyed:?}"
    );
    let by_day = store
        .usage(&a.org.id, t(0), t(1_000_000), UsageGroup::Day)
        .await
        .unwrap();
    assert_eq!(by_day.len(), 1);
    assert_eq!(
        by_day[0].key.as_deref(),
        Some(&t(100).format("%Y-%m-%d").to_string()[..])
    );
    assert_eq!(by_day[0].requests, 2);
    assert!(store
        .usage(&a.org.id, t(201), t(1_000_000), UsageGroup::Day)
        .await
        .unwrap()
        .is_empty());
}

async fn tools_crud(db: &TestDb) {
    let store = &db.store;
    let a = tenant(store, "A").await;
    let b = tenant(store, "B").await;
    let tool = HttpTool {
        id: ToolId::generate(),
        org_id: a.org.id.clone(),
        name: "lookup_order".into(),
        description: "Finds an order — ünïcode".into(),
        parameters: json!({"type": "object", "properties": {"id": {"type": "string"}}}),
        url: "https://example.com/hook".into(),
        secret: "s3cret-s3cret-s3cret".into(),
        created_at: t(1),
        updated_at: t(1),
    };
    store.insert_tool(&tool).await.unwrap();
    let stored = HttpTool {
        created_at: micros(t(1)),
        updated_at: micros(t(1)),
        ..tool.clone()
    };
    assert_eq!(
        store.get_tool(&a.org.id, &tool.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.get_tool(&b.org.id, &tool.id).await.unwrap(), None);
    assert!(
        store
            .insert_tool(&HttpTool {
                id: ToolId::generate(),
                ..tool.clone()
            })
            .await
            .is_err(),
        "names are unique per org"
    );
    store
        .insert_tool(&HttpTool {
            id: ToolId::generate(),
            org_id: b.org.id.clone(),
            ..tool.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .tools_named(&a.org.id, &["lookup_order".into(), "nope".into()])
            .await
            .unwrap(),
        vec![stored]
    );
    assert_eq!(store.list_tools(&a.org.id).await.unwrap().len(), 1);
    let draft = HttpToolDraft {
        name: "lookup".into(),
        description: "d".into(),
        parameters: json!({}),
        url: "https://x.test".into(),
        secret: "another-secret-123".into(),
    };
    assert!(store
        .update_tool(&b.org.id, &tool.id, &draft, t(2))
        .await
        .unwrap()
        .is_none());
    let updated = store
        .update_tool(&a.org.id, &tool.id, &draft, t(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.updated_at),
        ("lookup", micros(t(2)))
    );
    assert!(!store.delete_tool(&b.org.id, &tool.id).await.unwrap());
    assert!(store.delete_tool(&a.org.id, &tool.id).await.unwrap());
    assert!(store.get_tool(&a.org.id, &tool.id).await.unwrap().is_none());
}

async fn moderation_and_drift(db: &TestDb) {
    let store = &db.store;
    let a = tenant(store, "A").await;
    let b = tenant(store, "B").await;
    let s = session(&a, None);
    store.insert_session(&s).await.unwrap();
    let mut m = new_message(&s, "Sorry, I can't help with that.", true, t(40));
    m.moderation_verdict = "blocked".into();
    m.original_content = Some("something unsafe".into());
    m.moderation = vec![
        ModerationRecord {
            stage: "output".into(),
            category: "violence".into(),
            rule: "kill someone".into(),
            action: "block".into(),
            excerpt: "k***".into(),
        },
        ModerationRecord {
            stage: "output".into(),
            category: "pii.email".into(),
            rule: "email".into(),
            action: "redact".into(),
            excerpt: "j***@example.com".into(),
        },
    ];
    m.drift_score = 0.8;
    m.drift_alpha = Some(0.5);
    let (stored, session) = store.append_message(&m).await.unwrap();
    assert_eq!(stored.original_content.as_deref(), Some("something unsafe"));
    assert_eq!(
        session.drift_score,
        Some(0.8),
        "the first reply sets the aggregate"
    );
    let mut m2 = new_message(&s, "ok", true, t(41));
    m2.drift_score = 0.2;
    m2.drift_alpha = Some(0.5);
    let (_, session) = store.append_message(&m2).await.unwrap();
    assert!(
        (session.drift_score.unwrap() - 0.5).abs() < 1e-9,
        "{:?}",
        session.drift_score
    );
    let mut m3 = new_message(&s, "user", false, t(42));
    m3.drift_score = 1.0;
    let (_, session) = store.append_message(&m3).await.unwrap();
    assert!(
        (session.drift_score.unwrap() - 0.5).abs() < 1e-9,
        "messages without alpha leave it"
    );

    let (msg, records) = store
        .moderation_records(&a.org.id, &stored.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.id, stored.id);
    assert_eq!(records, m.moderation);
    assert!(store
        .moderation_records(&b.org.id, &stored.id)
        .await
        .unwrap()
        .is_none());
}

async fn offset_pages_deletes_and_tickets(db: &TestDb) {
    let store = &db.store;
    let a = tenant(store, "A").await;
    let b = tenant(store, "B").await;
    let s = session(&a, Some("u"));
    store.insert_session(&s).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (m, _) = store
            .append_message(&new_message(&s, &format!("m{i}"), true, t(100 + i)))
            .await
            .unwrap();
        ids.push(m.id);
    }
    let (page, total) = store
        .messages_page(&s.id, 1, 2, SortOrder::Asc)
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2]);
    let (page, _) = store
        .messages_page(&s.id, 0, 2, SortOrder::Desc)
        .await
        .unwrap();
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![4, 3]);
    let (page, _) = store
        .messages_page(&s.id, 10, 2, SortOrder::Asc)
        .await
        .unwrap();
    assert!(page.is_empty());
    let after = store
        .messages_after(&s.id, &ids[2], 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        ids[3..].to_vec()
    );
    assert!(store
        .messages_after(&s.id, &MessageId::generate(), 100)
        .await
        .unwrap()
        .is_none());

    assert!(
        !store.delete_session(&b.org.id, &s.id).await.unwrap(),
        "other tenants cannot delete"
    );
    assert!(store.delete_session(&a.org.id, &s.id).await.unwrap());
    assert!(store.get_session(&a.org.id, &s.id).await.unwrap().is_none());
    assert_eq!(
        store
            .messages_page(&s.id, 0, 10, SortOrder::Asc)
            .await
            .unwrap()
            .1,
        0,
        "messages went with it"
    );

    store
        .create_ws_ticket("h1", &a.org.id, &a.key.id, t(1000))
        .await
        .unwrap();
    assert_eq!(
        store.redeem_ws_ticket("h1", t(999)).await.unwrap(),
        Some((a.org.id.clone(), a.key.id.clone()))
    );
    assert_eq!(
        store.redeem_ws_ticket("h1", t(999)).await.unwrap(),
        None,
        "single use"
    );
    store
        .create_ws_ticket("h2", &a.org.id, &a.key.id, t(1000))
        .await
        .unwrap();
    assert_eq!(
        store.redeem_ws_ticket("h2", t(1001)).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(store.redeem_ws_ticket("nope", t(0)).await.unwrap(), None);
}

fn document(tn: &Tenant, title: &str, chunks: i32) -> Document {
    Document {
        id: DocumentId::generate(),
        org_id: tn.org.id.clone(),
        workspace_id: tn.ws.id.clone(),
        title: title.to_owned(),
        format: DocumentFormat::Markdown,
        source_name: Some("guide.md".to_owned()),
        organization_id: None,
        chars: 1234,
        chunk_count: chunks,
        created_at: t(40),
        updated_at: t(41),
    }
}

fn chunks_of(d: &Document, n: i32) -> Vec<DocumentChunk> {
    (0..n)
        .map(|i| DocumentChunk {
            document_id: d.id.clone(),
            index: i,
            heading: format!("{} › Teil {i}", d.title),
            content: format!("Inhalt {i}: 반품은 30일 이내 ✅"),
            organization_id: None,
        })
        .collect()
}

fn embedding(item: String, model: &str, v: f32) -> NewEmbedding {
    NewEmbedding {
        item_id: item,
        model: model.to_owned(),
        content_hash: format!("h{v}"),
        vector: vec![v, -v, 0.5, f32::MIN_POSITIVE],
    }
}

async fn documents_embeddings_and_usage_events(db: &TestDb) {
    let store = &db.store;
    let a = tenant(store, "A").await;
    let b = tenant(store, "B").await;
    let v0 = store.faq_version(&a.ws.id).await.unwrap();

    // Insert: document, chunks and embeddings together; the version moves.
    let d = document(&a, "Guide", 3);
    let chunks = chunks_of(&d, 3);
    let embeddings: Vec<NewEmbedding> = (0..3)
        .map(|i| embedding(chunk_item_id(&d.id, i), "m1", i as f32))
        .collect();
    let text = "# Guide\n\nInhalt";
    store
        .insert_document(DocumentWrite {
            document: &d,
            text,
            chunks: &chunks,
            embeddings: &embeddings,
        })
        .await
        .unwrap();
    assert!(store.faq_version(&a.ws.id).await.unwrap() > v0);
    let stored = Document {
        created_at: micros(d.created_at),
        updated_at: micros(d.updated_at),
        ..d.clone()
    };
    assert_eq!(
        store.get_document(&a.org.id, &d.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store
            .document_text(&a.org.id, &d.id)
            .await
            .unwrap()
            .as_deref(),
        Some(text)
    );
    assert_eq!(
        store.document_chunks(&a.org.id, &d.id).await.unwrap(),
        chunks
    );
    assert_eq!(store.workspace_chunks(&a.ws.id).await.unwrap(), chunks);
    let mut stored_embeddings = store.workspace_embeddings(&a.ws.id, "m1").await.unwrap();
    stored_embeddings.sort_by(|x, y| x.embedding.item_id.cmp(&y.embedding.item_id));
    assert_eq!(stored_embeddings.len(), 3);
    assert_eq!(stored_embeddings[2].embedding.vector, embeddings[2].vector);
    assert_eq!(stored_embeddings[2].content_hash, "h2");
    assert!(store
        .workspace_embeddings(&a.ws.id, "m2")
        .await
        .unwrap()
        .is_empty());

    // Another tenant sees nothing and cannot write into A's workspace.
    assert!(store
        .get_document(&b.org.id, &d.id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .document_text(&b.org.id, &d.id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .document_chunks(&b.org.id, &d.id)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_documents(&b.org.id, &PageRequest::first(10))
        .await
        .unwrap()
        .is_empty());
    assert!(!store.delete_document(&b.org.id, &d.id).await.unwrap());
    let mut foreign = document(&a, "x", 0);
    foreign.org_id = b.org.id.clone();
    assert!(matches!(
        store
            .insert_document(DocumentWrite {
                document: &foreign,
                text: "x",
                chunks: &[],
                embeddings: &[],
            })
            .await,
        Err(StoreError::Conflict(_))
    ));
    let mut replaced = d.clone();
    replaced.title = "Neu".into();
    assert!(store
        .replace_document(
            &b.org.id,
            DocumentWrite {
                document: &replaced,
                text: "neu",
                chunks: &[],
                embeddings: &[],
            }
        )
        .await
        .unwrap()
        .is_none());

    // Replace: fewer chunks, old chunk embeddings gone.
    let v1 = store.faq_version(&a.ws.id).await.unwrap();
    replaced.chunk_count = 1;
    replaced.chars = 3;
    let new_chunks = chunks_of(&replaced, 1);
    let new_embeddings = vec![embedding(chunk_item_id(&d.id, 0), "m1", 9.0)];
    let after = store
        .replace_document(
            &a.org.id,
            DocumentWrite {
                document: &replaced,
                text: "neu",
                chunks: &new_chunks,
                embeddings: &new_embeddings,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (after.title.as_str(), after.chunk_count, after.chars),
        ("Neu", 1, 3)
    );
    assert!(store.faq_version(&a.ws.id).await.unwrap() > v1);
    assert_eq!(
        store.document_chunks(&a.org.id, &d.id).await.unwrap(),
        new_chunks
    );
    let e = store.workspace_embeddings(&a.ws.id, "m1").await.unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].embedding.vector[0], 9.0);

    // FAQ embeddings: upsert replaces; deleting the entry deletes them.
    let f = faq(&a, "Wie lange dauert der Versand?");
    store.insert_faqs(std::slice::from_ref(&f)).await.unwrap();
    let v2 = store.faq_version(&a.ws.id).await.unwrap();
    store
        .put_embeddings(&a.ws.id, &[embedding(f.id.as_str().to_owned(), "m1", 1.0)])
        .await
        .unwrap();
    store
        .put_embeddings(&a.ws.id, &[embedding(f.id.as_str().to_owned(), "m1", 2.0)])
        .await
        .unwrap();
    assert!(store.faq_version(&a.ws.id).await.unwrap() > v2);
    let e = store.workspace_embeddings(&a.ws.id, "m1").await.unwrap();
    assert_eq!(e.len(), 2);
    let fe = e
        .iter()
        .find(|r| r.embedding.item_id == f.id.as_str())
        .unwrap();
    assert_eq!(
        (fe.embedding.vector[0], fe.content_hash.as_str()),
        (2.0, "h2")
    );
    assert!(store.delete_faq(&a.org.id, &f.id).await.unwrap());
    assert_eq!(
        store
            .workspace_embeddings(&a.ws.id, "m1")
            .await
            .unwrap()
            .len(),
        1
    );

    // Delete: document, chunks and embeddings.
    assert_eq!(
        store
            .list_documents(&a.org.id, &PageRequest::first(10))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.delete_document(&a.org.id, &d.id).await.unwrap());
    assert!(!store.delete_document(&a.org.id, &d.id).await.unwrap());
    assert!(store
        .get_document(&a.org.id, &d.id)
        .await
        .unwrap()
        .is_none());
    assert!(store.workspace_chunks(&a.ws.id).await.unwrap().is_empty());
    assert!(store
        .workspace_embeddings(&a.ws.id, "m1")
        .await
        .unwrap()
        .is_empty());

    // Usage events count towards usage and quotas, per key and org.
    store
        .insert_usage_event(&UsageEvent {
            org_id: a.org.id.clone(),
            api_key_id: Some(a.key.id.clone()),
            kind: "embedding".into(),
            model: "embed-small".into(),
            input_tokens: 40,
            cost_usd_micros: 7,
            created_at: t(500),
        })
        .await
        .unwrap();
    assert_eq!(
        store.usage_since(&a.org.id, None, t(0)).await.unwrap(),
        (40, 7)
    );
    assert_eq!(
        store
            .usage_since(&a.org.id, Some(&a.key.id), t(0))
            .await
            .unwrap(),
        (40, 7)
    );
    assert_eq!(
        store.usage_since(&a.org.id, None, t(501)).await.unwrap(),
        (0, 0)
    );
    assert_eq!(
        store.usage_since(&b.org.id, None, t(0)).await.unwrap(),
        (0, 0)
    );
    let rows = store
        .usage(&a.org.id, t(0), t(1000), UsageGroup::Model)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].key.as_deref(),
            rows[0].requests,
            rows[0].input_tokens,
            rows[0].output_tokens
        ),
        (Some("embed-small"), 1, 40, 0)
    );
}

// ---------------------------------------------------------------- bus

async fn next_event(sub: &mut Subscription) -> BusEvent {
    tokio::time::timeout(std::time::Duration::from_secs(10), sub.recv())
        .await
        .expect("no bus event within 10 s")
        .expect("bus closed")
}

/// Messages reach the subscribers of their topic only — from another store
/// on the same database (another process) on PostgreSQL, in process on
/// SQLite —; a subscriber that falls behind is told it lagged; bad topics
/// and oversized payloads are refused; PostgreSQL's listener survives the
/// loss of its connection and says so.
async fn bus_delivers_by_topic(db: &TestDb) {
    let bus = db.store.bus();
    let mut one = bus.subscribe("org:1:inbox").await.unwrap();
    let mut two = bus.subscribe("org:2:inbox").await.unwrap();
    let publisher = match db.store.backend() {
        Backend::Postgres => Store::connect(&db.url, 2).await.unwrap(),
        Backend::Sqlite => db.store.clone(),
    };
    let text = "changed\nconversation 7 — ü";
    publisher.bus().publish("org:1:inbox", text).await.unwrap();
    publisher
        .bus()
        .publish("org:2:inbox", "second")
        .await
        .unwrap();
    assert_eq!(next_event(&mut one).await, BusEvent::Message(text.into()));
    // The first message of topic 2 is its own, not topic 1's.
    assert_eq!(
        next_event(&mut two).await,
        BusEvent::Message("second".into())
    );

    for bad in ["", "a\nb", &"t".repeat(201)] {
        assert!(matches!(
            publisher.bus().publish(bad, "x").await,
            Err(StoreError::Config(_))
        ));
        assert!(matches!(
            bus.subscribe(bad).await,
            Err(StoreError::Config(_))
        ));
    }
    let big = "x".repeat(tidechat_store::bus::MAX_PAYLOAD_BYTES + 1);
    assert!(matches!(
        publisher.bus().publish("org:1:inbox", &big).await,
        Err(StoreError::Config(_))
    ));
    let largest = "y".repeat(tidechat_store::bus::MAX_PAYLOAD_BYTES);
    publisher
        .bus()
        .publish("org:1:inbox", &largest)
        .await
        .unwrap();
    assert_eq!(next_event(&mut one).await, BusEvent::Message(largest));

    // A subscriber that reads nothing while 300 messages pass lags; one
    // that keeps reading sees the last message.
    let mut idle = bus.subscribe("busy").await.unwrap();
    let mut reader = bus.subscribe("busy").await.unwrap();
    for i in 0..300 {
        publisher
            .bus()
            .publish("busy", &i.to_string())
            .await
            .unwrap();
    }
    loop {
        if next_event(&mut reader).await == BusEvent::Message("299".into()) {
            break;
        }
    }
    assert_eq!(next_event(&mut idle).await, BusEvent::Lagged);

    // Dropping the last subscriber of a topic forgets the topic.
    assert_eq!(bus.watched_topics(), 3);
    drop(idle);
    drop(reader);
    drop(two);
    assert_eq!(bus.watched_topics(), 1);

    if db.store.backend() == Backend::Postgres {
        // Cut the listening connection: the subscriber hears `Lagged`
        // (notices may have been missed), then later messages again.
        db.execute_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query = 'LISTEN tidechat_bus'",
        )
        .await
        .unwrap();
        assert_eq!(next_event(&mut one).await, BusEvent::Lagged);
        publisher
            .bus()
            .publish("org:1:inbox", "back")
            .await
            .unwrap();
        assert_eq!(next_event(&mut one).await, BusEvent::Message("back".into()));
    }
}
