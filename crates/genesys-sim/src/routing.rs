//! `/api/v2/routing/queues`: the org's queues by name or id, and one queue by id.
//!
//! `name` matches a whole name, ignoring case, with a leading and/or trailing `*` as a
//! wildcard (whether Genesys ignores case is not documented [?]); `id` takes several ids,
//! repeated or comma-separated. Pages are numbered from 1.

use axum::Json;
use axum::extract::{Path, Query, State};
use genesys_models::{DomainEntityRef, Queue, QueueEntityListing};

use crate::error::ApiError;
use crate::org::SimQueue;
use crate::state::SimState;

const DEFAULT_PAGE_SIZE: usize = 25;
const MAX_PAGE_SIZE: usize = 500;
/// The division every simulated queue is in.
const HOME_DIVISION_ID: &str = "00000000-0000-4000-8000-000000000001";

/// `GET /api/v2/routing/queues?name=&id=&pageSize=&pageNumber=`.
pub(crate) async fn list_queues(
    State(state): State<SimState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<QueueEntityListing>, ApiError> {
    let mut name = None;
    let mut ids: Vec<String> = Vec::new();
    let mut page_size = DEFAULT_PAGE_SIZE;
    let mut page_number = 1usize;
    for (key, value) in &params {
        match key.as_str() {
            "name" => name = Some(value.clone()),
            "id" => ids.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned),
            ),
            "pageSize" => page_size = parse_page_value(value, "pageSize", MAX_PAGE_SIZE)?,
            "pageNumber" => page_number = parse_page_value(value, "pageNumber", usize::MAX)?,
            _ => {}
        }
    }
    let matching: Vec<SimQueue> = state
        .visible_queues()?
        .into_iter()
        .filter(|q| name.as_deref().is_none_or(|n| name_matches(n, &q.name)))
        .filter(|q| ids.is_empty() || ids.iter().any(|id| id.eq_ignore_ascii_case(&q.id)))
        .collect();
    let total = matching.len();
    let entities = matching
        .iter()
        .skip(page_size.saturating_mul(page_number - 1))
        .take(page_size)
        .map(wire_queue)
        .collect();
    Ok(Json(QueueEntityListing {
        entities,
        page_size: Some(page_size as u32),
        page_number: Some(page_number as u32),
        total: Some(total as u64),
        page_count: Some(total.div_ceil(page_size) as u32),
    }))
}

/// `GET /api/v2/routing/queues/{queueId}`: 404 `not.found` when there is none.
pub(crate) async fn get_queue(
    State(state): State<SimState>,
    Path(queue_id): Path<String>,
) -> Result<Json<Queue>, ApiError> {
    state
        .visible_queues()?
        .iter()
        .find(|q| q.id.eq_ignore_ascii_case(&queue_id))
        .map(|q| Json(wire_queue(q)))
        .ok_or_else(ApiError::not_found)
}

fn parse_page_value(value: &str, field: &str, max: usize) -> Result<usize, ApiError> {
    match value.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid_value(
            value,
            field,
            &format!("an integer from 1 to {max}"),
        )),
    }
}

/// A whole-name match ignoring case; `*` at the start and/or end matches any text there.
fn name_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_lowercase();
    let name = name.to_lowercase();
    let (starts_any, rest) = match pattern.strip_prefix('*') {
        Some(rest) => (true, rest),
        None => (false, pattern.as_str()),
    };
    let (ends_any, core) = match rest.strip_suffix('*') {
        Some(core) => (true, core),
        None => (false, rest),
    };
    match (starts_any, ends_any) {
        (false, false) => name == core,
        (false, true) => name.starts_with(core),
        (true, false) => name.ends_with(core),
        (true, true) => name.contains(core),
    }
}

fn wire_queue(queue: &SimQueue) -> Queue {
    Queue {
        id: queue.id.clone(),
        name: Some(queue.name.clone()),
        division: Some(DomainEntityRef {
            id: Some(HOME_DIVISION_ID.to_owned()),
            name: Some("Home".to_owned()),
            self_uri: Some(format!(
                "/api/v2/authorization/divisions/{HOME_DIVISION_ID}"
            )),
        }),
        self_uri: Some(format!("/api/v2/routing/queues/{}", queue.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn names_match_whole_ignoring_case_with_wildcards_at_the_ends() {
        assert!(name_matches("Billing", "billing"));
        assert!(!name_matches("Bill", "Billing"));
        assert!(name_matches("Bill*", "Billing"));
        assert!(name_matches("*ing", "Billing"));
        assert!(name_matches("*ill*", "Billing"));
        assert!(!name_matches("*ill", "Billing"));
        assert!(name_matches("*", "Billing"));
    }
}
