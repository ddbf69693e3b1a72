//! The generated org: queues, agents and live calls, all derived from the seed.

use std::time::{Duration, SystemTime};

use genesys_models::{Attributes, DomainEntityRef, ParticipantState};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::call::{CallRecord, ParticipantRecord};

/// A routing queue of the generated org.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimQueue {
    pub id: String,
    pub name: String,
    /// The queue's dialled number (its campaign number), E.164: what inbound customers dial.
    pub number: String,
}

const QUEUE_NAMES: &[&str] = &[
    "Sales",
    "Support",
    "Billing",
    "Retention",
    "Claims",
    "Technical",
];
const FIRST_NAMES: &[&str] = &[
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kara",
    "Luis", "Mei", "Noah", "Olga", "Priya",
];
const LAST_NAMES: &[&str] = &[
    "Adams", "Brown", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
    "Khan", "Lopez", "Moreau", "Novak",
];
const IVR_FLOWS: &[&str] = &["Main IVR", "Billing IVR", "After Hours IVR"];

/// Everything generated from the seed.
pub(crate) struct Org {
    pub(crate) queues: Vec<SimQueue>,
    pub(crate) calls: Vec<CallRecord>,
}

struct Agent {
    id: String,
    name: String,
}

/// Builds the org. `now` is the simulator's start; calls started up to 30 minutes before it.
/// `queue_names`, when not empty, are the queues' names (see `SimConfig::queue_names`).
pub(crate) fn generate(
    rng: &mut StdRng,
    queue_count: usize,
    queue_names: &[String],
    queue_numbers: &[String],
    call_count: usize,
    now: SystemTime,
) -> Org {
    let names: Vec<String> = if queue_names.is_empty() {
        (0..queue_count).map(generated_queue_name).collect()
    } else {
        queue_names.to_vec()
    };
    let queues: Vec<SimQueue> = names
        .into_iter()
        .enumerate()
        .map(|(index, name)| SimQueue {
            id: uuid(rng),
            name,
            // Not drawn from the RNG: the org of a seed stays what it was.
            number: queue_numbers
                .get(index)
                .cloned()
                .unwrap_or_else(|| generated_queue_number(index)),
        })
        .collect();
    let agents: Vec<Agent> = (0..(call_count / 2).max(8))
        .map(|_| Agent {
            id: uuid(rng),
            name: person_name(rng),
        })
        .collect();
    let mut calls: Vec<CallRecord> = (0..call_count)
        .map(|_| generate_call(rng, &queues, &agents, now))
        .collect();
    // Oldest first, the order analytics pages them in.
    calls.sort_by_key(|c| c.start);
    Org { queues, calls }
}

/// `count` calls that ended an hour to three weeks before `now` (oldest first), in `queues`:
/// a CRM table's history. Drawn from their own RNG, so that the live org of a seed is the same
/// with or without history.
pub(crate) fn history(
    rng: &mut StdRng,
    queues: &[SimQueue],
    count: usize,
    now: SystemTime,
) -> Vec<CallRecord> {
    let agents: Vec<Agent> = (0..(count / 20).clamp(8, 200))
        .map(|_| Agent {
            id: uuid(rng),
            name: person_name(rng),
        })
        .collect();
    let mut calls: Vec<CallRecord> = (0..count)
        .map(|_| {
            let ended = now - Duration::from_secs(rng.random_range(3_600..21 * 86_400));
            let mut call = generate_call(rng, queues, &agents, ended);
            for participant in &mut call.participants {
                if participant.end.is_none() {
                    participant.end = Some(ended);
                    participant.state = ParticipantState::Disconnected;
                }
            }
            call.end = Some(ended);
            call
        })
        .collect();
    calls.sort_by_key(|c| c.start);
    calls
}

/// `+18005550100`, `+18005550101`, ...: the fictional 555-01xx range of toll-free 800.
fn generated_queue_number(index: usize) -> String {
    format!("+1800555{:04}", 100 + index % 9_900)
}

/// A number as the contract writes it in `address`, `ani` and `dnis`: `tel:+15551230001` for
/// `+15551230001`; a text that has a scheme already (`tel:`, `sip:`) as it is.
pub(crate) fn tel(number: &str) -> String {
    if number.contains(':') {
        number.to_owned()
    } else {
        format!("tel:{number}")
    }
}

/// `Sales`, `Support`, ..., then `Sales 2`, `Support 2`, ...
fn generated_queue_name(index: usize) -> String {
    let base = QUEUE_NAMES[index % QUEUE_NAMES.len()];
    match index / QUEUE_NAMES.len() {
        0 => base.to_owned(),
        round => format!("{base} {}", round + 1),
    }
}

fn generate_call(
    rng: &mut StdRng,
    queues: &[SimQueue],
    agents: &[Agent],
    now: SystemTime,
) -> CallRecord {
    let id = uuid(rng);
    let start = now - Duration::from_millis(rng.random_range(60_000..1_800_000));
    let queue = (!queues.is_empty()).then(|| &queues[rng.random_range(0..queues.len())]);
    let mut clock = start;
    let mut participants = Vec::new();

    let mut customer_attributes = Attributes::new();
    match rng.random_range(0..10) {
        0 => {
            customer_attributes.insert("ivr.lang".to_owned(), "en".to_owned());
        }
        1 => {
            customer_attributes.insert("campaign".to_owned(), "autumn".to_owned());
        }
        _ => {}
    }
    let external_contact = rng
        .random_bool(0.3)
        .then(|| entity_ref(uuid(rng), None, "externalcontacts/contacts"));
    // Drawn in this order so that a seed's org is what it was before calls had numbers.
    let (customer_id, leg_id, name) = (uuid(rng), uuid(rng), person_name(rng));
    let customer_address = format!("tel:+1555{:07}", rng.random_range(0..10_000_000u32));
    // The customer's leg and the flow's legs it went through carry the customer's number as
    // ani and the queue's as dnis.
    let ani = Some(customer_address.clone());
    let dnis = queue.map(|q| tel(&q.number));
    participants.push(ParticipantRecord {
        id: customer_id,
        leg_id,
        name: Some(name),
        address: Some(customer_address),
        ani: ani.clone(),
        dnis: dnis.clone(),
        purpose: "customer".to_owned(),
        direction: "inbound",
        state: ParticipantState::Connected,
        start,
        connected: Some(start),
        end: None,
        user: None,
        queue: None,
        external_contact,
        visible: customer_attributes,
        pending: Vec::new(),
    });

    if rng.random_bool(0.4) {
        let ivr_end = advance(rng, &mut clock, now, 90);
        let mut ivr_attributes = Attributes::new();
        if rng.random_bool(0.5) {
            ivr_attributes.insert("ivr.lang".to_owned(), "en".to_owned());
        }
        participants.push(ParticipantRecord {
            id: uuid(rng),
            leg_id: uuid(rng),
            name: Some(IVR_FLOWS[rng.random_range(0..IVR_FLOWS.len())].to_owned()),
            address: Some(format!("sip:ivr-{}@localhost", rng.random_range(100..999))),
            ani: ani.clone(),
            dnis: dnis.clone(),
            purpose: "ivr".to_owned(),
            direction: "inbound",
            state: ParticipantState::Disconnected,
            start,
            connected: Some(start),
            end: Some(ivr_end),
            user: None,
            queue: None,
            external_contact: None,
            visible: ivr_attributes,
            pending: Vec::new(),
        });
    }

    let acd_start = clock;
    let answered = advance(rng, &mut clock, now, 120);
    participants.push(ParticipantRecord {
        id: uuid(rng),
        leg_id: uuid(rng),
        name: queue.map(|q| q.name.clone()),
        address: None,
        ani,
        dnis,
        purpose: "acd".to_owned(),
        direction: "inbound",
        state: ParticipantState::Disconnected,
        start: acd_start,
        connected: Some(acd_start),
        end: Some(answered),
        user: None,
        queue: queue.map(|q| entity_ref(q.id.clone(), Some(&q.name), "routing/queues")),
        external_contact: None,
        visible: Attributes::new(),
        pending: Vec::new(),
    });

    // About one call in ten was transferred: the first agent already left.
    let mut agent_start = answered;
    if rng.random_range(0..10) == 0 {
        let left = advance(rng, &mut clock, now, 240);
        participants.push(agent_participant(
            rng,
            agents,
            queue,
            agent_start,
            Some(left),
        ));
        agent_start = left;
    }
    participants.push(agent_participant(rng, agents, queue, agent_start, None));

    CallRecord {
        id,
        queue_id: queue.map(|q| q.id.clone()),
        start,
        end: None,
        participants,
        arrived_at: None,
        attributes_visible_at: None,
    }
}

/// Moves `clock` on by 2 s to `max_secs`, never past `now`.
fn advance(rng: &mut StdRng, clock: &mut SystemTime, now: SystemTime, max_secs: u64) -> SystemTime {
    *clock = (*clock + Duration::from_millis(rng.random_range(2_000..max_secs * 1000))).min(now);
    *clock
}

fn agent_participant(
    rng: &mut StdRng,
    agents: &[Agent],
    queue: Option<&SimQueue>,
    start: SystemTime,
    end: Option<SystemTime>,
) -> ParticipantRecord {
    let agent = &agents[rng.random_range(0..agents.len())];
    ParticipantRecord {
        id: uuid(rng),
        leg_id: uuid(rng),
        name: Some(agent.name.clone()),
        address: Some(format!("sip:{}@localhost", agent.id)),
        ani: None,
        dnis: None,
        purpose: "agent".to_owned(),
        direction: "outbound",
        state: if end.is_some() {
            ParticipantState::Disconnected
        } else {
            ParticipantState::Connected
        },
        start,
        connected: Some(start),
        end,
        user: Some(entity_ref(agent.id.clone(), Some(&agent.name), "users")),
        queue: queue.map(|q| entity_ref(q.id.clone(), Some(&q.name), "routing/queues")),
        external_contact: None,
        visible: Attributes::new(),
        pending: Vec::new(),
    }
}

fn entity_ref(id: String, name: Option<&str>, collection: &str) -> DomainEntityRef {
    DomainEntityRef {
        self_uri: Some(format!("/api/v2/{collection}/{id}")),
        name: name.map(str::to_owned),
        id: Some(id),
    }
}

pub(crate) fn person_name(rng: &mut StdRng) -> String {
    let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
    let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
    format!("{first} {last}")
}

/// A version-4 UUID drawn from the seeded RNG, so ids repeat with the seed.
pub(crate) fn uuid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}
