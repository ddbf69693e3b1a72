//! The one TLS client configuration of a client: the platform's trusted roots plus the CAs of
//! `--ca-cert` (a TLS-inspecting proxy's, or a test CA). HTTP (reqwest) and the notification
//! WebSocket are both given this configuration, so they trust the same CAs.
//!
//! Also the WebSocket's way through a proxy: tokio-tungstenite has none, so [`connect_socket`]
//! opens a CONNECT tunnel itself and runs the WebSocket handshake (TLS inside) over it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::proxy::{ProxySettings, ProxyTarget, TunnelRefused};

/// The TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot use the CA certificate file {}: {reason}", path.display())]
    CaCert { path: PathBuf, reason: String },
    #[error("cannot set up TLS")]
    Rustls(#[from] rustls::Error),
}

/// The platform's roots, read once per process (reading them takes a few milliseconds, and a
/// client may be built more than once).
fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "a platform CA certificate could not be loaded");
        }
        if found.certs.is_empty() {
            tracing::warn!(
                "no trusted CA certificates found on this system; TLS connections will fail unless --ca-cert names one"
            );
        }
        found.certs
    })
}

/// The CA certificates of a PEM file.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let failed = |reason: String| TlsConfigError::CaCert {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if certs.is_empty() {
        return Err(failed("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

/// The one rustls client configuration: platform roots plus `ca_cert`'s CAs.
pub fn client_config(ca_cert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(platform_roots().iter().cloned());
    if let Some(path) = ca_cert {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| TlsConfigError::CaCert {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A notification socket, TLS or plain, directly or through a tunnel.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the WebSocket at `url` (already checked by `socket_url`): through the proxy that
/// [`ProxySettings::for_url`] picks, if any, with `tls` for wss://.
pub async fn connect_socket(
    url: &Url,
    proxy: Option<&ProxySettings>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Socket, String> {
    let connector = Some(Connector::Rustls(Arc::clone(tls)));
    let result = match proxy.and_then(|p| p.for_url(url)) {
        Some(target) => {
            let stream = tunnel(target, url)
                .await
                .map_err(|e| crate::error::chain_text(&e))?;
            tokio_tungstenite::client_async_tls_with_config(url.as_str(), stream, None, connector)
                .await
        }
        None => {
            tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, false, connector)
                .await
        }
    };
    result
        .map(|(socket, _response)| socket)
        .map_err(|e| e.to_string())
}

/// The longest CONNECT response head read before giving up on the proxy.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Why a CONNECT tunnel could not be opened. Never holds the proxy's credentials.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("{url} has no host or port to tunnel to")]
    NoDestination { url: String },
    #[error("cannot connect to the proxy {proxy} (from {var})")]
    Connect {
        proxy: String,
        var: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the connection to the proxy {proxy} failed during CONNECT {authority}")]
    Io {
        proxy: String,
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the proxy {proxy} sent no complete answer to CONNECT {authority}")]
    NoAnswer { proxy: String, authority: String },
    /// The proxy answered, with something else than a 2xx.
    #[error("{0}")]
    Refused(TunnelRefused),
}

/// `host:port` of `url`, as a CONNECT names it.
pub(crate) fn authority(url: &Url) -> Option<String> {
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

/// A TCP stream to `url`'s host and port through `proxy`'s CONNECT tunnel.
pub async fn tunnel(proxy: &ProxyTarget, url: &Url) -> Result<TcpStream, TunnelError> {
    let authority = authority(url).ok_or_else(|| TunnelError::NoDestination {
        url: url.origin().ascii_serialization(),
    })?;
    let io = |source| TunnelError::Io {
        proxy: proxy.to_string(),
        authority: authority.clone(),
        source,
    };
    let (proxy_host, proxy_port) = proxy.host_port();
    let mut stream = TcpStream::connect((proxy_host.as_str(), proxy_port))
        .await
        .map_err(|source| TunnelError::Connect {
            proxy: proxy.to_string(),
            var: proxy.source,
            source,
        })?;
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = proxy.authorization() {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth.expose_secret());
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    drop(request);

    // Byte by byte: nothing after the head may be consumed, it belongs to the tunnel.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(TunnelError::NoAnswer {
                proxy: proxy.to_string(),
                authority: authority.clone(),
            });
        }
        head.push(stream.read_u8().await.map_err(io)?);
    }
    let status_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let refused = proxy.refused(&authority, Some(&status_line));
    match refused.status {
        Some(200..=299) => Ok(stream),
        _ => Err(TunnelError::Refused(refused)),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_the_file() {
        let mut file = tempfile_in_target("empty.pem");
        file.1.write_all(b"not a certificate\n").unwrap();
        let err = client_config(Some(&file.0)).unwrap_err().to_string();
        assert!(err.contains("empty.pem"), "{err}");
        let err = client_config(Some(Path::new("/nonexistent/ca.pem")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    /// The binary prints an error once, as its chain: the cause is the source, not repeated in
    /// the message.
    #[test]
    fn a_tls_setup_error_names_its_cause_once_in_its_chain() {
        let error = TlsConfigError::from(rustls::Error::General("no cipher suites".into()));
        assert_eq!(error.to_string(), "cannot set up TLS");
        assert_eq!(
            crate::error::chain_text(&error),
            "cannot set up TLS: unexpected error: no cipher suites"
        );
    }

    #[test]
    fn the_platform_roots_alone_make_a_config() {
        assert!(client_config(None).is_ok());
    }

    /// A proxy that wants other credentials: the CONNECT carried ours, and the error says
    /// what to do without showing them.
    #[tokio::test]
    async fn a_refused_connect_says_why_and_never_shows_the_password() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy_side = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(stream.read_u8().await.unwrap());
            }
            stream
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let vars = [(
            "HTTPS_PROXY",
            format!("http://me:pa55-w0rd@127.0.0.1:{port}"),
        )];
        let lookup = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        let settings = ProxySettings::resolve(&[&lookup], None).unwrap().unwrap();
        let url = Url::parse("wss://streaming.example.test/channels/abc").unwrap();
        let tls = client_config(None).unwrap();
        let err = connect_socket(&url, Some(&settings), &tls)
            .await
            .unwrap_err();
        let head = proxy_side.await.unwrap();
        assert!(
            head.starts_with("CONNECT streaming.example.test:443 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("Proxy-Authorization: Basic "), "{head}");
        assert!(err.contains("407") && err.contains("HTTPS_PROXY"), "{err}");
        assert!(!err.contains("pa55-w0rd"), "{err}");
    }

    fn tempfile_in_target(name: &str) -> (PathBuf, std::fs::File) {
        let dir = std::env::temp_dir().join(format!("genesys-core-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }
}
