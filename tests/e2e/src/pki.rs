//! The test PKI: a private CA, Envoy's server certificate, and client
//! certificates whose URI SAN is a SPIFFE id (rcgen), written as PEM files.

use std::path::{Path, PathBuf};

use crate::client::Caller;

/// A private CA, Envoy's server certificate and client certificates whose
/// URI SAN is a SPIFFE id, all written as PEM files.
pub struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Pki {
    /// Creates the CA and the server certificate (for `localhost`).
    pub fn new(dir: &Path) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "meshward test CA");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = params.self_signed(&ca_key).expect("CA cert");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
        let pki = Self {
            dir: dir.to_path_buf(),
            ca,
            ca_key,
        };
        pki.issue(
            "server",
            vec![rcgen::SanType::DnsName("localhost".try_into().expect("dns name"))],
        );
        pki
    }

    fn issue(&self, name: &str, sans: Vec<rcgen::SanType>) -> (PathBuf, PathBuf) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = sans;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).expect("sign");
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }

    /// A caller whose certificate carries `spiffe://<principal>` as URI SAN.
    pub fn caller(&self, principal: &str) -> Caller {
        let name = principal.replace(['/', '.'], "_");
        let uri = format!("spiffe://{principal}");
        let (cert, key) = self.issue(&name, vec![rcgen::SanType::URI(uri.as_str().try_into().expect("uri"))]);
        Caller::Mtls { cert, key }
    }

    /// A caller with a valid client certificate but no URI SAN.
    pub fn caller_without_san(&self) -> Caller {
        let (cert, key) = self.issue(
            "no-san",
            vec![rcgen::SanType::DnsName("client.example".try_into().expect("dns"))],
        );
        Caller::Mtls { cert, key }
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}
