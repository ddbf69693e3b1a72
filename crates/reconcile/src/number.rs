//! Phone numbers, as desired-state rows (`customer_number`, `dialed_number`) and calls (`ani`,
//! `dnis`, `address`) write them, normalised to E.164 so that they compare equal whatever the
//! writing: `+1 (555) 123-4567`, `tel:+15551234567`, `sip:+15551234567@host` and, with the
//! default region `US`, `(555) 123-4567` are all `+15551234567`.
//!
//! Normalising is the `phonenumber` crate's (a port of Google's libphonenumber and its metadata):
//! national prefixes (`020 7946 0958` in `GB` is `+442079460958`), international dialling
//! prefixes (`011 44 ...` in `US`), `tel:` URIs with `phone-context`. A number is normalised, not
//! validated against the numbering plan: a number nobody is assigned (the fictional `555` range,
//! the simulator's) is still a number, because attrsync compares numbers, it does not dial them.
//! An extension (`ext. 12`) is dropped: a call's number never has one.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most digits of an E.164 number, country code included (ITU-T E.164 §6).
const MAX_DIGITS: u32 = 15;

/// A phone number in E.164: its digits, country code first, without the `+`.
///
/// Eight bytes (and `Option<Number>` too), `Copy`, hashed and ordered as an integer: a contact
/// list of a million numbers is 8 MB of numbers. Displayed as `+15551234567`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Number(NonZeroU64);

impl Number {
    /// The digits as one integer (`+15551234567` is `15551234567`): a compact key to store.
    pub fn digits(self) -> u64 {
        self.0.get()
    }

    /// The number whose [`digits`](Self::digits) these are; `None` for 0 or more than 15
    /// digits. Meant for digits a `Number` gave (a stored key); it does not normalise.
    pub fn from_digits(digits: u64) -> Option<Self> {
        let number = NonZeroU64::new(digits)?;
        (number.ilog10() < MAX_DIGITS).then_some(Self(number))
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Number(+{})", self.0)
    }
}

/// International forms only (no default region): what [`Number`]'s `Display` writes.
impl FromStr for Number {
    type Err = InvalidNumber;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text, None)
    }
}

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The region whose national forms numbers without a country code are read in
/// (`--default-region`): an ISO 3166-1 alpha-2 code the numbering-plan metadata knows, such as
/// `US`, `GB` or `DE`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Region(phonenumber::country::Id);

impl Region {
    /// The two-letter code, upper case (`GB`).
    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Not a region the numbering-plan metadata knows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown region {0:?}: expected a two-letter country code (ISO 3166-1 alpha-2) such as US, GB or DE{hint}",
    hint = if .0.trim().eq_ignore_ascii_case("UK") { " (the United Kingdom is GB)" } else { "" }
)]
pub struct UnknownRegion(String);

/// Case-insensitive: `gb`, `GB`.
impl FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let code = text.trim().to_ascii_uppercase();
        // The metadata's ids are two letters; anything else (`001`, `ZZ`-like oddities) is not
        // a region a number is written nationally in.
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(UnknownRegion(text.to_owned()));
        }
        let id: phonenumber::country::Id =
            code.parse().map_err(|_| UnknownRegion(text.to_owned()))?;
        if phonenumber::metadata::DATABASE.by_id(id.as_ref()).is_none() {
            return Err(UnknownRegion(text.to_owned()));
        }
        Ok(Self(id))
    }
}

/// A text that is not a phone number attrsync can normalise. Its `Display` quotes the text and
/// says why; the caller adds where the text came from (file and line).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a phone number: {reason}")]
pub struct InvalidNumber {
    text: String,
    reason: Reason,
}

impl InvalidNumber {
    /// The text as given.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Empty,
    NoRegion,
    NotANumber,
    UnknownCountryCode,
    TooShort,
    TooLong,
    SipWithoutNumber,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "it is empty",
            Self::NoRegion => {
                "it has no country code (+...); numbers written nationally need --default-region (e.g. US, GB)"
            }
            Self::NotANumber => "it has too few digits, or characters a phone number cannot have",
            Self::UnknownCountryCode => "no country has its country code",
            Self::TooShort => "it is too short",
            Self::TooLong => "it is longer than E.164's 15 digits",
            Self::SipWithoutNumber => "it is a SIP address whose user part is not a phone number",
        })
    }
}

/// Normalises `text` to E.164.
///
/// Accepts the international form with any punctuation (`+1 (555) 123-4567`, `+44 20 7946
/// 0958`), `tel:` URIs (`tel:+15551234567`, `tel:020-7946-0958;phone-context=+44`), SIP URIs
/// whose user part is a number (`sip:+15551234567@host;user=phone`), an international dialling
/// prefix of the default region (`011 44 20 7946 0958` in `US`), and national forms
/// (`(555) 123-4567`, `020 7946 0958`) when `default_region` says whose.
pub fn parse(text: &str, default_region: Option<Region>) -> Result<Number, InvalidNumber> {
    let invalid = |reason| InvalidNumber {
        text: text.to_owned(),
        reason,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid(Reason::Empty));
    }
    // Fast path: most numbers in CRMs and every number Genesys sends are `+` and digits (or
    // their `tel:` URI), often punctuated. The library takes 2 to 11 µs per number (the regexes
    // of its metadata, behind a mutex), too slow for a million-row contact list within the
    // issue's 3 s; this takes well under 0.3 µs. Taken only where the library would give the
    // same digits (see `canonical_digits`); a test compares both on random input.
    if let Some(number) = canonical_digits(trimmed) {
        return Ok(number);
    }
    if let Some(number) = default_region.and_then(|region| {
        national_nanp(trimmed, region).or_else(|| national_trunk_zero(trimmed, region))
    }) {
        return Ok(number);
    }
    let number_text = match sip_user(trimmed) {
        Some(Ok(user)) => user,
        Some(Err(())) => return Err(invalid(Reason::SipWithoutNumber)),
        None => trimmed,
    };
    match tel_number(number_text) {
        Some(tel) => library_parse(&tel, default_region),
        None => library_parse(number_text, default_region),
    }
    .map_err(invalid)
}

/// The number of a `tel:` URI (RFC 3966), its parameters left out but a `phone-context=+CC`
/// put in front (`tel:020-7946-0958;phone-context=+44` is `+44 020-7946-0958`); `None` when
/// `text` is not a `tel:` URI. (The library's own URI parser refuses `;ext=` after a global
/// number, hence this.)
fn tel_number(text: &str) -> Option<String> {
    let rest = text
        .get(..4)
        .filter(|scheme| scheme.eq_ignore_ascii_case("tel:"))
        .map(|_| &text[4..])?;
    let mut parts = rest.split(';');
    let number = parts.next().unwrap_or_default();
    let context = parts
        .filter_map(|parameter| parameter.split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("phone-context"))
        .map(|(_, value)| value)
        .filter(|value| value.starts_with('+') && !number.starts_with('+'));
    Some(match context {
        Some(context) => format!("{context} {number}"),
        None => number.to_owned(),
    })
}

/// The user part of a `sip:`/`sips:` URI (`+15551234567` of `sip:+15551234567@host;user=phone`);
/// `Err` when it has none that could be a number; `None` when `text` is not a SIP URI.
fn sip_user(text: &str) -> Option<Result<&str, ()>> {
    let scheme_end = text.find(':')?;
    let scheme = &text[..scheme_end];
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return None;
    }
    let rest = &text[scheme_end + 1..];
    let user = rest.split_once('@').map_or(rest, |(user, _)| user);
    // User parameters (`;isub=...`) are not part of the number.
    let user = user.split(';').next().unwrap_or_default();
    let digits = user.bytes().filter(u8::is_ascii_digit).count();
    let plausible = user
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.()".contains(&b));
    Some(if plausible && digits >= 3 {
        Ok(user)
    } else {
        Err(())
    })
}

fn library_parse(text: &str, default_region: Option<Region>) -> Result<Number, Reason> {
    use phonenumber::ParseError;

    let parsed = phonenumber::parse(default_region.map(|r| r.0), text).map_err(|e| match e {
        ParseError::InvalidCountryCode if default_region.is_none() && !has_plus(text) => {
            Reason::NoRegion
        }
        ParseError::InvalidCountryCode => Reason::UnknownCountryCode,
        ParseError::TooShortAfterIdd | ParseError::TooShortNsn => Reason::TooShort,
        ParseError::TooLong => Reason::TooLong,
        _ => Reason::NotANumber,
    })?;
    let national = parsed.national();
    let mut digits = u64::from(parsed.code().value());
    let mut count = digits.checked_ilog10().map_or(0, |log| log + 1);
    for _ in 0..national.zeros() {
        digits = digits.checked_mul(10).ok_or(Reason::TooLong)?;
        count += 1;
    }
    let value = national.value();
    if value > 0 {
        let width = value.ilog10() + 1;
        digits = 10u64
            .checked_pow(width)
            .and_then(|scale| digits.checked_mul(scale))
            .and_then(|d| d.checked_add(value))
            .ok_or(Reason::TooLong)?;
        count += width;
    }
    if count > MAX_DIGITS {
        return Err(Reason::TooLong);
    }
    NonZeroU64::new(digits)
        .map(Number)
        .ok_or(Reason::NotANumber)
}

/// Whether the number is written with its country code (`+`, or a `tel:` URI's
/// `phone-context=+...`): then a country-code error is the code's, not a missing region.
fn has_plus(text: &str) -> bool {
    text.contains('+') || text.contains('\u{FF0B}')
}

/// `+` then digits, maybe punctuated (`+1 (201) 555-0123`, or as `tel:+...`), when the library
/// would normalise them to the same digits: `None` sends the text through the library. (Where
/// the library refuses a punctuated text for its punctuation alone, `+4420-7946-0958` whose
/// digits before the first dash it takes for the country code, this reads the digits.)
///
/// After finding the country code, the library rewrites a national number only where its
/// country's metadata says so: a national prefix (the trunk `0` of `+44 020...`, dropped) or a
/// pattern for parsing one, sometimes with a transform rule (`([2-9]\d{6})$|1` in Barbados: a
/// leading `1` is dropped, 7 digits get the area code). The fast path takes a number that no
/// pattern of any region of its country code matches at its start ([`fast_rules`]); a code
/// whose patterns are not of the simple shapes understood there goes through the library. A
/// test compares both paths on random input.
fn canonical_digits(text: &str) -> Option<Number> {
    let text = match text.get(..4) {
        Some(scheme) if scheme.eq_ignore_ascii_case("tel:") => &text[4..],
        _ => text,
    };
    // The digits, punctuation between them dropped as the library drops it: spaces, brackets,
    // dashes and dots only (no letters, `#`, `,`, `;`, `/`: they may start an extension or a
    // second number).
    let mut buffer = [0u8; MAX_DIGITS as usize];
    let mut count = 0;
    for byte in text.strip_prefix('+')?.bytes() {
        match byte {
            b'0'..=b'9' => {
                *buffer.get_mut(count)? = byte;
                count += 1;
            }
            b' ' | b'(' | b')' | b'-' | b'.' => {}
            _ => return None,
        }
    }
    let digits = std::str::from_utf8(&buffer[..count]).ok()?;
    // A country code never starts with 0.
    if count < 8 || digits.starts_with('0') {
        return None;
    }
    let rules = fast_rules();
    // Country codes are prefix-free: the first 1 to 3 digits that are a code are the code.
    let (national, rule) = (1..=3).find_map(|len| {
        let code: usize = digits[..len].parse().ok()?;
        rules[code].as_ref().map(|rule| (&digits[len..], rule))
    })?;
    let rewritten = match rule {
        FastRule::Library => true,
        FastRule::Unless { prefixes, lengths } => {
            prefixes.iter().any(|p| national.starts_with(p.as_str()))
                || lengths.contains(&national.len())
        }
    };
    if rewritten {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    NonZeroU64::new(value).map(Number)
}

/// A North American number written nationally (`(201) 555-0123`, `201.555.0123`) with a default
/// region of the plan (`US`, `CA`, ...): `+1` and its 10 digits, as the library gives (an area
/// code starts with 2 to 9, so neither the international prefix `011` nor the national prefix
/// `1` can be mistaken for its start). `None` sends the text through the library.
fn national_nanp(text: &str, region: Region) -> Option<Number> {
    let meta = phonenumber::metadata::DATABASE.by_id(region.code())?;
    if meta.country_code() != 1 {
        return None;
    }
    let mut value: u64 = 1;
    let mut count = 0;
    for byte in text.bytes() {
        match byte {
            b'0'..=b'9' => {
                if count == 0 && byte < b'2' {
                    return None;
                }
                count += 1;
                value = value * 10 + u64::from(byte - b'0');
            }
            b' ' | b'(' | b')' | b'-' | b'.' => {}
            _ => return None,
        }
        if count > 10 {
            return None;
        }
    }
    (count == 10).then(|| NonZeroU64::new(value).map(Number))?
}

/// Regions whose numbers are written nationally as the trunk prefix `0` and a national number
/// of a fixed length (`020 7946 0958` in `GB`), with their country code: kept to those a test
/// checks against the library.
const TRUNK_ZERO_REGIONS: &[(&str, u64, u32)] = &[("GB", 44, 10)];

/// A number of a [`TRUNK_ZERO_REGIONS`] region written nationally: `0`, then the national number
/// starting with 1 to 9 (so neither the international prefix `00` nor a country code can be
/// read into it), is the country code and the national number, as the library gives. `None`
/// sends the text through the library.
fn national_trunk_zero(text: &str, region: Region) -> Option<Number> {
    let &(_, code, length) = TRUNK_ZERO_REGIONS
        .iter()
        .find(|(id, _, _)| *id == region.code())?;
    let mut value = code;
    let mut count = 0;
    for byte in text.bytes() {
        match byte {
            b'0'..=b'9' => {
                match count {
                    0 if byte != b'0' => return None,
                    1 if byte == b'0' => return None,
                    0 => {}
                    _ => value = value * 10 + u64::from(byte - b'0'),
                }
                count += 1;
            }
            b' ' | b'(' | b')' | b'-' | b'.' => {}
            _ => return None,
        }
        if count > length + 1 {
            return None;
        }
    }
    (count == length + 1).then(|| NonZeroU64::new(value).map(Number))?
}

/// What the library may rewrite in the national numbers of one country code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FastRule {
    /// A pattern of a shape not understood here: only the library knows.
    Library,
    /// Numbers starting with one of `prefixes`, or of one of `lengths` (a pattern anchored at
    /// the end, `([2-9]\d{6})$`, matches at the start only a number of exactly its length).
    Unless {
        prefixes: Vec<String>,
        lengths: Vec<usize>,
    },
}

/// The [`FastRule`] of every country code (index 0 to 999; `None`: no such code), from the
/// library's metadata, once. A code's rule covers every region sharing it (the library picks
/// the region by the number).
fn fast_rules() -> &'static [Option<FastRule>] {
    static RULES: std::sync::OnceLock<Vec<Option<FastRule>>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        let mut rules: Vec<Option<FastRule>> = vec![None; 1000];
        for meta in phonenumber::metadata::DATABASE.iter() {
            let Some(slot) = rules.get_mut(usize::from(meta.country_code())) else {
                continue;
            };
            // The pattern inherits the national prefix when the metadata has none of its own,
            // and the library strips the national prefix after the pattern too.
            let pattern = meta.national_prefix_for_parsing().map(|p| p.as_str());
            let own = [pattern, meta.national_prefix()]
                .into_iter()
                .flatten()
                .flat_map(|pattern| top_level_alternatives(pattern))
                .try_fold(
                    (Vec::new(), Vec::new()),
                    |(mut prefixes, mut lengths), alt| {
                        match alternative_trigger(alt)? {
                            Trigger::Prefix(prefix) => prefixes.push(prefix.to_owned()),
                            Trigger::Length(length) => lengths.push(length),
                        }
                        Some((prefixes, lengths))
                    },
                )
                .map_or(FastRule::Library, |(prefixes, lengths)| FastRule::Unless {
                    prefixes,
                    lengths,
                });
            *slot = Some(match (slot.take(), own) {
                (None, own) => own,
                (
                    Some(FastRule::Unless {
                        mut prefixes,
                        mut lengths,
                    }),
                    FastRule::Unless {
                        prefixes: more_prefixes,
                        lengths: more_lengths,
                    },
                ) => {
                    prefixes.extend(more_prefixes);
                    lengths.extend(more_lengths);
                    FastRule::Unless { prefixes, lengths }
                }
                _ => FastRule::Library,
            });
        }
        rules
    })
}

/// `a|b(c|d)|e` is `a`, `b(c|d)`, `e`.
fn top_level_alternatives(pattern: &str) -> Vec<&str> {
    let mut alternatives = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in pattern.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '|' if depth == 0 => {
                alternatives.push(&pattern[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    alternatives.push(&pattern[start..]);
    alternatives
}

enum Trigger<'a> {
    Prefix(&'a str),
    Length(usize),
}

/// What makes one alternative of a pattern match at a number's start: digits only (`1`,
/// `180020`) match a number starting with them; `(D\d{N})$` or `([2-9]\d{N})$` only a number
/// of N + 1 digits. `None` for any other shape.
fn alternative_trigger(alternative: &str) -> Option<Trigger<'_>> {
    if !alternative.is_empty() && alternative.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Trigger::Prefix(alternative));
    }
    let inner = alternative.strip_suffix(")$")?.strip_prefix('(')?;
    let (first, count) = inner.split_once("\\d{")?;
    let count: usize = count.strip_suffix('}')?.parse().ok()?;
    let one_digit = (first.len() == 1 && first.bytes().all(|b| b.is_ascii_digit()))
        || first
            .strip_prefix('[')
            .and_then(|class| class.strip_suffix(']'))
            .is_some_and(|class| {
                !class.is_empty() && class.bytes().all(|b| b.is_ascii_digit() || b == b'-')
            });
    one_digit.then_some(Trigger::Length(count + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(code: &str) -> Option<Region> {
        Some(code.parse().unwrap())
    }

    fn e164(text: &str, default_region: Option<Region>) -> String {
        parse(text, default_region)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .to_string()
    }

    #[test]
    fn international_forms_normalise_to_e164() {
        for text in [
            "+15551234567",
            "+1 (555) 123-4567",
            "+1 555 123 4567",
            "+1.555.123.4567",
            " +1-555-123-4567 ",
            "tel:+15551234567",
            "TEL:+15551234567",
            "tel:+1-555-123-4567",
            "sip:+15551234567@sbc.example.com",
            "sip:+15551234567@sbc.example.com;user=phone",
            "sips:+1-555-123-4567@10.0.0.1:5061",
        ] {
            assert_eq!(e164(text, None), "+15551234567", "{text}");
            assert_eq!(e164(text, region("GB")), "+15551234567", "{text}");
        }
        assert_eq!(e164("+44 20 7946 0958", None), "+442079460958");
        assert_eq!(e164("+44 (0)20 7946 0958", None), "+442079460958");
        assert_eq!(e164("+49 30 901820", None), "+4930901820");
    }

    #[test]
    fn national_forms_need_and_use_the_default_region() {
        assert_eq!(e164("(555) 123-4567", region("US")), "+15551234567");
        assert_eq!(e164("555-123-4567", region("us")), "+15551234567");
        assert_eq!(e164("1 555 123 4567", region("US")), "+15551234567");
        assert_eq!(e164("020 7946 0958", region("GB")), "+442079460958");
        assert_eq!(e164("07700 900123", region("GB")), "+447700900123");
        assert_eq!(
            e164("tel:020-7946-0958;phone-context=+44", None),
            "+442079460958"
        );
        // The international dialling prefix of the default region.
        assert_eq!(e164("011 44 20 7946 0958", region("US")), "+442079460958");
        assert_eq!(e164("00 1 555 123 4567", region("GB")), "+15551234567");
        // Italian numbers keep their leading zero after the country code.
        assert_eq!(e164("06 6988 3000", region("IT")), "+390669883000");
        assert_eq!(e164("+39 06 6988 3000", None), "+390669883000");

        let error = parse("020 7946 0958", None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"020 7946 0958\" is not a phone number: it has no country code (+...); \
             numbers written nationally need --default-region (e.g. US, GB)"
        );
        assert_eq!(error.text(), "020 7946 0958");
    }

    #[test]
    fn what_is_not_a_number_says_why() {
        let reason = |text: &str, default_region| {
            parse(text, default_region).unwrap_err().reason.to_string()
        };
        assert_eq!(reason("", None), "it is empty");
        assert_eq!(reason("   ", region("US")), "it is empty");
        assert!(reason("not a number", region("US")).contains("too few digits"));
        assert!(reason("+999 1234 5678", None).contains("country code"));
        assert!(reason("+1 555 123 4567 8901 2345", None).contains("15 digits"));
        assert!(reason("sip:agent-42@localhost", None).contains("SIP address"));
        assert!(reason("sip:@localhost", None).contains("SIP address"));
        let shown = parse("n/a", region("US")).unwrap_err().to_string();
        assert!(
            shown.starts_with("\"n/a\" is not a phone number: "),
            "{shown}"
        );
    }

    #[test]
    fn an_extension_is_dropped() {
        assert_eq!(e164("+1 555 123 4567 ext. 89", None), "+15551234567");
        assert_eq!(e164("tel:+15551234567;ext=89", None), "+15551234567");
    }

    #[test]
    fn regions_parse_in_either_case_and_unknown_ones_are_named() {
        assert_eq!(region("gb").unwrap().to_string(), "GB");
        assert_eq!(" US ".parse::<Region>().unwrap().code(), "US");
        for bad in ["XX", "USA", "", "001", "1"] {
            let error = bad.parse::<Region>().unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("unknown region {bad:?}")),
                "{error}"
            );
            assert!(error.contains("US, GB or DE"), "{error}");
        }
        assert!(
            "UK".parse::<Region>()
                .unwrap_err()
                .to_string()
                .ends_with("(the United Kingdom is GB)")
        );
    }

    /// National North American numbers with a region of the plan: the fast path gives what the
    /// library gives.
    #[test]
    fn the_national_nanp_fast_path_agrees_with_the_library() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut taken = 0;
        for (i, code) in ["US", "CA", "JM", "BB", "PR"]
            .iter()
            .cycle()
            .take(5_000)
            .enumerate()
        {
            let region: Region = code.parse().unwrap();
            let length = 9 + (next() % 3) as usize;
            let mut text = String::new();
            for position in 0..length {
                if position == 3 && i % 2 == 0 {
                    text.push_str(") ");
                }
                text.push(char::from(b'0' + (next() % 10) as u8));
            }
            if i % 2 == 0 {
                text.insert(0, '(');
            }
            if let Some(fast) = national_nanp(&text, region) {
                taken += 1;
                assert_eq!(
                    Ok(fast),
                    library_parse(&text, Some(region)),
                    "{text} in {code}"
                );
            }
        }
        assert!(taken > 1_000, "taken {taken} times");
        let us: Region = "US".parse().unwrap();
        assert!(national_nanp("(201) 555-0123", us).is_some());
        for declined in [
            "1 201 555 0123",
            "011 44 20 7946 0958",
            "(101) 555-0123",
            "555-0123",
        ] {
            assert_eq!(national_nanp(declined, us), None, "{declined}");
        }
        assert_eq!(national_nanp("(201) 555-0123", "GB".parse().unwrap()), None);
    }

    /// National numbers of the trunk-zero regions: the fast path gives what the library gives.
    #[test]
    fn the_national_trunk_zero_fast_path_agrees_with_the_library() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut taken = 0;
        for (region, _, _) in TRUNK_ZERO_REGIONS {
            let region: Region = region.parse().unwrap();
            for i in 0..3_000 {
                let length = 10 + (next() % 3) as usize;
                let mut text = String::from("0");
                for position in 1..length {
                    if position == 3 && i % 2 == 0 {
                        text.push(' ');
                    }
                    text.push(char::from(b'0' + (next() % 10) as u8));
                }
                if let Some(fast) = national_trunk_zero(&text, region) {
                    taken += 1;
                    assert_eq!(Ok(fast), library_parse(&text, Some(region)), "{text}");
                }
            }
        }
        assert!(taken > 500, "taken {taken} times");
        let gb: Region = "GB".parse().unwrap();
        assert!(national_trunk_zero("020 7946 0958", gb).is_some());
        for declined in [
            "00 1 555 123 4567",
            "20 7946 0958",
            "0800 123 456",
            "+44 20 7946 0958",
        ] {
            assert_eq!(national_trunk_zero(declined, gb), None, "{declined}");
        }
    }

    #[test]
    fn display_digits_and_serde_round_trip() {
        let number = parse("+1 555 123 4567", None).unwrap();
        assert_eq!(number.digits(), 15_551_234_567);
        assert_eq!(Number::from_digits(15_551_234_567), Some(number));
        assert_eq!(Number::from_digits(0), None);
        assert_eq!(Number::from_digits(1_000_000_000_000_000), None);
        assert_eq!(format!("{number:?}"), "Number(+15551234567)");
        let json = serde_json::to_string(&number).unwrap();
        assert_eq!(json, "\"+15551234567\"");
        assert_eq!(serde_json::from_str::<Number>(&json).unwrap(), number);
        assert!(serde_json::from_str::<Number>("\"5551234567\"").is_err());
        assert_eq!(std::mem::size_of::<Option<Number>>(), 8);
    }

    /// The fast path gives what the library gives, on every input it takes, and declines the
    /// inputs the library rewrites.
    #[test]
    fn the_fast_path_agrees_with_the_library() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut taken = 0;
        for i in 0..30_000 {
            let length = 8 + (next() % 8) as usize;
            let mut text = String::from("+");
            for position in 0..length {
                // A third NANP, a third +44 (their regions have patterns), a third anything.
                let digit = match (position, i % 3) {
                    (0, 0) => 1,
                    (0 | 1, 1) => 4,
                    _ => next() % 10,
                };
                text.push(char::from(b'0' + digit as u8));
            }
            // The same digits punctuated: brackets around the first group, separators.
            let mut punctuated = String::from("+");
            for (position, digit) in text[1..].chars().enumerate() {
                match next() % 9 {
                    0 if position > 0 => punctuated.push(' '),
                    1 if position > 0 => punctuated.push('-'),
                    2 if position > 0 => punctuated.push('.'),
                    3 => punctuated.push_str(" ("),
                    4 if position > 0 => punctuated.push_str(") "),
                    _ => {}
                }
                punctuated.push(digit);
            }
            let library = library_parse(&text, None).ok();
            if let Some(fast) = canonical_digits(&text) {
                taken += 1;
                assert_eq!(Some(fast), library, "{text}");
            }
            // Punctuated, the library refuses some texts the fast path reads (without spaces it
            // takes the digits before the first separator for the country code, `+2.3-1...`);
            // where it gives a number, it is the fast path's.
            if let (Some(fast), Ok(library)) = (
                canonical_digits(&punctuated),
                library_parse(&punctuated, None),
            ) {
                taken += 1;
                assert_eq!(fast, library, "{punctuated}");
            }
        }
        assert!(taken > 1_000, "the fast path was taken {taken} times");
        // The commonest writings of the commonest countries are taken.
        for text in [
            "+12015550123",
            "+1 (201) 555-0123",
            "tel:+1-201-555-0123",
            "+12465551234",
            "+447700900123",
            "+4930901820",
            "+33142685300",
        ] {
            assert!(canonical_digits(text).is_some(), "{text}");
        }
        // Inputs the library rewrites are not taken: a trunk 0 after the country code, a NANP
        // national number starting with its national prefix 1.
        for text in [
            "+4402079460958",
            "+44 (0)20 7946 0958",
            "+115551234567",
            "+1 201 555 0123 x12",
            "+1 201 555 0123/4",
        ] {
            assert_eq!(canonical_digits(text), None, "{text}");
        }
    }
}
