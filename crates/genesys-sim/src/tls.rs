//! `tls`: a test CA generated at start, and a leaf for `localhost` and 127.0.0.1 signed by it,
//! so that clients under test trust the simulator through `--ca-cert`, as they would trust a
//! TLS-inspecting proxy's CA. Nothing is written to disk here: [`SimHandle::ca_cert_pem`]
//! gives the CA to whoever needs a file.
//!
//! [`SimHandle::ca_cert_pem`]: crate::SimHandle::ca_cert_pem

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The simulator's TLS: the CA's certificate (PEM) and the acceptor serving the leaf.
#[derive(Clone)]
pub(crate) struct SimTls {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTls").finish_non_exhaustive()
    }
}

fn failed(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("cannot set up the simulator's TLS: {error}"))
}

/// A fresh CA and a leaf for `localhost`, 127.0.0.1 and ::1.
pub(crate) fn generate() -> std::io::Result<SimTls> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "attrsync simulator test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(failed)?).map_err(failed)?;

    // rcgen takes the IP addresses as IP SANs.
    let mut leaf = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(failed)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "attrsync simulator");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().map_err(failed)?;
    let leaf = leaf.signed_by(&leaf_key, &ca).map_err(failed)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(failed)?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .map_err(failed)?;
    Ok(SimTls {
        ca_pem: ca.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::{SimConfig, Simulator};

    /// A client that trusts only the simulator's CA reaches it by IP address and by name, and
    /// is told to connect its sockets with wss://.
    #[tokio::test]
    async fn a_tls_simulator_is_trusted_through_its_ca_alone() {
        let sim = Simulator::start(
            SimConfig {
                tls: true,
                ..SimConfig::default()
            },
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        )
        .await
        .unwrap();
        assert!(sim.url().starts_with("https://127.0.0.1:"));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(sim.ca_cert_pem().unwrap().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        for name in ["127.0.0.1", "localhost"] {
            let tcp = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
            let server_name = ServerName::try_from(name.to_owned()).unwrap();
            let mut tls = connector.connect(server_name, tcp).await.unwrap();
            tls.write_all(b"GET /__sim/calls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut response = Vec::new();
            tls.read_to_end(&mut response).await.unwrap_or_default();
            let response = String::from_utf8_lossy(&response);
            assert!(response.starts_with("HTTP/1.1 200"), "{name}: {response}");
        }
        let (id, _) = sim.demo_credentials();
        let channel = sim.state().create_channel(&id).unwrap();
        assert!(
            channel.connect_uri.starts_with("wss://127.0.0.1:"),
            "{}",
            channel.connect_uri
        );
    }
}
