//! The lab cluster's certificates (made with `openssl`: one CA, the API server's serving
//! certificate, a client certificate per component, node and the admin, the ServiceAccount key)
//! and the kubeconfigs that use them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{ADVERTISE, API_PORT, FIRST_SERVICE_IP};

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().context("openssl is needed")?;
    if !out.status.success() {
        bail!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A key and a certificate signed by the cluster's CA: `NAME.key`, `NAME.crt`.
fn leaf(dir: &Path, name: &str, subject: &str, ext: &str) -> Result<()> {
    let ext_file = dir.join(format!("{name}.ext"));
    std::fs::write(&ext_file, ext)?;
    openssl(dir, &["genrsa", "-out", &format!("{name}.key"), "2048"])?;
    openssl(dir, &["req", "-new", "-key", &format!("{name}.key"), "-subj", subject, "-out", &format!("{name}.csr")])?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ],
    )
}

/// The CA, the API server's serving certificate, a client certificate per component and for
/// the admin, and the ServiceAccount signing key.
pub fn certificates(pki: &Path, nodes: &[String]) -> Result<()> {
    std::fs::create_dir_all(pki)?;
    openssl(pki, &["genrsa", "-out", "ca.key", "2048"])?;
    openssl(
        pki,
        &["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=podtap-lab-ca", "-days", "30", "-out", "ca.crt"],
    )?;
    let client = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";
    let serving = format!(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,\
         DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:{FIRST_SERVICE_IP},IP:{ADVERTISE}\n"
    );
    leaf(pki, "apiserver", "/CN=kube-apiserver", &serving)?;
    leaf(pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", client)?;
    leaf(pki, "admin", "/O=system:masters/CN=kubernetes-admin", client)?;
    leaf(pki, "controller-manager", "/CN=system:kube-controller-manager", client)?;
    leaf(pki, "scheduler", "/CN=system:kube-scheduler", client)?;
    leaf(pki, "kube-proxy", "/CN=system:kube-proxy", client)?;
    // What the Node authorizer and NodeRestriction know a kubelet by.
    for node in nodes {
        leaf(pki, node, &format!("/O=system:nodes/CN=system:node:{node}"), client)?;
    }
    openssl(pki, &["genrsa", "-out", "sa.key", "2048"])?;
    openssl(pki, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])
}

/// A kubeconfig for `user` (its certificate in `pki`), talking to the API server on loopback.
pub fn kubeconfig(dir: &Path, pki: &Path, user: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{user}.kubeconfig"));
    let p = |f: &str| pki.join(f).display().to_string();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: podtap-lab\n  cluster:\n    server: https://127.0.0.1:{API_PORT}\n\
         \x20   certificate-authority: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate: {crt}\n\
         \x20   client-key: {key}\ncontexts:\n- name: podtap-lab\n  context:\n    cluster: podtap-lab\n    user: {user}\n\
         current-context: podtap-lab\n",
        ca = p("ca.crt"),
        crt = p(&format!("{user}.crt")),
        key = p(&format!("{user}.key")),
    );
    std::fs::write(&path, text)?;
    Ok(path)
}
