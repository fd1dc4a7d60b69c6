//! Test certificates, made at run time (no private key is committed): a
//! CA and a leaf for `localhost` and 127.0.0.1 that it signed.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// PEM texts of a test CA and of a server certificate it issued.
pub struct TestCerts {
    /// The CA's certificate: what clients trust.
    pub ca_pem: String,
    /// The server's certificate, for `localhost`, 127.0.0.1 and ::1.
    pub cert_pem: String,
    /// The server's private key (PKCS#8).
    pub key_pem: String,
}

impl TestCerts {
    /// A fresh CA and server certificate.
    pub fn new() -> TestCerts {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "rtwire test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let leaf_key = KeyPair::generate().expect("server key");
        let leaf = CertificateParams::new(names)
            .expect("server params")
            .signed_by(&leaf_key, &issuer)
            .expect("server certificate");
        TestCerts {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` to a fresh directory
    /// under the system's temporary directory; returns it.
    pub fn write_to_temp_dir(&self) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rtwire-certs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (name, pem) in [
            ("ca.pem", &self.ca_pem),
            ("cert.pem", &self.cert_pem),
            ("key.pem", &self.key_pem),
        ] {
            std::fs::write(dir.join(name), pem).expect("write PEM");
        }
        dir
    }
}
