//! ServiceAccount tokens: TokenRequest issues tokens with audiences and expiry (what
//! kubelet does for a projected token), TokenReview validates them as the real server
//! does (audience intersection, expiry, deleted ServiceAccount), API-audience tokens
//! authenticate requests in RBAC mode and others do not, and TokenReview itself is
//! authorized by RBAC like any cluster-scoped create.

use std::time::Duration;

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec},
    core::v1::{ConfigMap, ServiceAccount},
    rbac::v1::ClusterRole,
};

use super::*;

const AUDIENCE: &str = "mcp-operator.dev";

async fn service_account(client: &Client, ns: &str, name: &str) -> ServiceAccount {
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap()
}

async fn request_token(
    client: &Client,
    ns: &str,
    name: &str,
    audiences: &[&str],
    seconds: Option<i64>,
) -> Result<TokenRequest, kube::Error> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            expiration_seconds: seconds,
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_subresource::<_, TokenRequest>("token", name, &PostParams::default(), &request)
        .await
}

async fn review(client: &Client, token: &str, audiences: &[&str]) -> Value {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: Some(audiences.iter().map(|a| (*a).to_owned()).collect()),
        },
        ..TokenReview::default()
    };
    let answer = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    serde_json::to_value(answer.status.unwrap()).unwrap()
}

#[tokio::test]
async fn token_request_issues_audience_bound_expiring_tokens_that_token_review_checks() {
    let (server, client) = start(ApiServerOptions::default()).await;
    let sa = service_account(&client, "default", "agent").await;

    let issued = request_token(&client, "default", "agent", &[AUDIENCE], Some(600))
        .await
        .unwrap();
    let status = issued.status.unwrap();
    let token = status.token;
    assert_eq!(token.split('.').count(), 3, "JWT-shaped");
    let left =
        status.expiration_timestamp.0.as_second() - k8s_openapi::jiff::Timestamp::now().as_second();
    assert!((590..=600).contains(&left), "expires in {left} s");
    assert_eq!(issued.spec.audiences, [AUDIENCE]);

    let ok = review(&client, &token, &[AUDIENCE]).await;
    assert_eq!(ok["authenticated"], true, "{ok}");
    assert_eq!(
        ok["user"]["username"],
        "system:serviceaccount:default:agent"
    );
    assert_eq!(ok["user"]["uid"], json!(sa.metadata.uid.unwrap()));
    assert!(
        ok["user"]["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("system:serviceaccounts:default"))
    );
    assert_eq!(ok["audiences"], json!([AUDIENCE]));

    // Another audience (here: the API server's, the default of a review) is refused.
    let wrong = review(&client, &token, &[]).await;
    assert_ne!(wrong["authenticated"], true, "{wrong}");
    assert!(
        wrong["error"].as_str().unwrap().contains("audiences"),
        "{wrong}"
    );
    let junk = review(&client, "not-a-token", &[AUDIENCE]).await;
    assert_ne!(junk["authenticated"], true);
    assert_eq!(
        junk["error"],
        "[invalid bearer token, token not issued by this server]"
    );
    assert_eq!(server.token_reviews(), 3);

    // The API's limits on expirationSeconds; no token for a missing ServiceAccount.
    let short = api_error(
        request_token(&client, "default", "agent", &[AUDIENCE], Some(60))
            .await
            .unwrap_err(),
    );
    assert_eq!((short.code, short.reason.as_str()), (422, "Invalid"));
    assert!(
        short.message.contains("less than 10 minutes"),
        "{}",
        short.message
    );
    let missing = api_error(
        request_token(&client, "default", "nobody", &[AUDIENCE], None)
            .await
            .unwrap_err(),
    );
    assert_eq!(missing.code, 404);

    // Expiry (the handle issues any lifetime).
    let brief =
        server.issue_service_account_token("default", "agent", &[AUDIENCE], Duration::from_secs(1));
    assert_eq!(
        review(&client, &brief, &[AUDIENCE]).await["authenticated"],
        true
    );
    // Watched until it lapses (its lifetime is the test's 1 s, not a guessed sleep).
    let expired = crate::support::eventually::eventually(
        "the 1 s token to be refused",
        Duration::from_secs(10),
        async || {
            let r = review(&client, &brief, &[AUDIENCE]).await;
            if r["authenticated"] == true {
                Err(r)
            } else {
                Ok(r)
            }
        },
    )
    .await;
    assert!(
        expired["error"].as_str().unwrap().contains("expired"),
        "{expired}"
    );

    // Deleting the ServiceAccount revokes its tokens.
    Api::<ServiceAccount>::namespaced(client.clone(), "default")
        .delete("agent", &DeleteParams::default())
        .await
        .unwrap();
    let revoked = review(&client, &token, &[AUDIENCE]).await;
    assert_ne!(revoked["authenticated"], true);
    assert!(
        revoked["error"].as_str().unwrap().contains("deleted"),
        "{revoked}"
    );
}

#[tokio::test]
async fn api_audience_tokens_authenticate_requests_and_token_review_needs_rbac() {
    let (server, admin) = start(ApiServerOptions::default()).await;
    service_account(&admin, "default", "gateway").await;
    // A projected token for the API server (the default audience) authenticates the
    // ServiceAccount: RBAC then refuses what it was not granted (403, not 401).
    let api_token = request_token(&admin, "default", "gateway", &[], None)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let as_gateway = client_with_token(&server, &api_token);
    let refused = api_error(
        Api::<ConfigMap>::namespaced(as_gateway.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 403, "{}", refused.message);
    // A token for another audience is not a credential for the API server.
    let mcp_token = request_token(&admin, "default", "gateway", &[AUDIENCE], None)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let wrong = api_error(
        Api::<ConfigMap>::namespaced(client_with_token(&server, &mcp_token), "default")
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(wrong.code, 401);

    // TokenReview is a cluster-scoped create: refused until the shipped ClusterRole is bound.
    let reviews = Api::<TokenReview>::all(as_gateway.clone());
    let body = TokenReview {
        spec: TokenReviewSpec {
            token: Some(mcp_token.clone()),
            audiences: Some(vec![AUDIENCE.into()]),
        },
        ..TokenReview::default()
    };
    let denied = api_error(
        reviews
            .create(&PostParams::default(), &body)
            .await
            .unwrap_err(),
    );
    assert_eq!(denied.code, 403);
    assert!(
        denied.message.contains(
            r#"cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope"#
        ),
        "{}",
        denied.message
    );
    let role: ClusterRole = serde_yaml::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/rbac/gateway_tokenreview_role.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = mcp_operator::controller::token_review::cluster_role_binding(vec![
        k8s_openapi::api::rbac::v1::Subject {
            api_group: None,
            kind: "ServiceAccount".into(),
            name: "gateway".into(),
            namespace: Some("default".into()),
        },
    ]);
    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let answer = reviews.create(&PostParams::default(), &body).await.unwrap();
    assert_eq!(answer.status.unwrap().authenticated, Some(true));
}

fn client_with_token(server: &ApiServerHandle, token: &str) -> Client {
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.headers.push((
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    ));
    Client::try_from(config).unwrap()
}
