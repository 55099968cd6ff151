//! Optional HTTPS for the simulator (a real EM listens on HTTPS, often with a self-signed or
//! privately signed certificate): a PEM certificate chain and key, turned into a rustls server
//! configuration on the aws-lc-rs provider (the one `reqwest` uses), so no process-wide
//! default provider is needed.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The simulator's server certificate: a PEM chain (leaf first) and its PEM private key
/// (PKCS#8, PKCS#1 or SEC1). The key never appears in `Debug`.
#[derive(Clone)]
pub struct SimTls {
    pub cert_chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl SimTls {
    /// From PEM text already in memory.
    pub fn from_pem(cert_chain_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        SimTls {
            cert_chain_pem: cert_chain_pem.into(),
            key_pem: key_pem.into(),
        }
    }

    /// Reads both PEM files and checks that they make a usable server configuration.
    pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let read = |p: &Path| {
            std::fs::read(p).with_context(|| format!("reading the TLS file {}", p.display()))
        };
        let tls = SimTls::from_pem(read(cert)?, read(key)?);
        tls.server_config()?;
        Ok(tls)
    }

    /// The rustls server configuration (HTTP/1.1 over TLS 1.2 or 1.3).
    pub(crate) fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let certs = CertificateDer::pem_slice_iter(&self.cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .context("parsing the simulator's TLS certificate chain as PEM")?;
        anyhow::ensure!(
            !certs.is_empty(),
            "no certificate in the simulator's TLS certificate chain"
        );
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .context("parsing the simulator's TLS private key as PEM")?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("choosing TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the simulator's TLS certificate and key do not make a server identity")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl fmt::Debug for SimTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimTls")
            .field(
                "cert_chain_pem",
                &format_args!("{} bytes", self.cert_chain_pem.len()),
            )
            .field("key_pem", &"<redacted>")
            .finish()
    }
}
