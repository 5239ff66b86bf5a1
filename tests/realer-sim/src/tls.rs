//! The throwaway PKI made at every start: a CA (handed to clients as PEM) and a server certificate it signs
//! for 127.0.0.1, ::1 and localhost; and the rustls server configuration on the ring provider.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use std::sync::Arc;

/// The server configuration and the CA certificate (PEM). With `expired`, the server certificate's validity
/// ended in 2021, as a device with a wrong clock (or a server with a stale certificate) would see it.
pub(crate) fn make(expired: bool) -> Result<(Arc<ServerConfig>, String), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");

    let ca_key = KeyPair::generate().map_err(|e| fail("CA key", &e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail("CA params", &e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "realer-sim throwaway CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| fail("CA certificate", &e))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(|e| fail("server key", &e))?;
    let mut server_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "::1".to_string(), "localhost".to_string()])
            .map_err(|e| fail("server params", &e))?;
    server_params.distinguished_name.push(DnType::CommonName, "realer-sim");
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if expired {
        server_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        server_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let server_cert = server_params.signed_by(&server_key, &issuer).map_err(|e| fail("server certificate", &e))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .map_err(|e| fail("TLS configuration", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), ca_cert.pem()))
}
