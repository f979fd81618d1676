//! A test PKI made with the `openssl` CLI: a CA, a server certificate it signed for
//! 127.0.0.1 and localhost, and a client certificate (common name `client`) for mutual TLS.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The PEM files of a test PKI, all in one directory.
#[derive(Clone)]
pub struct Pki {
    /// The CA certificate, which peers and the sensor are told to trust.
    pub ca: PathBuf,
    /// The server's certificate, for IP 127.0.0.1 and DNS localhost.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// The client's certificate, common name `client`, usable for client authentication.
    pub client_cert: PathBuf,
    /// The client's key.
    pub client_key: PathBuf,
}

/// Runs `openssl ARGS` in `dir`, failing the test with its stderr.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Pki {
    /// Makes the CA and both certificates in `dir` (P-256 keys: quick to generate).
    pub fn new(dir: &Path) -> Pki {
        let new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let ca = ["-x509", "-days", "2", "-subj", "/CN=sensor test CA", "-keyout", "ca.key", "-out", "ca.pem"];
        let ca_extensions =
            ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"];
        openssl(dir, &[&["req"][..], &new_key, &ca, &ca_extensions].concat());
        let leaves = [("server", "serverAuth", "IP:127.0.0.1, DNS:localhost"), ("client", "clientAuth", "DNS:client")];
        for (name, usage, names) in leaves {
            let (key, csr, ext, cert) =
                (format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"), format!("{name}.pem"));
            let extensions =
                format!("subjectAltName = {names}\nextendedKeyUsage = {usage}\nbasicConstraints = CA:FALSE\n");
            std::fs::write(dir.join(&ext), extensions).unwrap();
            let request = ["-subj", &format!("/CN={name}"), "-keyout", &key, "-out", &csr];
            openssl(dir, &[&["req"][..], &new_key, &request].concat());
            let sign = ["-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"];
            openssl(dir, &[&["x509"][..], &sign, &["-extfile", &ext, "-out", &cert]].concat());
        }
        Pki {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}
