//! Signing keys: sealed at rest under the master key, published through OpenID discovery,
//! verified by a standard JWT library.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tenantd_server::auth::seal::MasterKeySource;

use crate::helpers::TestApp;

fn jwks_x(jwks: &Value) -> Vec<Vec<u8>> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| URL_SAFE_NO_PAD.decode(k["x"].as_str().unwrap()).unwrap())
        .collect()
}

/// Every Ed25519 public key that any 32 consecutive bytes of `stored` would give as a seed.
fn publics_derivable_from(stored: &[u8]) -> Vec<[u8; 32]> {
    stored
        .windows(32)
        .map(|w| {
            let seed: [u8; 32] = w.try_into().unwrap();
            ed25519_dalek::SigningKey::from_bytes(&seed)
                .verifying_key()
                .to_bytes()
        })
        .collect()
}

#[tokio::test]
async fn no_private_signing_key_can_be_read_from_the_catalog() {
    let app = TestApp::spawn().await;
    app.state
        .keys
        .rotate(app.state.catalog.as_ref())
        .await
        .unwrap();
    let jwks = app.call("GET", "/.well-known/jwks.json", None, None).await;
    let published = jwks_x(&jwks.body);
    assert_eq!(published.len(), 2, "{}", jwks.text);
    let stored = app.stored_signing_keys().await;
    assert_eq!(stored.len(), 2);
    for (kid, value) in &stored {
        assert!(value.len() > 32, "{kid} is stored as a bare seed");
        for public in publics_derivable_from(value) {
            assert!(
                !published.iter().any(|p| p.as_slice() == public),
                "the stored value of {kid} yields a published public key"
            );
        }
    }
    // The control: the same derivation finds the key in a clear seed.
    let seed = [7u8; 32];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    assert!(publics_derivable_from(&seed).contains(&public));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(app.dir.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "master.key mode {:o}", mode & 0o777);
    }
}

#[tokio::test]
async fn a_standard_jwt_library_verifies_an_access_token_through_discovery() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let discovery = app
        .call("GET", "/.well-known/openid-configuration", None, None)
        .await;
    assert_eq!(discovery.status, 200, "{}", discovery.text);
    let issuer = discovery.body["issuer"].as_str().unwrap().to_owned();
    assert_eq!(
        issuer, app.base,
        "the issuer is public_url (here the bound address)"
    );
    let jwks_uri = discovery.body["jwks_uri"].as_str().unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .client
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let header = jsonwebtoken::decode_header(&a.token).unwrap();
    let kid = header.kid.expect("kid");
    let jwk = jwks
        .find(&kid)
        .expect("the token's key is in the discovered JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_issuer(&[&issuer]);
    v.set_audience(&[&issuer]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(&a.token, &key, &v)
        .expect("verifies with issuer and audience checked")
        .claims;
    assert_eq!(claims["tid"], a.tenant_id.as_str());
    assert_eq!(claims["iss"], issuer.as_str());

    // The checks are real: another issuer or audience is refused.
    let mut wrong = v.clone();
    wrong.set_issuer(&["tenantd"]);
    assert!(jsonwebtoken::decode::<Value>(&a.token, &key, &wrong).is_err());
    let mut wrong = v.clone();
    wrong.set_audience(&["https://other.example"]);
    assert!(jsonwebtoken::decode::<Value>(&a.token, &key, &wrong).is_err());
}

#[tokio::test]
async fn clear_keys_of_an_older_release_are_sealed_at_start_and_a_wrong_master_key_stops_it() {
    let app = TestApp::spawn().await;
    // A key as a release before sealing stored it, newest, so it signs after the restart.
    let seed = [42u8; 32];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    app.insert_clear_signing_key("legacy", &seed, &public).await;

    let config = app.state.config.clone();
    let (restarted, _) = tenantd_server::build_state(config.clone())
        .await
        .expect("restart");
    let legacy = app
        .stored_signing_keys()
        .await
        .into_iter()
        .find(|(kid, _)| kid == "legacy")
        .unwrap()
        .1;
    assert_ne!(legacy, seed.to_vec(), "sealed in place");
    assert!(!legacy.windows(32).any(|w| w == seed), "no clear copy left");
    // It still signs: a token of the restarted node verifies with the legacy public key.
    let token = restarted.keys.issue("u", "t", "owner", "s", 0).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(),
        Some("legacy")
    );
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&[restarted.keys.issuer()]);
    let key =
        jsonwebtoken::DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public)).unwrap();
    jsonwebtoken::decode::<Value>(&token, &key, &v).expect("signed by the legacy key");

    // A wrong master key, or a missing file once keys are sealed: a one-line start error,
    // never a silent new key.
    let mut wrong = config.clone();
    wrong.master_key = MasterKeySource::Value(
        base64::engine::general_purpose::STANDARD
            .encode([9u8; 32])
            .into(),
    );
    let e = tenantd_server::build_state(wrong)
        .await
        .err()
        .expect("wrong master key")
        .to_string();
    assert!(e.contains("master key does not open"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let mut missing = config.clone();
    missing.master_key = MasterKeySource::File(app.dir.join("nowhere").join("master.key"));
    let e = tenantd_server::build_state(missing)
        .await
        .err()
        .expect("missing master key")
        .to_string();
    assert!(e.contains("missing"), "{e}");
    assert!(
        !app.dir.join("nowhere").join("master.key").exists(),
        "no new key was made"
    );
    assert_eq!(
        app.stored_signing_keys().await.len(),
        2,
        "no new signing key either"
    );
}

#[tokio::test]
async fn the_cli_rotates_keys_sealed_and_refuses_a_wrong_master_key_in_one_line() {
    let app = TestApp::spawn().await;
    let out = app.cli(&["keys", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = app.stored_signing_keys().await;
    assert_eq!(stored.len(), 2, "the CLI added a key");
    assert!(
        stored.iter().all(|(_, v)| v.starts_with(b"TDS1")),
        "the CLI's key is sealed too"
    );
    // The running node picks the new key up and signs with it.
    app.state
        .keys
        .reload(app.state.catalog.as_ref())
        .await
        .unwrap();
    let token = app.state.keys.issue("u", "t", "owner", "s", 0).unwrap();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    assert_eq!(kid, stored[1].0);

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tenantd"));
    cmd.args(["keys", "rotate", "--data-dir"])
        .arg(&app.dir)
        .env("TENANTD_PASSWORD_HASHING", "insecure-fast-for-tests")
        .env(
            "TENANTD_MASTER_KEY",
            base64::engine::general_purpose::STANDARD.encode([1u8; 32]),
        );
    if let Some(pg) = &app.pg {
        let cfg = app.dir.join("tenantd.toml");
        std::fs::write(&cfg, pg.toml()).unwrap();
        cmd.arg("--config").arg(cfg);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("master key does not open"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(
        app.stored_signing_keys().await.len(),
        2,
        "nothing was written"
    );
}
