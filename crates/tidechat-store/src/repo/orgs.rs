//! Organizations and their workspaces.

use super::prelude::*;

/// Inserts an organization (a new tenant: see the engine's `create_org`
/// for the workspace, persona and key created with it).
pub async fn insert_org(c: &mut Conn<'_>, org: &Organization) -> Result<(), StoreError> {
    let row = OrgRow::from_domain(org);
    on!(c, conn => {
        diesel::insert_into(organizations::table).values(&row).execute(conn).await?;
        Ok(())
    })
}

/// Inserts a workspace of an existing organization. Its default persona, if
/// set, is not checked: a new workspace's first persona is inserted after it.
pub async fn insert_workspace(c: &mut Conn<'_>, ws: &Workspace) -> Result<(), StoreError> {
    let row = WorkspaceRow::from_domain(ws);
    on!(c, conn => {
        diesel::insert_into(workspaces::table).values(&row).execute(conn).await?;
        Ok(())
    })
}

pub async fn count_orgs(c: &mut Conn<'_>) -> Result<i64, StoreError> {
    on!(c, conn => {
        Ok(organizations::table.count().get_result::<i64>(conn).await?)
    })
}

pub async fn get_org(c: &mut Conn<'_>, org: &OrgId) -> Result<Option<Organization>, StoreError> {
    let row: Option<OrgRow> = on!(c, conn => {
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
pub async fn default_workspace(
    c: &mut Conn<'_>,
    org: &OrgId,
) -> Result<Option<Workspace>, StoreError> {
    let row: Option<WorkspaceRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    ws: &WorkspaceId,
    persona: &PersonaId,
) -> Result<bool, StoreError> {
    on!(c, conn => scope(async {
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
    }).await)
}

/// `Err(Conflict)` unless the workspace exists in the organization (checked
/// before writing rows that name it).
pub async fn workspace_in_org(c: &mut Conn<'_>, org: &str, id: &str) -> Result<(), StoreError> {
    let found: i64 = on!(c, conn => {
        workspaces::table
            .filter(workspaces::id.eq(id))
            .filter(workspaces::org_id.eq(org))
            .count()
            .get_result(conn)
            .await?
    });
    if found == 0 {
        return Err(not_in_org("workspace"));
    }
    Ok(())
}

impl Store {
    pub async fn count_orgs(&self) -> Result<i64, StoreError> {
        self.read(async move |c| count_orgs(c).await).await
    }

    pub async fn get_org(&self, org: &OrgId) -> Result<Option<Organization>, StoreError> {
        self.read(async move |c| get_org(c, org).await).await
    }

    pub async fn default_workspace(&self, org: &OrgId) -> Result<Option<Workspace>, StoreError> {
        self.read(async move |c| default_workspace(c, org).await)
            .await
    }

    pub async fn set_default_persona(
        &self,
        org: &OrgId,
        ws: &WorkspaceId,
        persona: &PersonaId,
    ) -> Result<bool, StoreError> {
        self.transaction(async move |c| set_default_persona(c, org, ws, persona).await)
            .await
    }
}
