//! Profiles of Genesys's `gc` CLI (`~/.gc/config.toml`), read only when one is named.
//!
//! The format, from the gc CLI's `build/gc/config/config.go`: one TOML table per profile, its
//! name matched without regard to case; keys `client_credentials` (the OAuth client id),
//! `client_secret`, `environment` (a region name or a domain), `access_token`, and optionally
//! `proxy_protocol`, `proxy_host`, `proxy_port`, `proxy_username`, `proxy_password`. A profile
//! made for a user login (gc's `grant_type` 2 = implicit, 3 = PKCE; `oauth_token_data` is its
//! cached token) has no client secret and is refused: attrsync only runs as an OAuth client.
//! Every other key is ignored. No profile is ever read implicitly: gc's setup prompt suggests
//! `DEFAULT` as the first profile's name, but that name is unverified, so attrsync reads a
//! profile only when `--profile` (or `ATTRSYNC_PROFILE`) names it.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use url::Url;

/// The gc CLI's configuration file, relative to the home directory.
pub const GC_CONFIG_RELATIVE: &str = ".gc/config.toml";

/// One profile as read from the file. `Debug` never shows the secret, the token or the proxy
/// password.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The table's name as spelled in the file.
    pub name: String,
    pub path: PathBuf,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub access_token: Option<SecretString>,
    /// `environment`: a region name (either spelling) or a domain, as the file has it.
    pub environment: Option<String>,
    pub proxy: Option<ProfileProxy>,
}

/// A profile's `proxy_*` keys. Parsed and validated here; the HTTP client's proxy set-up is
/// where it is applied.
#[derive(Clone)]
pub struct ProfileProxy {
    /// `http` or `https`.
    pub protocol: String,
    pub host: String,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
}

impl fmt::Debug for ProfileProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileProxy")
            .field("url", &self.url().as_str())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl ProfileProxy {
    /// `protocol://host[:port]`, without credentials (safe to show).
    pub fn url(&self) -> Url {
        let text = match self.port {
            Some(port) => format!("{}://{}:{port}", self.protocol, self.host),
            None => format!("{}://{}", self.protocol, self.host),
        };
        // Validated when parsed.
        Url::parse(&text).expect("a validated proxy URL")
    }
}

/// Why a profile could not be used. Never contains a secret: TOML errors are reduced to their
/// position and message, without the quoted line (it may hold a secret).
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read the gc configuration {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the gc configuration {} is not valid TOML{}: {message}", path.display(), line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("no profile {name:?} in {}; profiles there: {}", path.display(), if available.is_empty() { "none".to_owned() } else { available.join(", ") })]
    NotFound {
        name: String,
        path: PathBuf,
        available: Vec<String>,
    },
    #[error("profile {name:?} in {} matches several tables that differ only in case ({}); rename one", path.display(), matches.join(", "))]
    Ambiguous {
        name: String,
        path: PathBuf,
        matches: Vec<String>,
    },
    #[error("profile {name:?} in {} is {what}, which attrsync cannot use: attrsync runs as an OAuth client-credentials client; give the profile client_credentials and client_secret (or an access_token), or set GENESYSCLOUD_OAUTHCLIENT_ID and GENESYSCLOUD_OAUTHCLIENT_SECRET", path.display())]
    UserLogin {
        name: String,
        path: PathBuf,
        what: String,
    },
    #[error("profile {name:?} in {}: {key} {reason}", path.display())]
    InvalidKey {
        name: String,
        path: PathBuf,
        key: &'static str,
        reason: String,
    },
}

/// `$HOME/.gc/config.toml`, when the home directory is known.
pub fn default_path(home: Option<&str>) -> Option<PathBuf> {
    home.filter(|h| !h.is_empty())
        .map(|h| Path::new(h).join(GC_CONFIG_RELATIVE))
}

/// Reads profile `name` from `path`. The warnings are for the caller to show (a file that
/// other users may read).
pub fn read(path: &Path, name: &str) -> Result<(Profile, Vec<String>), ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut warnings = Vec::new();
    if let Some(warning) = permission_warning(path) {
        warnings.push(warning);
    }
    Ok((parse(&text, path, name)?, warnings))
}

/// A warning when the file may be read by group or others (as ssh warns of a private key).
#[cfg(unix)]
pub fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "the gc configuration {} holds secrets but other users may read it (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

#[cfg(not(unix))]
pub fn permission_warning(_path: &Path) -> Option<String> {
    None
}

/// Parses profile `name` out of the file's text (`path` is for messages).
pub fn parse(text: &str, path: &Path, name: &str) -> Result<Profile, ProfileError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ProfileError::Parse {
        path: path.to_path_buf(),
        line: e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1)),
        message: e.message().trim().to_owned(),
    })?;
    let matches: Vec<&String> = table
        .iter()
        .filter(|(key, value)| key.eq_ignore_ascii_case(name.trim()) && value.is_table())
        .map(|(key, _)| key)
        .collect();
    let (found, values) = match matches.as_slice() {
        [] => {
            return Err(ProfileError::NotFound {
                name: name.to_owned(),
                path: path.to_path_buf(),
                available: table
                    .iter()
                    .filter(|(_, v)| v.is_table())
                    .map(|(k, _)| k.clone())
                    .collect(),
            });
        }
        [one] => (
            (*one).clone(),
            table[one.as_str()].as_table().expect("filtered on tables"),
        ),
        several => {
            return Err(ProfileError::Ambiguous {
                name: name.to_owned(),
                path: path.to_path_buf(),
                matches: several.iter().map(|s| (*s).clone()).collect(),
            });
        }
    };
    let invalid = |key: &'static str, reason: String| ProfileError::InvalidKey {
        name: found.clone(),
        path: path.to_path_buf(),
        key,
        reason,
    };
    // viper (gc) reads every key as a string; a number (a port) is taken as its text.
    let text_of = |key: &'static str| -> Result<Option<String>, ProfileError> {
        match values.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
            Some(toml::Value::Integer(i)) => Ok(Some(i.to_string())),
            Some(other) => Err(invalid(
                key,
                format!("must be a string, not {}", other.type_str()),
            )),
        }
    };
    let client_id = text_of("client_credentials")?;
    let client_secret = text_of("client_secret")?.map(SecretString::from);
    let access_token = text_of("access_token")?.map(SecretString::from);
    let grant_type = text_of("grant_type")?;
    let user_login = match grant_type.as_deref() {
        // gc's restclient: 2 is the implicit grant, 3 PKCE; 1 (or none) client credentials.
        Some("2") => Some("a user-login profile (grant_type 2, implicit grant)".to_owned()),
        Some("3") => Some("a user-login profile (grant_type 3, PKCE grant)".to_owned()),
        Some("1" | "client_credentials") | None => None,
        Some(other) => Some(format!("a profile of grant_type {other:?}")),
    };
    let user_login = user_login.or_else(|| {
        (client_secret.is_none()
            && access_token.is_none()
            && (values.contains_key("oauth_token_data") || values.contains_key("redirect_uri")))
        .then(|| "a user-login profile (oauth_token_data without a client_secret)".to_owned())
    });
    if let Some(what) = user_login {
        return Err(ProfileError::UserLogin {
            name: found,
            path: path.to_path_buf(),
            what,
        });
    }
    let proxy = parse_proxy(&text_of, &invalid)?;
    Ok(Profile {
        name: found.clone(),
        path: path.to_path_buf(),
        client_id,
        client_secret,
        access_token,
        environment: text_of("environment")?,
        proxy,
    })
}

fn parse_proxy(
    text_of: &dyn Fn(&'static str) -> Result<Option<String>, ProfileError>,
    invalid: &dyn Fn(&'static str, String) -> ProfileError,
) -> Result<Option<ProfileProxy>, ProfileError> {
    let host = text_of("proxy_host")?;
    let protocol = text_of("proxy_protocol")?;
    let port = text_of("proxy_port")?;
    let username = text_of("proxy_username")?;
    let password = text_of("proxy_password")?.map(SecretString::from);
    // gc configures a proxy only when proxy_protocol is set.
    let Some(protocol) = protocol else {
        if host.is_some() {
            return Err(invalid(
                "proxy_protocol",
                "is missing while proxy_host is set (http or https)".to_owned(),
            ));
        }
        return Ok(None);
    };
    let protocol = protocol.to_ascii_lowercase();
    if !matches!(protocol.as_str(), "http" | "https") {
        return Err(invalid(
            "proxy_protocol",
            format!("{protocol:?} is not supported (http or https)"),
        ));
    }
    let Some(host) = host else {
        return Err(invalid(
            "proxy_host",
            "is missing while proxy_protocol is set".to_owned(),
        ));
    };
    // The value is never quoted: `user:password@host` puts credentials in it.
    if host.contains('@') {
        return Err(invalid(
            "proxy_host",
            "must be a host name or address only, without credentials: give them in proxy_username and proxy_password".to_owned(),
        ));
    }
    if host.contains(['/', ' ']) {
        return Err(invalid(
            "proxy_host",
            "must be a host name or address only (no scheme, path or spaces): give the protocol in proxy_protocol and the port in proxy_port".to_owned(),
        ));
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid("proxy_port", format!("{p:?} is not a port (1-65535)")))
        })
        .transpose()?;
    if password.is_some() && username.is_none() {
        return Err(invalid(
            "proxy_password",
            "is set without proxy_username".to_owned(),
        ));
    }
    let proxy = ProfileProxy {
        protocol,
        host,
        port,
        username,
        password,
    };
    let text = match proxy.port {
        Some(port) => format!("{}://{}:{port}", proxy.protocol, proxy.host),
        None => format!("{}://{}", proxy.protocol, proxy.host),
    };
    if Url::parse(&text).map_or(true, |u| u.host().is_none()) {
        return Err(invalid(
            "proxy_host",
            "is not a valid host name or address (with proxy_port, if set)".to_owned(),
        ));
    }
    Ok(Some(proxy))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn parse_named(text: &str, name: &str) -> Result<Profile, ProfileError> {
        parse(text, Path::new("/home/u/.gc/config.toml"), name)
    }

    const FILE: &str = r#"
[DEFAULT]
client_credentials = "us-id"
client_secret = "us-secret"
environment = "mypurecloud.com"

[Prod-EU]
client_credentials = "eu-id"
client_secret = "eu-secret"
environment = "eu-west-1"
access_token = "cached"
logging_enabled = false
proxy_protocol = "http"
proxy_host = "proxy.corp.example"
proxy_port = 3128
proxy_username = "alice"
proxy_password = "pw-123"

[dubai]
client_credentials = "me-id"
client_secret = "me-secret"
environment = "me_central_1"

[user]
grant_type = "3"
client_credentials = "pkce-id"
environment = "mypurecloud.de"
oauth_token_data = "{}"

[token-only]
access_token = "tok"
environment = "mypurecloud.ie"
"#;

    #[test]
    fn a_profile_is_found_whatever_the_case_and_gives_its_keys() {
        let p = parse_named(FILE, "prod-eu").unwrap();
        assert_eq!(p.name, "Prod-EU");
        assert_eq!(p.client_id.as_deref(), Some("eu-id"));
        assert_eq!(p.client_secret.unwrap().expose_secret(), "eu-secret");
        assert_eq!(p.access_token.unwrap().expose_secret(), "cached");
        assert_eq!(p.environment.as_deref(), Some("eu-west-1"));
        let proxy = p.proxy.unwrap();
        assert_eq!(proxy.url().as_str(), "http://proxy.corp.example:3128/");
        assert_eq!(proxy.username.as_deref(), Some("alice"));
        assert_eq!(proxy.password.as_ref().unwrap().expose_secret(), "pw-123");
        let p = parse_named(FILE, "default").unwrap();
        assert_eq!(p.environment.as_deref(), Some("mypurecloud.com"));
        assert!(p.proxy.is_none());
    }

    #[test]
    fn debug_shows_no_secret_token_or_proxy_password() {
        let p = parse_named(FILE, "PROD-EU").unwrap();
        let debug = format!("{p:?}");
        for secret in ["eu-secret", "cached", "pw-123"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("eu-id") && debug.contains("proxy.corp.example"));
    }

    #[test]
    fn a_user_login_profile_is_refused_with_what_to_do() {
        let err = parse_named(FILE, "user").unwrap_err().to_string();
        assert!(err.contains("user-login profile"), "{err}");
        assert!(err.contains("PKCE"), "{err}");
        assert!(err.contains("client_secret"), "{err}");
        let err = parse_named("[u]\noauth_token_data = \"{}\"\n", "u")
            .unwrap_err()
            .to_string();
        assert!(err.contains("oauth_token_data"), "{err}");
    }

    #[test]
    fn an_unknown_profile_lists_the_profiles_there() {
        let err = parse_named(FILE, "staging").unwrap_err().to_string();
        assert!(err.contains("\"staging\""), "{err}");
        assert!(err.contains("DEFAULT, Prod-EU, dubai"), "{err}");
    }

    #[test]
    fn tables_differing_only_in_case_are_ambiguous() {
        let err = parse_named("[a]\nx = 1\n[A]\nx = 2\n", "a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("differ only in case"), "{err}");
    }

    #[test]
    fn a_syntax_error_names_the_line_but_never_quotes_it() {
        let text = "[p]\nclient_secret = \"s3cr3t\nenvironment = \"eu-west-1\"\n";
        let err = parse_named(text, "p").unwrap_err().to_string();
        assert!(err.contains("line"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn bad_proxy_keys_are_refused() {
        for (keys, key) in [
            (
                "proxy_protocol = \"socks5\"\nproxy_host = \"h\"",
                "proxy_protocol",
            ),
            ("proxy_protocol = \"http\"", "proxy_host"),
            ("proxy_host = \"h\"", "proxy_protocol"),
            (
                "proxy_protocol = \"http\"\nproxy_host = \"h\"\nproxy_port = \"x\"",
                "proxy_port",
            ),
            (
                "proxy_protocol = \"http\"\nproxy_host = \"h/x\"",
                "proxy_host",
            ),
            (
                "proxy_protocol = \"http\"\nproxy_host = \"h\"\nproxy_password = \"pw\"",
                "proxy_password",
            ),
        ] {
            let err = parse_named(&format!("[p]\n{keys}\n"), "p").unwrap_err();
            assert!(
                matches!(&err, ProfileError::InvalidKey { key: k, .. } if *k == key),
                "{keys}: {err}"
            );
            assert!(!err.to_string().contains("pw\""), "{err}");
        }
        let p = parse_named(
            "[p]\nproxy_protocol = \"HTTPS\"\nproxy_host = \"10.0.0.1\"\nproxy_port = \"8443\"\n",
            "p",
        )
        .unwrap();
        assert_eq!(p.proxy.unwrap().url().as_str(), "https://10.0.0.1:8443/");
    }

    /// gc takes credentials in proxy_username and proxy_password; a proxy_host that carries
    /// them (or is otherwise no host) is refused without quoting the value.
    #[test]
    fn a_proxy_host_with_credentials_is_refused_without_quoting_them() {
        for host in [
            "u:PROXYPASS@127.0.0.1",
            "http://u:PROXYPASS@127.0.0.1",
            "u:PROXYPASS/x",
            "u:PROXYPASS",
        ] {
            let text = format!("[p]\nproxy_protocol = \"http\"\nproxy_host = \"{host}\"\n");
            let err = parse_named(&text, "p").unwrap_err();
            assert!(
                matches!(
                    &err,
                    ProfileError::InvalidKey {
                        key: "proxy_host",
                        ..
                    }
                ),
                "{host}: {err}"
            );
            let message = err.to_string();
            assert!(!message.contains("PROXYPASS"), "{host}: {message}");
            assert!(!message.contains("u:"), "{host}: {message}");
        }
        let text = "[p]\nproxy_protocol = \"http\"\nproxy_host = \"u:PROXYPASS@127.0.0.1\"\n";
        let message = parse_named(text, "p").unwrap_err().to_string();
        assert!(
            message.ends_with("proxy_host must be a host name or address only, without credentials: give them in proxy_username and proxy_password"),
            "{message}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_may_read_gets_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile_dir();
        let path = dir.join("config.toml");
        std::fs::write(&path, FILE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, warnings) = read(&path, "dubai").unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("chmod 600"), "{warnings:?}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (profile, warnings) = read(&path, "dubai").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(profile.environment.as_deref(), Some("me_central_1"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A private scratch directory (genesys-core has no tempfile dependency).
    #[cfg(unix)]
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "genesys-core-profile-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_default_path_is_under_home() {
        assert_eq!(
            default_path(Some("/home/u")),
            Some(PathBuf::from("/home/u/.gc/config.toml"))
        );
        assert_eq!(default_path(Some("")), None);
        assert_eq!(default_path(None), None);
    }
}
