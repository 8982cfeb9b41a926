//! Personas.

use super::prelude::*;

/// Inserts a persona; its workspace must belong to its organization.
pub async fn insert_persona(c: &mut Conn<'_>, p: &Persona) -> Result<(), StoreError> {
    let row = PersonaRow::from_domain(p);
    super::orgs::workspace_in_org(c, &row.org_id, &row.workspace_id).await?;
    on!(c, conn => scope(async {
        diesel::insert_into(personas::table).values(&row).execute(conn).await?;
        Ok(())
    }).await)
}

pub async fn get_persona(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &PersonaId,
) -> Result<Option<Persona>, StoreError> {
    let row: Option<PersonaRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    page: &PageRequest,
) -> Result<Vec<Persona>, StoreError> {
    let rows: Vec<PersonaRow> = on!(c, conn => {
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
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &PersonaId,
    draft: &PersonaDraft,
    at: DateTime<Utc>,
) -> Result<Option<Persona>, StoreError> {
    let changes = PersonaChanges::new(draft, at);
    let row: Option<PersonaRow> = on!(c, conn => scope(async {
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
    }).await)?;
    row.map(PersonaRow::into_domain).transpose()
}

/// Deletes a persona. `Ok(false)` when it is not in the organization;
/// `Err(Conflict)` when sessions use it or it is a workspace's default.
pub async fn delete_persona(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &PersonaId,
) -> Result<bool, StoreError> {
    on!(c, conn => scope(async {
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
    }).await)
}

/// `Err(Conflict)` unless the persona exists in the organization (checked
/// before writing rows that name it).
pub async fn persona_in_org(c: &mut Conn<'_>, org: &str, id: &str) -> Result<(), StoreError> {
    let found: i64 = on!(c, conn => {
        personas::table
            .filter(personas::id.eq(id))
            .filter(personas::org_id.eq(org))
            .count()
            .get_result(conn)
            .await?
    });
    if found == 0 {
        return Err(not_in_org("persona"));
    }
    Ok(())
}

impl Store {
    pub async fn insert_persona(&self, p: &Persona) -> Result<(), StoreError> {
        self.transaction(async move |c| insert_persona(c, p).await)
            .await
    }

    pub async fn get_persona(
        &self,
        org: &OrgId,
        id: &PersonaId,
    ) -> Result<Option<Persona>, StoreError> {
        self.read(async move |c| get_persona(c, org, id).await)
            .await
    }

    pub async fn list_personas(
        &self,
        org: &OrgId,
        page: &PageRequest,
    ) -> Result<Vec<Persona>, StoreError> {
        self.read(async move |c| list_personas(c, org, page).await)
            .await
    }

    pub async fn update_persona(
        &self,
        org: &OrgId,
        id: &PersonaId,
        draft: &PersonaDraft,
        at: DateTime<Utc>,
    ) -> Result<Option<Persona>, StoreError> {
        self.transaction(async move |c| update_persona(c, org, id, draft, at).await)
            .await
    }

    pub async fn delete_persona(&self, org: &OrgId, id: &PersonaId) -> Result<bool, StoreError> {
        self.transaction(async move |c| delete_persona(c, org, id).await)
            .await
    }
}
