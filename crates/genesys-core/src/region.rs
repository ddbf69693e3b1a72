//! Genesys Cloud regions and their hosts (the contract's region table).

use std::fmt;

/// A Genesys Cloud region: a name such as `eu-west-1` and its domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region {
    name: &'static str,
    domain: &'static str,
}

/// `region` given by name is not in the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Genesys Cloud region {name:?}; valid regions: {}", Region::names().join(", "))]
pub struct UnknownRegion {
    pub name: String,
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

    /// Looks a region up by name (case-insensitive, surrounding spaces ignored).
    pub fn from_name(name: &str) -> Result<Region, UnknownRegion> {
        let wanted = name.trim();
        Self::ALL
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(wanted))
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
