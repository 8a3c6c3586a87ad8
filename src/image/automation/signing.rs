//! OpenPGP signatures of commits through gpgme, with the armoured private key of a Secret
//! (`git.asc`, optional `passphrase`) imported into a throwaway GnuPG home. Blocking I/O (gpg
//! processes); run it under `spawn_blocking` (the Git commit writer does).

use std::io::Write;

use gpgme::{Context, PinentryMode, Protocol};

/// A signing key as a Secret holds it.
#[derive(Clone)]
pub struct SigningKey {
    pub armoured: Vec<u8>,
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").finish_non_exhaustive()
    }
}

/// Signs `data` with `key`, returning an armoured detached signature (what Git stores in
/// `gpgsig`).
pub fn sign(key: &SigningKey, data: &[u8]) -> Result<String, String> {
    let home = tempfile::Builder::new()
        .prefix("sluice-sign-")
        .tempdir()
        .map_err(|e| format!("creating a GnuPG home: {e}"))?;
    let result = sign_in(home.path(), key, data);
    stop_agent(home.path());
    result
}

fn sign_in(home: &std::path::Path, key: &SigningKey, data: &[u8]) -> Result<String, String> {
    let gpgme = |step: &str| {
        let step = step.to_owned();
        move |e: gpgme::Error| format!("{step}: {e}")
    };
    let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(gpgme("starting gpgme"))?;
    let home = home
        .to_str()
        .ok_or_else(|| "the GnuPG home is not UTF-8".to_owned())?;
    ctx.set_engine_home_dir(home)
        .map_err(gpgme("setting the GnuPG home"))?;
    ctx.set_pinentry_mode(PinentryMode::Loopback)
        .map_err(gpgme("asking for loopback pinentry"))?;
    ctx.set_armor(true);
    let imported = ctx
        .import(&key.armoured)
        .map_err(gpgme("importing the signing key"))?;
    if imported.secret_imported() == 0 && imported.secret_unchanged() == 0 {
        return Err("the Secret's git.asc holds no OpenPGP private key".into());
    }
    let secret = ctx
        .secret_keys()
        .map_err(gpgme("listing secret keys"))?
        .filter_map(Result::ok)
        .find(|k| k.can_sign())
        .ok_or_else(|| "the Secret's private key cannot sign".to_owned())?;
    ctx.add_signer(&secret)
        .map_err(gpgme("choosing the signing key"))?;
    let mut signature = Vec::new();
    let passphrase = key.passphrase.clone().unwrap_or_default();
    ctx.with_passphrase_provider(
        |_: gpgme::PassphraseRequest<'_>, out: &mut dyn Write| {
            out.write_all(passphrase.as_bytes())?;
            Ok(())
        },
        |ctx| ctx.sign_detached(data, &mut signature),
    )
    .map_err(gpgme("signing (is the passphrase right?)"))?;
    String::from_utf8(signature).map_err(|_| "gpg wrote a signature that is not text".into())
}

/// gpg starts an agent in the throwaway home; stop it before the home is removed.
fn stop_agent(home: &std::path::Path) {
    let _ = std::process::Command::new("gpgconf")
        .arg("--homedir")
        .arg(home)
        .args(["--kill", "all"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}
