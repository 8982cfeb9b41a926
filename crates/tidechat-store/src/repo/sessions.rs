//! Sessions, the external ids clients know them by, and end users.

use super::prelude::*;

/// Inserts a session; its workspace and persona must belong to its
/// organization (`Err(Conflict)` otherwise).
pub async fn insert_session(c: &mut Conn<'_>, s: &Session) -> Result<(), StoreError> {
    let row = SessionRow::from_domain(s);
    super::orgs::workspace_in_org(c, &row.org_id, &row.workspace_id).await?;
    super::personas::persona_in_org(c, &row.org_id, &row.persona_id).await?;
    on!(c, conn => scope(async {
        diesel::insert_into(sessions::table).values(&row).execute(conn).await?;
        Ok(())
    }).await)
}

pub async fn get_session(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &SessionId,
) -> Result<Option<Session>, StoreError> {
    let row: Option<SessionRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &SessionId,
) -> Result<Option<(Session, Option<Persona>)>, StoreError> {
    let row: Option<(SessionRow, Option<PersonaRow>)> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    filter: &SessionFilter,
    page: &PageRequest,
) -> Result<Vec<Session>, StoreError> {
    let rows: Vec<SessionRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &SessionId,
    status: SessionStatus,
    at: DateTime<Utc>,
) -> Result<Option<Session>, StoreError> {
    let at = to_db_ts(at);
    let sets_end = matches!(status, SessionStatus::Ended | SessionStatus::Archived);
    let row: Option<SessionRow> = on!(c, conn => scope(async {
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
    }).await)?;
    row.map(SessionRow::into_domain).transpose()
}

/// The session a client knows by its own id (`external_id`), if any.
pub async fn find_session_by_external(
    c: &mut Conn<'_>,
    org: &OrgId,
    external_id: &str,
) -> Result<Option<Session>, StoreError> {
    let row: Option<SessionRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
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
    let (row, created): (EndUserRow, bool) = on!(c, conn => scope(async {
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
    }).await)?;
    Ok((row.into_domain(), created))
}

/// Deletes a session of the organization and (by cascade) its messages
/// and their moderation records. `Ok(false)` when it is not there.
pub async fn delete_session(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &SessionId,
) -> Result<bool, StoreError> {
    let deleted = on!(c, conn => scope(async {
        Ok(diesel::delete(sessions::table)
            .filter(sessions::id.eq(id.as_str()))
            .filter(sessions::org_id.eq(org.as_str()))
            .execute(conn)
            .await?)
    }).await)?;
    Ok(deleted > 0)
}

impl Store {
    pub async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        self.transaction(async move |c| insert_session(c, s).await)
            .await
    }

    pub async fn get_session(
        &self,
        org: &OrgId,
        id: &SessionId,
    ) -> Result<Option<Session>, StoreError> {
        self.read(async move |c| get_session(c, org, id).await)
            .await
    }

    pub async fn get_session_with_persona(
        &self,
        org: &OrgId,
        id: &SessionId,
    ) -> Result<Option<(Session, Option<Persona>)>, StoreError> {
        self.read(async move |c| get_session_with_persona(c, org, id).await)
            .await
    }

    pub async fn list_sessions(
        &self,
        org: &OrgId,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Vec<Session>, StoreError> {
        self.read(async move |c| list_sessions(c, org, filter, page).await)
            .await
    }

    pub async fn set_session_status(
        &self,
        org: &OrgId,
        id: &SessionId,
        status: SessionStatus,
        at: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        self.transaction(async move |c| set_session_status(c, org, id, status, at).await)
            .await
    }

    pub async fn find_session_by_external(
        &self,
        org: &OrgId,
        external_id: &str,
    ) -> Result<Option<Session>, StoreError> {
        self.read(async move |c| find_session_by_external(c, org, external_id).await)
            .await
    }

    pub async fn touch_end_user(
        &self,
        org: &OrgId,
        user_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(tidechat_domain::EndUser, bool), StoreError> {
        self.transaction(async move |c| touch_end_user(c, org, user_id, at).await)
            .await
    }

    pub async fn delete_session(&self, org: &OrgId, id: &SessionId) -> Result<bool, StoreError> {
        self.transaction(async move |c| delete_session(c, org, id).await)
            .await
    }
}
