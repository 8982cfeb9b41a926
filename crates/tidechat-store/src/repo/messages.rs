//! A session's messages (appended with its counters) and their moderation records.

use super::prelude::*;

/// Appends a message, assigning the session's next gap-free `seq`
/// (starting at 0) and updating the session's counters (tokens and cost
/// only when `msg.billed`), in one transaction. Returns the stored
/// message and the updated session. `Err(NotFound)` when the session is
/// not in `msg.org_id`. The session's status is not checked.
pub async fn append_message(
    c: &mut Conn<'_>,
    msg: &NewMessage,
) -> Result<(Message, Session), StoreError> {
    let created = to_db_ts(msg.created_at);
    let (d_in, d_out, d_cost) = if msg.billed {
        (msg.input_tokens, msg.output_tokens, msg.cost_usd_micros)
    } else {
        (0, 0, 0)
    };
    let sid = msg.session_id.as_str();
    let oid = msg.org_id.as_str();
    let (m, s): (MessageRow, SessionRow) = on!(c, conn => scope(async {
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
    }).await)?;
    Ok((m.into_domain()?, s.into_domain()?))
}

/// Messages of a session in the organization, keyset-paginated on `seq`.
pub async fn list_messages(
    c: &mut Conn<'_>,
    org: &OrgId,
    session: &SessionId,
    page: &MessagePage,
) -> Result<Vec<Message>, StoreError> {
    let rows: Vec<MessageRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    session: &SessionId,
    limit: i64,
) -> Result<Vec<Message>, StoreError> {
    let rows: Vec<MessageRow> = on!(c, conn => {
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

/// The moderation records of a message of the organization, in order;
/// `None` when the message is not in the organization.
pub async fn moderation_records(
    c: &mut Conn<'_>,
    org: &OrgId,
    message: &tidechat_domain::MessageId,
) -> Result<Option<(Message, Vec<tidechat_domain::ModerationRecord>)>, StoreError> {
    let found: Option<(MessageRow, Vec<ModerationRow>)> = on!(c, conn => {
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

/// Offset pagination over a session's messages (ordered by `seq`), with
/// the total count. The caller has checked the session's organization.
pub async fn messages_page(
    c: &mut Conn<'_>,
    session: &SessionId,
    offset: i64,
    limit: i64,
    order: SortOrder,
) -> Result<(Vec<Message>, i64), StoreError> {
    let (rows, total): (Vec<MessageRow>, i64) = on!(c, conn => {
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
    c: &mut Conn<'_>,
    session: &SessionId,
    after: &tidechat_domain::MessageId,
    limit: i64,
) -> Result<Option<Vec<Message>>, StoreError> {
    let rows: Option<Vec<MessageRow>> = on!(c, conn => {
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

/// Messages of a session with `seq` above `after`, oldest first.
pub async fn messages_after_seq(
    c: &mut Conn<'_>,
    session: &SessionId,
    after: i64,
    limit: i64,
) -> Result<Vec<Message>, StoreError> {
    let rows: Vec<MessageRow> = on!(c, conn => {
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

/// The session's messages in `role` by `model` with `seq` above `after`,
/// oldest first (the widget's operator replies after the visitor's read
/// mark; indexed on session, model and seq).
pub async fn messages_by_model_after(
    c: &mut Conn<'_>,
    session: &SessionId,
    role: tidechat_domain::Role,
    model: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<Message>, StoreError> {
    let rows: Vec<MessageRow> = on!(c, conn => {
        messages::table
            .filter(messages::session_id.eq(session.as_str()))
            .filter(messages::model.eq(model))
            .filter(messages::seq.gt(after))
            .filter(messages::role.eq(role.as_str()))
            .order(messages::seq.asc())
            .limit(clamp_limit(limit))
            .select(MessageRow::as_select())
            .load(conn)
            .await?
    });
    rows.into_iter().map(MessageRow::into_domain).collect()
}

/// The user message the client sent with `client_message_id`, and the
/// reply to it once one is stored (both by index).
pub async fn client_message_reply(
    c: &mut Conn<'_>,
    session: &SessionId,
    client_message_id: &str,
) -> Result<Option<(Message, Option<Message>)>, StoreError> {
    let found: Option<(MessageRow, Option<MessageRow>)> = on!(c, conn => {
        let sent: Option<MessageRow> = messages::table
            .filter(messages::session_id.eq(session.as_str()))
            .filter(messages::client_message_id.eq(client_message_id))
            .select(MessageRow::as_select())
            .first(conn)
            .await
            .optional()?;
        match sent {
            None => None,
            Some(sent) => {
                let reply: Option<MessageRow> = messages::table
                    .filter(messages::reply_to.eq(&sent.id))
                    .filter(messages::role.eq(tidechat_domain::Role::Assistant.as_str()))
                    .select(MessageRow::as_select())
                    .first(conn)
                    .await
                    .optional()?;
                Some((sent, reply))
            }
        }
    });
    found
        .map(|(sent, reply)| {
            Ok((
                sent.into_domain()?,
                reply.map(MessageRow::into_domain).transpose()?,
            ))
        })
        .transpose()
}

impl Store {
    pub async fn append_message(&self, msg: &NewMessage) -> Result<(Message, Session), StoreError> {
        self.transaction(async move |c| append_message(c, msg).await)
            .await
    }

    pub async fn list_messages(
        &self,
        org: &OrgId,
        session: &SessionId,
        page: &MessagePage,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(async move |c| list_messages(c, org, session, page).await)
            .await
    }

    pub async fn recent_messages(
        &self,
        session: &SessionId,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(async move |c| recent_messages(c, session, limit).await)
            .await
    }

    pub async fn moderation_records(
        &self,
        org: &OrgId,
        message: &tidechat_domain::MessageId,
    ) -> Result<Option<(Message, Vec<tidechat_domain::ModerationRecord>)>, StoreError> {
        self.read(async move |c| moderation_records(c, org, message).await)
            .await
    }

    pub async fn messages_page(
        &self,
        session: &SessionId,
        offset: i64,
        limit: i64,
        order: SortOrder,
    ) -> Result<(Vec<Message>, i64), StoreError> {
        self.read(async move |c| messages_page(c, session, offset, limit, order).await)
            .await
    }

    pub async fn messages_after(
        &self,
        session: &SessionId,
        after: &tidechat_domain::MessageId,
        limit: i64,
    ) -> Result<Option<Vec<Message>>, StoreError> {
        self.read(async move |c| messages_after(c, session, after, limit).await)
            .await
    }

    pub async fn messages_after_seq(
        &self,
        session: &SessionId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(async move |c| messages_after_seq(c, session, after, limit).await)
            .await
    }

    pub async fn messages_by_model_after(
        &self,
        session: &SessionId,
        role: tidechat_domain::Role,
        model: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(async move |c| {
            messages_by_model_after(c, session, role, model, after, limit).await
        })
        .await
    }

    pub async fn client_message_reply(
        &self,
        session: &SessionId,
        client_message_id: &str,
    ) -> Result<Option<(Message, Option<Message>)>, StoreError> {
        self.read(async move |c| client_message_reply(c, session, client_message_id).await)
            .await
    }
}
