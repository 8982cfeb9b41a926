//! Server secrets (generated once, shared by every process).

use super::prelude::*;

/// Returns the stored secret `name`, storing `candidate` first if there
/// is none. Race-safe between processes (insert-or-ignore, then read):
/// every caller gets the same value.
pub async fn get_or_create_secret(
    c: &mut Conn<'_>,
    name: &str,
    candidate: &str,
) -> Result<String, StoreError> {
    let row = SecretRow {
        name: name.to_owned(),
        value: candidate.to_owned(),
        created_at: to_db_ts(Utc::now()),
    };
    on!(c, conn => scope(async {
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
    }).await)
}

impl Store {
    pub async fn get_or_create_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<String, StoreError> {
        self.transaction(async move |c| get_or_create_secret(c, name, candidate).await)
            .await
    }
}
