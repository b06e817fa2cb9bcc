//! The server handle: binds 127.0.0.1 on a random port, serves the router (wrapped in
//! the fault-injection and RBAC layers) in a task, writes kubeconfigs and builds kube
//! clients for it (as admin or as a ServiceAccount), and stops when dropped.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{net::TcpListener, task::JoinHandle};

use super::{
    error::{ApiResult, ApiServerError},
    faults::{self, Faults},
    handlers, rbac,
    state::{ApiServerOptions, State},
};

/// The embedded API server.
pub struct ApiServer;

impl ApiServer {
    /// Starts a server on 127.0.0.1 with a random port.
    pub async fn start(options: ApiServerOptions) -> ApiResult<ApiServerHandle> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(ApiServerError::Bind)?;
        let addr = listener.local_addr().map_err(ApiServerError::Bind)?;
        let faults = Arc::new(Faults::new(options.faults.iter().cloned()));
        let state = Arc::new(State::new(options, faults.clone()));
        // The last layer added runs first: faults, then authentication/authorization.
        let app = handlers::router(state.clone())
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                rbac::layer,
            ))
            .layer(axum::middleware::from_fn_with_state(faults, faults::layer));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "embedded API server stopped");
            }
        });
        Ok(ApiServerHandle {
            addr,
            state,
            task,
            kubeconfig: Mutex::new(None),
        })
    }
}

/// A running server; dropping it stops it (open watches end).
pub struct ApiServerHandle {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
    kubeconfig: Mutex<Option<PathBuf>>,
}

impl ApiServerHandle {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server (context `mcp-operator-dev`, namespace `default`),
    /// authenticating as the cluster admin.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_with_user("developer", "{}", "default")
    }

    /// A kubeconfig acting as ServiceAccount `namespace/name` (default namespace: the
    /// ServiceAccount's), for RBAC checks with kubectl. It impersonates the account
    /// (`as:`) rather than carrying a token: kubectl sends bearer tokens only over TLS,
    /// and this server speaks plain HTTP.
    pub fn kubeconfig_for_service_account(&self, namespace: &str, name: &str) -> String {
        let user = format!("{{as: \"system:serviceaccount:{namespace}:{name}\"}}");
        self.kubeconfig_with_user(&format!("{namespace}-{name}"), &user, namespace)
    }

    fn kubeconfig_with_user(&self, user_name: &str, user: &str, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mcp-operator-dev\n  cluster:\n    server: {}\nusers:\n- name: {user_name}\n  user: {user}\ncontexts:\n- name: mcp-operator-dev\n  context:\n    cluster: mcp-operator-dev\n    user: {user_name}\n    namespace: {namespace}\ncurrent-context: mcp-operator-dev\n",
            self.url()
        )
    }

    /// A bearer token authenticating as ServiceAccount `namespace/name`: requests with
    /// it are authorized by the RBAC objects stored in the server.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        self.state.tokens.mint_service_account(namespace, name)
    }

    /// A JWT-shaped token for ServiceAccount `namespace/name` with these audiences and
    /// lifetime, as TokenRequest issues (but any lifetime, and the ServiceAccount need not
    /// exist; when it does, deleting it revokes the token). TokenReview accepts it for
    /// its audiences until it expires; with the API server's audience
    /// ([`API_AUDIENCE`](super::API_AUDIENCE)) it also authenticates requests.
    pub fn issue_service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[&str],
        lifetime: Duration,
    ) -> String {
        let uid = {
            let inner = self.state.lock();
            inner
                .registry
                .find("", "v1", "serviceaccounts")
                .cloned()
                .and_then(|rt| inner.get(&rt, namespace, name).ok())
                .and_then(|sa| {
                    sa.pointer("/metadata/uid")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned)
                })
        };
        let audiences = audiences.iter().map(|a| (*a).to_owned()).collect();
        self.state
            .issued
            .issue(namespace, name, uid, audiences, lifetime)
            .0
    }

    /// TokenReview requests served so far (tests count a client's calls with it).
    pub fn token_reviews(&self) -> u64 {
        self.state.issued.reviews()
    }

    /// A kubeconfig for this server authenticating with `token` (no impersonation): a
    /// client given it is held to RBAC as the token's ServiceAccount. kube-rs sends the
    /// token over plain HTTP; kubectl does not (see
    /// [`kubeconfig_for_service_account`](Self::kubeconfig_for_service_account)).
    pub fn kubeconfig_with_token(&self, token: &str, namespace: &str) -> String {
        let user = format!("{{token: \"{token}\"}}");
        self.kubeconfig_with_user("token-user", &user, namespace)
    }

    /// A kube client authenticating as ServiceAccount `namespace/name` (default
    /// namespace: the ServiceAccount's).
    pub fn service_account_client(&self, namespace: &str, name: &str) -> ApiResult<kube::Client> {
        let url: http::Uri = self.url().parse()?;
        let mut config = kube::Config::new(url);
        config.default_namespace = namespace.to_owned();
        let token = self.service_account_token(namespace, name);
        let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| ApiServerError::bad_request(e.to_string()))?;
        config.headers.push((http::header::AUTHORIZATION, value));
        Ok(kube::Client::try_from(config)?)
    }

    /// The fault rules: set, remove and count injected faults while the server runs.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Writes the kubeconfig to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> ApiResult<()> {
        std::fs::write(path, self.kubeconfig()).map_err(|source| ApiServerError::Kubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    /// A kubeconfig file in the temp directory, written on first use, removed on drop.
    pub fn kubeconfig_path(&self) -> ApiResult<PathBuf> {
        let mut slot = self
            .kubeconfig
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(path) = slot.as_ref() {
            return Ok(path.clone());
        }
        let path = std::env::temp_dir().join(format!(
            "mcp-operator-apiserver-{}.kubeconfig",
            self.addr.port()
        ));
        self.write_kubeconfig(&path)?;
        *slot = Some(path.clone());
        Ok(path)
    }

    /// A kube client talking to this server, default namespace `default`.
    pub fn client(&self) -> ApiResult<kube::Client> {
        let url: http::Uri = self.url().parse()?;
        let config = kube::Config::new(url);
        Ok(kube::Client::try_from(config)?)
    }
}

impl Drop for ApiServerHandle {
    fn drop(&mut self) {
        self.task.abort();
        let slot = self
            .kubeconfig
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(path) = slot.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}
