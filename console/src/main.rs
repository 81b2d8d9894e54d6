//! identity's admin console (API.md section 12).
//!
//! A small web console for an organization's admins: service users, their
//! API tokens, the audit trail and credential usage. It holds one database
//! login role, which can do nothing itself but become the role that holds
//! the extension's `user` level, and runs every request as the signed-in
//! caller (src/db.rs): the console can do exactly what its caller may do
//! through the extension, and no more.
//!
//! Configuration (environment):
//! - `IDENTITY_CONSOLE_DATABASE_URL`: libpq-style conninfo or URL of the
//!   login role (e.g. `host=127.0.0.1 dbname=app user=identity_console`);
//! - `IDENTITY_CONSOLE_ROLE`: the role each request switches to
//!   (`authenticated` by default; the login role must be a member of it);
//! - `IDENTITY_CONSOLE_LISTEN`: address to listen on (`127.0.0.1:8787`);
//! - `IDENTITY_CONSOLE_POOL`: connections in the pool (8);
//! - `IDENTITY_CONSOLE_SECURE_COOKIES`: `on` to mark cookies Secure even on
//!   loopback (default: on unless listening on loopback).

mod db;
mod pages;
mod session;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

pub struct Config {
    pub listen: SocketAddr,
    pub role: String,
    pub secure_cookies: bool,
}

pub struct App {
    pub config: Config,
    pub pool: deadpool_postgres::Pool,
    pub sessions: session::Store,
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn config() -> Result<(Config, deadpool_postgres::Pool), String> {
    let url = std::env::var("IDENTITY_CONSOLE_DATABASE_URL")
        .map_err(|_| "set IDENTITY_CONSOLE_DATABASE_URL to the console's login role".to_string())?;
    let listen: SocketAddr = env("IDENTITY_CONSOLE_LISTEN", "127.0.0.1:8787")
        .parse()
        .map_err(|e| format!("IDENTITY_CONSOLE_LISTEN: {e}"))?;
    let role = db::checked_role(&env("IDENTITY_CONSOLE_ROLE", "authenticated"))?;
    let size: usize = env("IDENTITY_CONSOLE_POOL", "8")
        .parse()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or("IDENTITY_CONSOLE_POOL: a number from 1 to 64")?;
    let secure_cookies = match env("IDENTITY_CONSOLE_SECURE_COOKIES", "").as_str() {
        "on" => true,
        "off" if listen.ip().is_loopback() => false,
        "off" => return Err("cookies are always Secure outside loopback".into()),
        _ => !listen.ip().is_loopback(),
    };
    let pool = db::pool(&url, size)?;
    Ok((
        Config {
            listen,
            role,
            secure_cookies,
        },
        pool,
    ))
}

#[tokio::main]
async fn main() {
    let (config, pool) = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("console: {e}");
            std::process::exit(2);
        }
    };
    let listen = config.listen;
    let app = Arc::new(App {
        config,
        pool,
        sessions: session::Store::default(),
    });
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("console: cannot listen on {listen}: {e}");
            std::process::exit(2);
        }
    };
    eprintln!("console: listening on http://{listen}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    let stop = async {
        tokio::select! { _ = shutdown => {}, _ = term => {} }
    };
    if let Err(e) = axum::serve(listener, pages::router(app))
        .with_graceful_shutdown(stop)
        .await
    {
        eprintln!("console: {e}");
        std::process::exit(1);
    }
}
