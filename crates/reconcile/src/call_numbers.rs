//! A call's phone numbers, from each view of it Genesys gives: the customer's own number (which
//! a `customer_number` row selects) and the number an inbound customer dialled (which a
//! `dialed_number` row selects). Pure functions of the wire models.
//!
//! Which field gives what (marks as in `genesys-api/README.md`: [V] verified, [?] not):
//!
//! | view | customer's number | dialled number |
//! |---|---|---|
//! | call read (`CallConversation`), inbound | the customer's `ani`, else its `address` | the customer's `dnis` |
//! | call read, outbound | the customer's `dnis`, else its `address` | none |
//! | queue call event | as the call read (it decodes into the same model) | as the call read |
//! | analytics (live-call listing, multi-id read), inbound session | the customer session's `ani` | its `dnis` |
//! | analytics, outbound session | the customer session's `dnis` | none |
//!
//! - The fields are [V]: `CallMediaParticipant.ani` ("The call ANI"), `.dnis` ("The call
//!   DNIS"), `.address`, `.direction` (`inbound`/`outbound`); `AnalyticsSession.ani` ("caller's
//!   number"), `.dnis` ("number dialed by the calling party"), `.direction`. The media-agnostic
//!   `Participant.address` is "for a phone call ... the ANI" [V].
//! - [?]: their form. `tel:+15551234567` is what Genesys is known to write; [`parse`] also
//!   takes `sip:` URIs with a number as user part, bare E.164, and national forms with the
//!   default region (a trunk that delivers numbers nationally). A value that is not a number
//!   (an anonymous caller, `sip:anonymous@...`) gives no number, not an error.
//! - [?]: whether queue call events carry `ani`/`dnis`; their documented participant fields
//!   include `address` and `direction`. From an event without them the customer's number comes
//!   from `address` and the dialled number is unknown (`None`): ask a read or analytics.
//! - [?]: on an outbound call, that the customer's `dnis`/`address` is the number dialled to
//!   reach them and its `ani` the org's caller id, by the meaning of the words.
//! - The customer is the participant of purpose `customer`; when a call has none, an `external`
//!   one (an agent's outbound call to an outside number is documented with purposes `customer`
//!   and `external` [?]). A missing direction is taken as inbound, the only direction of a
//!   queue's ACD call; for analytics, a session's direction falls back to the conversation's
//!   `originatingDirection`.
//! - The dialled number falls back, when the customer's leg has no `dnis`, to the `dnis` of the
//!   call's `ivr` or `acd` legs (the same inbound call, so the same dialled number [?]).

use genesys_models::{AnalyticsConversation, AnalyticsSession, CallConversation};

use crate::number::{Number, Region, parse};

/// The numbers of one call, normalised to E.164.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallNumbers {
    /// The customer's own number, whichever way the call goes; one per customer participant
    /// (a call transferred out and back may have several), in participant order, without
    /// repeats. Empty when the caller withheld it or the view has none.
    pub customer: Vec<Number>,
    /// What an inbound customer dialled; `None` for an outbound call or when unknown.
    pub dialed: Option<Number>,
}

impl CallNumbers {
    /// Whether `number` is one of the customer's numbers.
    pub fn has_customer(&self, number: Number) -> bool {
        self.customer.contains(&number)
    }
}

/// The numbers of a call read (`GET /api/v2/conversations/calls/{id}`) or of a queue call
/// event (`v2.routing.queues.{id}.conversations.calls`, decoded into the same model).
/// `default_region` reads numbers written nationally (see [`parse`]).
pub fn of_call(call: &CallConversation, default_region: Option<Region>) -> CallNumbers {
    let customers = customers(&call.participants, |p| p.purpose.as_deref());
    let mut numbers = CallNumbers::default();
    for participant in &customers {
        let number = if is_outbound(participant.direction.as_deref()) {
            first_number(&[&participant.dnis, &participant.address], default_region)
        } else {
            first_number(&[&participant.ani, &participant.address], default_region)
        };
        push_new(&mut numbers.customer, number);
    }
    let inbound = customers
        .iter()
        .find(|p| !is_outbound(p.direction.as_deref()));
    numbers.dialed = inbound.and_then(|customer| {
        number_of(customer.dnis.as_deref(), default_region).or_else(|| {
            call.participants
                .iter()
                .filter(|p| matches!(p.purpose.as_deref(), Some("ivr" | "acd")))
                .find_map(|p| number_of(p.dnis.as_deref(), default_region))
        })
    });
    numbers
}

/// The numbers of an analytics conversation (the live-call listing of
/// `POST /api/v2/analytics/conversations/details/query`, or the multi-id read): from the
/// customer's voice sessions' `ani` and `dnis`, by each session's direction.
pub fn of_analytics(
    conversation: &AnalyticsConversation,
    default_region: Option<Region>,
) -> CallNumbers {
    let customers = customers(&conversation.participants, |p| p.purpose.as_deref());
    let fallback_direction = conversation.originating_direction.as_deref();
    let mut numbers = CallNumbers::default();
    let sessions = customers
        .iter()
        .flat_map(|p| &p.sessions)
        .filter(|s| s.media_type.as_deref().is_none_or(|m| m == "voice"));
    for session in sessions.clone() {
        let outbound = is_outbound(session.direction.as_deref().or(fallback_direction));
        let own = if outbound {
            &session.dnis
        } else {
            &session.ani
        };
        push_new(
            &mut numbers.customer,
            number_of(own.as_deref(), default_region),
        );
    }
    let inbound =
        |s: &&AnalyticsSession| !is_outbound(s.direction.as_deref().or(fallback_direction));
    // An outbound call has no dialled number, whichever leg carries a dnis.
    if sessions.clone().any(|s| inbound(&s)) {
        numbers.dialed = sessions
            .filter(inbound)
            .find_map(|s| number_of(s.dnis.as_deref(), default_region))
            .or_else(|| {
                conversation
                    .participants
                    .iter()
                    .filter(|p| matches!(p.purpose.as_deref(), Some("ivr" | "acd")))
                    .flat_map(|p| &p.sessions)
                    .filter(inbound)
                    .find_map(|s| number_of(s.dnis.as_deref(), default_region))
            });
    }
    numbers
}

/// Participants of purpose `customer`, or when there are none, of purpose `external`.
fn customers<'p, P>(participants: &'p [P], purpose: impl Fn(&P) -> Option<&str>) -> Vec<&'p P> {
    let of = |wanted: &str| -> Vec<&'p P> {
        participants
            .iter()
            .filter(|p| purpose(p) == Some(wanted))
            .collect()
    };
    let customers = of("customer");
    if customers.is_empty() {
        of("external")
    } else {
        customers
    }
}

fn is_outbound(direction: Option<&str>) -> bool {
    direction.is_some_and(|d| d.eq_ignore_ascii_case("outbound"))
}

/// A field's number; `None` when absent or not a number (an anonymous caller).
fn number_of(text: Option<&str>, default_region: Option<Region>) -> Option<Number> {
    parse(text?, default_region).ok()
}

/// The number of the first field that has one.
fn first_number(fields: &[&Option<String>], default_region: Option<Region>) -> Option<Number> {
    fields
        .iter()
        .find_map(|field| number_of(field.as_deref(), default_region))
}

fn push_new(numbers: &mut Vec<Number>, number: Option<Number>) {
    if let Some(number) = number
        && !numbers.contains(&number)
    {
        numbers.push(number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Number {
        parse(text, None).unwrap()
    }

    fn region(code: &str) -> Option<Region> {
        Some(code.parse().unwrap())
    }

    fn call(json: &str) -> CallConversation {
        serde_json::from_str(json).unwrap()
    }

    fn analytics(json: &str) -> AnalyticsConversation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_inbound_call_read_gives_the_customer_s_ani_and_dnis() {
        let read = call(
            r#"{"id":"c1","participants":[
              {"id":"p1","purpose":"customer","direction":"inbound","state":"connected",
               "address":"tel:+15551230001","ani":"tel:+15551230001","dnis":"tel:+18005550100",
               "attributes":{}},
              {"id":"p2","purpose":"ivr","direction":"inbound","state":"disconnected",
               "address":"sip:ivr-123@localhost","ani":"tel:+15551230001","dnis":"tel:+18005550100"},
              {"id":"p3","purpose":"acd","direction":"inbound","state":"disconnected",
               "queue":{"id":"q1"}},
              {"id":"p4","purpose":"agent","direction":"outbound","state":"connected",
               "address":"sip:5b2c@localhost","user":{"id":"u1"}}],
             "recordingState":"none"}"#,
        );
        let numbers = of_call(&read, None);
        assert_eq!(numbers.customer, vec![n("+15551230001")]);
        assert_eq!(numbers.dialed, Some(n("+18005550100")));
        assert!(numbers.has_customer(n("+1 555 123 0001")));
    }

    #[test]
    fn a_queue_event_without_ani_and_dnis_gives_the_address_and_no_dialled_number() {
        // The documented event fields: address and direction, no ani/dnis [?].
        let event = call(
            r#"{"id":"c1","maxParticipants":3,"participants":[
              {"id":"p1","purpose":"customer","direction":"inbound","state":"connected",
               "address":"tel:+442079460958","held":false,"attributes":{"k":"v"}},
              {"id":"p2","purpose":"acd","direction":"inbound","state":"connected",
               "queue":{"id":"q1"},"wrapupRequired":false}]}"#,
        );
        let numbers = of_call(&event, None);
        assert_eq!(numbers.customer, vec![n("+442079460958")]);
        assert_eq!(numbers.dialed, None);
    }

    #[test]
    fn an_outbound_call_s_customer_number_is_the_one_dialled_to_reach_them() {
        let read = call(
            r#"{"id":"c2","participants":[
              {"id":"a","purpose":"agent","direction":"outbound","address":"sip:agent@localhost"},
              {"id":"p","purpose":"customer","direction":"outbound","state":"dialing",
               "address":"tel:+15551230002","ani":"tel:+18005550100","dnis":"tel:+15551230002"}]}"#,
        );
        let numbers = of_call(&read, None);
        assert_eq!(numbers.customer, vec![n("+15551230002")]);
        assert_eq!(
            numbers.dialed, None,
            "an outbound call has no dialled number"
        );

        // An agent's call to an outside number: the remote party is `external`.
        let read = call(
            r#"{"id":"c3","participants":[
              {"id":"a","purpose":"user","direction":"outbound","address":"sip:agent@localhost"},
              {"id":"e","purpose":"external","direction":"outbound","address":"tel:+4930901820"}]}"#,
        );
        assert_eq!(of_call(&read, None).customer, vec![n("+4930901820")]);
    }

    #[test]
    fn national_and_odd_forms_use_the_default_region_and_anonymous_callers_give_nothing() {
        let read = call(
            r#"{"id":"c4","participants":[
              {"id":"p1","purpose":"customer","direction":"inbound",
               "ani":"tel:02079460958","dnis":"08005550100"},
              {"id":"p2","purpose":"customer","direction":"inbound","ani":"sip:+447700900123@sbc.example.com;user=phone"},
              {"id":"p3","purpose":"customer","direction":"inbound","ani":"sip:anonymous@anonymous.invalid","address":"Anonymous"}]}"#,
        );
        let numbers = of_call(&read, region("GB"));
        assert_eq!(
            numbers.customer,
            vec![n("+442079460958"), n("+447700900123")]
        );
        assert_eq!(numbers.dialed, Some(n("+448005550100")));
        // Without a region the national forms are not numbers: nothing is guessed.
        let numbers = of_call(&read, None);
        assert_eq!(numbers.customer, vec![n("+447700900123")]);
        assert_eq!(numbers.dialed, None);
    }

    #[test]
    fn the_dialled_number_falls_back_to_the_ivr_leg() {
        let read = call(
            r#"{"id":"c5","participants":[
              {"id":"p1","purpose":"customer","address":"tel:+15551230003"},
              {"id":"p2","purpose":"ivr","dnis":"tel:+18005550101"}]}"#,
        );
        let numbers = of_call(&read, None);
        assert_eq!(numbers.customer, vec![n("+15551230003")]);
        assert_eq!(numbers.dialed, Some(n("+18005550101")));
    }

    #[test]
    fn an_analytics_conversation_gives_the_customer_session_s_ani_and_dnis() {
        let listed = analytics(
            r#"{"conversationId":"c1","conversationStart":"2026-12-07T02:00:00.000Z",
                "originatingDirection":"inbound","participants":[
              {"participantId":"p1","purpose":"customer","sessions":[
                {"mediaType":"voice","sessionId":"s1","direction":"inbound",
                 "ani":"tel:+15551230001","dnis":"tel:+18005550100",
                 "segments":[{"segmentStart":"2026-12-07T02:00:00.000Z","segmentType":"interact"}]}]},
              {"participantId":"p2","purpose":"acd","sessions":[
                {"mediaType":"voice","direction":"inbound","ani":"tel:+15551230001",
                 "dnis":"tel:+18005550100","segments":[{"segmentType":"interact","queueId":"q1"}]}]},
              {"participantId":"p3","purpose":"agent","userId":"u1","sessions":[
                {"mediaType":"voice","direction":"inbound","segments":[]}]}]}"#,
        );
        let numbers = of_analytics(&listed, None);
        assert_eq!(numbers.customer, vec![n("+15551230001")]);
        assert_eq!(numbers.dialed, Some(n("+18005550100")));
    }

    #[test]
    fn an_outbound_analytics_conversation_and_a_missing_session_direction() {
        let outbound = analytics(
            r#"{"conversationId":"c2","originatingDirection":"outbound","participants":[
              {"purpose":"customer","sessions":[
                {"mediaType":"voice","ani":"tel:+18005550100","dnis":"tel:+15551230002"}]}]}"#,
        );
        let numbers = of_analytics(&outbound, None);
        assert_eq!(numbers.customer, vec![n("+15551230002")]);
        assert_eq!(numbers.dialed, None);

        // No direction anywhere: inbound, an ACD call's only direction; the acd leg's dnis.
        let bare = analytics(
            r#"{"conversationId":"c3","participants":[
              {"purpose":"customer","sessions":[{"mediaType":"voice","ani":"+1 (555) 123-0004"}]},
              {"purpose":"acd","sessions":[{"mediaType":"voice","dnis":"tel:+18005550102"}]}]}"#,
        );
        let numbers = of_analytics(&bare, None);
        assert_eq!(numbers.customer, vec![n("+15551230004")]);
        assert_eq!(numbers.dialed, Some(n("+18005550102")));

        // A callback's session (another media type) is not the call's.
        let callback = analytics(
            r#"{"conversationId":"c4","participants":[
              {"purpose":"customer","sessions":[{"mediaType":"callback","ani":"tel:+15551230005"}]}]}"#,
        );
        assert_eq!(of_analytics(&callback, None), CallNumbers::default());
    }
}
