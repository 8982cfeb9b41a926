use tidechat_domain::validate;

use crate::EngineError;

/// One page of a keyset-paginated listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` to get the next page; treat as opaque.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order.
    pub(crate) fn from_rows(
        mut rows: Vec<T>,
        limit: i64,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
            has_more,
        }
    }
}

/// `limit` and `cursor` as a client sent them.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl Cursor {
    pub(crate) fn limit(&self) -> Result<i64, EngineError> {
        let limit = self.limit.unwrap_or(validate::PAGE_LIMIT_DEFAULT);
        validate::page_limit(limit)?;
        Ok(limit)
    }

    /// The cursor, which must be an id of the listed kind.
    pub(crate) fn after_id<T>(
        &self,
        parse: impl Fn(&str) -> Result<T, tidechat_domain::InvalidId>,
    ) -> Result<Option<String>, EngineError> {
        match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => Ok(None),
            Some(c) => {
                parse(c).map_err(|_| {
                    EngineError::validation("cursor", "is not a cursor from this listing")
                })?;
                Ok(Some(c.to_owned()))
            }
        }
    }
}
