//! Routes and handlers. Every page and every action signs in again in its
//! own transaction (db::begin) with the session's token; every POST carries
//! the session's CSRF token; every answer carries a strict
//! Content-Security-Policy and `Cache-Control: no-store`.
//!
//! A POST answers with a redirect (303) to a page, so a reload never
//! repeats an action; a new API token travels from the POST to that page in
//! the server-side session and is taken out of it when shown, so a reload
//! does not show it again.

use crate::db::{self, Caller, DbError, DbResult};
use crate::session::{self, Flash, Reveal, View};
use crate::views::*;
use crate::App;
use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

type AppState = State<Arc<App>>;

/// The longest token accepted at sign-in (the extension refuses JWTs over
/// 16 KB; API tokens are 40-odd characters).
const MAX_TOKEN: usize = 16 * 1024;
/// Audit rows per page.
const AUDIT_PAGE: i64 = 25;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/service-users") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(
            "/service-users",
            get(service_users).post(create_service_user),
        )
        .route("/service-users/{id}", get(service_user))
        .route("/service-users/{id}/edit", post(edit))
        .route("/service-users/{id}/suspend", post(suspend))
        .route("/service-users/{id}/reactivate", post(reactivate))
        .route("/service-users/{id}/delete", get(delete_form).post(delete))
        .route("/service-users/{id}/tokens", post(create_token))
        .route(
            "/service-users/{id}/tokens/{token}/rotate",
            post(rotate_token),
        )
        .route(
            "/service-users/{id}/tokens/{token}/revoke",
            post(revoke_token),
        )
        .route("/audit", get(audit))
        .route("/credentials", get(credentials))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::from_fn_with_state(app.clone(), headers))
        .with_state(app)
}

/// A console on loopback answers only to a loopback host name: a page of
/// another site whose name was made to resolve to 127.0.0.1 (DNS
/// rebinding) gets nothing.
fn loopback_host(h: &HeaderMap) -> bool {
    let Some(host) = h.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

/// Security headers on every answer, and one log line per request: method,
/// path (ids only: no token is ever in a URL) and status.
async fn headers(State(app): AppState, req: Request<axum::body::Body>, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut res = if app.config.listen.ip().is_loopback() && !loopback_host(req.headers()) {
        error_page(
            StatusCode::MISDIRECTED_REQUEST,
            "this console answers only on its loopback address",
            "open it as http://127.0.0.1 or http://localhost",
            false,
        )
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // same-origin, not no-referrer: with no-referrer Chromium sends `Origin:
    // null` on the console's own forms, which same_origin() refuses.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(
        h,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    eprintln!("console: {method} {path} {}", res.status().as_u16());
    res
}

fn html(status: StatusCode, t: impl Template) -> Response {
    match t.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            eprintln!("console: template: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

fn error_page(status: StatusCode, message: &str, hint: &str, signed_in: bool) -> Response {
    html(
        status,
        ErrorPage {
            status: status.as_u16(),
            message: message.into(),
            hint: hint.into(),
            code: String::new(),
            signed_in,
        },
    )
}

fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

/// The HTTP status for an extension error's SQLSTATE.
fn status_of(e: &DbError) -> StatusCode {
    match e.code() {
        Some("42501") => StatusCode::FORBIDDEN,
        Some("P0002") => StatusCode::NOT_FOUND,
        Some("28000") => StatusCode::UNAUTHORIZED,
        Some(c) if c.starts_with("22") || c.starts_with("23") => StatusCode::BAD_REQUEST,
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn flash_of(e: &DbError) -> Flash {
    Flash::Error {
        message: e.message(),
        hint: e.hint(),
        code: e.code().map(str::to_string),
    }
}

impl App {
    fn session(&self, headers: &HeaderMap) -> Option<View> {
        session::cookie(headers, session::COOKIE).and_then(|id| self.sessions.get(&id))
    }

    /// A POST's session: signed in, the CSRF token of the session, and (when
    /// the browser says where the form came from) from this console.
    fn post_session(&self, headers: &HeaderMap, csrf: &str) -> Result<View, Response> {
        let Some(s) = self.session(headers) else {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "you are not signed in",
                "sign in first",
                false,
            ));
        };
        if !same_origin(headers) || !session::same(csrf, &s.csrf) {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "the form was refused: it did not come from this console's page",
                "reload the page and try again",
                true,
            ));
        }
        Ok(s)
    }

    /// Steps 1 to 3 of db.rs, then: the caller must be an admin of an
    /// organization (checked on every request, so a demoted admin is out at
    /// once).
    async fn admin<'a>(
        &self,
        client: &'a mut deadpool_postgres::Object,
        s: &View,
    ) -> DbResult<Caller<'a>> {
        let c = db::begin(client, &self.config.role, &s.token).await?;
        if !c.me.is_org_admin() {
            return Err(DbError::SignedOut(
                "this console is for organization admins, and you are no longer one".into(),
            ));
        }
        Ok(c)
    }

    /// The frame of a signed-in page, with the flash the last action left
    /// (taken: a reload shows it no more), and the secret it left to show
    /// once, also taken.
    fn frame_and_reveal(&self, s: &View, c: &Caller<'_>) -> (Frame, Option<Reveal>) {
        let (flash, reveal) = self.sessions.take(&s.id);
        let frame = Frame {
            csrf: s.csrf.clone(),
            who: c.me.email.clone(),
            organization: c.me.organization_name.clone().unwrap_or_default(),
            flash,
        };
        (frame, reveal)
    }

    /// The frame of a page that shows no secret (one left unshown is
    /// dropped all the same).
    fn frame(&self, s: &View, c: &Caller<'_>) -> Frame {
        self.frame_and_reveal(s, c).0
    }

    /// The session no longer authenticates: it ends, and the browser is
    /// told why.
    fn sign_out(&self, s: &View, message: &str) -> Response {
        self.sessions.remove(&s.id);
        signed_out(message, self.config.secure_cookies)
    }

    /// A GET page's answer: the page, or, when the session no longer
    /// authenticates, back to sign-in; or the extension's error, as its
    /// message and hint.
    fn page(&self, s: &View, r: DbResult<Response>) -> Response {
        match r {
            Ok(r) => r,
            Err(DbError::SignedOut(m)) => self.sign_out(s, &m),
            Err(e) => html(
                status_of(&e),
                ErrorPage {
                    status: status_of(&e).as_u16(),
                    message: e.message(),
                    hint: e.hint().unwrap_or_default(),
                    code: e.code().unwrap_or_default().to_string(),
                    signed_in: true,
                },
            ),
        }
    }

    /// A POST's answer: a redirect with the outcome as a flash (and the new
    /// secret, if any, to show once), to where the action says, or back to
    /// `back` with the error.
    fn after(&self, s: &View, r: DbResult<Done>, back: &str) -> Response {
        match r {
            Ok(done) => {
                self.sessions.set_flash(&s.id, done.flash);
                if let Some(reveal) = done.reveal {
                    self.sessions.set_reveal(&s.id, reveal);
                }
                Redirect::to(&done.to).into_response()
            }
            Err(DbError::SignedOut(m)) => self.sign_out(s, &m),
            Err(e) => {
                self.sessions.set_flash(&s.id, flash_of(&e));
                Redirect::to(back).into_response()
            }
        }
    }
}

/// What an action did, once its transaction committed: the notice for the
/// next page, that page, and a new secret to show there once.
struct Done {
    flash: Flash,
    to: String,
    reveal: Option<Reveal>,
}

impl Done {
    fn to(to: impl Into<String>, notice: impl Into<String>) -> Self {
        Done {
            flash: Flash::Notice(notice.into()),
            to: to.into(),
            reveal: None,
        }
    }
    fn revealing(mut self, label: impl Into<String>, secret: String) -> Self {
        self.reveal = Some(Reveal {
            label: label.into(),
            secret,
        });
        self
    }
}

/// One transaction as the signed-in admin (db::begin, then the admin check):
/// inside `$body`, `$c` is the Caller; the block evaluates to
/// `DbResult<body's value>`, Ok only once the transaction committed. An
/// error (or `?` in the body) drops the transaction, which rolls it back.
macro_rules! as_admin {
    ($app:expr, $s:expr, |$c:ident| $body:expr) => {
        async {
            let mut client = $app.pool.get().await?;
            let $c = $app.admin(&mut client, $s).await?;
            let out = $body;
            $c.tx.commit().await?;
            Ok::<_, DbError>(out)
        }
        .await
    };
}

/// The session of a POST (post_session), or its refusal, answered at once.
macro_rules! posted {
    ($app:expr, $headers:expr, $csrf:expr) => {
        match $app.post_session(&$headers, &$csrf) {
            Ok(s) => s,
            Err(refusal) => return refusal,
        }
    };
}

/// Appends a Set-Cookie header.
fn set_cookie(r: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn signed_out(message: &str, secure: bool) -> Response {
    let mut r = error_page(
        StatusCode::UNAUTHORIZED,
        message,
        "sign in again with a valid token",
        false,
    );
    set_cookie(
        &mut r,
        &session::set_cookie(session::COOKIE, "", secure, Some(0)),
    );
    r
}

/// When the browser names the form's origin (Origin, or Sec-Fetch-Site), it
/// must be this console.
fn same_origin(h: &HeaderMap) -> bool {
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match (
        h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        h.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (None, _) => true,
        (Some(o), Some(host)) => {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                == Some(host)
        }
        (Some(_), None) => false,
    }
}

// ---------------------------------------------------------------- sign-in

async fn login_form(State(app): AppState, headers: HeaderMap) -> Response {
    if app.session(&headers).is_some() {
        return Redirect::to("/service-users").into_response();
    }
    let existing = session::cookie(&headers, session::LOGIN_COOKIE);
    login_page(&app, existing, StatusCode::OK, None, None)
}

/// The sign-in form, with its double-submit CSRF token: the browser's
/// current one when it has one (so that two tabs, or a page and its
/// sub-requests, do not replace each other's), else a new one.
fn login_page(
    app: &App,
    existing: Option<String>,
    status: StatusCode,
    message: Option<&str>,
    hint: Option<&str>,
) -> Response {
    let csrf = existing
        .filter(|c| c.len() == 43)
        .unwrap_or_else(session::random_id);
    let mut r = html(
        status,
        LoginPage {
            csrf: csrf.clone(),
            message: message.map(str::to_string),
            hint: hint.map(str::to_string),
        },
    );
    let cookie = session::set_cookie(
        session::LOGIN_COOKIE,
        &csrf,
        app.config.secure_cookies,
        Some(3600),
    );
    set_cookie(&mut r, &cookie);
    r
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

async fn login(State(app): AppState, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let expected = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_origin(&headers) || !session::same(&f.csrf, &expected) {
        return login_page(
            &app,
            None,
            StatusCode::FORBIDDEN,
            Some("the sign-in form was refused: it did not come from this console's page"),
            Some("reload the page and try again"),
        );
    }
    let token = f.token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN {
        return login_page(
            &app,
            Some(expected),
            StatusCode::BAD_REQUEST,
            Some("paste an API token or an access JWT"),
            Some("tokens are at most 16 KB"),
        );
    }
    let r = async {
        let mut client = app.pool.get().await?;
        let c = db::begin(&mut client, &app.config.role, token).await?;
        let me = c.me.clone();
        c.tx.commit().await?;
        Ok::<_, DbError>(me)
    }
    .await;
    match r {
        Ok(me) if me.is_org_admin() => {
            let label = me.email.clone();
            let id = app.sessions.create(token.to_string(), label);
            let mut res = Redirect::to("/service-users").into_response();
            let secure = app.config.secure_cookies;
            set_cookie(
                &mut res,
                &session::set_cookie(session::COOKIE, &id, secure, None),
            );
            set_cookie(
                &mut res,
                &session::set_cookie(session::LOGIN_COOKIE, "", secure, Some(0)),
            );
            res
        }
        Ok(_) => login_page(
            &app,
            Some(expected),
            StatusCode::FORBIDDEN,
            Some("this console is for organization admins"),
            Some("sign in with the token of an admin of your organization"),
        ),
        Err(DbError::SignedOut(_)) => login_page(
            &app,
            Some(expected),
            StatusCode::UNAUTHORIZED,
            Some("that token does not authenticate"),
            Some("it may be mistyped, expired or revoked, or its user suspended"),
        ),
        Err(e) => login_page(
            &app,
            Some(expected),
            status_of(&e),
            Some(&e.message()),
            e.hint().as_deref(),
        ),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(app): AppState, headers: HeaderMap, Form(f): Form<CsrfOnly>) -> Response {
    let s = posted!(app, headers, f.csrf);
    app.sessions.remove(&s.id);
    let mut res = Redirect::to("/login").into_response();
    let cookie = session::set_cookie(session::COOKIE, "", app.config.secure_cookies, Some(0));
    set_cookie(&mut res, &cookie);
    res
}

// ---------------------------------------------------------- service users

async fn service_users(State(app): AppState, headers: HeaderMap) -> Response {
    let Some(s) = app.session(&headers) else {
        return to_login();
    };
    let r = as_admin!(app, &s, |c| {
        let users = db::json_list(&c.tx, include_str!("../sql/service_users.sql"), &[]).await?;
        let frame = app.frame(&s, &c);
        html(StatusCode::OK, ServiceUsersPage { frame, users })
    });
    app.page(&s, r)
}

#[derive(Deserialize)]
struct NewServiceUser {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    application_name: String,
    #[serde(default)]
    application_id: String,
    #[serde(default)]
    description: String,
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// An optional uuid field: empty is None; anything else must parse.
fn opt_uuid(s: &str) -> DbResult<Option<Uuid>> {
    match opt(s) {
        None => Ok(None),
        Some(t) => t.parse().map(Some).map_err(|_| DbError::Refused {
            code: "22023".into(),
            message: "the application id is not a uuid".into(),
            hint: Some("leave it empty, or paste the application's uuid".into()),
        }),
    }
}

async fn create_service_user(
    State(app): AppState,
    headers: HeaderMap,
    Form(f): Form<NewServiceUser>,
) -> Response {
    let s = posted!(app, headers, f.csrf);
    let email = f.email.trim();
    let r = as_admin!(app, &s, |c| {
        let application_id = opt_uuid(&f.application_id)?;
        let row = c
            .tx
            .query_one(
                "select user_id, token from identity.create_service_user($1, identity.org_id(), $2, $3, $4)",
                &[
                    &email,
                    &application_id,
                    &opt(&f.application_name),
                    &opt(&f.description),
                ],
            )
            .await?;
        let id: Uuid = row.get(0);
        Done::to(
            format!("/service-users/{id}"),
            format!("service user {email} created"),
        )
        .revealing(format!("the first API token of {email}"), row.get(1))
    });
    app.after(&s, r, "/service-users")
}

async fn service_user(State(app): AppState, headers: HeaderMap, Path(id): Path<Uuid>) -> Response {
    let Some(s) = app.session(&headers) else {
        return to_login();
    };
    let r = as_admin!(app, &s, |c| {
        let user = one_service_user(&c, id).await?;
        let tokens = db::json_list(&c.tx, include_str!("../sql/tokens.sql"), &[&id]).await?;
        let (frame, reveal) = app.frame_and_reveal(&s, &c);
        html(
            StatusCode::OK,
            ServiceUserPage {
                frame,
                user,
                tokens,
                reveal,
            },
        )
    });
    app.page(&s, r)
}

/// A service user of the caller's organization through identity.user_by_id
/// (P0002 when the caller may not see them); a human user is not this
/// console's business and answers the same.
async fn one_service_user(c: &Caller<'_>, id: Uuid) -> DbResult<User> {
    let user: Option<User> = db::json_one(&c.tx, "select identity.user_by_id($1)", &[&id]).await?;
    match user {
        Some(u) if u.is_service_user && u.organization_id == c.me.organization_id => Ok(u),
        _ => Err(DbError::Refused {
            code: "P0002".into(),
            message: "no such service user".into(),
            hint: Some("it may have been deleted; go back to the list".into()),
        }),
    }
}

#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    application_name: String,
    #[serde(default)]
    description: String,
}

async fn edit(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(f): Form<EditForm>,
) -> Response {
    let s = posted!(app, headers, f.csrf);
    let back = format!("/service-users/{id}");
    let r = as_admin!(app, &s, |c| {
        one_service_user(&c, id).await?;
        let changes = serde_json::json!({
            "application_name": opt(&f.application_name),
            "description": opt(&f.description),
        });
        c.tx.execute("select identity.update_user($1, $2)", &[&id, &changes])
            .await?;
        Done::to(&back, "saved")
    });
    app.after(&s, r, &back)
}

#[derive(Deserialize)]
struct SuspendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn suspend(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(f): Form<SuspendForm>,
) -> Response {
    let s = posted!(app, headers, f.csrf);
    let back = format!("/service-users/{id}");
    let r = as_admin!(app, &s, |c| {
        let u = one_service_user(&c, id).await?;
        c.tx.execute(
            "select identity.suspend_user($1, $2)",
            &[&id, &opt(&f.reason)],
        )
        .await?;
        Done::to(
            &back,
            format!("{} suspended: its tokens stop working at once", u.email),
        )
    });
    app.after(&s, r, &back)
}

async fn reactivate(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let s = posted!(app, headers, f.csrf);
    let back = format!("/service-users/{id}");
    let r = as_admin!(app, &s, |c| {
        let u = one_service_user(&c, id).await?;
        c.tx.execute("select identity.reactivate_user($1)", &[&id])
            .await?;
        Done::to(&back, format!("{} reactivated", u.email))
    });
    app.after(&s, r, &back)
}

async fn delete_form(State(app): AppState, headers: HeaderMap, Path(id): Path<Uuid>) -> Response {
    let Some(s) = app.session(&headers) else {
        return to_login();
    };
    let r = as_admin!(app, &s, |c| {
        let user = one_service_user(&c, id).await?;
        let frame = app.frame(&s, &c);
        html(StatusCode::OK, DeletePage { frame, user })
    });
    app.page(&s, r)
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

async fn delete(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(f): Form<DeleteForm>,
) -> Response {
    let s = posted!(app, headers, f.csrf);
    let back = format!("/service-users/{id}/delete");
    let r = as_admin!(app, &s, |c| {
        let u = one_service_user(&c, id).await?;
        if f.confirm.trim() != u.email {
            return Err(DbError::Refused {
                code: "22023".into(),
                message: "the confirmation does not name this service user".into(),
                hint: Some(format!("type {} to delete it", u.email)),
            });
        }
        c.tx.execute("select identity.delete_user($1)", &[&id])
            .await?;
        Done::to(
            "/service-users",
            format!(
                "{} deleted: its tokens are revoked; the audit trail stays",
                u.email
            ),
        )
    });
    app.after(&s, r, &back)
}

// ----------------------------------------------------------------- tokens

#[derive(Deserialize)]
struct NewToken {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    expires_days: String,
}

/// Scopes as typed: separated by commas or spaces.
fn scopes(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn small_int(s: &str, what: &str, allowed: &[i32]) -> DbResult<i32> {
    s.trim()
        .parse::<i32>()
        .ok()
        .filter(|n| allowed.contains(n))
        .ok_or_else(|| DbError::Refused {
            code: "22023".into(),
            message: format!("choose the {what} from the list"),
            hint: None,
        })
}

async fn create_token(
    State(app): AppState,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(f): Form<NewToken>,
) -> Response {
    let s = posted!(app, headers, f.csrf);
    let back = format!("/service-users/{id}");
    let name = f.name.trim();
    let r = as_admin!(app, &s, |c| {
        let days = small_int(&f.expires_days, "expiry", &[1, 7, 30, 90, 365])?;
        one_service_user(&c, id).await?;
        let row = c
            .tx
            .query_one(
                "select token from identity.create_api_token($1, $2, $3::int * interval '1 day', $4)",
                &[&id, &name, &days, &scopes(&f.scopes)],
            )
            .await?;
        Done::to(&back, format!("token {name} created"))
            .revealing(format!("the new token {name}"), row.get(0))
    });
    app.after(&s, r, &back)
}

#[derive(Deserialize)]
struct RotateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    grace_hours: String,
}

async fn rotate_token(
    State(app): AppState,
    headers: HeaderMap,
    Path((id, token)): Path<(Uuid, Uuid)>,
    Form(f): Form<RotateForm>,
) -> Response {
    let s = posted!(app, headers, f.csrf);
    let back = format!("/service-users/{id}");
    let r = as_admin!(app, &s, |c| {
        let hours = small_int(&f.grace_hours, "grace period", &[0, 1, 24, 168])?;
        one_service_user(&c, id).await?;
        let row =
            c.tx.query_one(
                "select token from identity.rotate_api_token($1, $2::int * interval '1 hour')",
                &[&token, &hours],
            )
            .await?;
        let grace = match hours {
            0 => "the old token stopped working".to_string(),
            1 => "the old token works for one more hour".to_string(),
            h => format!("the old token works for {h} more hours"),
        };
        Done::to(&back, format!("token rotated: {grace}"))
            .revealing("the rotated token", row.get(0))
    });
    app.after(&s, r, &back)
}

async fn revoke_token(
    State(app): AppState,
    headers: HeaderMap,
    Path((id, token)): Path<(Uuid, Uuid)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let s = posted!(app, headers, f.csrf);
    let back = format!("/service-users/{id}");
    let r = as_admin!(app, &s, |c| {
        one_service_user(&c, id).await?;
        c.tx.execute("select identity.revoke_api_token($1)", &[&token])
            .await?;
        Done::to(&back, "token revoked")
    });
    app.after(&s, r, &back)
}

// ------------------------------------------------- audit and credentials

#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    /// Keyset paging: rows older than this id (anything else: the newest).
    #[serde(default)]
    before: String,
}

fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn audit(State(app): AppState, headers: HeaderMap, Query(q): Query<AuditQuery>) -> Response {
    let Some(s) = app.session(&headers) else {
        return to_login();
    };
    let before: Option<i64> = q.before.trim().parse().ok();
    let (actor, action, target) = (q.actor.trim(), q.action.trim(), q.target.trim());
    let r = as_admin!(app, &s, |c| {
        // One row more than a page says whether there is an older page.
        let mut rows: Vec<AuditRow> = db::json_list(
            &c.tx,
            include_str!("../sql/audit.sql"),
            &[
                &opt(actor),
                &opt(action),
                &opt(target),
                &before,
                &(AUDIT_PAGE + 1),
            ],
        )
        .await?;
        let older = if rows.len() as i64 > AUDIT_PAGE {
            rows.truncate(AUDIT_PAGE as usize);
            rows.last().map(|r| {
                format!(
                    "actor={}&action={}&target={}&before={}",
                    query_escape(actor),
                    query_escape(action),
                    query_escape(target),
                    r.id
                )
            })
        } else {
            None
        };
        let frame = app.frame(&s, &c);
        html(
            StatusCode::OK,
            AuditPage {
                frame,
                rows,
                actor: actor.to_string(),
                action: action.to_string(),
                target: target.to_string(),
                older,
                paged: before.is_some(),
            },
        )
    });
    app.page(&s, r)
}

async fn credentials(State(app): AppState, headers: HeaderMap) -> Response {
    let Some(s) = app.session(&headers) else {
        return to_login();
    };
    let r = as_admin!(app, &s, |c| {
        let credentials = db::json_list(&c.tx, include_str!("../sql/credentials.sql"), &[]).await?;
        let frame = app.frame(&s, &c);
        html(StatusCode::OK, CredentialsPage { frame, credentials })
    });
    app.page(&s, r)
}

// ----------------------------------------------------------------- static

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/console.js"),
    )
        .into_response()
}

async fn not_found(State(app): AppState, method: Method, headers: HeaderMap) -> Response {
    let signed_in = app.session(&headers).is_some();
    if !signed_in && method == Method::GET {
        return to_login();
    }
    error_page(StatusCode::NOT_FOUND, "no such page", "", signed_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, "127.0.0.1:8787".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:8787".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8787".parse().unwrap());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn loopback_hosts() {
        let mut h = HeaderMap::new();
        assert!(!loopback_host(&h));
        for (host, ok) in [
            ("127.0.0.1:8787", true),
            ("localhost:8787", true),
            ("[::1]:8787", true),
            ("localhost", true),
            ("evil.example:8787", false),
            ("127.0.0.1.evil.example", false),
        ] {
            h.insert(header::HOST, host.parse().unwrap());
            assert_eq!(loopback_host(&h), ok, "{host}");
        }
    }

    #[test]
    fn scope_lists() {
        assert_eq!(scopes("a:read, b:write  c"), vec!["a:read", "b:write", "c"]);
        assert!(scopes(" ").is_empty());
        assert_eq!(query_escape("a b&c=é"), "a%20b%26c%3D%C3%A9");
    }
}
