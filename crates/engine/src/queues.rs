//! Queues by name or id: what `--queue` names, checked against the routing queues API before
//! anything is recorded or sent, and the queue listing of `attrsync queues` with live-call counts.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use genesys_core::models::Queue;
use genesys_core::{ApiError, GenesysClient, LiveCallsQuery};

use crate::live::queue_ids_of;

/// What the user said the queue is: an id (a UUID, lower-cased) or a name (anything else; `*`
/// at either end is a wildcard that must still match exactly one queue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueRef {
    Id(String),
    Name(String),
}

/// A `--queue` value that can name no queue.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueRefError {
    #[error("a queue is named by its id or its name, not an empty text")]
    Empty,
    #[error("`{0}` contains a control character: no queue name does")]
    ControlCharacter(String),
    #[error("`{0}` has a `*` inside it: only a leading or trailing `*` is a wildcard")]
    InnerWildcard(String),
    #[error("`{0}` is longer than any queue name (256 characters)")]
    TooLong(String),
}

impl std::str::FromStr for QueueRef {
    type Err = QueueRefError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(QueueRefError::Empty);
        }
        if let Ok(id) = uuid::Uuid::try_parse(text) {
            return Ok(Self::Id(id.hyphenated().to_string()));
        }
        if text.chars().any(char::is_control) {
            return Err(QueueRefError::ControlCharacter(
                text.escape_debug().to_string(),
            ));
        }
        if text.chars().count() > 256 {
            return Err(QueueRefError::TooLong(text.chars().take(40).collect()));
        }
        let inner = text.trim_start_matches('*').trim_end_matches('*');
        if inner.contains('*') {
            return Err(QueueRefError::InnerWildcard(text.to_owned()));
        }
        Ok(Self::Name(text.to_owned()))
    }
}

impl fmt::Display for QueueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => f.write_str(id),
            Self::Name(name) => write!(f, "\"{name}\""),
        }
    }
}

/// A queue the org has, found by name or id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedQueue {
    pub id: String,
    pub name: Option<String>,
}

impl ResolvedQueue {
    fn from_wire(queue: Queue) -> Self {
        Self {
            id: queue.id.to_lowercase(),
            name: queue.name,
        }
    }
}

impl fmt::Display for ResolvedQueue {
    /// `Billing (ID)`, or the id alone when Genesys gave no name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.id),
            None => f.write_str(&self.id),
        }
    }
}

/// What to run to see the queues.
const LIST_HINT: &str = "run `attrsync queues` to list the queues and their ids";

/// Why a `--queue` names no single queue of the org.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "queue {given} does not exist in this org (or this client may not see it): {LIST_HINT}"
    )]
    Unknown { given: QueueRef },
    #[error(
        "queue name {given} matches {} queues ({}): give the id of the one you mean (`attrsync queues '{pattern}'` lists them)",
        matches.len(),
        matches.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        pattern = given_text(given)
    )]
    Ambiguous {
        given: QueueRef,
        matches: Vec<ResolvedQueue>,
    },
    #[error(
        "cannot look up queue {given}: the OAuth client lacks permission routing:queue:view (Genesys answered 403); add it to the client's role, then check with `attrsync queues`"
    )]
    Forbidden {
        given: QueueRef,
        #[source]
        source: ApiError,
    },
    #[error("cannot look up queue {given}")]
    Api {
        given: QueueRef,
        #[source]
        source: ApiError,
    },
}

fn given_text(given: &QueueRef) -> &str {
    match given {
        QueueRef::Id(text) | QueueRef::Name(text) => text,
    }
}

/// The one queue `given` names: a read of the id, or the name listing. Before any run.
pub async fn resolve(
    client: &GenesysClient,
    given: &QueueRef,
) -> Result<ResolvedQueue, QueueError> {
    let api_error = |source: ApiError| {
        if source.status() == Some(403) {
            QueueError::Forbidden {
                given: given.clone(),
                source,
            }
        } else {
            QueueError::Api {
                given: given.clone(),
                source,
            }
        }
    };
    match given {
        QueueRef::Id(id) => match client.find_queue(id).await.map_err(api_error)? {
            Some(queue) => Ok(ResolvedQueue::from_wire(queue)),
            None => Err(QueueError::Unknown {
                given: given.clone(),
            }),
        },
        QueueRef::Name(name) => {
            let mut found: Vec<ResolvedQueue> = client
                .routing_queues(Some(name))
                .await
                .map_err(api_error)?
                .into_iter()
                .map(ResolvedQueue::from_wire)
                .collect();
            match found.len() {
                0 => Err(QueueError::Unknown {
                    given: given.clone(),
                }),
                1 => Ok(found.remove(0)),
                _ => Err(QueueError::Ambiguous {
                    given: given.clone(),
                    matches: found,
                }),
            }
        }
    }
}

/// Every queue of `given`, in order, each once (two names of one queue are one queue).
pub async fn resolve_all(
    client: &GenesysClient,
    given: &[QueueRef],
) -> Result<Vec<ResolvedQueue>, QueueError> {
    let mut resolved: Vec<ResolvedQueue> = Vec::with_capacity(given.len());
    for queue in given {
        let queue = resolve(client, queue).await?;
        if !resolved.iter().any(|q| q.id == queue.id) {
            resolved.push(queue);
        }
    }
    Ok(resolved)
}

/// One queue of `attrsync queues`: its id, name, and how many live calls have been in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueLiveCalls {
    pub id: String,
    pub name: Option<String>,
    pub live_calls: usize,
}

/// Why the queue overview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QueueListError {
    #[error(
        "cannot list the queues: the OAuth client lacks permission routing:queue:view (Genesys answered 403); add it to the client's role"
    )]
    Forbidden(#[source] ApiError),
    #[error("cannot list the queues")]
    Queues(#[source] ApiError),
    #[error("cannot list the live calls to count them per queue")]
    LiveCalls(#[source] ApiError),
}

/// The queues whose name matches `name` (all with `None`), each with its live calls, counted
/// from one analytics listing of every live call (not a request per queue).
pub async fn queue_overview(
    client: &GenesysClient,
    name: Option<&str>,
    lookback: Duration,
) -> Result<Vec<QueueLiveCalls>, QueueListError> {
    let queues = client.routing_queues(name).await.map_err(|source| {
        if source.status() == Some(403) {
            QueueListError::Forbidden(source)
        } else {
            QueueListError::Queues(source)
        }
    })?;
    let mut counts: HashMap<String, usize> = HashMap::new();
    if !queues.is_empty() {
        let query = LiveCallsQuery {
            lookback,
            ..LiveCallsQuery::default()
        };
        client
            .visit_live_calls(&query, |call| {
                for queue in queue_ids_of(&call) {
                    *counts.entry(queue.to_lowercase()).or_default() += 1;
                }
            })
            .await
            .map_err(QueueListError::LiveCalls)?;
    }
    Ok(queues
        .into_iter()
        .map(|queue| {
            let id = queue.id.to_lowercase();
            QueueLiveCalls {
                live_calls: counts.get(&id).copied().unwrap_or(0),
                id,
                name: queue.name,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_is_an_id_and_anything_else_a_name() {
        let id = "7F3B9C1E-2D4A-4B8E-9F1A-0C2D3E4F5A6B";
        assert_eq!(id.parse::<QueueRef>(), Ok(QueueRef::Id(id.to_lowercase())));
        assert_eq!(
            " Billing ".parse::<QueueRef>(),
            Ok(QueueRef::Name("Billing".into()))
        );
        assert_eq!(
            "Bill*".parse::<QueueRef>(),
            Ok(QueueRef::Name("Bill*".into()))
        );
        // A mistyped id is a name, which the lookup then finds nowhere.
        assert_eq!(
            "7f3b9c1e-2d4a".parse::<QueueRef>(),
            Ok(QueueRef::Name("7f3b9c1e-2d4a".into()))
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        assert_eq!("  ".parse::<QueueRef>(), Err(QueueRefError::Empty));
        assert!(matches!(
            "Bi*ll".parse::<QueueRef>(),
            Err(QueueRefError::InnerWildcard(_))
        ));
        assert!(matches!(
            "a\u{7}b".parse::<QueueRef>(),
            Err(QueueRefError::ControlCharacter(_))
        ));
        assert!(matches!(
            "x".repeat(300).parse::<QueueRef>(),
            Err(QueueRefError::TooLong(_))
        ));
    }

    #[test]
    fn errors_name_the_queue_and_what_to_do() {
        let unknown = QueueError::Unknown {
            given: QueueRef::Name("Biling".into()),
        };
        assert!(unknown.to_string().contains("\"Biling\""), "{unknown}");
        assert!(unknown.to_string().contains("attrsync queues"), "{unknown}");
        let ambiguous = QueueError::Ambiguous {
            given: QueueRef::Name("Sales*".into()),
            matches: vec![
                ResolvedQueue {
                    id: "a".into(),
                    name: Some("Sales".into()),
                },
                ResolvedQueue {
                    id: "b".into(),
                    name: Some("Sales 2".into()),
                },
            ],
        };
        assert_eq!(
            ambiguous.to_string(),
            "queue name \"Sales*\" matches 2 queues (Sales (a), Sales 2 (b)): give the id of the one you mean (`attrsync queues 'Sales*'` lists them)"
        );
    }
}
