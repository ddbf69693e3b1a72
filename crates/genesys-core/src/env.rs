//! Every environment variable the Genesys side reads, declared once.
//!
//! The binary lists [`ALL`] in its help and README; settings resolution reads only these names.

/// One environment variable: its name and what it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvVar {
    pub name: &'static str,
    pub description: &'static str,
}

/// OAuth client id (the name Genesys's own tools use).
pub const CLIENT_ID: EnvVar = EnvVar {
    name: "GENESYSCLOUD_OAUTHCLIENT_ID",
    description: "OAuth client id of a client-credentials grant",
};

/// OAuth client secret (the name Genesys's own tools use).
pub const CLIENT_SECRET: EnvVar = EnvVar {
    name: "GENESYSCLOUD_OAUTHCLIENT_SECRET",
    description: "OAuth client secret of that client (never logged)",
};

/// Region name, e.g. `eu-west-1`.
pub const REGION: EnvVar = EnvVar {
    name: "GENESYSCLOUD_REGION",
    description: "Genesys Cloud region: a name (eu-west-1, me_central_1) or a domain (mypurecloud.ie); default us-east-1",
};

/// An access token issued elsewhere (the name Genesys's own tools use).
pub const ACCESS_TOKEN: EnvVar = EnvVar {
    name: "GENESYSCLOUD_ACCESS_TOKEN",
    description: "an access token used as is instead of a client-credentials grant (never refreshed, never logged)",
};

/// Older alias of [`CLIENT_ID`].
pub const CLIENT_ID_ALIAS: EnvVar = EnvVar {
    name: "GENESYS_CLIENT_ID",
    description: "alias of GENESYSCLOUD_OAUTHCLIENT_ID (older scripts)",
};

/// Older alias of [`CLIENT_SECRET`].
pub const CLIENT_SECRET_ALIAS: EnvVar = EnvVar {
    name: "GENESYS_CLIENT_SECRET",
    description: "alias of GENESYSCLOUD_OAUTHCLIENT_SECRET (older scripts)",
};

/// Older alias of [`REGION`].
pub const REGION_ALIAS: EnvVar = EnvVar {
    name: "GENESYS_ENVIRONMENT",
    description: "alias of GENESYSCLOUD_REGION (older scripts)",
};

/// API base URL override (simulator, gateway).
pub const API_URL: EnvVar = EnvVar {
    name: "GENESYSCLOUD_API_URL",
    description: "API base URL override, e.g. http://127.0.0.1:8080 for the simulator (plain http only to loopback)",
};

/// Login (token) base URL override.
pub const LOGIN_URL: EnvVar = EnvVar {
    name: "GENESYSCLOUD_LOGIN_URL",
    description: "login (OAuth token) base URL override; derived from the API URL when not set",
};

/// Proxy of https:// and wss:// traffic (the Genesys hosts), as curl reads it.
pub const HTTPS_PROXY: EnvVar = EnvVar {
    name: "HTTPS_PROXY",
    description: "proxy for login, API and notification traffic, http://[user:password@]host:port",
};

/// Lower-case spelling of [`HTTPS_PROXY`]; curl reads it first, and so does attrsync.
pub const HTTPS_PROXY_LOWER: EnvVar = EnvVar {
    name: "https_proxy",
    description: "the same as HTTPS_PROXY, and wins over it (as in curl)",
};

/// Proxy of plain http:// and ws:// traffic (loopback only, e.g. the simulator).
pub const HTTP_PROXY: EnvVar = EnvVar {
    name: "HTTP_PROXY",
    description: "proxy for plain http:// traffic (loopback only, e.g. the simulator)",
};

/// Lower-case spelling of [`HTTP_PROXY`].
pub const HTTP_PROXY_LOWER: EnvVar = EnvVar {
    name: "http_proxy",
    description: "the same as HTTP_PROXY, and wins over it (as in curl)",
};

/// Hosts reached without the proxy.
pub const NO_PROXY: EnvVar = EnvVar {
    name: "NO_PROXY",
    description: "hosts reached directly: comma-separated names (with their subdomains), IPs, CIDRs, or *",
};

/// Lower-case spelling of [`NO_PROXY`].
pub const NO_PROXY_LOWER: EnvVar = EnvVar {
    name: "no_proxy",
    description: "the same as NO_PROXY, and wins over it (as in curl)",
};

/// A PEM file of extra trusted CAs (a TLS-inspecting proxy's), like `--ca-cert`.
pub const SSL_CERT_FILE: EnvVar = EnvVar {
    name: "SSL_CERT_FILE",
    description: "PEM file of CA certificates to trust, as --ca-cert (which wins)",
};

/// Every variable, primary names before their aliases.
pub const ALL: &[EnvVar] = &[
    CLIENT_ID,
    CLIENT_SECRET,
    REGION,
    ACCESS_TOKEN,
    CLIENT_ID_ALIAS,
    CLIENT_SECRET_ALIAS,
    REGION_ALIAS,
    API_URL,
    LOGIN_URL,
    HTTPS_PROXY,
    HTTPS_PROXY_LOWER,
    HTTP_PROXY,
    HTTP_PROXY_LOWER,
    NO_PROXY,
    NO_PROXY_LOWER,
    SSL_CERT_FILE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_described() {
        let mut names: Vec<_> = ALL.iter().map(|v| v.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(ALL.iter().all(|v| !v.description.is_empty()));
    }
}
