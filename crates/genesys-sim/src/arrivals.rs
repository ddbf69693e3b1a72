//! Call arrivals: new live calls at a seeded Poisson rate, spread over the queues round robin,
//! each ending after `call_duration` (plus or minus a seeded 10 %).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use genesys_models::{Attributes, DomainEntityRef, ParticipantState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::call::{CallRecord, ParticipantRecord};
use crate::org::{self, SimQueue};

/// New calls per second; zero is none. Written `2/s`, `120/min`, `600/h` or `0`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ArrivalRate(f64);

impl ArrivalRate {
    pub const NONE: Self = Self(0.0);

    /// `per_second` calls per second; anything not positive and finite is none.
    pub fn per_second(per_second: f64) -> Self {
        if per_second.is_finite() && per_second > 0.0 {
            Self(per_second)
        } else {
            Self::NONE
        }
    }

    pub fn as_per_second(self) -> f64 {
        self.0
    }

    pub fn is_none(self) -> bool {
        self.0 <= 0.0
    }
}

impl fmt::Display for ArrivalRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            f.write_str("0")
        } else {
            write!(f, "{}/s", self.0)
        }
    }
}

/// An arrival rate that is not `COUNT/UNIT` (unit `s`, `min` or `h`) or `0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseArrivalRateError(String);

impl fmt::Display for ParseArrivalRateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid arrival rate {:?} (expected COUNT/UNIT with unit s, min or h, e.g. 2/s or 120/min; 0 for none)",
            self.0
        )
    }
}

impl std::error::Error for ParseArrivalRateError {}

impl FromStr for ArrivalRate {
    type Err = ParseArrivalRateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseArrivalRateError(text.to_owned());
        let trimmed = text.trim();
        if trimmed == "0" || trimmed.eq_ignore_ascii_case("none") {
            return Ok(Self::NONE);
        }
        let (count, unit) = trimmed.split_once('/').ok_or_else(invalid)?;
        let count: f64 = count.trim().parse().map_err(|_| invalid())?;
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            _ => return Err(invalid()),
        };
        if !count.is_finite() || count < 0.0 {
            return Err(invalid());
        }
        Ok(Self::per_second(count / seconds))
    }
}

impl Serialize for ArrivalRate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ArrivalRate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The numbers of one call arriving by hand (`POST /__sim/arrivals/call`); a field not given
/// takes the usual number: the customer's is the next of the queued arrival numbers or a seeded
/// one, the dialled one is the queue's. Written as the contract writes numbers: E.164
/// (`+15551230001`) becomes `tel:+15551230001`, a text with a scheme (`tel:`, `sip:`) stays as
/// it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalNumbers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialed_number: Option<String>,
}

/// The arrival schedule, in simulated time since the simulator's start.
pub(crate) struct Arrivals {
    /// Its own stream: arrivals never shift the org, the faults or the latency.
    rng: StdRng,
    rate: ArrivalRate,
    call_duration: Option<Duration>,
    next_at: Option<Duration>,
    /// Round robin over the queues.
    next_queue: usize,
    arrived: u64,
    /// Customer numbers the next arrivals take, in order (`SimConfig::arrival_customer_numbers`).
    customer_numbers: VecDeque<String>,
}

impl Arrivals {
    pub(crate) fn new(
        seed: u64,
        rate: ArrivalRate,
        call_duration: Option<Duration>,
        customer_numbers: Vec<String>,
        now: Duration,
    ) -> Self {
        let mut arrivals = Self {
            rng: StdRng::seed_from_u64(seed),
            rate: ArrivalRate::NONE,
            call_duration,
            next_at: None,
            next_queue: 0,
            arrived: 0,
            customer_numbers: customer_numbers.into(),
        };
        arrivals.set_rate(rate, now);
        arrivals
    }

    pub(crate) fn rate(&self) -> ArrivalRate {
        self.rate
    }

    pub(crate) fn arrived(&self) -> u64 {
        self.arrived
    }

    /// Customer numbers queued for the next arrivals, in order.
    pub(crate) fn customer_numbers(&self) -> &VecDeque<String> {
        &self.customer_numbers
    }

    /// The next arrivals take these customer numbers, after those already queued.
    pub(crate) fn queue_customer_numbers(&mut self, numbers: Vec<String>) {
        self.customer_numbers.extend(numbers);
    }

    /// Arrivals from `now` on follow `rate` (none when it is zero).
    pub(crate) fn set_rate(&mut self, rate: ArrivalRate, now: Duration) {
        self.rate = rate;
        self.next_at = (!rate.is_none()).then(|| now + self.gap());
    }

    /// When the next scheduled arrival is due.
    pub(crate) fn next_due(&self) -> Option<Duration> {
        self.next_at
    }

    /// Consumes the due arrival at `at` and schedules the one after it.
    pub(crate) fn advance(&mut self, at: Duration) {
        self.next_at = (!self.rate.is_none()).then(|| at + self.gap());
    }

    /// An exponential gap with mean `1 / rate`: arrivals form a Poisson process.
    fn gap(&mut self) -> Duration {
        let uniform: f64 = self.rng.random();
        let seconds = -(1.0 - uniform).ln() / self.rate.as_per_second().max(f64::MIN_POSITIVE);
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX / 4)
    }

    /// The next queue in turn, or `queue_id` when given.
    pub(crate) fn pick_queue<'q>(
        &mut self,
        queues: &'q [SimQueue],
        queue_id: Option<&str>,
    ) -> Option<&'q SimQueue> {
        if let Some(wanted) = queue_id {
            return queues.iter().find(|q| q.id == wanted);
        }
        if queues.is_empty() {
            return None;
        }
        let queue = &queues[self.next_queue % queues.len()];
        self.next_queue = (self.next_queue + 1) % queues.len();
        Some(queue)
    }

    /// A call that just entered `queue` at `at` (wall clock): a connected customer with the
    /// queue set and no attributes, and the acd participant holding it in the queue, both with
    /// the customer's number as `ani` and the dialled number as `dnis` (see [`ArrivalNumbers`]).
    /// Returns the call and how long it will last (`None`: until ended by hand).
    pub(crate) fn new_call(
        &mut self,
        queue: &SimQueue,
        numbers: &ArrivalNumbers,
        at: SystemTime,
        at_sim: Duration,
    ) -> (CallRecord, Option<Duration>) {
        self.arrived += 1;
        let rng = &mut self.rng;
        let queue_ref = DomainEntityRef {
            self_uri: Some(format!("/api/v2/routing/queues/{}", queue.id)),
            name: Some(queue.name.clone()),
            id: Some(queue.id.clone()),
        };
        let participant =
            |rng: &mut StdRng, purpose: &str, name: String, address, ani, dnis| ParticipantRecord {
                id: org::uuid(rng),
                leg_id: org::uuid(rng),
                name: Some(name),
                address,
                ani,
                dnis,
                purpose: purpose.to_owned(),
                direction: "inbound",
                state: ParticipantState::Connected,
                start: at,
                connected: Some(at),
                end: None,
                user: None,
                queue: Some(queue_ref.clone()),
                external_contact: None,
                visible: Attributes::new(),
                pending: Vec::new(),
            };
        let id = org::uuid(rng);
        let customer_name = org::person_name(rng);
        // Drawn whatever number the call gets, so that later arrivals stay those of the seed.
        let seeded = format!("tel:+1555{:07}", rng.random_range(0..10_000_000u32));
        let phone = match &numbers.customer_number {
            Some(given) => org::tel(given),
            None => self
                .customer_numbers
                .pop_front()
                .map_or(seeded, |queued| org::tel(&queued)),
        };
        let dialed = org::tel(numbers.dialed_number.as_deref().unwrap_or(&queue.number));
        let customer = participant(
            rng,
            "customer",
            customer_name,
            Some(phone.clone()),
            Some(phone.clone()),
            Some(dialed.clone()),
        );
        let acd = participant(
            rng,
            "acd",
            queue.name.clone(),
            None,
            Some(phone),
            Some(dialed),
        );
        // Plus or minus 10 %, so that calls that arrived together do not all end together.
        let duration = self
            .call_duration
            .map(|d| d.mul_f64(rng.random_range(0.9..=1.1)));
        let call = CallRecord {
            id,
            queue_id: Some(queue.id.clone()),
            start: at,
            end: None,
            participants: vec![customer, acd],
            arrived_at: Some(at_sim),
            attributes_visible_at: None,
        };
        (call, duration)
    }

    /// An agent answers a live call at `at`: the connected acd participant leaves and an agent
    /// of the call's queue joins, connected. `false` (nothing changes) when the call has ended
    /// or has no acd participant on it.
    pub(crate) fn answer(&mut self, call: &mut CallRecord, at: SystemTime) -> bool {
        if call.is_ended() {
            return false;
        }
        let Some(acd) = call
            .participants
            .iter_mut()
            .find(|p| p.purpose == "acd" && p.end.is_none())
        else {
            return false;
        };
        acd.state = ParticipantState::Disconnected;
        acd.end = Some(at);
        let queue = acd.queue.clone();
        let rng = &mut self.rng;
        let user_id = org::uuid(rng);
        let agent = ParticipantRecord {
            id: org::uuid(rng),
            leg_id: org::uuid(rng),
            name: Some(org::person_name(rng)),
            address: None,
            ani: None,
            dnis: None,
            purpose: "agent".to_owned(),
            direction: "outbound",
            state: ParticipantState::Connected,
            start: at,
            connected: Some(at),
            end: None,
            user: Some(DomainEntityRef {
                self_uri: Some(format!("/api/v2/users/{user_id}")),
                name: None,
                id: Some(user_id),
            }),
            queue,
            external_contact: None,
            visible: Attributes::new(),
            pending: Vec::new(),
        };
        call.participants.push(agent);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_every_unit_and_zero_is_none() {
        assert_eq!("2/s".parse::<ArrivalRate>().unwrap().as_per_second(), 2.0);
        assert_eq!(
            "120/min".parse::<ArrivalRate>().unwrap().as_per_second(),
            2.0
        );
        assert_eq!(
            "3600/h".parse::<ArrivalRate>().unwrap().as_per_second(),
            1.0
        );
        assert!("0".parse::<ArrivalRate>().unwrap().is_none());
        assert!("0/s".parse::<ArrivalRate>().unwrap().is_none());
        assert!("2/day".parse::<ArrivalRate>().is_err());
        assert!("-1/s".parse::<ArrivalRate>().is_err());
        assert!("fast".parse::<ArrivalRate>().is_err());
    }

    #[test]
    fn the_same_seed_gives_the_same_arrival_times() {
        let times = |seed| {
            let mut arrivals =
                Arrivals::new(seed, ArrivalRate(5.0), None, Vec::new(), Duration::ZERO);
            (0..50)
                .map(|_| {
                    let at = arrivals.next_due().unwrap();
                    arrivals.advance(at);
                    at
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(times(7), times(7));
        assert_ne!(times(7), times(8));
        let last = times(7)[49].as_secs_f64();
        // 50 arrivals at 5/s take about 10 s.
        assert!((4.0..20.0).contains(&last), "{last}");
    }
}
