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
