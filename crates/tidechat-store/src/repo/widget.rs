//! The website widget: sites, conversations (a session's widget state),
//! claimed client message ids and proactive messages.

use super::prelude::*;

pub async fn insert_site(c: &mut Conn<'_>, site: &tidechat_domain::Site) -> Result<(), StoreError> {
    let row = SiteRow::from_domain(site);
    super::personas::persona_in_org(c, &row.org_id, &row.persona_id).await?;
    on!(c, conn => scope(async {
        diesel::insert_into(sites::table).values(&row).execute(conn).await?;
        Ok(())
    }).await)
}

pub async fn get_site(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &tidechat_domain::SiteId,
) -> Result<Option<tidechat_domain::Site>, StoreError> {
    let row: Option<SiteRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    site_key: &str,
) -> Result<Option<tidechat_domain::Site>, StoreError> {
    let row: Option<SiteRow> = on!(c, conn => {
        sites::table
            .filter(sites::site_key.eq(site_key))
            .select(SiteRow::as_select())
            .first(conn)
            .await
            .optional()?
    });
    row.map(SiteRow::into_domain).transpose()
}

pub async fn list_sites(
    c: &mut Conn<'_>,
    org: &OrgId,
) -> Result<Vec<tidechat_domain::Site>, StoreError> {
    let rows: Vec<SiteRow> = on!(c, conn => {
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
pub async fn update_site(
    c: &mut Conn<'_>,
    site: &tidechat_domain::Site,
) -> Result<bool, StoreError> {
    let row = SiteRow::from_domain(site);
    super::personas::persona_in_org(c, &row.org_id, &row.persona_id).await?;
    let updated = on!(c, conn => scope(async {
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
    }).await)?;
    Ok(updated > 0)
}

#[diesel::declare_sql_function]
extern "SQL" {
    fn lower(text: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Whether any site allows `origin` (for CORS preflights, which carry no
/// site key). Origins compare case-insensitively (scheme and host are), the
/// same on both backends: SQLite's `LIKE` ignores ASCII case, PostgreSQL's
/// does not, so both sides are lowered.
pub async fn origin_allowed_anywhere(c: &mut Conn<'_>, origin: &str) -> Result<bool, StoreError> {
    let pattern = format!(
        "%\"{}\"%",
        origin.to_ascii_lowercase().replace(['%', '_', '\\'], "")
    );
    let count: i64 = on!(c, conn => {
        sites::table
            .filter(lower(sites::allowed_origins).like(pattern))
            .count()
            .get_result(conn)
            .await?
    });
    Ok(count > 0)
}

/// The conversation of a site's visitor, with its session.
pub async fn widget_conversation(
    c: &mut Conn<'_>,
    site: &tidechat_domain::SiteId,
    visitor_key: &str,
) -> Result<Option<(tidechat_domain::WidgetConversation, Session)>, StoreError> {
    let found: Option<(ConversationRow, SessionRow)> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    session: &SessionId,
) -> Result<Option<(tidechat_domain::WidgetConversation, Session)>, StoreError> {
    let found: Option<(ConversationRow, SessionRow)> = on!(c, conn => {
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

/// Inserts the widget state of a session (insert the session first, in
/// the same transaction). `Err(Conflict)` when the visitor already has a
/// conversation on the site (two first requests raced: re-read).
pub async fn insert_conversation(
    c: &mut Conn<'_>,
    conversation: &tidechat_domain::WidgetConversation,
) -> Result<(), StoreError> {
    let row = ConversationRow::from_domain(conversation);
    on!(c, conn => {
        diesel::insert_into(widget_conversations::table).values(&row).execute(conn).await?;
        Ok(())
    })
}

/// What a visitor changes in their conversation; `None` leaves a column
/// alone. Only these columns are written, so a concurrent operator change
/// (mode, block) is never undone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitorUpdate {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub rating: Option<i64>,
    pub rating_comment: Option<String>,
}

#[derive(AsChangeset)]
#[diesel(table_name = widget_conversations)]
struct VisitorChanges<'a> {
    email: Option<&'a str>,
    phone: Option<&'a str>,
    name: Option<&'a str>,
    rating: Option<i64>,
    rating_comment: Option<&'a str>,
    updated_at: chrono::NaiveDateTime,
}

/// Applies a visitor's change to their conversation unless it is blocked
/// (checked in the same statement). `Ok(false)`: no such conversation, or
/// it is blocked.
pub async fn update_visitor(
    c: &mut Conn<'_>,
    site: &tidechat_domain::SiteId,
    visitor_key: &str,
    update: &VisitorUpdate,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changes = VisitorChanges {
        email: update.email.as_deref(),
        phone: update.phone.as_deref(),
        name: update.name.as_deref(),
        rating: update.rating,
        rating_comment: update.rating_comment.as_deref(),
        updated_at: to_db_ts(at),
    };
    let changed = on!(c, conn => {
        diesel::update(widget_conversations::table)
            .filter(widget_conversations::site_id.eq(site.as_str()))
            .filter(widget_conversations::visitor_key.eq(visitor_key))
            .filter(widget_conversations::blocked.eq(false))
            .set(&changes)
            .execute(conn)
            .await?
    });
    Ok(changed > 0)
}

/// What an operator (or the handoff) changes in a conversation; `None`
/// leaves a column alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorUpdate {
    pub mode: Option<tidechat_domain::ConversationMode>,
    pub blocked: Option<bool>,
}

#[derive(AsChangeset)]
#[diesel(table_name = widget_conversations)]
struct OperatorChanges {
    mode: Option<&'static str>,
    blocked: Option<bool>,
    updated_at: chrono::NaiveDateTime,
}

/// Changes the mode and/or block of a conversation of the organization.
/// `Ok(false)` when it is not there.
pub async fn update_conversation(
    c: &mut Conn<'_>,
    org: &OrgId,
    session: &SessionId,
    update: OperatorUpdate,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changes = OperatorChanges {
        mode: update.mode.map(|m| m.as_str()),
        blocked: update.blocked,
        updated_at: to_db_ts(at),
    };
    let changed = on!(c, conn => {
        diesel::update(widget_conversations::table)
            .filter(widget_conversations::session_id.eq(session.as_str()))
            .filter(widget_conversations::org_id.eq(org.as_str()))
            .set(&changes)
            .execute(conn)
            .await?
    });
    Ok(changed > 0)
}

/// Moves the visitor's operator read mark forward to `seq` (never back:
/// two polls racing keep the later mark).
pub async fn advance_operator_read(
    c: &mut Conn<'_>,
    session: &SessionId,
    seq: i64,
) -> Result<(), StoreError> {
    on!(c, conn => {
        diesel::update(widget_conversations::table)
            .filter(widget_conversations::session_id.eq(session.as_str()))
            .filter(widget_conversations::operator_read_seq.lt(seq))
            .set(widget_conversations::operator_read_seq.eq(seq))
            .execute(conn)
            .await?;
        Ok(())
    })
}

/// Filters for a site's conversation list, applied in the query (before
/// the limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    pub mode: Option<tidechat_domain::ConversationMode>,
    /// The visitor's message is the last one (nobody has answered yet).
    pub waiting: Option<bool>,
    pub rated: Option<bool>,
    pub has_contact: Option<bool>,
}

/// A site's conversations with their sessions and last messages, most
/// recently active first (at most `limit`), in one query: the last message
/// is the one at the session's `next_seq - 1` (`seq` is gap-free).
pub async fn widget_conversations(
    c: &mut Conn<'_>,
    org: &OrgId,
    site: &tidechat_domain::SiteId,
    filter: &ConversationFilter,
    limit: i64,
) -> Result<
    Vec<(
        tidechat_domain::WidgetConversation,
        Session,
        Option<Message>,
    )>,
    StoreError,
> {
    let rows: Vec<(ConversationRow, SessionRow, Option<MessageRow>)> = on!(c, conn => {
        let mut q = widget_conversations::table
            .inner_join(sessions::table.on(sessions::id.eq(widget_conversations::session_id)))
            .left_join(
                messages::table.on(messages::session_id
                    .eq(sessions::id)
                    .and(messages::seq.eq(sessions::next_seq - 1))),
            )
            .filter(widget_conversations::site_id.eq(site.as_str()))
            .filter(widget_conversations::org_id.eq(org.as_str()))
            .order((sessions::last_active_at.desc(), sessions::id.desc()))
            .limit(clamp_limit(limit))
            .select((
                ConversationRow::as_select(),
                SessionRow::as_select(),
                Option::<MessageRow>::as_select(),
            ))
            .into_boxed();
        if let Some(mode) = filter.mode {
            q = q.filter(widget_conversations::mode.eq(mode.as_str()));
        }
        match filter.waiting {
            Some(true) => q = q.filter(messages::role.nullable().eq("user")),
            Some(false) => {
                q = q.filter(
                    messages::role
                        .nullable()
                        .is_null()
                        .or(messages::role.nullable().ne("user")),
                )
            }
            None => {}
        }
        match filter.rated {
            Some(true) => q = q.filter(widget_conversations::rating.is_not_null()),
            Some(false) => q = q.filter(widget_conversations::rating.is_null()),
            None => {}
        }
        match filter.has_contact {
            Some(true) => {
                q = q.filter(
                    widget_conversations::email
                        .is_not_null()
                        .or(widget_conversations::phone.is_not_null()),
                )
            }
            Some(false) => {
                q = q.filter(
                    widget_conversations::email
                        .is_null()
                        .and(widget_conversations::phone.is_null()),
                )
            }
            None => {}
        }
        q.load(conn).await?
    });
    rows.into_iter()
        .map(|(c, s, m)| {
            Ok((
                c.into_domain()?,
                s.into_domain()?,
                m.map(MessageRow::into_domain).transpose()?,
            ))
        })
        .collect()
}

/// Claims a client message id for a session: true the first time.
pub async fn claim_client_message_id(
    c: &mut Conn<'_>,
    session: &SessionId,
    id: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (sid, mid, at) = (session.as_str().to_owned(), id.to_owned(), to_db_ts(at));
    let inserted = on!(c, conn => scope(async {
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
    }).await)?;
    Ok(inserted == 1)
}

/// Gives a claimed client message id back (the attempt that claimed it
/// was refused before anything was answered), so that a retry runs again.
pub async fn release_client_message_id(
    c: &mut Conn<'_>,
    session: &SessionId,
    id: &str,
) -> Result<(), StoreError> {
    let (sid, mid) = (session.as_str().to_owned(), id.to_owned());
    on!(c, conn => scope(async {
        diesel::delete(
            widget_message_ids::table
                .filter(widget_message_ids::session_id.eq(&sid))
                .filter(widget_message_ids::client_message_id.eq(&mid)),
        )
        .execute(conn)
        .await?;
        Ok(())
    }).await)
}

pub async fn insert_proactive(
    c: &mut Conn<'_>,
    p: &tidechat_domain::ProactiveMessage,
) -> Result<(), StoreError> {
    let row = ProactiveRow::from_domain(p);
    on!(c, conn => scope(async {
        diesel::insert_into(proactive_messages::table).values(&row).execute(conn).await?;
        Ok(())
    }).await)
}

pub async fn list_proactive(
    c: &mut Conn<'_>,
    site: &tidechat_domain::SiteId,
) -> Result<Vec<tidechat_domain::ProactiveMessage>, StoreError> {
    let rows: Vec<ProactiveRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &tidechat_domain::ProactiveId,
) -> Result<bool, StoreError> {
    let deleted = on!(c, conn => scope(async {
        Ok(diesel::delete(proactive_messages::table)
            .filter(proactive_messages::id.eq(id.as_str()))
            .filter(proactive_messages::org_id.eq(org.as_str()))
            .execute(conn)
            .await?)
    }).await)?;
    Ok(deleted > 0)
}

/// Marks a proactive message delivered to a visitor: true the first time.
pub async fn deliver_proactive(
    c: &mut Conn<'_>,
    id: &tidechat_domain::ProactiveId,
    visitor_key: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (pid, key, at) = (id.as_str().to_owned(), visitor_key.to_owned(), to_db_ts(at));
    let inserted = on!(c, conn => scope(async {
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
    }).await)?;
    Ok(inserted == 1)
}

impl Store {
    pub async fn insert_site(&self, site: &tidechat_domain::Site) -> Result<(), StoreError> {
        self.transaction(async move |c| insert_site(c, site).await)
            .await
    }

    pub async fn get_site(
        &self,
        org: &OrgId,
        id: &tidechat_domain::SiteId,
    ) -> Result<Option<tidechat_domain::Site>, StoreError> {
        self.read(async move |c| get_site(c, org, id).await).await
    }

    pub async fn site_by_key(
        &self,
        site_key: &str,
    ) -> Result<Option<tidechat_domain::Site>, StoreError> {
        self.read(async move |c| site_by_key(c, site_key).await)
            .await
    }

    pub async fn list_sites(&self, org: &OrgId) -> Result<Vec<tidechat_domain::Site>, StoreError> {
        self.read(async move |c| list_sites(c, org).await).await
    }

    pub async fn update_site(&self, site: &tidechat_domain::Site) -> Result<bool, StoreError> {
        self.transaction(async move |c| update_site(c, site).await)
            .await
    }

    pub async fn origin_allowed_anywhere(&self, origin: &str) -> Result<bool, StoreError> {
        self.read(async move |c| origin_allowed_anywhere(c, origin).await)
            .await
    }

    pub async fn widget_conversation(
        &self,
        site: &tidechat_domain::SiteId,
        visitor_key: &str,
    ) -> Result<Option<(tidechat_domain::WidgetConversation, Session)>, StoreError> {
        self.read(async move |c| widget_conversation(c, site, visitor_key).await)
            .await
    }

    pub async fn widget_conversation_by_session(
        &self,
        org: &OrgId,
        session: &SessionId,
    ) -> Result<Option<(tidechat_domain::WidgetConversation, Session)>, StoreError> {
        self.read(async move |c| widget_conversation_by_session(c, org, session).await)
            .await
    }

    pub async fn update_visitor(
        &self,
        site: &tidechat_domain::SiteId,
        visitor_key: &str,
        update: &VisitorUpdate,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.transaction(async move |c| update_visitor(c, site, visitor_key, update, at).await)
            .await
    }

    pub async fn update_conversation(
        &self,
        org: &OrgId,
        session: &SessionId,
        update: OperatorUpdate,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.transaction(async move |c| update_conversation(c, org, session, update, at).await)
            .await
    }

    pub async fn advance_operator_read(
        &self,
        session: &SessionId,
        seq: i64,
    ) -> Result<(), StoreError> {
        self.transaction(async move |c| advance_operator_read(c, session, seq).await)
            .await
    }

    pub async fn widget_conversations(
        &self,
        org: &OrgId,
        site: &tidechat_domain::SiteId,
        filter: &ConversationFilter,
        limit: i64,
    ) -> Result<
        Vec<(
            tidechat_domain::WidgetConversation,
            Session,
            Option<Message>,
        )>,
        StoreError,
    > {
        self.read(async move |c| widget_conversations(c, org, site, filter, limit).await)
            .await
    }

    pub async fn claim_client_message_id(
        &self,
        session: &SessionId,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.transaction(async move |c| claim_client_message_id(c, session, id, at).await)
            .await
    }

    pub async fn release_client_message_id(
        &self,
        session: &SessionId,
        id: &str,
    ) -> Result<(), StoreError> {
        self.transaction(async move |c| release_client_message_id(c, session, id).await)
            .await
    }

    pub async fn insert_proactive(
        &self,
        p: &tidechat_domain::ProactiveMessage,
    ) -> Result<(), StoreError> {
        self.transaction(async move |c| insert_proactive(c, p).await)
            .await
    }

    pub async fn list_proactive(
        &self,
        site: &tidechat_domain::SiteId,
    ) -> Result<Vec<tidechat_domain::ProactiveMessage>, StoreError> {
        self.read(async move |c| list_proactive(c, site).await)
            .await
    }

    pub async fn delete_proactive(
        &self,
        org: &OrgId,
        id: &tidechat_domain::ProactiveId,
    ) -> Result<bool, StoreError> {
        self.transaction(async move |c| delete_proactive(c, org, id).await)
            .await
    }

    pub async fn deliver_proactive(
        &self,
        id: &tidechat_domain::ProactiveId,
        visitor_key: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.transaction(async move |c| deliver_proactive(c, id, visitor_key, at).await)
            .await
    }
}
