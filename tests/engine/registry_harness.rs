//! The registry harness itself (support/registry.rs): each configuration
//! starts a real docker-registry that answers as configured, so a failing
//! distribution test points at microsnap and not at its test registry.
use crate::support::registry::{self, Auth, Config, TestRegistry, TokenAuth};
use crate::support::{make_image, IMAGE_REF};

#[test]
fn plain_registry_answers_without_auth() {
    let r = TestRegistry::start(Config::plain());
    assert!(r.host().starts_with("127.0.0.1:"), "{}", r.host());
    assert!(r.ca_file().is_none());
    let v2 = r.request("GET", "/v2/", &[], false).expect("GET /v2/");
    assert_eq!(v2.status, 200, "{}", v2.text());
    assert_eq!(
        v2.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert!(r.config_path().is_file());
    assert!(r.storage_dir().is_dir());
    assert_eq!(r.manifest_digest("none/here", "latest"), None);
    assert!(r.tags("none/here").is_empty());
}

/// skopeo copies the test image in; untag, delete and garbage-collect
/// behave as distribution documents: an untagged manifest survives a plain
/// GC and goes with --delete-untagged, together with its blobs.
#[test]
fn registry_stores_deletes_and_collects_garbage() {
    let r = TestRegistry::start(Config::plain());
    let layout = r.scratch("layout");
    make_image(&layout, IMAGE_REF, &[]);
    for tag in ["v1", "v2"] {
        skopeo_copy(
            &format!("oci:{}:{IMAGE_REF}", layout.display()),
            &format!("docker://{}", r.reference(&format!("smoke/img:{tag}"))),
        );
    }
    assert_eq!(r.tags("smoke/img"), ["v1", "v2"]);
    let image_digest = r.manifest_digest("smoke/img", "v1").expect("v1 manifest");
    assert_eq!(
        r.manifest_digest("smoke/img", "v2").as_ref(),
        Some(&image_digest)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&r.manifest("smoke/img", "v1")).expect("manifest json");
    let mut referenced: Vec<String> = std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().unwrap())
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    referenced.push(image_digest.clone());
    referenced.sort();
    assert_eq!(r.stored_blobs(), referenced);

    // Nothing unreferenced: GC keeps everything.
    let out = r.garbage_collect(true);
    assert!(out.contains("blobs marked"), "{out}");
    assert_eq!(r.stored_blobs(), referenced);

    // Untagged (storage), still there by digest and through a plain GC.
    r.untag("smoke/img", "v1");
    r.untag("smoke/img", "v2");
    assert!(r.tags("smoke/img").is_empty());
    assert_eq!(
        r.manifest_digest("smoke/img", &image_digest).as_deref(),
        Some(image_digest.as_str())
    );
    r.garbage_collect(false);
    assert_eq!(r.stored_blobs(), referenced);
    // --delete-untagged takes the manifest and then its blobs.
    r.garbage_collect(true);
    assert_eq!(r.manifest_digest("smoke/img", &image_digest), None);
    assert!(r.stored_blobs().is_empty(), "{:?}", r.stored_blobs());

    // delete_manifest: through the API, every tag on it goes too.
    skopeo_copy(
        &format!("oci:{}:{IMAGE_REF}", layout.display()),
        &format!("docker://{}", r.reference("smoke/img:v3")),
    );
    r.delete_manifest("smoke/img", "v3");
    assert_eq!(r.manifest_digest("smoke/img", "v3"), None);
    assert!(r.tags("smoke/img").is_empty());
    r.garbage_collect(false);
    assert!(r.stored_blobs().is_empty(), "{:?}", r.stored_blobs());
}

fn skopeo_copy(from: &str, to: &str) {
    let out = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .args([from, to])
        .output()
        .expect("skopeo is needed by the registry tests (.ci/run installs it)");
    assert!(
        out.status.success(),
        "skopeo copy {from} {to}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn htpasswd_registry_wants_basic_credentials() {
    let r = TestRegistry::start(Config::htpasswd("alice", "pa55-word"));
    let anonymous = r.request("GET", "/v2/", &[], false).expect("GET /v2/");
    assert_eq!(anonymous.status, 401);
    let challenge = anonymous.header("www-authenticate").unwrap_or("");
    assert!(challenge.starts_with("Basic "), "{challenge}");

    let wrong = registry::basic("alice", "nope");
    let denied = r
        .request("GET", "/v2/", &[("Authorization", &wrong)], false)
        .expect("GET /v2/");
    assert_eq!(denied.status, 401);

    let ok = r.get("/v2/");
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[test]
fn token_registry_accepts_the_token_servers_tokens_only() {
    let r = TestRegistry::start(Config::token("bob", "t0ken-pw"));
    let anonymous = r.request("GET", "/v2/", &[], false).expect("GET /v2/");
    assert_eq!(anonymous.status, 401);
    let server = r.token_server().expect("token server");
    let challenge = anonymous.header("www-authenticate").unwrap_or("");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(&server.realm),
        "{challenge}"
    );
    assert!(challenge.contains(registry::TOKEN_SERVICE), "{challenge}");

    // The full flow as a client does it: credentials to the realm, the
    // token to the registry.
    let agent = registry::http_agent(None);
    let scope = "repository:team/app:pull,push";
    let token = server
        .token(&agent, Some(("bob", "t0ken-pw")), &[scope])
        .expect("token");
    let bearer = format!("Bearer {token}");
    let ok = r
        .request("GET", "/v2/", &[("Authorization", &bearer)], false)
        .expect("GET /v2/");
    assert_eq!(ok.status, 200, "{}", ok.text());
    // Granted for team/app (no such repository yet: 404, not 401) ...
    let tags = r
        .request(
            "GET",
            "/v2/team/app/tags/list",
            &[("Authorization", &bearer)],
            false,
        )
        .expect("tags");
    assert_eq!(tags.status, 404, "{}", tags.text());
    // ... and for nothing else.
    let other = r
        .request(
            "GET",
            "/v2/team/other/tags/list",
            &[("Authorization", &bearer)],
            false,
        )
        .expect("tags");
    assert_eq!(other.status, 401, "{}", other.text());

    // Wrong credentials and anonymous callers get no token.
    assert!(server
        .token(&agent, Some(("bob", "wrong")), &[scope])
        .is_err());
    assert!(server.token(&agent, None, &[scope]).is_err());
    // A token the registry did not get from its issuer is refused.
    let forged = format!("Bearer {}x", &token[..token.len() - 1]);
    let refused = r
        .request("GET", "/v2/", &[("Authorization", &forged)], false)
        .expect("GET /v2/");
    assert_eq!(refused.status, 401);

    let log = server.requests();
    assert_eq!(server.tokens_issued(), 1, "{log:?}");
    assert!(
        !serde_json::to_string(&log).unwrap().contains("t0ken-pw"),
        "the token server logs no password"
    );
}

#[test]
fn token_server_grants_anonymous_pull_only_when_configured() {
    let r = TestRegistry::start(Config {
        auth: Auth::Token(TokenAuth {
            user: "bob".into(),
            password: "pw".into(),
            anonymous_pull: true,
            lifetime_seconds: 300,
        }),
        tls: false,
    });
    let server = r.token_server().unwrap();
    let agent = registry::http_agent(None);
    server
        .token(&agent, None, &["repository:pub/img:pull,push"])
        .expect("anonymous token");
    let granted = &server.requests()[0]["granted"];
    assert_eq!(
        granted,
        &serde_json::json!([{"type": "repository", "name": "pub/img", "actions": ["pull"]}])
    );
}

#[test]
fn short_lived_tokens_expire_at_the_registry() {
    let r = TestRegistry::start(Config {
        auth: Auth::Token(TokenAuth {
            user: "bob".into(),
            password: "pw".into(),
            anonymous_pull: false,
            lifetime_seconds: 1,
        }),
        tls: false,
    });
    let agent = registry::http_agent(None);
    let server = r.token_server().unwrap();
    let token = server.token(&agent, Some(("bob", "pw")), &[]).unwrap();
    let bearer = format!("Bearer {token}");
    // exp is in whole seconds: accepted now, refused two seconds on.
    let first = r
        .request("GET", "/v2/", &[("Authorization", &bearer)], false)
        .unwrap();
    assert_eq!(first.status, 200);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let later = r
        .request("GET", "/v2/", &[("Authorization", &bearer)], false)
        .unwrap();
    assert_eq!(later.status, 401, "the token outlived its lifetime");
}

#[test]
fn tls_registry_is_verified_against_its_ca() {
    let r = TestRegistry::start(Config::htpasswd("carol", "pw").with_tls());
    assert!(r.base_url().starts_with("https://"));
    let ca = r.ca_file().expect("ca file");
    let ok = r.get("/v2/");
    assert_eq!(ok.status, 200, "{}", ok.text());

    // Without the CA (system roots) the certificate is refused ...
    let untrusting = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .build()
        .into();
    let err = registry::send(&untrusting, "GET", &format!("{}/v2/", r.base_url()), &[]);
    assert!(
        err.is_err(),
        "an unknown CA must fail the handshake: {err:?}"
    );
    // ... and plain HTTP to the TLS port gets no registry answer.
    let plain = registry::send(
        &registry::http_agent(None),
        "GET",
        &format!("http://{}/v2/", r.host()),
        &[],
    );
    assert!(
        plain.map(|resp| resp.status == 400).unwrap_or(true),
        "plain HTTP to the TLS port"
    );

    // skopeo (a client that is not ours) trusts it with the CA too.
    if crate::support::tool_available("skopeo") {
        let certs = r.scratch("certs.d");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(ca, certs.join("ca.crt")).unwrap();
        let out = std::process::Command::new("skopeo")
            .args(["list-tags", "--creds", "carol:pw"])
            .arg(format!("--cert-dir={}", certs.display()))
            .arg(format!("docker://{}/none/here", r.host()))
            .output()
            .expect("skopeo");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Past TLS and auth to the registry's answer: no such repository.
        assert!(
            !out.status.success() && stderr.contains("404 (Not Found)"),
            "{stderr}"
        );
    }
}

#[test]
fn token_flow_over_tls() {
    let r = TestRegistry::start(Config::token("dave", "pw").with_tls());
    let server = r.token_server().unwrap();
    assert!(
        server.realm.starts_with("https://127.0.0.1:"),
        "{}",
        server.realm
    );
    let ok = r.get("/v2/");
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[test]
fn base64_matches_the_standard_encoding() {
    assert_eq!(registry::base64(b""), "");
    assert_eq!(registry::base64(b"f"), "Zg==");
    assert_eq!(registry::base64(b"fo"), "Zm8=");
    assert_eq!(registry::base64(b"foo"), "Zm9v");
    assert_eq!(registry::base64(b"user:pa55"), "dXNlcjpwYTU1");
}
