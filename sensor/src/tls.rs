//! TLS servers (the metrics endpoint, the web console): rustls with ring, PEM files, and a
//! listener that does its handshakes beside the accept loop, so a slow client delays no one.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// A TLS server's side: its certificate chain and key, and the client CAs if any. A client
/// certificate is optional in the handshake (probes have none) but, when presented, must
/// verify; the server then checks that one was where it needs one.
pub fn server_acceptor(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    server_acceptor_with(cert_file, key_file, client_ca_file, false)
}

/// [`server_acceptor`], where with `require_client` a client without a certificate signed
/// by one of the client CAs fails the handshake.
pub fn server_acceptor_with(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
    require_client: bool,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::{
        RootCertStore, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
        server::WebPkiClientVerifier,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pem_certs = |path: &Path| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
        Ok(certs)
    };
    let chain = pem_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("{} is not a PEM private key", key_file.display()))?;
    let verifier = match client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in pem_certs(path)? {
                roots.add(ca).with_context(|| format!("client_ca_file {}", path.display()))?;
            }
            let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if require_client { builder } else { builder.allow_unauthenticated() };
            builder.build().context("client_ca_file")?
        }
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("cert_file and key_file do not go together")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Handshakes in progress at most; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 64;
/// Longest a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP listener whose connections come out TLS-terminated (for `axum::serve`). A failed
/// or slow handshake is dropped and logged at debug.
pub struct TlsListener {
    address: SocketAddr,
    streams: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let address = tcp.local_addr()?;
        let (tx, streams) = tokio::sync::mpsc::channel(MAX_HANDSHAKES);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let accepting = tokio::spawn(async move {
            loop {
                let Ok(permit) = handshakes.clone().acquire_owned().await else { return };
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        log::debug!("tls: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            drop(permit);
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => log::debug!("tls: handshake with {peer}: {e}"),
                        Err(_) => log::debug!("tls: handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { address, streams, accepting })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.streams.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (its runtime is going away): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.address)
    }
}
