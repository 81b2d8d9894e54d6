//! What the pages show: the rows the extension answers (decoded from its
//! jsonb), and the askama templates of templates/ (HTML-escaped by
//! default). No secret is ever in a row; the one secret a page may show is
//! a new API token, once (`session::Reveal`).

use crate::session::{Flash, Reveal};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

/// "2026-12-01T15:04:05.123+00:00" (jsonb's timestamptz, in UTC: every
/// transaction sets its time zone) as "2026-12-01 15:04 UTC".
pub fn when(ts: &str) -> String {
    if ts.len() >= 16 && ts.as_bytes()[10] == b'T' {
        format!("{} {} UTC", &ts[..10], &ts[11..16])
    } else {
        ts.to_string()
    }
}

fn when_opt(ts: &Option<String>, none: &str) -> String {
    ts.as_deref().map(when).unwrap_or_else(|| none.to_string())
}

#[derive(Debug, Deserialize)]
pub struct ServiceUser {
    pub id: Uuid,
    pub email: String,
    pub status: String,
    pub application_name: Option<String>,
    pub description: Option<String>,
    pub created_by_name: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub live_tokens: i64,
}

impl ServiceUser {
    pub fn created(&self) -> String {
        when(&self.created_at)
    }
    pub fn last_used(&self) -> String {
        when_opt(&self.last_used_at, "never")
    }
    pub fn application(&self) -> String {
        self.application_name.clone().unwrap_or_default()
    }
    pub fn describe(&self) -> String {
        self.description.clone().unwrap_or_default()
    }
    pub fn creator(&self) -> String {
        self.created_by_name
            .clone()
            .unwrap_or_else(|| "system".into())
    }
}

/// API.md section 10's user shape (the fields the console shows).
#[derive(Debug, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub status: String,
    pub is_service_user: bool,
    pub organization_id: Option<Uuid>,
    pub application_id: Option<Uuid>,
    pub application_name: Option<String>,
    pub description: Option<String>,
    pub created_at: String,
}

impl User {
    pub fn created(&self) -> String {
        when(&self.created_at)
    }
    pub fn application(&self) -> String {
        self.application_name.clone().unwrap_or_default()
    }
    pub fn application_id_text(&self) -> String {
        self.application_id
            .map(|u| u.to_string())
            .unwrap_or_default()
    }
    pub fn describe(&self) -> String {
        self.description.clone().unwrap_or_default()
    }
    pub fn active(&self) -> bool {
        self.status == "active"
    }
}

#[derive(Debug, Deserialize)]
pub struct Token {
    pub token_id: Uuid,
    pub name: String,
    pub display_prefix: String,
    pub last4: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub created_at: String,
    pub state: String,
}

impl Token {
    pub fn scope_list(&self) -> String {
        if self.scopes.is_empty() {
            "all".into()
        } else {
            self.scopes.join(", ")
        }
    }
    pub fn expires(&self) -> String {
        when_opt(&self.expires_at, "never")
    }
    pub fn last_used(&self) -> String {
        when_opt(&self.last_used_at, "never")
    }
    pub fn created(&self) -> String {
        when(&self.created_at)
    }
    pub fn live(&self) -> bool {
        self.state == "live"
    }
    /// Still accepted: live, or rotated and within its grace.
    pub fn usable(&self) -> bool {
        self.state == "live" || self.state == "grace"
    }
}

#[derive(Debug, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor_id: Option<Uuid>,
    pub actor_email: Option<String>,
    pub actor_kind: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub target_email: Option<String>,
    pub details: serde_json::Value,
}

impl AuditRow {
    /// To the second: the trail's order matters more than elsewhere.
    pub fn when(&self) -> String {
        match self.at.get(..19) {
            Some(t) if self.at.as_bytes()[10] == b'T' => format!("{} {} UTC", &t[..10], &t[11..]),
            _ => self.at.clone(),
        }
    }
    pub fn actor(&self) -> String {
        match (&self.actor_email, &self.actor_id) {
            (Some(e), _) => e.clone(),
            (None, Some(id)) => id.to_string(),
            (None, None) => self.actor_kind.clone(),
        }
    }
    pub fn target(&self) -> String {
        if let Some(e) = &self.target_email {
            return format!("user {e}");
        }
        match (&self.target_type, &self.target_id) {
            (Some(t), Some(id)) => format!("{t} {id}"),
            (Some(t), None) => t.clone(),
            (None, Some(id)) => id.clone(),
            (None, None) => String::new(),
        }
    }
    pub fn details_text(&self) -> String {
        match &self.details {
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            v => v.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Credential {
    pub owner_email: Option<String>,
    pub provider: String,
    pub name: String,
    pub last4: String,
    pub is_default: bool,
    pub is_system: bool,
    pub enabled: bool,
    pub credit_limit: Option<f64>,
    pub usage_total: f64,
    pub exhausted_at: Option<String>,
    pub calls: i64,
}

impl Credential {
    pub fn owner(&self) -> String {
        self.owner_email.clone().unwrap_or_default()
    }
    pub fn limit_text(&self) -> String {
        match self.credit_limit {
            Some(l) => format!("{:.2} of {:.2}", self.usage_total, l),
            None => format!("{:.2} (no limit)", self.usage_total),
        }
    }
    /// The bar's maximum: the limit (no bar without one).
    pub fn bar_max(&self) -> Option<f64> {
        self.credit_limit.filter(|l| *l > 0.0)
    }
    pub fn exhausted(&self) -> bool {
        self.exhausted_at.is_some()
    }
}

/// What every signed-in page's frame shows.
pub struct Frame {
    pub csrf: String,
    pub who: String,
    pub organization: String,
    pub flash: Option<Flash>,
}

impl Frame {
    pub fn notice(&self) -> Option<String> {
        match &self.flash {
            Some(Flash::Notice(m)) => Some(m.clone()),
            _ => None,
        }
    }
    pub fn error(&self) -> Option<(String, String, String)> {
        match &self.flash {
            Some(Flash::Error {
                message,
                hint,
                code,
            }) => Some((
                message.clone(),
                hint.clone().unwrap_or_default(),
                code.clone().unwrap_or_default(),
            )),
            _ => None,
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub csrf: String,
    pub message: Option<String>,
    pub hint: Option<String>,
}

#[derive(Template)]
#[template(path = "service_users.html")]
pub struct ServiceUsersPage {
    pub frame: Frame,
    pub users: Vec<ServiceUser>,
}

#[derive(Template)]
#[template(path = "service_user.html")]
pub struct ServiceUserPage {
    pub frame: Frame,
    pub user: User,
    pub tokens: Vec<Token>,
    pub reveal: Option<Reveal>,
}

#[derive(Template)]
#[template(path = "delete.html")]
pub struct DeletePage {
    pub frame: Frame,
    pub user: User,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub frame: Frame,
    pub rows: Vec<AuditRow>,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The query string of the next (older) page, when there is one.
    pub older: Option<String>,
    pub paged: bool,
}

#[derive(Template)]
#[template(path = "credentials.html")]
pub struct CredentialsPage {
    pub frame: Frame,
    pub credentials: Vec<Credential>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub message: String,
    pub hint: String,
    pub code: String,
    pub signed_in: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(
            when("2026-12-01T15:04:05.123+00:00"),
            "2026-12-01 15:04 UTC"
        );
        assert_eq!(when("x"), "x");
    }

    #[test]
    fn templates_escape() {
        let p = ErrorPage {
            status: 400,
            message: "<script>alert(1)</script>".into(),
            hint: String::new(),
            code: String::new(),
            signed_in: false,
        };
        let html = p.render().unwrap();
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    }
}
