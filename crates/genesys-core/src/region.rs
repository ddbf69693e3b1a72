//! Genesys Cloud regions and their hosts (the contract's region table).

use std::fmt;

/// A Genesys Cloud region: a name such as `eu-west-1` and its domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region {
    name: &'static str,
    domain: &'static str,
}

/// `region` given by name or domain is not in the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_unknown(.name))]
pub struct UnknownRegion {
    pub name: String,
}

fn describe_unknown(name: &str) -> String {
    let wanted = name.trim();
    if wanted.eq_ignore_ascii_case("localhost")
        || wanted.to_ascii_lowercase().starts_with("localhost:")
    {
        // gc treats `localhost` as its own development environment; attrsync maps no such thing.
        return format!(
            "{wanted:?} is not a Genesys Cloud region (gc's local development environment); point attrsync at a local server with --api-url http://{wanted} instead"
        );
    }
    let mut text = format!(
        "unknown Genesys Cloud region {name:?}; valid regions: {}",
        Region::names().join(", ")
    );
    if wanted.contains('.') {
        text.push_str(&format!(
            "; or one of their domains (e.g. mypurecloud.ie); for another host, set the API URL (--api-url https://api.{wanted})"
        ));
    }
    text
}

const fn region(name: &'static str, domain: &'static str) -> Region {
    Region { name, domain }
}

impl Region {
    /// Every region of the contract, in the contract's order.
    pub const ALL: &'static [Region] = &[
        region("us-east-1", "mypurecloud.com"),
        region("us-east-2", "use2.us-gov-pure.cloud"),
        region("us-west-2", "usw2.pure.cloud"),
        region("ca-central-1", "cac1.pure.cloud"),
        region("sa-east-1", "sae1.pure.cloud"),
        region("mx-central-1", "mxc1.pure.cloud"),
        region("eu-west-1", "mypurecloud.ie"),
        region("eu-west-2", "euw2.pure.cloud"),
        region("ap-southeast-2", "mypurecloud.com.au"),
        region("eu-central-1", "mypurecloud.de"),
        region("eu-central-2", "euc2.pure.cloud"),
        region("me-central-1", "mec1.pure.cloud"),
        region("ap-south-1", "aps1.pure.cloud"),
        region("ap-northeast-1", "mypurecloud.jp"),
        region("ap-northeast-2", "apne2.pure.cloud"),
        region("ap-northeast-3", "apne3.pure.cloud"),
        region("ap-southeast-1", "apse1.pure.cloud"),
        region("eusc-de-east-1", "edee1.eusc-pure.cloud"),
    ];

    /// The region the official SDKs and Terraform provider use when none is configured.
    pub const DEFAULT: Region = region("us-east-1", "mypurecloud.com");

    /// Looks a region up by name or domain, as every source of a region gives it: `eu-west-1`,
    /// `eu_west_1` (the gc CLI spells `me_central_1`, `ap_northeast_3` and `eu_central_2` with
    /// underscores) or `mypurecloud.ie` (a gc profile's `environment` may be a domain).
    /// Case-insensitive, surrounding spaces ignored.
    pub fn from_name(name: &str) -> Result<Region, UnknownRegion> {
        let wanted = name.trim().trim_end_matches('.');
        let hyphenated = wanted.replace('_', "-");
        Self::ALL
            .iter()
            .find(|r| {
                r.name.eq_ignore_ascii_case(&hyphenated) || r.domain.eq_ignore_ascii_case(wanted)
            })
            .copied()
            .ok_or_else(|| UnknownRegion {
                name: name.to_owned(),
            })
    }

    /// All valid region names.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|r| r.name).collect()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn domain(&self) -> &'static str {
        self.domain
    }

    /// `https://api.<domain>`
    pub fn api_base(&self) -> String {
        format!("https://api.{}", self.domain)
    }

    /// `https://login.<domain>` (the OAuth token host).
    pub fn login_base(&self) -> String {
        format!("https://login.{}", self.domain)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl std::str::FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's table, verbatim.
    const CONTRACT: &[(&str, &str)] = &[
        ("us-east-1", "mypurecloud.com"),
        ("us-east-2", "use2.us-gov-pure.cloud"),
        ("us-west-2", "usw2.pure.cloud"),
        ("ca-central-1", "cac1.pure.cloud"),
        ("sa-east-1", "sae1.pure.cloud"),
        ("mx-central-1", "mxc1.pure.cloud"),
        ("eu-west-1", "mypurecloud.ie"),
        ("eu-west-2", "euw2.pure.cloud"),
        ("ap-southeast-2", "mypurecloud.com.au"),
        ("eu-central-1", "mypurecloud.de"),
        ("eu-central-2", "euc2.pure.cloud"),
        ("me-central-1", "mec1.pure.cloud"),
        ("ap-south-1", "aps1.pure.cloud"),
        ("ap-northeast-1", "mypurecloud.jp"),
        ("ap-northeast-2", "apne2.pure.cloud"),
        ("ap-northeast-3", "apne3.pure.cloud"),
        ("ap-southeast-1", "apse1.pure.cloud"),
        ("eusc-de-east-1", "edee1.eusc-pure.cloud"),
    ];

    #[test]
    fn every_contract_region_maps_to_its_hosts() {
        assert_eq!(Region::ALL.len(), CONTRACT.len());
        for (name, domain) in CONTRACT {
            let region = Region::from_name(name).unwrap();
            assert_eq!(region.name(), *name);
            assert_eq!(region.domain(), *domain);
            assert_eq!(region.api_base(), format!("https://api.{domain}"));
            assert_eq!(region.login_base(), format!("https://login.{domain}"));
        }
    }

    #[test]
    fn lookup_ignores_case_and_spaces() {
        assert_eq!(
            Region::from_name(" EU-West-1 ").unwrap().domain(),
            "mypurecloud.ie"
        );
    }

    #[test]
    fn gc_spellings_and_domains_are_accepted() {
        for (given, name) in [
            ("me_central_1", "me-central-1"),
            ("ap_northeast_3", "ap-northeast-3"),
            ("EU_CENTRAL_2", "eu-central-2"),
            ("mypurecloud.ie", "eu-west-1"),
            ("MyPureCloud.com.au", "ap-southeast-2"),
            ("edee1.eusc-pure.cloud", "eusc-de-east-1"),
            ("mypurecloud.com", "us-east-1"),
        ] {
            assert_eq!(Region::from_name(given).unwrap().name(), name, "{given}");
        }
        for (name, domain) in CONTRACT {
            assert_eq!(Region::from_name(domain).unwrap().name(), *name);
        }
    }

    #[test]
    fn an_unknown_domain_or_localhost_says_to_set_the_api_url() {
        let message = Region::from_name("inindca.com").unwrap_err().to_string();
        assert!(
            message.contains("--api-url https://api.inindca.com"),
            "{message}"
        );
        let message = Region::from_name("localhost").unwrap_err().to_string();
        assert!(message.contains("--api-url http://localhost"), "{message}");
        assert!(!message.contains("valid regions"), "{message}");
    }

    #[test]
    fn unknown_region_error_lists_every_valid_name() {
        let message = Region::from_name("mars-north-1").unwrap_err().to_string();
        assert!(message.contains("mars-north-1"), "{message}");
        for (name, _) in CONTRACT {
            assert!(message.contains(name), "{message} lacks {name}");
        }
    }

    #[test]
    fn default_is_us_east_1() {
        assert_eq!(Region::DEFAULT, Region::from_name("us-east-1").unwrap());
    }
}
