//! Certificates for TLS tests, made with the `openssl` command. Test code only.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run openssl (is it installed?): {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, and a certificate of it for `name` valid for 127.0.0.1.
pub fn ca(dir: &Path, ca: &str) {
    let subject = format!("/CN={ca}");
    let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt, "-days", "2", "-subj",
            &subject,
        ],
    );
    give_to_test_user(dir, &[&key, &crt]);
}

pub fn leaf(dir: &Path, ca: &str, name: &str) -> (PathBuf, PathBuf) {
    leaf_for(dir, ca, name, "IP:127.0.0.1,DNS:localhost")
}

/// Like [`leaf`], the certificate naming `alt_names` (a `subjectAltName`
/// value, e.g. `DNS:zk.example.test`) instead of 127.0.0.1 and localhost.
pub fn leaf_for(dir: &Path, ca: &str, name: &str, alt_names: &str) -> (PathBuf, PathBuf) {
    let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
    let subject = format!("/CN={name}");
    openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={alt_names}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap_or_else(|e| panic!("write the extensions: {e}"));
    let (ca_crt, ca_key, ext) = (format!("{ca}.crt"), format!("{ca}.key"), format!("{name}.ext"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    give_to_test_user(dir, &[&crt, &key, &ca_crt]);
    (dir.join(crt), dir.join(key))
}

/// The files belong to the test user (PostgreSQL wants its key owned by
/// the user it runs as), keys readable by it alone.
fn give_to_test_user(dir: &Path, files: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    for f in files {
        let path = dir.join(f);
        let mode = if f.ends_with(".key") { 0o600 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        crate::chown_to_test_user(&path);
    }
}

/// `key` encrypted as PKCS#8 with `password` (written next to it as `<name>.enc.key`).
pub fn encrypt_key(dir: &Path, key: &Path, password: &str) -> PathBuf {
    let out = dir.join(format!("{}.enc.key", key.file_stem().and_then(|s| s.to_str()).unwrap_or("key")));
    let (k, o, p) =
        (key.to_string_lossy().into_owned(), out.to_string_lossy().into_owned(), format!("pass:{password}"));
    openssl(dir, &["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", &k, "-out", &o, "-passout", &p]);
    if let Some(name) = out.file_name().and_then(|n| n.to_str()) {
        give_to_test_user(dir, &[name]);
    }
    out
}
