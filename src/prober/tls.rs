//! TLS client configuration for probes: rustls with the ring provider, platform roots plus
//! an optional extra CA bundle, or — only when asked explicitly — no verification at all.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::error::ProbeError;
use super::target::TlsOptions;

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(ring::default_provider()))
        .clone()
}

/// The rustls configuration for `opts`. The default (platform roots only) is built once.
pub fn client_config(opts: &TlsOptions) -> Result<ClientConfig, ProbeError> {
    static DEFAULT: OnceLock<Result<ClientConfig, ProbeError>> = OnceLock::new();
    if opts.ca_pem.is_none() && !opts.insecure_skip_verify {
        return DEFAULT.get_or_init(|| build(opts)).clone();
    }
    build(opts)
}

fn build(opts: &TlsOptions) -> Result<ClientConfig, ProbeError> {
    let tls_err = |what: &str, e: &dyn std::fmt::Display| {
        ProbeError::TlsError(format!("cannot set up TLS: {what}: {e}"))
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("protocol versions", &e))?;
    let verifier: Arc<dyn ServerCertVerifier> = if opts.insecure_skip_verify {
        Arc::new(AcceptAnyCertificate(provider()))
    } else {
        let extra = match &opts.ca_pem {
            Some(pem) => parse_ca_bundle(pem)?,
            None => Vec::new(),
        };
        Arc::new(
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider())
                .map_err(|e| tls_err("platform certificate verifier", &e))?,
        )
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Parses a PEM bundle into certificates; an empty or broken bundle is an error.
pub fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ProbeError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ProbeError::TlsError(format!("cannot read the CA bundle as PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ProbeError::TlsError(
            "the CA bundle holds no PEM CERTIFICATE block".into(),
        ));
    }
    Ok(certs)
}

/// `--insecure-skip-verify`: accepts any server certificate, still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_ca_bundles_are_tls_errors() {
        for pem in [
            &b""[..],
            b"hello",
            b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        ] {
            let err = client_config(&TlsOptions {
                ca_pem: Some(pem.to_vec()),
                insecure_skip_verify: false,
            })
            .unwrap_err();
            assert_eq!(err.code(), super::super::ProbeErrorCode::TlsError);
        }
    }

    #[test]
    fn default_and_insecure_configs_build() {
        assert!(client_config(&TlsOptions::default()).is_ok());
        assert!(
            client_config(&TlsOptions {
                ca_pem: None,
                insecure_skip_verify: true
            })
            .is_ok()
        );
    }
}
