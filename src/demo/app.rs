//! The stand-in for the app behind the gateway: a small support-chat page at `/` and the few
//! JSON endpoints it calls. Everything it serves reaches the browser through the gateway (the
//! app owns every path but the attachments prefix), so the page, its cookie and the files are
//! one origin, as in production.
//!
//! ```text
//! GET  /                           the chat page (plain HTML + JS, no build step)
//! GET  /demo/page.js, /demo/page.css
//! GET  /demo/state                 who you are, the people to choose from, the dialogs
//! POST /demo/session {"as": id}    sign in as someone: sets the session cookie
//! POST /demo/messages {"dialogId", "text", "attachmentIds"}
//!                                  send: calls the gateway's internal commit, as the app would
//! ```
//!
//! The app shows every dialog to everyone on purpose: what a stranger then sees of the files
//! is the gateway's decision alone (each one answers `404`).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

use super::chat::{Dialog, Message};
use super::people::{self, PEOPLE};
use crate::authn::Authenticator;
use crate::config::Config;
use crate::io_runtime;
use crate::proxy::respond::{json_response, plain_response};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");
/// Bodies of the page's own JSON calls are tiny.
const MAX_BODY: usize = 64 * 1024;

pub struct ChatApp {
    cfg: Arc<Config>,
    authn: Authenticator,
    dialogs: Mutex<Vec<Dialog>>,
    client: reqwest::Client,
}

impl ChatApp {
    pub fn new(cfg: Arc<Config>, dialogs: Vec<Dialog>) -> ChatApp {
        ChatApp {
            authn: Authenticator::new(&cfg.auth),
            cfg,
            dialogs: Mutex::new(dialogs),
            client: reqwest::Client::new(),
        }
    }

    /// The user of the session cookie, if it holds a valid token.
    fn signed_in(&self, session: &ServerSession) -> Option<String> {
        let cookies: Vec<&str> = session
            .req_header()
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        self.authn
            .authenticate(None, &cookies)
            .ok()
            .map(|p| p.user_id)
    }

    fn state(&self, session: &ServerSession) -> Response<Vec<u8>> {
        let me = self.signed_in(session);
        let people: Vec<Value> = PEOPLE
            .iter()
            .map(|p| json!({ "id": p.id, "name": p.name, "role": p.role, "sees": p.sees }))
            .collect();
        let dialogs = self
            .dialogs
            .lock()
            .expect("no panics hold this lock")
            .clone();
        json_response(
            200,
            &json!({ "me": me, "people": people, "dialogs": dialogs }),
        )
    }

    /// Sign in as a demo person: a fresh session cookie. `Clear-Site-Data: "cache"` empties the
    /// browser's caches of this origin, so that nothing the previous person opened can be
    /// shown to the next one from a cache (what a real app's sign-in and sign-out must do).
    async fn sign_in(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let Some(body) = read_json(session).await else {
            return error(400, "bad_json");
        };
        let Some(person) = body["as"].as_str().and_then(people::find) else {
            return error(400, "unknown_person");
        };
        let token = match people::token_for(&self.cfg, person) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "demo token");
                return error(500, "internal_error");
            }
        };
        let mut resp = json_response(200, &json!({ "me": person.id }));
        let cookie = format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400",
            self.cfg.auth.cookie
        );
        let headers = resp.headers_mut();
        headers.insert("set-cookie", cookie.parse().expect("token is ASCII"));
        headers.insert(
            "clear-site-data",
            http::HeaderValue::from_static("\"cache\""),
        );
        resp
    }

    /// Send a message with staged attachments: the app's side of the commit (SPEC §4).
    async fn send(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let Some(user) = self.signed_in(session) else {
            return error(401, "unauthorized");
        };
        let Some(body) = read_json(session).await else {
            return error(400, "bad_json");
        };
        let dialog_id = body["dialogId"].as_str().unwrap_or_default().to_string();
        let text = body["text"].as_str().unwrap_or_default().to_string();
        let ids: Vec<String> = body["attachmentIds"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let known = self
            .dialogs
            .lock()
            .expect("no panics hold this lock")
            .iter()
            .any(|d| d.id == dialog_id);
        if !known {
            return error(404, "no_dialog");
        }
        let message_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let attachments = if ids.is_empty() {
            Vec::new()
        } else {
            match self.commit(&user, &dialog_id, &message_id, &ids).await {
                Ok(rows) => rows,
                Err((status, answer)) => return json_response(status, &answer),
            }
        };
        let message = Message {
            id: message_id,
            author: user,
            text,
            sent_at: crate::attachment::json::time(chrono::Utc::now()),
            attachments,
        };
        let mut dialogs = self.dialogs.lock().expect("no panics hold this lock");
        if let Some(dialog) = dialogs.iter_mut().find(|d| d.id == dialog_id) {
            dialog.messages.push(message.clone());
        }
        json_response(201, &serde_json::to_value(&message).unwrap_or_default())
    }

    /// `POST /internal/attachments/commit` on the admin listener, with the service token.
    async fn commit(
        &self,
        user: &str,
        dialog: &str,
        message: &str,
        ids: &[String],
    ) -> Result<Vec<Value>, (u16, Value)> {
        let url = format!(
            "http://{}/internal/attachments/commit",
            self.cfg.server.admin_listen
        );
        let token = self
            .cfg
            .internal
            .service_token
            .as_ref()
            .map(|t| t.expose().to_string())
            .unwrap_or_default();
        let payload = json!({
            "userId": user, "dialogId": dialog, "messageId": message, "attachmentIds": ids,
        });
        let client = self.client.clone();
        let answer = io_runtime::run(async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(payload.to_string())
                .send()
                .await?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((
                status,
                serde_json::from_slice::<Value>(&body).unwrap_or_default(),
            ))
        })
        .await;
        match answer {
            Ok(Ok((200, rows))) => Ok(rows
                .get("attachments")
                .and_then(Value::as_array)
                .or_else(|| rows.as_array())
                .cloned()
                .unwrap_or_default()),
            Ok(Ok((status, body))) => Err((status, body)),
            _ => Err((502, json!({ "error": "commit_failed" }))),
        }
    }
}

#[async_trait]
impl ServeHttp for ChatApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        match (method.as_str(), path.as_str()) {
            ("GET", "/") => page(PAGE, "text/html; charset=utf-8"),
            ("GET", "/demo/page.js") => page(SCRIPT, "text/javascript; charset=utf-8"),
            ("GET", "/demo/page.css") => page(STYLE, "text/css; charset=utf-8"),
            ("GET", "/demo/state") => self.state(session),
            ("POST", "/demo/session") => self.sign_in(session).await,
            ("POST", "/demo/messages") => self.send(session).await,
            ("GET", "/favicon.ico") => plain_response(204, "image/x-icon", Vec::new()),
            _ => error(404, "not_found"),
        }
    }
}

fn page(text: &str, content_type: &str) -> Response<Vec<u8>> {
    let mut resp = plain_response(200, content_type, text.as_bytes().to_vec());
    resp.headers_mut().insert(
        "content-security-policy",
        http::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self'; \
             frame-ancestors 'none'",
        ),
    );
    resp
}

fn error(status: u16, code: &str) -> Response<Vec<u8>> {
    json_response(status, &json!({ "error": code }))
}

async fn read_json(session: &mut ServerSession) -> Option<Value> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = session.read_request_body().await {
        if body.len() + chunk.len() > MAX_BODY {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).ok()
}
