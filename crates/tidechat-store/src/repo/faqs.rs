//! FAQ entries and the workspace's FAQ version.

use super::prelude::*;

/// Inserts entries, all or nothing, and bumps `faq_version` of every
/// affected workspace. Each entry's workspace must belong to the entry's
/// organization (`Err(Conflict)` otherwise).
pub async fn insert_faqs(c: &mut Conn<'_>, entries: &[FaqEntry]) -> Result<(), StoreError> {
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
    on!(c, conn => scope(async {
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
    }).await)
}

pub async fn get_faq(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &FaqId,
) -> Result<Option<FaqEntry>, StoreError> {
    let row: Option<FaqRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    page: &PageRequest,
) -> Result<Vec<FaqEntry>, StoreError> {
    let rows: Vec<FaqRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &FaqId,
    draft: &FaqDraft,
    at: DateTime<Utc>,
) -> Result<Option<FaqEntry>, StoreError> {
    let changes = FaqChanges::new(draft, at);
    let row: Option<FaqRow> = on!(c, conn => scope(async {
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
    }).await)?;
    row.map(FaqRow::into_domain).transpose()
}

/// Deletes an entry and bumps its workspace's `faq_version`.
pub async fn delete_faq(c: &mut Conn<'_>, org: &OrgId, id: &FaqId) -> Result<bool, StoreError> {
    on!(c, conn => scope(async {
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
    }).await)
}

/// The workspace's FAQ version; `Err(NotFound)` for an unknown workspace.
pub async fn faq_version(c: &mut Conn<'_>, ws: &WorkspaceId) -> Result<i64, StoreError> {
    on!(c, conn => {
        Ok(workspaces::table
            .find(ws.as_str())
            .select(workspaces::faq_version)
            .first::<i64>(conn)
            .await?)
    })
}

/// Every FAQ entry of the workspace, oldest first.
pub async fn workspace_faqs(
    c: &mut Conn<'_>,
    ws: &WorkspaceId,
) -> Result<Vec<FaqEntry>, StoreError> {
    let rows: Vec<FaqRow> = on!(c, conn => {
        faq_entries::table
            .filter(faq_entries::workspace_id.eq(ws.as_str()))
            .select(FaqRow::as_select())
            .order(faq_entries::id.asc())
            .load(conn)
            .await?
    });
    rows.into_iter().map(FaqRow::into_domain).collect()
}

impl Store {
    pub async fn insert_faqs(&self, entries: &[FaqEntry]) -> Result<(), StoreError> {
        self.transaction(async move |c| insert_faqs(c, entries).await)
            .await
    }

    pub async fn get_faq(&self, org: &OrgId, id: &FaqId) -> Result<Option<FaqEntry>, StoreError> {
        self.read(async move |c| get_faq(c, org, id).await).await
    }

    pub async fn list_faqs(
        &self,
        org: &OrgId,
        page: &PageRequest,
    ) -> Result<Vec<FaqEntry>, StoreError> {
        self.read(async move |c| list_faqs(c, org, page).await)
            .await
    }

    pub async fn update_faq(
        &self,
        org: &OrgId,
        id: &FaqId,
        draft: &FaqDraft,
        at: DateTime<Utc>,
    ) -> Result<Option<FaqEntry>, StoreError> {
        self.transaction(async move |c| update_faq(c, org, id, draft, at).await)
            .await
    }

    pub async fn delete_faq(&self, org: &OrgId, id: &FaqId) -> Result<bool, StoreError> {
        self.transaction(async move |c| delete_faq(c, org, id).await)
            .await
    }

    pub async fn faq_version(&self, ws: &WorkspaceId) -> Result<i64, StoreError> {
        self.read(async move |c| faq_version(c, ws).await).await
    }

    pub async fn workspace_faqs(&self, ws: &WorkspaceId) -> Result<Vec<FaqEntry>, StoreError> {
        self.read(async move |c| workspace_faqs(c, ws).await).await
    }
}
