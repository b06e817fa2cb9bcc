//! Tiny in-process servers that misbehave on purpose: any axum router on a loopback port
//! ([`serve`]), a black hole that accepts and never answers ([`BlackHole`]), and a TLS
//! front with the test CA that forwards to a plain TCP port ([`TlsFront`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A background server; aborted on drop.
pub struct Stub {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Stub {
    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `https://<addr><path>` (for [`TlsFront`]).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn loopback_listener() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0")
}

/// Serves `router` on a fresh loopback port.
pub async fn serve(router: axum::Router) -> Stub {
    let listener = loopback_listener().await;
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Stub { addr, task }
}

/// Accepts connections and holds them open without reading or writing.
pub async fn black_hole() -> Stub {
    let listener = loopback_listener().await;
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Stub { addr, task }
}

/// The test CA bundle (PEM) that signed [`TlsFront`]'s certificate.
pub fn test_ca_path() -> PathBuf {
    super::repo_path("tests/it/support/tls/ca.pem")
}

/// Terminates TLS (certificate for 127.0.0.1 from the test CA) and forwards the bytes to
/// 127.0.0.1:`upstream`.
pub async fn tls_front(upstream: u16) -> Stub {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = super::repo_path("tests/it/support/tls");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("server.pem certs");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server cert");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = loopback_listener().await;
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Stub { addr, task }
}
