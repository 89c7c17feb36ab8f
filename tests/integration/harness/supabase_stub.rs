//! Test stand-in for Supabase Storage's REST API on 127.0.0.1 (an ephemeral port): the routes
//! the `supabase` provider uses, with the documented answers and status codes, in memory.
//!
//! - every route but the signed read needs `apikey: <service key>` (else `401`, as Supabase's
//!   API gateway answers) and `Authorization: Bearer <service key>` (else `400` with
//!   `{"statusCode":"403","error":"Unauthorized",...}`, as the storage API answers a bad JWT);
//! - `POST|PUT /storage/v1/object/{bucket}/{path}` upload (`x-upsert: true` overwrites, else a
//!   second upload is `400` `Duplicate`), `GET` the same path (or `/object/authenticated/...`)
//!   reads, honouring one `Range`;
//! - `POST /object/copy` and `/object/move` with `{bucketId, sourceKey, destinationKey}`;
//! - `DELETE /object/{bucket}` with `{"prefixes": [...]}` answers what it removed;
//! - `POST /object/list/{bucket}` with `{prefix, limit, offset}` lists ONE folder level
//!   (folders have `id: null`), sorted by name;
//! - `POST /object/sign/{bucket}/{path}` with `{expiresIn}` -> `{"signedURL":
//!   "/object/sign/{bucket}/{path}?token=..."}` (the path raw, as the API returns it), and
//!   `GET /object/sign/{bucket}/{path}?token=...[&download=name]` serves it without a key;
//! - a missing object is `404` `{"statusCode":"404","code":"NoSuchKey","error":"not_found"}`
//!   (or, with `legacy_errors`, `400` with the same body, as older versions answer);
//! - keys outside the API's allowed characters (it accepts ASCII only) are `400` `InvalidKey`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use attachment_gateway::config::{Secret, SupabaseConfig};
use attachment_gateway::storage::supabase::SupabaseStorage;
use rand::Rng;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 64 * 1024;

/// What JavaScript's `encodeURIComponent` leaves alone (the API encodes `download` with it).
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

struct Object {
    data: Vec<u8>,
    content_type: String,
    created: SystemTime,
    id: String,
}

#[derive(Default)]
struct State {
    /// Object name (without the bucket) -> object.
    objects: BTreeMap<String, Object>,
    /// Signed-URL token -> (`bucket/name`, expiry).
    tokens: HashMap<String, (String, Instant)>,
    /// `METHOD /path` of every request, in order.
    log: Vec<String>,
}

pub struct SupabaseStub {
    /// `http://127.0.0.1:<port>` (the project URL; the API lives under `/storage/v1`).
    pub url: String,
    pub service_key: String,
    pub bucket: String,
    state: Arc<Mutex<State>>,
    legacy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SupabaseStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    key: String,
    bucket: String,
    state: Arc<Mutex<State>>,
    legacy: Arc<AtomicBool>,
}

impl SupabaseStub {
    pub async fn start() -> SupabaseStub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service_key = format!(
            "service-{:016x}.{:016x}",
            rand::thread_rng().gen::<u64>(),
            rand::thread_rng().gen::<u64>()
        );
        let state = Arc::new(Mutex::new(State::default()));
        let legacy = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            key: service_key.clone(),
            bucket: "attachments".into(),
            state: state.clone(),
            legacy: legacy.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_connection(socket, shared.clone()));
            }
        });
        SupabaseStub {
            url: format!("http://{addr}"),
            service_key,
            bucket: "attachments".into(),
            state,
            legacy,
            task,
        }
    }

    pub fn config(&self) -> SupabaseConfig {
        SupabaseConfig {
            url: url::Url::parse(&self.url).unwrap(),
            bucket: self.bucket.clone(),
            service_key: Secret::new(self.service_key.clone()),
            ca_file: None,
        }
    }

    pub fn storage(&self) -> Arc<SupabaseStorage> {
        Arc::new(
            SupabaseStorage::new(
                &self.config(),
                Duration::from_secs(2),
                Duration::from_secs(15),
            )
            .unwrap(),
        )
    }

    /// Answer missing objects the way older API versions do (`400` + not_found body).
    pub fn set_legacy_errors(&self, on: bool) {
        self.legacy.store(on, Ordering::SeqCst);
    }

    /// `METHOD /path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Store an object directly (as if uploaded elsewhere).
    pub fn insert(&self, name: &str, content_type: &str, data: &[u8]) {
        self.state.lock().unwrap().objects.insert(
            name.into(),
            Object {
                data: data.to_vec(),
                content_type: content_type.into(),
                created: SystemTime::now(),
                id: new_id(),
            },
        );
    }

    pub fn contains(&self, name: &str) -> bool {
        self.state.lock().unwrap().objects.contains_key(name)
    }
}

fn new_id() -> String {
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn json_response(status: u16, body: Value) -> Response {
    Response {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// Storage API error body (`statusCode` is a string in its answers).
fn error(status: u16, code: &str, error: &str, message: &str) -> Response {
    json_response(
        status,
        json!({ "statusCode": status.to_string(), "code": code, "error": error, "message": message }),
    )
}

async fn serve_connection(mut socket: TcpStream, shared: Arc<Shared>) {
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if pending.len() > MAX_HEAD {
                return;
            }
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        let Some(mut req) = parse_head(&head) else {
            return;
        };
        if req
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            let _ = write(&mut socket, error(411, "", "LengthRequired", "chunked")).await;
            return;
        }
        let length: usize = req
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        // The body is taken whole before anything is stored: an upload cut short stores nothing.
        while pending.len() < end + length {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        req.body = pending[end..end + length].to_vec();
        pending.drain(..end + length);
        let resp = route(&shared, &req);
        if write(&mut socket, resp).await.is_err() {
            return;
        }
    }
}

async fn write(socket: &mut TcpStream, resp: Response) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {} X\r\n", resp.status);
    for (name, value) in &resp.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", resp.body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    socket.write_all(&bytes).await
}

fn parse_head(head: &str) -> Option<Request> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?;
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .ok()?
        .into_owned();
    let query = url::form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Request {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
    })
}

/// Storage API's key rule: ASCII letters, digits and a few punctuation marks only.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_/!-.*'() &$@=;:+,?".contains(c))
}

fn route(shared: &Shared, req: &Request) -> Response {
    shared
        .state
        .lock()
        .unwrap()
        .log
        .push(format!("{} {}", req.method, req.path));
    let Some(api_path) = req.path.strip_prefix("/storage/v1/") else {
        return json_response(
            404,
            json!({ "message": "no Route matched with those values" }),
        );
    };
    // The signed read carries its own token instead of a key.
    if req.method == "GET" {
        if let Some(rest) = api_path.strip_prefix("object/sign/") {
            return signed_read(shared, req, rest);
        }
    }
    match req.header("apikey") {
        None => return json_response(401, json!({ "message": "No API key found in request" })),
        Some(k) if k != shared.key => {
            return json_response(401, json!({ "message": "Invalid API key" }))
        }
        Some(_) => {}
    }
    if req.header("authorization") != Some(&format!("Bearer {}", shared.key)) {
        return json_response(
            400,
            json!({ "statusCode": "403", "error": "Unauthorized", "message": "invalid signature" }),
        );
    }
    let method = req.method.as_str();
    let (area, rest) = api_path.split_once('/').unwrap_or((api_path, ""));
    match (method, area) {
        ("GET", "bucket") if rest == shared.bucket => json_response(
            200,
            json!({ "id": shared.bucket, "name": shared.bucket, "public": false }),
        ),
        ("GET", "bucket") => error(404, "NoSuchBucket", "Bucket not found", "Bucket not found"),
        ("POST", "object") if rest == "copy" || rest == "move" => copy_or_move(shared, req, rest),
        ("POST", "object") if rest.starts_with("list/") => list(shared, req, &rest[5..]),
        ("POST", "object") if rest.starts_with("sign/") => sign(shared, req, &rest[5..]),
        ("DELETE", "object") if rest == shared.bucket => delete(shared, req),
        ("POST" | "PUT", "object") => upload(shared, req, rest),
        ("GET", "object") => {
            let rest = rest.strip_prefix("authenticated/").unwrap_or(rest);
            match object_name(shared, rest) {
                Ok(name) => read(shared, req, &name, None),
                Err(resp) => resp,
            }
        }
        _ => json_response(404, json!({ "message": "Route not found" })),
    }
}

/// `bucket/name` -> `name`, after checking the bucket and the key's characters.
fn object_name(shared: &Shared, rest: &str) -> Result<String, Response> {
    let Some((bucket, name)) = rest.split_once('/') else {
        return Err(error(400, "InvalidKey", "InvalidKey", "Invalid key"));
    };
    if bucket != shared.bucket {
        return Err(error(
            404,
            "NoSuchBucket",
            "Bucket not found",
            "Bucket not found",
        ));
    }
    if !valid_key(name) {
        return Err(error(
            400,
            "InvalidKey",
            "InvalidKey",
            &format!("Invalid key: {name}"),
        ));
    }
    Ok(name.to_string())
}

fn not_found(shared: &Shared) -> Response {
    let status = if shared.legacy.load(Ordering::SeqCst) {
        400
    } else {
        404
    };
    let mut resp = error(404, "NoSuchKey", "not_found", "Object not found");
    resp.status = status;
    resp
}

fn upload(shared: &Shared, req: &Request, rest: &str) -> Response {
    let name = match object_name(shared, rest) {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let upsert = req.method == "PUT" || req.header("x-upsert") == Some("true");
    let mut state = shared.state.lock().unwrap();
    if state.objects.contains_key(&name) && !upsert {
        return error(400, "Duplicate", "Duplicate", "The resource already exists");
    }
    let id = new_id();
    state.objects.insert(
        name.clone(),
        Object {
            data: req.body.clone(),
            content_type: req
                .header("content-type")
                .unwrap_or("application/octet-stream")
                .to_string(),
            created: SystemTime::now(),
            id: id.clone(),
        },
    );
    json_response(
        200,
        json!({ "Id": id, "Key": format!("{}/{name}", shared.bucket) }),
    )
}

/// Serve `name`, honouring one `Range` (RFC 9110 §14.2).
fn read(shared: &Shared, req: &Request, name: &str, download: Option<&str>) -> Response {
    let state = shared.state.lock().unwrap();
    let Some(object) = state.objects.get(name) else {
        drop(state);
        return not_found(shared);
    };
    let size = object.data.len() as u64;
    let mut headers = vec![
        ("content-type", object.content_type.clone()),
        ("cache-control", "max-age=3600".to_string()),
        ("etag", format!("\"{}\"", object.id)),
        ("last-modified", httpdate::fmt_http_date(object.created)),
        ("accept-ranges", "bytes".to_string()),
    ];
    if let Some(name) = download {
        let value = if name.is_empty() {
            "attachment;".to_string()
        } else {
            let enc = percent_encoding::utf8_percent_encode(name, URI_COMPONENT);
            format!("attachment; filename={enc}; filename*=UTF-8''{enc};")
        };
        headers.push(("content-disposition", value));
    }
    let range = req.header("range").and_then(|r| parse_range(r, size));
    match range {
        Some(Some((start, end))) => {
            headers.push(("content-range", format!("bytes {start}-{end}/{size}")));
            Response {
                status: 206,
                headers,
                body: object.data[start as usize..=end as usize].to_vec(),
            }
        }
        Some(None) => Response {
            status: 416,
            headers: vec![("content-range", format!("bytes */{size}"))],
            body: Vec::new(),
        },
        None => Response {
            status: 200,
            headers,
            body: object.data.clone(),
        },
    }
}

/// `None`: no usable range header (full body); `Some(None)`: unsatisfiable.
fn parse_range(header: &str, size: u64) -> Option<Option<(u64, u64)>> {
    let spec = header.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = if first.is_empty() {
        let n: u64 = last.parse().ok()?;
        if n == 0 {
            return Some(None);
        }
        (size.saturating_sub(n), size.checked_sub(1)?)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            size.saturating_sub(1)
        } else {
            last.parse::<u64>().ok()?.min(size.saturating_sub(1))
        };
        (start, end)
    };
    if start >= size || start > end {
        return Some(None);
    }
    Some(Some((start, end)))
}

fn copy_or_move(shared: &Shared, req: &Request, op: &str) -> Response {
    let body = req.json().unwrap_or(Value::Null);
    let (Some(bucket), Some(from), Some(to)) = (
        body["bucketId"].as_str(),
        body["sourceKey"].as_str(),
        body["destinationKey"].as_str(),
    ) else {
        return error(
            400,
            "InvalidRequest",
            "Bad Request",
            "body must have bucketId, sourceKey, destinationKey",
        );
    };
    if bucket != shared.bucket {
        return error(404, "NoSuchBucket", "Bucket not found", "Bucket not found");
    }
    if !valid_key(to) {
        return error(
            400,
            "InvalidKey",
            "InvalidKey",
            &format!("Invalid key: {to}"),
        );
    }
    let upsert = req.header("x-upsert") == Some("true");
    let mut state = shared.state.lock().unwrap();
    let Some(source) = state.objects.get(from) else {
        drop(state);
        return not_found(shared);
    };
    if state.objects.contains_key(to) && !(upsert && op == "copy") {
        return error(400, "Duplicate", "Duplicate", "The resource already exists");
    }
    let copy = Object {
        data: source.data.clone(),
        content_type: source.content_type.clone(),
        created: SystemTime::now(),
        id: new_id(),
    };
    state.objects.insert(to.to_string(), copy);
    if op == "move" {
        state.objects.remove(from);
        return json_response(200, json!({ "message": "Successfully moved" }));
    }
    json_response(200, json!({ "Key": format!("{bucket}/{to}") }))
}

fn delete(shared: &Shared, req: &Request) -> Response {
    let body = req.json().unwrap_or(Value::Null);
    let Some(prefixes) = body["prefixes"].as_array() else {
        return error(
            400,
            "InvalidRequest",
            "Bad Request",
            "body must have prefixes",
        );
    };
    let mut state = shared.state.lock().unwrap();
    let mut removed = Vec::new();
    for name in prefixes.iter().filter_map(Value::as_str) {
        if let Some(object) = state.objects.remove(name) {
            removed.push(json!({ "name": name, "id": object.id, "bucket_id": shared.bucket }));
        }
    }
    json_response(200, Value::Array(removed))
}

fn list(shared: &Shared, req: &Request, bucket: &str) -> Response {
    if bucket != shared.bucket {
        return error(404, "NoSuchBucket", "Bucket not found", "Bucket not found");
    }
    let body = req.json().unwrap_or(Value::Null);
    let Some(prefix) = body["prefix"].as_str() else {
        return error(
            400,
            "InvalidRequest",
            "Bad Request",
            "body must have required property 'prefix'",
        );
    };
    let limit = body["limit"].as_u64().unwrap_or(100) as usize;
    let offset = body["offset"].as_u64().unwrap_or(0) as usize;
    let folder = prefix.trim_end_matches('/');
    let lead = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    let state = shared.state.lock().unwrap();
    // One level: objects directly inside, and each sub-folder once (id null).
    let mut entries: BTreeMap<String, Value> = BTreeMap::new();
    for (name, object) in state.objects.range(lead.clone()..) {
        let Some(rest) = name.strip_prefix(&lead) else {
            break;
        };
        match rest.split_once('/') {
            Some((sub, _)) => {
                entries.entry(sub.to_string()).or_insert_with(|| {
                    json!({ "name": sub, "id": null, "updated_at": null, "created_at": null,
                            "last_accessed_at": null, "metadata": null })
                });
            }
            None => {
                let at = chrono::DateTime::<chrono::Utc>::from(object.created).to_rfc3339();
                entries.insert(
                    rest.to_string(),
                    json!({
                        "name": rest, "id": object.id, "updated_at": at, "created_at": at,
                        "last_accessed_at": at,
                        "metadata": {
                            "eTag": format!("\"{}\"", object.id), "size": object.data.len(),
                            "mimetype": object.content_type, "cacheControl": "max-age=3600",
                            "lastModified": at, "contentLength": object.data.len(),
                            "httpStatusCode": 200
                        }
                    }),
                );
            }
        }
    }
    let page: Vec<Value> = entries.into_values().skip(offset).take(limit).collect();
    json_response(200, Value::Array(page))
}

fn sign(shared: &Shared, req: &Request, rest: &str) -> Response {
    let name = match object_name(shared, rest) {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let Some(expires_in) = req.json().and_then(|b| b["expiresIn"].as_u64()) else {
        return error(
            400,
            "InvalidRequest",
            "Bad Request",
            "body must have required property 'expiresIn'",
        );
    };
    let mut state = shared.state.lock().unwrap();
    if !state.objects.contains_key(&name) {
        drop(state);
        return not_found(shared);
    }
    let token = format!("eyJ.{}.sig", new_id());
    let path = format!("{}/{name}", shared.bucket);
    state.tokens.insert(
        token.clone(),
        (
            path.clone(),
            Instant::now() + Duration::from_secs(expires_in),
        ),
    );
    json_response(
        200,
        json!({ "signedURL": format!("/object/sign/{path}?token={token}") }),
    )
}

fn signed_read(shared: &Shared, req: &Request, rest: &str) -> Response {
    let Some(token) = req.query("token") else {
        return error(
            400,
            "InvalidRequest",
            "Bad Request",
            "querystring must have required property 'token'",
        );
    };
    let signed = shared.state.lock().unwrap().tokens.get(token).cloned();
    let Some((path, expires)) = signed else {
        return error(400, "InvalidJWT", "Invalid JWT", "invalid signature");
    };
    if Instant::now() >= expires {
        return error(400, "InvalidJWT", "Invalid JWT", "jwt expired");
    }
    if path != rest {
        return error(
            400,
            "InvalidSignature",
            "InvalidSignature",
            "The url do not match the signature",
        );
    }
    let name = &path[shared.bucket.len() + 1..];
    read(shared, req, name, req.query("download"))
}
