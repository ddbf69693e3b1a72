//! `POST /api/v2/analytics/conversations/details/query`: the subset attrsync uses to find live
//! calls (interval, `conversationEnd` exists/notExists, `mediaType`/`queueId`/`purpose`/`userId`/
//! `ani`/`dnis`/`direction` segment predicates, paging, order); and `GET /api/v2/analytics/conversations/details?id=`,
//! many conversations by id, live or ended.

use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use genesys_models::{
    AnalyticsConversationMultiGetResponse, AnalyticsConversationQueryResponse, ConversationQuery,
    QueryFilter, QueryPredicate,
};

use crate::call::CallRecord;
use crate::error::ApiError;
use crate::state::SimState;

const DEFAULT_PAGE_SIZE: u32 = 25;
const MAX_PAGE_SIZE: u32 = 100;

pub(crate) async fn query_conversation_details(
    State(state): State<SimState>,
    body: Bytes,
) -> Result<Json<AnalyticsConversationQueryResponse>, ApiError> {
    let document: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request())?;
    let interval = document
        .get("interval")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(ApiError::invalid_date)
        .and_then(parse_interval)?;
    let query: ConversationQuery =
        serde_json::from_value(document).map_err(|_| ApiError::bad_request())?;
    let (page_size, page_number) = match query.paging {
        None => (DEFAULT_PAGE_SIZE, 1),
        Some(paging) => (paging.page_size, paging.page_number),
    };
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::constraint_validation(format!(
            "pageSize must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    if page_number < 1 {
        return Err(ApiError::constraint_validation(
            "pageNumber must be at least 1",
        ));
    }
    let descending = query.order.as_deref() == Some("desc");

    state.with_calls(|calls, indexed_until| {
        let mut matching = Vec::new();
        for call in calls {
            // Genesys lists a conversation only once it has indexed it (`analytics_lag`).
            let indexed = call.start <= indexed_until;
            if indexed && overlaps(call, interval) && matches_all(call, &query)? {
                matching.push(call);
            }
        }
        if descending {
            matching.reverse();
        }
        let skip = (page_number as usize - 1).saturating_mul(page_size as usize);
        Ok(Json(AnalyticsConversationQueryResponse {
            total_hits: Some(matching.len() as u64),
            conversations: matching
                .iter()
                .skip(skip)
                .take(page_size as usize)
                .map(|call| call.analytics_view())
                .collect(),
        }))
    })
}

/// `GET /api/v2/analytics/conversations/details?id=ID1,ID2,...` (`id` may also repeat): the
/// asked conversations analytics has indexed, with `conversationEnd` once ended. Unknown ids,
/// and calls too new to be indexed (`SimConfig::analytics_lag`), are left out, not refused [?];
/// more ids than `SimConfig::details_max_ids` is 400 `constraint.validation` [?].
pub(crate) async fn get_conversation_details(
    State(state): State<SimState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<AnalyticsConversationMultiGetResponse>, ApiError> {
    let Query(pairs) = query.map_err(|_| ApiError::bad_request())?;
    let mut ids: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        if name == "id" {
            ids.extend(value.split(',').map(str::trim).filter(|id| !id.is_empty()));
        }
    }
    if ids.is_empty() {
        return Err(ApiError::constraint_validation(
            "At least one conversation id is required in [id]",
        ));
    }
    let max = state.details_max_ids();
    if ids.len() > max {
        return Err(ApiError::constraint_validation(format!(
            "[id] lists {} conversation ids; at most {max} are allowed",
            ids.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    Ok(Json(state.with_indexed_calls(&ids, |calls| {
        AnalyticsConversationMultiGetResponse {
            conversations: calls.map(CallRecord::analytics_view).collect(),
        }
    })))
}

/// `start/end`, both ISO-8601 UTC (`Z`), start before end.
fn parse_interval(interval: &str) -> Result<(SystemTime, SystemTime), ApiError> {
    let (start, end) = interval
        .split_once('/')
        .ok_or_else(ApiError::invalid_date)?;
    let start = humantime::parse_rfc3339_weak(start).map_err(|_| ApiError::invalid_date())?;
    let end = humantime::parse_rfc3339_weak(end).map_err(|_| ApiError::invalid_date())?;
    if start >= end {
        return Err(ApiError::constraint_validation(
            "The interval's start must be before its end",
        ));
    }
    Ok((start, end))
}

fn overlaps(call: &CallRecord, (start, end): (SystemTime, SystemTime)) -> bool {
    call.start < end && call.end.is_none_or(|ended| ended > start)
}

fn matches_all(call: &CallRecord, query: &ConversationQuery) -> Result<bool, ApiError> {
    for filter in &query.conversation_filters {
        if !matches_filter(filter, |p| conversation_predicate(call, p))? {
            return Ok(false);
        }
    }
    for filter in &query.segment_filters {
        if !matches_filter(filter, |p| segment_predicate(call, p))? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn matches_filter(
    filter: &QueryFilter,
    mut predicate: impl FnMut(&QueryPredicate) -> Result<bool, ApiError>,
) -> Result<bool, ApiError> {
    let mut results = Vec::with_capacity(filter.predicates.len());
    for p in &filter.predicates {
        results.push(predicate(p)?);
    }
    match filter.kind.as_str() {
        "and" => Ok(results.iter().all(|&r| r)),
        "or" => Ok(results.is_empty() || results.iter().any(|&r| r)),
        other => Err(ApiError::invalid_value(other, "type", "and, or")),
    }
}

/// How a predicate compares a dimension that may be absent.
enum Operator<'a> {
    Matches(&'a str),
    Exists,
    NotExists,
}

fn operator(predicate: &QueryPredicate) -> Result<Operator<'_>, ApiError> {
    match predicate.operator.as_deref().unwrap_or("matches") {
        "matches" => Ok(Operator::Matches(
            predicate.value.as_deref().unwrap_or_default(),
        )),
        "exists" => Ok(Operator::Exists),
        "notExists" => Ok(Operator::NotExists),
        other => Err(ApiError::invalid_value(
            other,
            "operator",
            "matches, exists, notExists",
        )),
    }
}

/// Applies `op` to every value the dimension has on this call.
fn compare<'v>(op: &Operator<'_>, mut values: impl Iterator<Item = &'v str>) -> bool {
    match op {
        Operator::Matches(wanted) => values.any(|v| v == *wanted),
        Operator::Exists => values.next().is_some(),
        Operator::NotExists => values.next().is_none(),
    }
}

fn dimension(predicate: &QueryPredicate) -> Result<&str, ApiError> {
    match predicate.kind.as_deref().unwrap_or("dimension") {
        "dimension" => predicate
            .dimension
            .as_deref()
            .ok_or_else(ApiError::bad_request),
        other => Err(unsupported(other)),
    }
}

fn conversation_predicate(call: &CallRecord, predicate: &QueryPredicate) -> Result<bool, ApiError> {
    let op = operator(predicate)?;
    let ended = call.end.map(|_| "ended");
    match dimension(predicate)? {
        "conversationEnd" => Ok(compare(&op, ended.into_iter())),
        "conversationId" => Ok(compare(&op, std::iter::once(call.id.as_str()))),
        other => Err(unsupported(other)),
    }
}

fn segment_predicate(call: &CallRecord, predicate: &QueryPredicate) -> Result<bool, ApiError> {
    let op = operator(predicate)?;
    let participants = call.participants.iter();
    match dimension(predicate)? {
        "mediaType" => Ok(compare(&op, std::iter::once("voice"))),
        "queueId" => Ok(compare(&op, call.queue_id.as_deref().into_iter())),
        "purpose" => Ok(compare(&op, participants.map(|p| p.purpose.as_str()))),
        "userId" => Ok(compare(
            &op,
            participants.filter_map(|p| p.user.as_ref().and_then(|u| u.id.as_deref())),
        )),
        // A session's numbers and direction, compared as written (`tel:+15551230001`).
        "ani" => Ok(compare(&op, participants.filter_map(|p| p.ani.as_deref()))),
        "dnis" => Ok(compare(&op, participants.filter_map(|p| p.dnis.as_deref()))),
        "direction" => Ok(compare(&op, participants.map(|p| p.direction))),
        other => Err(unsupported(other)),
    }
}

/// The simulator serves a subset of the query language; it says so rather than ignore a filter.
fn unsupported(what: &str) -> ApiError {
    ApiError::constraint_validation(format!(
        "The simulator does not support [{what}] in a details query"
    ))
}
