//! A development PKI: a federation CA and node certificates shaped like PKIoverheid ones (the
//! OIN in the subject serialNumber, the organisation in O), plus Ed25519 audit keys. For demos,
//! tests and local federations; production nodes use certificates from a real CA.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::domain::Oin;

/// The OID of the X.520 serialNumber attribute, where PKIoverheid puts the OIN.
pub const SERIAL_NUMBER_OID: &[u64] = &[2, 5, 4, 5];

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a node certificate says about its holder.
#[derive(Debug, Clone)]
pub struct NodeCertRequest {
    pub organisation: String,
    pub oin: Oin,
    /// DNS names and IP addresses the certificate is valid for.
    pub hosts: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl NodeCertRequest {
    /// A loopback certificate valid from an hour ago for `days` days.
    pub fn loopback(organisation: &str, oin: Oin, days: i64) -> NodeCertRequest {
        let now = OffsetDateTime::now_utc();
        NodeCertRequest {
            organisation: organisation.to_owned(),
            oin,
            hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
}

/// A certificate authority for a development federation.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevCa")
    }
}

impl DevCa {
    pub fn generate(name: &str) -> Result<DevCa, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(DevCa {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<DevCa, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(DevCa {
            issuer,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A node certificate for both TLS server and client use.
    pub fn issue(&self, request: &NodeCertRequest) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for host in &request.hosts {
            let san = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    host.clone()
                        .try_into()
                        .map_err(|_| PkiError::Invalid(format!("bad host name {host:?}")))?,
                ),
            };
            params.subject_alt_names.push(san);
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, request.organisation.as_str());
        dn.push(DnType::OrganizationName, request.organisation.as_str());
        dn.push(
            DnType::CustomDnType(SERIAL_NUMBER_OID.to_vec()),
            request.oin.as_str(),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = request.not_before;
        params.not_after = request.not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A fresh Ed25519 key as PEM PKCS#8, for signing audit checkpoints.
pub fn ed25519_key_pem() -> String {
    let der = crate::audit::note::generate_pkcs8();
    pem_encode("PRIVATE KEY", &der)
}

pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_certificates_carry_the_oin_and_chain_to_the_ca() {
        let ca = DevCa::generate("kring dev CA").unwrap();
        let oin = Oin::parse("00000001003214345000").unwrap();
        let issued = ca
            .issue(&NodeCertRequest::loopback(
                "Basisschool De Regenboog",
                oin,
                30,
            ))
            .unwrap();
        let identity = crate::tls::TlsIdentity::from_pem(
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
        .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&identity.certs[0]).unwrap();
        let serial = cert
            .subject()
            .iter_attributes()
            .find(|a| a.attr_type().to_id_string() == "2.5.4.5")
            .and_then(|a| a.as_str().ok());
        assert_eq!(serial, Some("00000001003214345000"));
        let org = cert
            .subject()
            .iter_organization()
            .next()
            .and_then(|a| a.as_str().ok());
        assert_eq!(org, Some("Basisschool De Regenboog"));
        // The CA can be reloaded from its PEM and still issues.
        let again = DevCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        again
            .issue(&NodeCertRequest::loopback("GGD", oin, 1))
            .unwrap();
    }
}
