//! HTTP tools.

use super::prelude::*;

/// Inserts a tool; a name already used in the organization is `Conflict`.
pub async fn insert_tool(
    c: &mut Conn<'_>,
    tool: &tidechat_domain::HttpTool,
) -> Result<(), StoreError> {
    let row = ToolRow::from_domain(tool);
    on!(c, conn => scope(async {
        diesel::insert_into(tools::table).values(&row).execute(conn).await?;
        Ok(())
    }).await)
}

pub async fn get_tool(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &tidechat_domain::ToolId,
) -> Result<Option<tidechat_domain::HttpTool>, StoreError> {
    let row: Option<ToolRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    names: &[String],
) -> Result<Vec<tidechat_domain::HttpTool>, StoreError> {
    let rows: Vec<ToolRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
) -> Result<Vec<tidechat_domain::HttpTool>, StoreError> {
    let rows: Vec<ToolRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &tidechat_domain::ToolId,
    draft: &tidechat_domain::HttpToolDraft,
    at: DateTime<Utc>,
) -> Result<Option<tidechat_domain::HttpTool>, StoreError> {
    let at = to_db_ts(at);
    let parameters = draft.parameters.to_string();
    let row: Option<ToolRow> = on!(c, conn => scope(async {
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
    }).await)?;
    row.map(ToolRow::into_domain).transpose()
}

pub async fn delete_tool(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &tidechat_domain::ToolId,
) -> Result<bool, StoreError> {
    let deleted = on!(c, conn => scope(async {
        Ok(diesel::delete(tools::table)
            .filter(tools::id.eq(id.as_str()))
            .filter(tools::org_id.eq(org.as_str()))
            .execute(conn)
            .await?)
    }).await)?;
    Ok(deleted > 0)
}

impl Store {
    pub async fn insert_tool(&self, tool: &tidechat_domain::HttpTool) -> Result<(), StoreError> {
        self.transaction(async move |c| insert_tool(c, tool).await)
            .await
    }

    pub async fn get_tool(
        &self,
        org: &OrgId,
        id: &tidechat_domain::ToolId,
    ) -> Result<Option<tidechat_domain::HttpTool>, StoreError> {
        self.read(async move |c| get_tool(c, org, id).await).await
    }

    pub async fn tools_named(
        &self,
        org: &OrgId,
        names: &[String],
    ) -> Result<Vec<tidechat_domain::HttpTool>, StoreError> {
        self.read(async move |c| tools_named(c, org, names).await)
            .await
    }

    pub async fn list_tools(
        &self,
        org: &OrgId,
    ) -> Result<Vec<tidechat_domain::HttpTool>, StoreError> {
        self.read(async move |c| list_tools(c, org).await).await
    }

    pub async fn update_tool(
        &self,
        org: &OrgId,
        id: &tidechat_domain::ToolId,
        draft: &tidechat_domain::HttpToolDraft,
        at: DateTime<Utc>,
    ) -> Result<Option<tidechat_domain::HttpTool>, StoreError> {
        self.transaction(async move |c| update_tool(c, org, id, draft, at).await)
            .await
    }

    pub async fn delete_tool(
        &self,
        org: &OrgId,
        id: &tidechat_domain::ToolId,
    ) -> Result<bool, StoreError> {
        self.transaction(async move |c| delete_tool(c, org, id).await)
            .await
    }
}
