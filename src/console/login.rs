//! The console's login: a form where the token from `--console-token-file` is typed
//! once; the right token gets a random session cookie (HttpOnly, SameSite=Strict) that
//! every page then requires. Tokens are compared as SHA-256 digests in constant time.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::access::SecretDigest;
use axum::Router;
use axum::extract::{Form, Request, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use super::pages;

/// The session cookie's name.
const COOKIE_NAME: &str = "meshd_console";

/// How many sessions are remembered; the oldest is forgotten first.
const SESSIONS: usize = 256;

/// The token that logs in, and the sessions it opened.
#[derive(Clone)]
pub struct ConsoleLogin {
    digest: SecretDigest,
    sessions: Arc<Mutex<VecDeque<String>>>,
}

impl std::fmt::Debug for ConsoleLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleLogin(..)")
    }
}

impl ConsoleLogin {
    /// A login with `token`.
    pub fn new(token: &str) -> Self {
        Self {
            digest: SecretDigest::of(token),
            sessions: Arc::default(),
        }
    }

    fn accepts(&self, token: &str) -> bool {
        SecretDigest::of(token.trim()).matches(&self.digest)
    }

    fn open_session(&self) -> String {
        let session = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut sessions = self.sessions.lock();
        if sessions.len() == SESSIONS {
            sessions.pop_front();
        }
        sessions.push_back(session.clone());
        session
    }

    fn has_session(&self, headers: &HeaderMap) -> bool {
        let sessions = self.sessions.lock();
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| {
                name == COOKIE_NAME
                    && sessions
                        .iter()
                        .any(|s| bool::from(s.as_bytes().ct_eq(value.as_bytes())))
            })
    }
}

/// `pages` behind the login, with the login form at `/login`.
pub fn protect(pages: Router, login: ConsoleLogin) -> Router {
    let form = Router::new()
        .route("/login", get(form_page).post(submit))
        .with_state(login.clone());
    pages
        .layer(axum::middleware::from_fn_with_state(login, require_session))
        .merge(form)
}

async fn require_session(
    State(login): State<ConsoleLogin>,
    request: Request,
    next: Next,
) -> Response {
    if login.has_session(request.headers()) {
        next.run(request).await
    } else {
        (StatusCode::SEE_OTHER, [(LOCATION, "/login")]).into_response()
    }
}

async fn form_page() -> Response {
    pages::login(None).into_response()
}

#[derive(serde::Deserialize)]
struct Submitted {
    token: String,
}

async fn submit(State(login): State<ConsoleLogin>, Form(form): Form<Submitted>) -> Response {
    if !login.accepts(&form.token) {
        return (
            StatusCode::UNAUTHORIZED,
            pages::login(Some("That is not the console's token.")),
        )
            .into_response();
    }
    let cookie = format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict",
        login.open_session()
    );
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, "/".to_string()), (SET_COOKIE, cookie)],
    )
        .into_response()
}
