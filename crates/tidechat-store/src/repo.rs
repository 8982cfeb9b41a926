//! Repository operations. Every body is written once and expanded per
//! backend by `with_conn!` / `with_tx!` (see `pool.rs`).

use chrono::{DateTime, Utc};
use diesel::dsl::case_when;
use diesel::prelude::*;
use diesel::sql_types::Timestamp;
use diesel_async::RunQueryDsl;
use tidechat_domain::{
    ApiKey, ApiKeyId, FaqDraft, FaqEntry, FaqId, LimitsPair, Message, OrgId, Organization, Persona,
    PersonaDraft, PersonaId, Session, SessionId, SessionStatus, Workspace, WorkspaceId,
};

use crate::error::StoreError;
use crate::models::*;
use crate::pool::{with_conn, with_tx};
use crate::schema::*;
use crate::{MessagePage, NewMessage, PageRequest, SessionFilter, SortOrder, Store};

/// The limit columns read with an API key (from two aliases of `limits`).
const LIMIT_COLUMNS: (
    limits::requests_per_minute,
    limits::max_concurrent_streams,
    limits::monthly_tokens,
    limits::monthly_cost_usd_micros,
) = (
    limits::requests_per_minute,
    limits::max_concurrent_streams,
    limits::monthly_tokens,
    limits::monthly_cost_usd_micros,
);

fn clamp_limit(limit: i64) -> i64 {
    limit.max(0)
}

fn not_in_org(what: &str) -> StoreError {
    StoreError::Conflict(format!("{what} does not exist in this organization"))
}

impl Store {
    // ------------------------------------------------------------ orgs

    /// Creates an organization with its first workspace, persona (made the
    /// workspace default) and API key, in one transaction.
    pub async fn create_org_bundle(
        &self,
        org: &Organization,
        ws: &Workspace,
        persona: &Persona,
        key: &ApiKey,
        key_hash: &str,
    ) -> Result<(), StoreError> {
        if ws.org_id != org.id || persona.org_id != org.id || key.org_id != org.id {
            return Err(StoreError::Conflict(
                "bundle records must belong to the organization".into(),
            ));
        }
        let org_row = OrgRow::from_domain(org);
        let mut ws_row = WorkspaceRow::from_domain(ws);
        ws_row.default_persona_id = Some(persona.id.as_str().to_owned());
        let persona_row = PersonaRow::from_domain(persona);
        let key_row = NewApiKeyRow::from_domain(key, key_hash);
        with_tx!(self, conn => {
            diesel::insert_into(organizations::table).values(&org_row).execute(conn).await?;
            diesel::insert_into(workspaces::table).values(&ws_row).execute(conn).await?;
            diesel::insert_into(personas::table).values(&persona_row).execute(conn).await?;
            diesel::insert_into(api_keys::table).values(&key_row).execute(conn).await?;
            Ok(())
        })
    }

    pub async fn count_orgs(&self) -> Result<i64, StoreError> {
        with_conn!(self, conn => {
            Ok(organizations::table.count().get_result::<i64>(conn).await?)
        })
    }

    pub async fn get_org(&self, org: &OrgId) -> Result<Option<Organization>, StoreError> {
        let row: Option<OrgRow> = with_conn!(self, conn => {
            organizations::table
                .find(org.as_str())
                .select(OrgRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        Ok(row.map(OrgRow::into_domain))
    }

    /// The organization's oldest workspace.
    pub async fn default_workspace(&self, org: &OrgId) -> Result<Option<Workspace>, StoreError> {
        let row: Option<WorkspaceRow> = with_conn!(self, conn => {
            workspaces::table
                .filter(workspaces::org_id.eq(org.as_str()))
                .order((workspaces::created_at.asc(), workspaces::id.asc()))
                .select(WorkspaceRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        Ok(row.map(WorkspaceRow::into_domain))
    }

    /// Makes `persona` (which must belong to the same organization and
    /// workspace) the workspace's default. `Ok(false)` when the workspace or
    /// persona is not found in the organization.
    pub async fn set_default_persona(
        &self,
        org: &OrgId,
        ws: &WorkspaceId,
        persona: &PersonaId,
    ) -> Result<bool, StoreError> {
        with_tx!(self, conn => {
            let changed = diesel::update(
                workspaces::table
                    .filter(workspaces::id.eq(ws.as_str()))
                    .filter(workspaces::org_id.eq(org.as_str()))
                    .filter(diesel::dsl::exists(
                        personas::table
                            .filter(personas::id.eq(persona.as_str()))
                            .filter(personas::org_id.eq(org.as_str()))
                            .filter(personas::workspace_id.eq(ws.as_str())),
                    )),
            )
            .set(workspaces::default_persona_id.eq(Some(persona.as_str())))
            .execute(conn)
            .await?;
            Ok(changed > 0)
        })
    }

    // ------------------------------------------------------------ api keys

    /// Stores a key (only its hash). The key's workspace must belong to the
    /// key's organization.
    pub async fn insert_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<(), StoreError> {
        let row = NewApiKeyRow::from_domain(key, key_hash);
        with_tx!(self, conn => {
            let ws_in_org: i64 = workspaces::table
                .filter(workspaces::id.eq(&row.workspace_id))
                .filter(workspaces::org_id.eq(&row.org_id))
                .count()
                .get_result(conn)
                .await?;
            if ws_in_org == 0 {
                return Err(not_in_org("workspace"));
            }
            diesel::insert_into(api_keys::table).values(&row).execute(conn).await?;
            Ok(())
        })
    }

    /// The key with this hash, revoked or not (check `revoked_at`), together
    /// with the limits set on its organization and on the key itself, in one
    /// statement: every request authenticated by key needs all three (rate
    /// limits, quotas).
    pub async fn find_api_key_with_limits(
        &self,
        key_hash: &str,
    ) -> Result<Option<(ApiKey, LimitsPair)>, StoreError> {
        let (org_l, key_l) = diesel::alias!(limits as org_l, limits as key_l);
        type Cols = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);
        let row: Option<(ApiKeyRow, Option<Cols>, Option<Cols>)> = with_conn!(self, conn => {
            api_keys::table
                .left_join(
                    org_l.on(org_l
                        .field(limits::org_id)
                        .eq(api_keys::org_id)
                        .and(org_l.field(limits::api_key_id).eq(""))),
                )
                .left_join(
                    key_l.on(key_l
                        .field(limits::org_id)
                        .eq(api_keys::org_id)
                        .and(key_l.field(limits::api_key_id).eq(api_keys::id))),
                )
                .filter(api_keys::key_hash.eq(key_hash))
                .select((
                    ApiKeyRow::as_select(),
                    org_l
                        .fields(LIMIT_COLUMNS)
                        .nullable(),
                    key_l
                        .fields(LIMIT_COLUMNS)
                        .nullable(),
                ))
                .first(conn)
                .await
                .optional()?
        });
        let limits = |c: Option<Cols>| {
            c.map(|(rpm, streams, tokens, cost)| tidechat_domain::Limits {
                requests_per_minute: rpm,
                max_concurrent_streams: streams,
                monthly_tokens: tokens,
                monthly_cost_usd_micros: cost,
            })
            .unwrap_or_default()
        };
        Ok(row.map(|(key, org, own)| {
            (
                key.into_domain(),
                LimitsPair {
                    org: limits(org),
                    key: limits(own),
                },
            )
        }))
    }

    /// One key of the organization (revoked ones too).
    pub async fn get_api_key(
        &self,
        org: &OrgId,
        id: &ApiKeyId,
    ) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<ApiKeyRow> = with_conn!(self, conn => {
            api_keys::table
                .filter(api_keys::id.eq(id.as_str()))
                .filter(api_keys::org_id.eq(org.as_str()))
                .select(ApiKeyRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        Ok(row.map(ApiKeyRow::into_domain))
    }

    pub async fn list_api_keys(&self, org: &OrgId) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<ApiKeyRow> = with_conn!(self, conn => {
            api_keys::table
                .filter(api_keys::org_id.eq(org.as_str()))
                .order((api_keys::created_at.desc(), api_keys::id.desc()))
                .select(ApiKeyRow::as_select())
                .load(conn)
                .await?
        });
        Ok(rows.into_iter().map(ApiKeyRow::into_domain).collect())
    }

    /// Revokes a key; idempotent (a second call keeps the first
    /// `revoked_at`). `Ok(None)` when the key is not in the organization.
    pub async fn revoke_api_key(
        &self,
        org: &OrgId,
        id: &ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError> {
        let at = to_db_ts(at);
        let row: Option<ApiKeyRow> = with_tx!(self, conn => {
            diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(id.as_str()))
                    .filter(api_keys::org_id.eq(org.as_str()))
                    .filter(api_keys::revoked_at.is_null()),
            )
            .set(api_keys::revoked_at.eq(Some(at)))
            .execute(conn)
            .await?;
            Ok(api_keys::table
                .filter(api_keys::id.eq(id.as_str()))
                .filter(api_keys::org_id.eq(org.as_str()))
                .select(ApiKeyRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })?;
        Ok(row.map(ApiKeyRow::into_domain))
    }

    // ------------------------------------------------------------ personas

    /// Inserts a persona; its workspace must belong to its organization.
    pub async fn insert_persona(&self, p: &Persona) -> Result<(), StoreError> {
        let row = PersonaRow::from_domain(p);
        with_tx!(self, conn => {
            let ws_in_org: i64 = workspaces::table
                .filter(workspaces::id.eq(&row.workspace_id))
                .filter(workspaces::org_id.eq(&row.org_id))
                .count()
                .get_result(conn)
                .await?;
            if ws_in_org == 0 {
                return Err(not_in_org("workspace"));
            }
            diesel::insert_into(personas::table).values(&row).execute(conn).await?;
            Ok(())
        })
    }

    pub async fn get_persona(
        &self,
        org: &OrgId,
        id: &PersonaId,
    ) -> Result<Option<Persona>, StoreError> {
        let row: Option<PersonaRow> = with_conn!(self, conn => {
            personas::table
                .filter(personas::id.eq(id.as_str()))
                .filter(personas::org_id.eq(org.as_str()))
                .select(PersonaRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        row.map(PersonaRow::into_domain).transpose()
    }

    pub async fn list_personas(
        &self,
        org: &OrgId,
        page: &PageRequest,
    ) -> Result<Vec<Persona>, StoreError> {
        let rows: Vec<PersonaRow> = with_conn!(self, conn => {
            let mut q = personas::table
                .filter(personas::org_id.eq(org.as_str()))
                .select(PersonaRow::as_select())
                .order(personas::id.desc())
                .limit(clamp_limit(page.limit))
                .into_boxed();
            if let Some(after) = &page.after_id {
                q = q.filter(personas::id.lt(after.as_str()));
            }
            q.load(conn).await?
        });
        rows.into_iter().map(PersonaRow::into_domain).collect()
    }

    /// Replaces the persona's editable fields; `Ok(None)` when it is not in
    /// the organization.
    pub async fn update_persona(
        &self,
        org: &OrgId,
        id: &PersonaId,
        draft: &PersonaDraft,
        at: DateTime<Utc>,
    ) -> Result<Option<Persona>, StoreError> {
        let changes = PersonaChanges::new(draft, at);
        let row: Option<PersonaRow> = with_tx!(self, conn => {
            Ok(diesel::update(
                personas::table
                    .filter(personas::id.eq(id.as_str()))
                    .filter(personas::org_id.eq(org.as_str())),
            )
            .set(&changes)
            .returning(PersonaRow::as_returning())
            .get_result(conn)
            .await
            .optional()?)
        })?;
        row.map(PersonaRow::into_domain).transpose()
    }

    /// Deletes a persona. `Ok(false)` when it is not in the organization;
    /// `Err(Conflict)` when sessions use it or it is a workspace's default.
    pub async fn delete_persona(&self, org: &OrgId, id: &PersonaId) -> Result<bool, StoreError> {
        with_tx!(self, conn => {
            let exists: i64 = personas::table
                .filter(personas::id.eq(id.as_str()))
                .filter(personas::org_id.eq(org.as_str()))
                .count()
                .get_result(conn)
                .await?;
            if exists == 0 {
                return Ok(false);
            }
            let used_by_sessions: i64 = sessions::table
                .filter(sessions::persona_id.eq(id.as_str()))
                .count()
                .get_result(conn)
                .await?;
            if used_by_sessions > 0 {
                return Err(StoreError::Conflict("persona is used by sessions".into()));
            }
            let default_of: i64 = workspaces::table
                .filter(workspaces::default_persona_id.eq(id.as_str()))
                .count()
                .get_result(conn)
                .await?;
            if default_of > 0 {
                return Err(StoreError::Conflict(
                    "persona is a workspace's default persona".into(),
                ));
            }
            // A session created concurrently (PostgreSQL) makes this fail
            // with a foreign-key violation, i.e. `Conflict` as well.
            let deleted = diesel::delete(
                personas::table
                    .filter(personas::id.eq(id.as_str()))
                    .filter(personas::org_id.eq(org.as_str())),
            )
            .execute(conn)
            .await?;
            Ok(deleted > 0)
        })
    }

    // ------------------------------------------------------------ sessions

    /// Inserts a session; its workspace and persona must belong to its
    /// organization (`Err(Conflict)` otherwise).
    pub async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        let row = SessionRow::from_domain(s);
        with_tx!(self, conn => {
            let ws_in_org: i64 = workspaces::table
                .filter(workspaces::id.eq(&row.workspace_id))
                .filter(workspaces::org_id.eq(&row.org_id))
                .count()
                .get_result(conn)
                .await?;
            if ws_in_org == 0 {
                return Err(not_in_org("workspace"));
            }
            let persona_in_org: i64 = personas::table
                .filter(personas::id.eq(&row.persona_id))
                .filter(personas::org_id.eq(&row.org_id))
                .count()
                .get_result(conn)
                .await?;
            if persona_in_org == 0 {
                return Err(not_in_org("persona"));
            }
            diesel::insert_into(sessions::table).values(&row).execute(conn).await?;
            Ok(())
        })
    }

    pub async fn get_session(
        &self,
        org: &OrgId,
        id: &SessionId,
    ) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = with_conn!(self, conn => {
            sessions::table
                .filter(sessions::id.eq(id.as_str()))
                .filter(sessions::org_id.eq(org.as_str()))
                .select(SessionRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        row.map(SessionRow::into_domain).transpose()
    }

    /// A session of the organization with its persona, in one statement
    /// (every turn needs both). The persona is `None` only if it is gone.
    pub async fn get_session_with_persona(
        &self,
        org: &OrgId,
        id: &SessionId,
    ) -> Result<Option<(Session, Option<Persona>)>, StoreError> {
        let row: Option<(SessionRow, Option<PersonaRow>)> = with_conn!(self, conn => {
            sessions::table
                .left_join(
                    personas::table.on(personas::id
                        .eq(sessions::persona_id)
                        .and(personas::org_id.eq(sessions::org_id))),
                )
                .filter(sessions::id.eq(id.as_str()))
                .filter(sessions::org_id.eq(org.as_str()))
                .select((SessionRow::as_select(), Option::<PersonaRow>::as_select()))
                .first(conn)
                .await
                .optional()?
        });
        match row {
            None => Ok(None),
            Some((session, persona)) => Ok(Some((
                session.into_domain()?,
                persona.map(PersonaRow::into_domain).transpose()?,
            ))),
        }
    }

    pub async fn list_sessions(
        &self,
        org: &OrgId,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Vec<Session>, StoreError> {
        let rows: Vec<SessionRow> = with_conn!(self, conn => {
            let mut q = sessions::table
                .filter(sessions::org_id.eq(org.as_str()))
                .select(SessionRow::as_select())
                .order(sessions::id.desc())
                .limit(clamp_limit(page.limit))
                .into_boxed();
            if let Some(user) = &filter.user_id {
                q = q.filter(sessions::user_id.eq(user.as_str()));
            }
            if let Some(status) = filter.status {
                q = q.filter(sessions::status.eq(status.as_str()));
            }
            if let Some(after) = &page.after_id {
                q = q.filter(sessions::id.lt(after.as_str()));
            }
            q.load(conn).await?
        });
        rows.into_iter().map(SessionRow::into_domain).collect()
    }

    /// Sets the status. `Ended` and `Archived` set `ended_at` to `at` unless
    /// it is already set; `Active` leaves `ended_at` alone (the caller
    /// decides which transitions are allowed). Returns the updated session,
    /// `Ok(None)` when it is not in the organization.
    pub async fn set_session_status(
        &self,
        org: &OrgId,
        id: &SessionId,
        status: SessionStatus,
        at: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let at = to_db_ts(at);
        let sets_end = matches!(status, SessionStatus::Ended | SessionStatus::Archived);
        let row: Option<SessionRow> = with_tx!(self, conn => {
            let changed = diesel::update(
                sessions::table
                    .filter(sessions::id.eq(id.as_str()))
                    .filter(sessions::org_id.eq(org.as_str())),
            )
            .set(sessions::status.eq(status.as_str()))
            .execute(conn)
            .await?;
            if changed == 0 {
                return Ok(None);
            }
            if sets_end {
                diesel::update(
                    sessions::table
                        .filter(sessions::id.eq(id.as_str()))
                        .filter(sessions::org_id.eq(org.as_str()))
                        .filter(sessions::ended_at.is_null()),
                )
                .set(sessions::ended_at.eq(Some(at)))
                .execute(conn)
                .await?;
            }
            Ok(sessions::table
                .filter(sessions::id.eq(id.as_str()))
                .filter(sessions::org_id.eq(org.as_str()))
                .select(SessionRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })?;
        row.map(SessionRow::into_domain).transpose()
    }

    // ------------------------------------------------------------ messages

    /// Appends a message, assigning the session's next gap-free `seq`
    /// (starting at 0) and updating the session's counters (tokens and cost
    /// only when `msg.billed`), in one transaction. Returns the stored
    /// message and the updated session. `Err(NotFound)` when the session is
    /// not in `msg.org_id`. The session's status is not checked.
    pub async fn append_message(&self, msg: &NewMessage) -> Result<(Message, Session), StoreError> {
        let created = to_db_ts(msg.created_at);
        let (d_in, d_out, d_cost) = if msg.billed {
            (msg.input_tokens, msg.output_tokens, msg.cost_usd_micros)
        } else {
            (0, 0, 0)
        };
        let sid = msg.session_id.as_str();
        let oid = msg.org_id.as_str();
        let (m, s): (MessageRow, SessionRow) = with_tx!(self, conn => {
            // The write goes first: it takes the row lock (PostgreSQL) that
            // serialises concurrent appends to this session. It also folds
            // the reply's drift into the session's running average and
            // returns the updated session: one statement, no read-back.
            let apply_drift = msg.drift_alpha.is_some();
            let alpha = msg.drift_alpha.unwrap_or(0.0);
            let score = msg.drift_score;
            let s: Option<SessionRow> = diesel::update(
                sessions::table
                    .filter(sessions::id.eq(sid))
                    .filter(sessions::org_id.eq(oid)),
            )
            .set((
                sessions::next_seq.eq(sessions::next_seq + 1),
                sessions::message_count.eq(sessions::message_count + 1),
                sessions::last_active_at.eq(
                    case_when(
                        sessions::last_active_at.lt(created),
                        created.into_sql::<Timestamp>(),
                    )
                    .otherwise(sessions::last_active_at),
                ),
                sessions::input_tokens.eq(sessions::input_tokens + d_in),
                sessions::output_tokens.eq(sessions::output_tokens + d_out),
                sessions::cost_usd_micros.eq(sessions::cost_usd_micros + d_cost),
                sessions::drift_ewma.eq(
                    case_when(
                        apply_drift.into_sql::<diesel::sql_types::Bool>().and(sessions::drift_ewma.is_null()),
                        score.into_sql::<diesel::sql_types::Double>().nullable(),
                    )
                    .when(
                        apply_drift.into_sql::<diesel::sql_types::Bool>(),
                        (sessions::drift_ewma * (1.0 - alpha) + alpha * score).nullable(),
                    )
                    .otherwise(sessions::drift_ewma),
                ),
            ))
            .returning(SessionRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
            let Some(s) = s else {
                return Err(StoreError::NotFound);
            };
            let row = MessageRow::from_new(msg, s.next_seq - 1);
            let m: MessageRow = diesel::insert_into(messages::table)
                .values(&row)
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .await?;
            // Usually none (a finding per rule hit). One statement each:
            // diesel_async's SQLite connection has no multi-row insert.
            for (i, record) in msg.moderation.iter().enumerate() {
                let record = ModerationRow {
                    id: i64::try_from(i).unwrap_or(i64::MAX),
                    message_id: row.id.clone(),
                    org_id: row.org_id.clone(),
                    stage: record.stage.clone(),
                    category: record.category.clone(),
                    rule: record.rule.clone(),
                    action: record.action.clone(),
                    excerpt: record.excerpt.clone(),
                };
                diesel::insert_into(moderation_records::table).values(&record).execute(conn).await?;
            }
            Ok((m, s))
        })?;
        Ok((m.into_domain()?, s.into_domain()?))
    }

    /// Messages of a session in the organization, keyset-paginated on `seq`.
    pub async fn list_messages(
        &self,
        org: &OrgId,
        session: &SessionId,
        page: &MessagePage,
    ) -> Result<Vec<Message>, StoreError> {
        let rows: Vec<MessageRow> = with_conn!(self, conn => {
            let mut q = messages::table
                .filter(messages::session_id.eq(session.as_str()))
                .filter(messages::org_id.eq(org.as_str()))
                .select(MessageRow::as_select())
                .limit(clamp_limit(page.limit))
                .into_boxed();
            q = match (page.order, page.after_seq) {
                (SortOrder::Asc, Some(after)) => q.filter(messages::seq.gt(after)),
                (SortOrder::Desc, Some(after)) => q.filter(messages::seq.lt(after)),
                (_, None) => q,
            };
            q = match page.order {
                SortOrder::Asc => q.order(messages::seq.asc()),
                SortOrder::Desc => q.order(messages::seq.desc()),
            };
            q.load(conn).await?
        });
        rows.into_iter().map(MessageRow::into_domain).collect()
    }

    /// The last `limit` messages of the session, in ascending `seq` order.
    /// Not scoped by organization: the caller already holds the session.
    pub async fn recent_messages(
        &self,
        session: &SessionId,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let rows: Vec<MessageRow> = with_conn!(self, conn => {
            messages::table
                .filter(messages::session_id.eq(session.as_str()))
                .select(MessageRow::as_select())
                .order(messages::seq.desc())
                .limit(clamp_limit(limit))
                .load(conn)
                .await?
        });
        rows.into_iter()
            .rev()
            .map(MessageRow::into_domain)
            .collect()
    }

    // ------------------------------------------------------------ faq

    /// Inserts entries, all or nothing, and bumps `faq_version` of every
    /// affected workspace. Each entry's workspace must belong to the entry's
    /// organization (`Err(Conflict)` otherwise).
    pub async fn insert_faqs(&self, entries: &[FaqEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows: Vec<FaqRow> = entries.iter().map(FaqRow::from_domain).collect();
        let mut workspaces_touched: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.workspace_id.as_str(), r.org_id.as_str()))
            .collect();
        workspaces_touched.sort_unstable();
        workspaces_touched.dedup();
        let workspaces_touched = &workspaces_touched;
        let rows = &rows;
        with_tx!(self, conn => {
            for (ws, org) in workspaces_touched {
                let bumped = diesel::update(
                    workspaces::table
                        .filter(workspaces::id.eq(*ws))
                        .filter(workspaces::org_id.eq(*org)),
                )
                .set(workspaces::faq_version.eq(workspaces::faq_version + 1))
                .execute(conn)
                .await?;
                if bumped == 0 {
                    return Err(not_in_org("workspace"));
                }
            }
            // Row by row: SQLite cannot batch-insert rows with NULLable
            // columns through diesel, and inside one transaction this is
            // cheap on both backends.
            for row in rows {
                diesel::insert_into(faq_entries::table)
                    .values(row)
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
    }

    pub async fn get_faq(&self, org: &OrgId, id: &FaqId) -> Result<Option<FaqEntry>, StoreError> {
        let row: Option<FaqRow> = with_conn!(self, conn => {
            faq_entries::table
                .filter(faq_entries::id.eq(id.as_str()))
                .filter(faq_entries::org_id.eq(org.as_str()))
                .select(FaqRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        row.map(FaqRow::into_domain).transpose()
    }

    pub async fn list_faqs(
        &self,
        org: &OrgId,
        page: &PageRequest,
    ) -> Result<Vec<FaqEntry>, StoreError> {
        let rows: Vec<FaqRow> = with_conn!(self, conn => {
            let mut q = faq_entries::table
                .filter(faq_entries::org_id.eq(org.as_str()))
                .select(FaqRow::as_select())
                .order(faq_entries::id.desc())
                .limit(clamp_limit(page.limit))
                .into_boxed();
            if let Some(after) = &page.after_id {
                q = q.filter(faq_entries::id.lt(after.as_str()));
            }
            q.load(conn).await?
        });
        rows.into_iter().map(FaqRow::into_domain).collect()
    }

    /// Replaces an entry's content and bumps its workspace's `faq_version`.
    pub async fn update_faq(
        &self,
        org: &OrgId,
        id: &FaqId,
        draft: &FaqDraft,
        at: DateTime<Utc>,
    ) -> Result<Option<FaqEntry>, StoreError> {
        let changes = FaqChanges::new(draft, at);
        let row: Option<FaqRow> = with_tx!(self, conn => {
            let row: Option<FaqRow> = diesel::update(
                faq_entries::table
                    .filter(faq_entries::id.eq(id.as_str()))
                    .filter(faq_entries::org_id.eq(org.as_str())),
            )
            .set(&changes)
            .returning(FaqRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
            if let Some(row) = &row {
                diesel::update(workspaces::table.find(&row.workspace_id))
                    .set(workspaces::faq_version.eq(workspaces::faq_version + 1))
                    .execute(conn)
                    .await?;
            }
            Ok(row)
        })?;
        row.map(FaqRow::into_domain).transpose()
    }

    /// Deletes an entry and bumps its workspace's `faq_version`.
    pub async fn delete_faq(&self, org: &OrgId, id: &FaqId) -> Result<bool, StoreError> {
        with_tx!(self, conn => {
            let ws: Option<String> = diesel::delete(
                faq_entries::table
                    .filter(faq_entries::id.eq(id.as_str()))
                    .filter(faq_entries::org_id.eq(org.as_str())),
            )
            .returning(faq_entries::workspace_id)
            .get_result(conn)
            .await
            .optional()?;
            let Some(ws) = ws else {
                return Ok(false);
            };
            diesel::delete(
                knowledge_embeddings::table.filter(knowledge_embeddings::item_id.eq(id.as_str())),
            )
            .execute(conn)
            .await?;
            diesel::update(workspaces::table.find(&ws))
                .set(workspaces::faq_version.eq(workspaces::faq_version + 1))
                .execute(conn)
                .await?;
            Ok(true)
        })
    }

    /// The workspace's FAQ version; `Err(NotFound)` for an unknown workspace.
    pub async fn faq_version(&self, ws: &WorkspaceId) -> Result<i64, StoreError> {
        with_conn!(self, conn => {
            Ok(workspaces::table
                .find(ws.as_str())
                .select(workspaces::faq_version)
                .first::<i64>(conn)
                .await?)
        })
    }

    /// Every FAQ entry of the workspace, oldest first.
    pub async fn workspace_faqs(&self, ws: &WorkspaceId) -> Result<Vec<FaqEntry>, StoreError> {
        let rows: Vec<FaqRow> = with_conn!(self, conn => {
            faq_entries::table
                .filter(faq_entries::workspace_id.eq(ws.as_str()))
                .select(FaqRow::as_select())
                .order(faq_entries::id.asc())
                .load(conn)
                .await?
        });
        rows.into_iter().map(FaqRow::into_domain).collect()
    }

    // ------------------------------------------------------------ secrets

    /// Returns the stored secret `name`, storing `candidate` first if there
    /// is none. Race-safe between processes (insert-or-ignore, then read):
    /// every caller gets the same value.
    pub async fn get_or_create_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<String, StoreError> {
        let row = SecretRow {
            name: name.to_owned(),
            value: candidate.to_owned(),
            created_at: to_db_ts(Utc::now()),
        };
        with_tx!(self, conn => {
            diesel::insert_into(server_secrets::table)
                .values(&row)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            Ok(server_secrets::table
                .find(name)
                .select(server_secrets::value)
                .first::<String>(conn)
                .await?)
        })
    }

    // ------------------------------------------------------------ external sessions, end users

    /// The session a client knows by its own id (`external_id`), if any.
    pub async fn find_session_by_external(
        &self,
        org: &OrgId,
        external_id: &str,
    ) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = with_conn!(self, conn => {
            sessions::table
                .filter(sessions::org_id.eq(org.as_str()))
                .filter(sessions::external_id.eq(external_id))
                .select(SessionRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        row.map(SessionRow::into_domain).transpose()
    }

    /// Records that the organization's end user `user_id` was seen at `at`.
    /// Returns the record and whether this call created it.
    pub async fn touch_end_user(
        &self,
        org: &OrgId,
        user_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(tidechat_domain::EndUser, bool), StoreError> {
        let at = to_db_ts(at);
        let row = EndUserRow {
            id: tidechat_domain::EndUserId::generate().into_string(),
            org_id: org.as_str().to_owned(),
            user_id: user_id.to_owned(),
            created_at: at,
            last_seen_at: at,
        };
        let (row, created): (EndUserRow, bool) = with_tx!(self, conn => {
            let inserted = diesel::insert_into(end_users::table)
                .values(&row)
                .on_conflict((end_users::org_id, end_users::user_id))
                .do_nothing()
                .execute(conn)
                .await?;
            if inserted == 0 {
                diesel::update(end_users::table)
                    .filter(end_users::org_id.eq(&row.org_id))
                    .filter(end_users::user_id.eq(&row.user_id))
                    .set(end_users::last_seen_at.eq(at))
                    .execute(conn)
                    .await?;
            }
            let stored = end_users::table
                .filter(end_users::org_id.eq(&row.org_id))
                .filter(end_users::user_id.eq(&row.user_id))
                .select(EndUserRow::as_select())
                .first(conn)
                .await?;
            Ok((stored, inserted == 1))
        })?;
        Ok((row.into_domain(), created))
    }

    // ------------------------------------------------------------ limits and usage

    /// The limits set on the organization (`key` = None) or on one of its
    /// keys; all `None` when nothing is set.
    pub async fn get_limits(
        &self,
        org: &OrgId,
        key: Option<&ApiKeyId>,
    ) -> Result<tidechat_domain::Limits, StoreError> {
        let key = key.map(ApiKeyId::as_str).unwrap_or_default();
        let row: Option<LimitsRow> = with_conn!(self, conn => {
            limits::table
                .filter(limits::org_id.eq(org.as_str()))
                .filter(limits::api_key_id.eq(key))
                .select(LimitsRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        Ok(row.map(LimitsRow::into_domain).unwrap_or_default())
    }

    /// Replaces the limits of the organization or of one of its keys. A key
    /// of another organization is `Ok(false)`.
    pub async fn set_limits(
        &self,
        org: &OrgId,
        key: Option<&ApiKeyId>,
        value: &tidechat_domain::Limits,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let row = LimitsRow {
            org_id: org.as_str().to_owned(),
            api_key_id: key.map(ApiKeyId::as_str).unwrap_or_default().to_owned(),
            requests_per_minute: value.requests_per_minute,
            max_concurrent_streams: value.max_concurrent_streams,
            monthly_tokens: value.monthly_tokens,
            monthly_cost_usd_micros: value.monthly_cost_usd_micros,
            updated_at: to_db_ts(at),
        };
        with_tx!(self, conn => {
            if let Some(key) = key {
                let owned: i64 = api_keys::table
                    .filter(api_keys::id.eq(key.as_str()))
                    .filter(api_keys::org_id.eq(org.as_str()))
                    .count()
                    .get_result(conn)
                    .await?;
                if owned == 0 {
                    return Ok(false);
                }
            }
            diesel::insert_into(limits::table)
                .values(&row)
                .on_conflict((limits::org_id, limits::api_key_id))
                .do_update()
                .set(&row)
                .execute(conn)
                .await?;
            Ok(true)
        })
    }

    /// Tokens (input + output) and cost of the billed replies of the
    /// organization — or of one of its keys — created at or after `since`.
    pub async fn usage_since(
        &self,
        org: &OrgId,
        key: Option<&ApiKeyId>,
        since: DateTime<Utc>,
    ) -> Result<(i64, i64), StoreError> {
        let since = to_db_ts(since);
        let key = key.map(|k| k.as_str().to_owned());
        let (pg, sqlite) = (
            // Replies plus other usage (embedding calls), see `usage_events`.
            "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) AS tokens, \
             CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost FROM ( \
             SELECT input_tokens + output_tokens AS tokens, cost_usd_micros AS cost FROM messages \
             WHERE org_id = $1 AND role = 'assistant' AND created_at >= $2 AND ($3::TEXT IS NULL OR api_key_id = $3) \
             UNION ALL SELECT input_tokens, cost_usd_micros FROM usage_events \
             WHERE org_id = $1 AND created_at >= $2 AND ($3::TEXT IS NULL OR api_key_id = $3)) AS u",
            "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) AS tokens, \
             CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost FROM ( \
             SELECT input_tokens + output_tokens AS tokens, cost_usd_micros AS cost FROM messages \
             WHERE org_id = ?1 AND role = 'assistant' AND created_at >= ?2 AND (?3 IS NULL OR api_key_id = ?3) \
             UNION ALL SELECT input_tokens, cost_usd_micros FROM usage_events \
             WHERE org_id = ?1 AND created_at >= ?2 AND (?3 IS NULL OR api_key_id = ?3)) AS u",
        );
        let sql = if self.backend() == crate::Backend::Postgres {
            pg
        } else {
            sqlite
        };
        let row: UsageTotalsRow = with_conn!(self, conn => {
            diesel::sql_query(sql)
                .bind::<diesel::sql_types::Text, _>(org.as_str())
                .bind::<Timestamp, _>(since)
                .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(key.as_deref())
                .get_result(conn)
                .await?
        });
        Ok((row.tokens, row.cost))
    }

    /// Billed replies of the organization created in `[from, to)`, grouped.
    pub async fn usage(
        &self,
        org: &OrgId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        group: crate::UsageGroup,
    ) -> Result<Vec<crate::UsageRow>, StoreError> {
        let postgres = self.backend() == crate::Backend::Postgres;
        let key = match (group, postgres) {
            (crate::UsageGroup::Day, true) => "to_char(created_at, 'YYYY-MM-DD')",
            (crate::UsageGroup::Day, false) => "substr(created_at, 1, 10)",
            (crate::UsageGroup::Model, _) => "model",
            (crate::UsageGroup::ApiKey, _) => "api_key_id",
        };
        let (o, f, t) = if postgres {
            ("$1", "$2", "$3")
        } else {
            ("?1", "?2", "?3")
        };
        // Replies plus other usage (embedding calls: a request each, input
        // tokens only).
        let sql = format!(
            "SELECT {key} AS key, COUNT(*) AS requests, \
             CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
             CAST(COALESCE(SUM(cost_usd_micros), 0) AS BIGINT) AS cost_usd_micros \
             FROM (SELECT created_at, model, api_key_id, input_tokens, output_tokens, cost_usd_micros \
             FROM messages WHERE org_id = {o} AND role = 'assistant' \
             AND created_at >= {f} AND created_at < {t} \
             UNION ALL SELECT created_at, model, api_key_id, input_tokens, 0, cost_usd_micros \
             FROM usage_events WHERE org_id = {o} \
             AND created_at >= {f} AND created_at < {t}) AS u GROUP BY 1 ORDER BY 1"
        );
        let (from, to) = (to_db_ts(from), to_db_ts(to));
        let rows: Vec<UsageGroupRow> = with_conn!(self, conn => {
            diesel::sql_query(&sql)
                .bind::<diesel::sql_types::Text, _>(org.as_str())
                .bind::<Timestamp, _>(from)
                .bind::<Timestamp, _>(to)
                .load(conn)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| crate::UsageRow {
                key: r.key,
                requests: r.requests,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                cost_usd_micros: r.cost_usd_micros,
            })
            .collect())
    }

    // ------------------------------------------------------------ moderation

    /// The moderation records of a message of the organization, in order;
    /// `None` when the message is not in the organization.
    pub async fn moderation_records(
        &self,
        org: &OrgId,
        message: &tidechat_domain::MessageId,
    ) -> Result<Option<(Message, Vec<tidechat_domain::ModerationRecord>)>, StoreError> {
        let found: Option<(MessageRow, Vec<ModerationRow>)> = with_conn!(self, conn => {
            let m: Option<MessageRow> = messages::table
                .filter(messages::id.eq(message.as_str()))
                .filter(messages::org_id.eq(org.as_str()))
                .select(MessageRow::as_select())
                .first(conn)
                .await
                .optional()?;
            match m {
                None => None,
                Some(m) => {
                    let records: Vec<ModerationRow> = moderation_records::table
                        .filter(moderation_records::message_id.eq(&m.id))
                        .order(moderation_records::id.asc())
                        .select(ModerationRow::as_select())
                        .load(conn)
                        .await?;
                    Some((m, records))
                }
            }
        });
        match found {
            None => Ok(None),
            Some((m, records)) => Ok(Some((
                m.into_domain()?,
                records
                    .into_iter()
                    .map(ModerationRow::into_domain)
                    .collect(),
            ))),
        }
    }

    // ------------------------------------------------------------ tools

    /// Inserts a tool; a name already used in the organization is `Conflict`.
    pub async fn insert_tool(&self, tool: &tidechat_domain::HttpTool) -> Result<(), StoreError> {
        let row = ToolRow::from_domain(tool);
        with_tx!(self, conn => {
            diesel::insert_into(tools::table).values(&row).execute(conn).await?;
            Ok(())
        })
    }

    pub async fn get_tool(
        &self,
        org: &OrgId,
        id: &tidechat_domain::ToolId,
    ) -> Result<Option<tidechat_domain::HttpTool>, StoreError> {
        let row: Option<ToolRow> = with_conn!(self, conn => {
            tools::table
                .filter(tools::id.eq(id.as_str()))
                .filter(tools::org_id.eq(org.as_str()))
                .select(ToolRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        row.map(ToolRow::into_domain).transpose()
    }

    /// The organization's tools with these names (unknown names are absent).
    pub async fn tools_named(
        &self,
        org: &OrgId,
        names: &[String],
    ) -> Result<Vec<tidechat_domain::HttpTool>, StoreError> {
        let rows: Vec<ToolRow> = with_conn!(self, conn => {
            tools::table
                .filter(tools::org_id.eq(org.as_str()))
                .filter(tools::name.eq_any(names))
                .select(ToolRow::as_select())
                .load(conn)
                .await?
        });
        rows.into_iter().map(ToolRow::into_domain).collect()
    }

    /// The organization's tools, by name.
    pub async fn list_tools(
        &self,
        org: &OrgId,
    ) -> Result<Vec<tidechat_domain::HttpTool>, StoreError> {
        let rows: Vec<ToolRow> = with_conn!(self, conn => {
            tools::table
                .filter(tools::org_id.eq(org.as_str()))
                .select(ToolRow::as_select())
                .order(tools::name.asc())
                .load(conn)
                .await?
        });
        rows.into_iter().map(ToolRow::into_domain).collect()
    }

    /// Replaces a tool's fields; `Ok(None)` when it is not in the organization.
    pub async fn update_tool(
        &self,
        org: &OrgId,
        id: &tidechat_domain::ToolId,
        draft: &tidechat_domain::HttpToolDraft,
        at: DateTime<Utc>,
    ) -> Result<Option<tidechat_domain::HttpTool>, StoreError> {
        let at = to_db_ts(at);
        let parameters = draft.parameters.to_string();
        let row: Option<ToolRow> = with_tx!(self, conn => {
            let updated = diesel::update(tools::table)
                .filter(tools::id.eq(id.as_str()))
                .filter(tools::org_id.eq(org.as_str()))
                .set((
                    tools::name.eq(&draft.name),
                    tools::description.eq(&draft.description),
                    tools::parameters.eq(&parameters),
                    tools::url.eq(&draft.url),
                    tools::secret.eq(&draft.secret),
                    tools::updated_at.eq(at),
                ))
                .execute(conn)
                .await?;
            if updated == 0 {
                return Ok(None);
            }
            Ok(tools::table
                .filter(tools::id.eq(id.as_str()))
                .select(ToolRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })?;
        row.map(ToolRow::into_domain).transpose()
    }

    pub async fn delete_tool(
        &self,
        org: &OrgId,
        id: &tidechat_domain::ToolId,
    ) -> Result<bool, StoreError> {
        let deleted = with_tx!(self, conn => {
            Ok(diesel::delete(tools::table)
                .filter(tools::id.eq(id.as_str()))
                .filter(tools::org_id.eq(org.as_str()))
                .execute(conn)
                .await?)
        })?;
        Ok(deleted > 0)
    }

    // ------------------------------------------------------------ chats REST + WebSocket

    /// Deletes a session of the organization and (by cascade) its messages
    /// and their moderation records. `Ok(false)` when it is not there.
    pub async fn delete_session(&self, org: &OrgId, id: &SessionId) -> Result<bool, StoreError> {
        let deleted = with_tx!(self, conn => {
            Ok(diesel::delete(sessions::table)
                .filter(sessions::id.eq(id.as_str()))
                .filter(sessions::org_id.eq(org.as_str()))
                .execute(conn)
                .await?)
        })?;
        Ok(deleted > 0)
    }

    /// Offset pagination over a session's messages (ordered by `seq`), with
    /// the total count. The caller has checked the session's organization.
    pub async fn messages_page(
        &self,
        session: &SessionId,
        offset: i64,
        limit: i64,
        order: SortOrder,
    ) -> Result<(Vec<Message>, i64), StoreError> {
        let (rows, total): (Vec<MessageRow>, i64) = with_conn!(self, conn => {
            let total: i64 = messages::table
                .filter(messages::session_id.eq(session.as_str()))
                .count()
                .get_result(conn)
                .await?;
            let query = messages::table
                .filter(messages::session_id.eq(session.as_str()))
                .select(MessageRow::as_select())
                .offset(offset.max(0))
                .limit(clamp_limit(limit))
                .into_boxed();
            let query = match order {
                SortOrder::Asc => query.order(messages::seq.asc()),
                SortOrder::Desc => query.order(messages::seq.desc()),
            };
            (query.load(conn).await?, total)
        });
        Ok((
            rows.into_iter()
                .map(MessageRow::into_domain)
                .collect::<Result<_, _>>()?,
            total,
        ))
    }

    /// The session's messages after the one with id `after` (in `seq`
    /// order), at most `limit`. `None` when `after` is not in this session.
    pub async fn messages_after(
        &self,
        session: &SessionId,
        after: &tidechat_domain::MessageId,
        limit: i64,
    ) -> Result<Option<Vec<Message>>, StoreError> {
        let rows: Option<Vec<MessageRow>> = with_conn!(self, conn => {
            let seq: Option<i64> = messages::table
                .filter(messages::id.eq(after.as_str()))
                .filter(messages::session_id.eq(session.as_str()))
                .select(messages::seq)
                .first(conn)
                .await
                .optional()?;
            match seq {
                None => None,
                Some(seq) => Some(
                    messages::table
                        .filter(messages::session_id.eq(session.as_str()))
                        .filter(messages::seq.gt(seq))
                        .order(messages::seq.asc())
                        .limit(clamp_limit(limit))
                        .select(MessageRow::as_select())
                        .load(conn)
                        .await?,
                ),
            }
        });
        rows.map(|rows| rows.into_iter().map(MessageRow::into_domain).collect())
            .transpose()
    }

    /// Stores a WebSocket ticket (its hash) for the organization's key.
    pub async fn create_ws_ticket(
        &self,
        ticket_hash: &str,
        org: &OrgId,
        key: &ApiKeyId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (hash, org, key, expires) = (
            ticket_hash.to_owned(),
            org.as_str().to_owned(),
            key.as_str().to_owned(),
            to_db_ts(expires_at),
        );
        with_tx!(self, conn => {
            diesel::insert_into(ws_tickets::table)
                .values((
                    ws_tickets::ticket_hash.eq(&hash),
                    ws_tickets::org_id.eq(&org),
                    ws_tickets::api_key_id.eq(&key),
                    ws_tickets::expires_at.eq(expires),
                ))
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    /// Uses a ticket: returns its organization and key if it exists, has not
    /// expired and was not used before (atomically: a ticket opens one
    /// connection).
    pub async fn redeem_ws_ticket(
        &self,
        ticket_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(OrgId, ApiKeyId)>, StoreError> {
        let now = to_db_ts(now);
        let hash = ticket_hash.to_owned();
        let found: Option<(String, String)> = with_tx!(self, conn => {
            let used = diesel::update(ws_tickets::table)
                .filter(ws_tickets::ticket_hash.eq(&hash))
                .filter(ws_tickets::used_at.is_null())
                .filter(ws_tickets::expires_at.gt(now))
                .set(ws_tickets::used_at.eq(Some(now)))
                .execute(conn)
                .await?;
            if used == 0 {
                return Ok(None);
            }
            Ok(ws_tickets::table
                .filter(ws_tickets::ticket_hash.eq(&hash))
                .select((ws_tickets::org_id, ws_tickets::api_key_id))
                .first(conn)
                .await
                .optional()?)
        })?;
        Ok(found.map(|(org, key)| (OrgId::from_trusted(org), ApiKeyId::from_trusted(key))))
    }

    // ------------------------------------------------------------ widget sites

    pub async fn insert_site(&self, site: &tidechat_domain::Site) -> Result<(), StoreError> {
        let row = SiteRow::from_domain(site);
        with_tx!(self, conn => {
            let persona_in_org: i64 = personas::table
                .filter(personas::id.eq(&row.persona_id))
                .filter(personas::org_id.eq(&row.org_id))
                .count()
                .get_result(conn)
                .await?;
            if persona_in_org == 0 {
                return Err(not_in_org("persona"));
            }
            diesel::insert_into(sites::table).values(&row).execute(conn).await?;
            Ok(())
        })
    }

    pub async fn get_site(
        &self,
        org: &OrgId,
        id: &tidechat_domain::SiteId,
    ) -> Result<Option<tidechat_domain::Site>, StoreError> {
        let row: Option<SiteRow> = with_conn!(self, conn => {
            sites::table
                .filter(sites::id.eq(id.as_str()))
                .filter(sites::org_id.eq(org.as_str()))
                .select(SiteRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        row.map(SiteRow::into_domain).transpose()
    }

    /// The site a public `site_key` names (any organization).
    pub async fn site_by_key(
        &self,
        site_key: &str,
    ) -> Result<Option<tidechat_domain::Site>, StoreError> {
        let row: Option<SiteRow> = with_conn!(self, conn => {
            sites::table
                .filter(sites::site_key.eq(site_key))
                .select(SiteRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        row.map(SiteRow::into_domain).transpose()
    }

    pub async fn list_sites(&self, org: &OrgId) -> Result<Vec<tidechat_domain::Site>, StoreError> {
        let rows: Vec<SiteRow> = with_conn!(self, conn => {
            sites::table
                .filter(sites::org_id.eq(org.as_str()))
                .order(sites::id.desc())
                .select(SiteRow::as_select())
                .load(conn)
                .await?
        });
        rows.into_iter().map(SiteRow::into_domain).collect()
    }

    /// Replaces a site's editable fields (name, persona, origins, settings).
    pub async fn update_site(&self, site: &tidechat_domain::Site) -> Result<bool, StoreError> {
        let row = SiteRow::from_domain(site);
        let updated = with_tx!(self, conn => {
            let persona_in_org: i64 = personas::table
                .filter(personas::id.eq(&row.persona_id))
                .filter(personas::org_id.eq(&row.org_id))
                .count()
                .get_result(conn)
                .await?;
            if persona_in_org == 0 {
                return Err(not_in_org("persona"));
            }
            Ok(diesel::update(sites::table)
                .filter(sites::id.eq(&row.id))
                .filter(sites::org_id.eq(&row.org_id))
                .set((
                    sites::name.eq(&row.name),
                    sites::persona_id.eq(&row.persona_id),
                    sites::allowed_origins.eq(&row.allowed_origins),
                    sites::settings.eq(&row.settings),
                    sites::updated_at.eq(row.updated_at),
                ))
                .execute(conn)
                .await?)
        })?;
        Ok(updated > 0)
    }

    /// Whether any site allows `origin` (for CORS preflights, which carry no site key).
    pub async fn origin_allowed_anywhere(&self, origin: &str) -> Result<bool, StoreError> {
        let pattern = format!("%\"{}\"%", origin.replace(['%', '_', '\\'], ""));
        let count: i64 = with_conn!(self, conn => {
            sites::table
                .filter(sites::allowed_origins.like(pattern))
                .count()
                .get_result(conn)
                .await?
        });
        Ok(count > 0)
    }

    // ------------------------------------------------------------ widget conversations

    /// The conversation of a site's visitor, with its session.
    pub async fn widget_conversation(
        &self,
        site: &tidechat_domain::SiteId,
        visitor_key: &str,
    ) -> Result<Option<(tidechat_domain::WidgetConversation, Session)>, StoreError> {
        let found: Option<(ConversationRow, SessionRow)> = with_conn!(self, conn => {
            widget_conversations::table
                .inner_join(sessions::table.on(sessions::id.eq(widget_conversations::session_id)))
                .filter(widget_conversations::site_id.eq(site.as_str()))
                .filter(widget_conversations::visitor_key.eq(visitor_key))
                .select((ConversationRow::as_select(), SessionRow::as_select()))
                .first(conn)
                .await
                .optional()?
        });
        found
            .map(|(c, s)| Ok((c.into_domain()?, s.into_domain()?)))
            .transpose()
    }

    /// A conversation of the organization by its session id.
    pub async fn widget_conversation_by_session(
        &self,
        org: &OrgId,
        session: &SessionId,
    ) -> Result<Option<(tidechat_domain::WidgetConversation, Session)>, StoreError> {
        let found: Option<(ConversationRow, SessionRow)> = with_conn!(self, conn => {
            widget_conversations::table
                .inner_join(sessions::table.on(sessions::id.eq(widget_conversations::session_id)))
                .filter(widget_conversations::session_id.eq(session.as_str()))
                .filter(widget_conversations::org_id.eq(org.as_str()))
                .select((ConversationRow::as_select(), SessionRow::as_select()))
                .first(conn)
                .await
                .optional()?
        });
        found
            .map(|(c, s)| Ok((c.into_domain()?, s.into_domain()?)))
            .transpose()
    }

    /// Creates a session and its widget conversation in one transaction.
    /// `Err(Conflict)` when the visitor already has one (a race: re-read).
    pub async fn create_widget_conversation(
        &self,
        session: &Session,
        conversation: &tidechat_domain::WidgetConversation,
    ) -> Result<(), StoreError> {
        let s = SessionRow::from_domain(session);
        let c = ConversationRow::from_domain(conversation);
        with_tx!(self, conn => {
            diesel::insert_into(sessions::table).values(&s).execute(conn).await?;
            diesel::insert_into(widget_conversations::table).values(&c).execute(conn).await?;
            Ok(())
        })
    }

    /// Saves a conversation's mutable state (mode, contact, rating, block, read mark).
    pub async fn save_widget_conversation(
        &self,
        c: &tidechat_domain::WidgetConversation,
    ) -> Result<(), StoreError> {
        let row = ConversationRow::from_domain(c);
        with_tx!(self, conn => {
            diesel::update(widget_conversations::table)
                .filter(widget_conversations::session_id.eq(&row.session_id))
                .filter(widget_conversations::org_id.eq(&row.org_id))
                .set((
                    widget_conversations::mode.eq(&row.mode),
                    widget_conversations::email.eq(&row.email),
                    widget_conversations::phone.eq(&row.phone),
                    widget_conversations::name.eq(&row.name),
                    widget_conversations::rating.eq(row.rating),
                    widget_conversations::rating_comment.eq(&row.rating_comment),
                    widget_conversations::blocked.eq(row.blocked),
                    widget_conversations::operator_read_seq.eq(row.operator_read_seq),
                    widget_conversations::updated_at.eq(row.updated_at),
                ))
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    /// A site's conversations, most recently updated first (at most `limit`).
    pub async fn widget_conversations(
        &self,
        org: &OrgId,
        site: &tidechat_domain::SiteId,
        limit: i64,
    ) -> Result<Vec<(tidechat_domain::WidgetConversation, Session)>, StoreError> {
        let rows: Vec<(ConversationRow, SessionRow)> = with_conn!(self, conn => {
            widget_conversations::table
                .inner_join(sessions::table.on(sessions::id.eq(widget_conversations::session_id)))
                .filter(widget_conversations::site_id.eq(site.as_str()))
                .filter(widget_conversations::org_id.eq(org.as_str()))
                .order(sessions::last_active_at.desc())
                .limit(clamp_limit(limit))
                .select((ConversationRow::as_select(), SessionRow::as_select()))
                .load(conn)
                .await?
        });
        rows.into_iter()
            .map(|(c, s)| Ok((c.into_domain()?, s.into_domain()?)))
            .collect()
    }

    /// Claims a client message id for a session: true the first time.
    pub async fn claim_client_message_id(
        &self,
        session: &SessionId,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (sid, mid, at) = (session.as_str().to_owned(), id.to_owned(), to_db_ts(at));
        let inserted = with_tx!(self, conn => {
            Ok(diesel::insert_into(widget_message_ids::table)
                .values((
                    widget_message_ids::session_id.eq(&sid),
                    widget_message_ids::client_message_id.eq(&mid),
                    widget_message_ids::created_at.eq(at),
                ))
                .on_conflict((widget_message_ids::session_id, widget_message_ids::client_message_id))
                .do_nothing()
                .execute(conn)
                .await?)
        })?;
        Ok(inserted == 1)
    }

    /// Messages of a session with `seq` above `after`, oldest first.
    pub async fn messages_after_seq(
        &self,
        session: &SessionId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let rows: Vec<MessageRow> = with_conn!(self, conn => {
            messages::table
                .filter(messages::session_id.eq(session.as_str()))
                .filter(messages::seq.gt(after))
                .order(messages::seq.asc())
                .limit(clamp_limit(limit))
                .select(MessageRow::as_select())
                .load(conn)
                .await?
        });
        rows.into_iter().map(MessageRow::into_domain).collect()
    }

    // ------------------------------------------------------------ proactive messages

    pub async fn insert_proactive(
        &self,
        p: &tidechat_domain::ProactiveMessage,
    ) -> Result<(), StoreError> {
        let row = ProactiveRow::from_domain(p);
        with_tx!(self, conn => {
            diesel::insert_into(proactive_messages::table).values(&row).execute(conn).await?;
            Ok(())
        })
    }

    pub async fn list_proactive(
        &self,
        site: &tidechat_domain::SiteId,
    ) -> Result<Vec<tidechat_domain::ProactiveMessage>, StoreError> {
        let rows: Vec<ProactiveRow> = with_conn!(self, conn => {
            proactive_messages::table
                .filter(proactive_messages::site_id.eq(site.as_str()))
                .order(proactive_messages::id.asc())
                .select(ProactiveRow::as_select())
                .load(conn)
                .await?
        });
        Ok(rows.into_iter().map(ProactiveRow::into_domain).collect())
    }

    pub async fn delete_proactive(
        &self,
        org: &OrgId,
        id: &tidechat_domain::ProactiveId,
    ) -> Result<bool, StoreError> {
        let deleted = with_tx!(self, conn => {
            Ok(diesel::delete(proactive_messages::table)
                .filter(proactive_messages::id.eq(id.as_str()))
                .filter(proactive_messages::org_id.eq(org.as_str()))
                .execute(conn)
                .await?)
        })?;
        Ok(deleted > 0)
    }

    /// Marks a proactive message delivered to a visitor: true the first time.
    pub async fn deliver_proactive(
        &self,
        id: &tidechat_domain::ProactiveId,
        visitor_key: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (pid, key, at) = (id.as_str().to_owned(), visitor_key.to_owned(), to_db_ts(at));
        let inserted = with_tx!(self, conn => {
            Ok(diesel::insert_into(proactive_deliveries::table)
                .values((
                    proactive_deliveries::proactive_id.eq(&pid),
                    proactive_deliveries::visitor_key.eq(&key),
                    proactive_deliveries::delivered_at.eq(at),
                ))
                .on_conflict((proactive_deliveries::proactive_id, proactive_deliveries::visitor_key))
                .do_nothing()
                .execute(conn)
                .await?)
        })?;
        Ok(inserted == 1)
    }
}

#[derive(QueryableByName)]
struct UsageTotalsRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    cost: i64,
}

#[derive(QueryableByName)]
struct UsageGroupRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    key: Option<String>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    requests: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    input_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    output_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    cost_usd_micros: i64,
}
