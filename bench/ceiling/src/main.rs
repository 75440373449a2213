//! The benchmark ceiling: a bare hyper 1 + tokio server that answers registry GETs with bytes held in
//! memory, loaded at start from a snapshot taken from Packr (`bench/lib/snapshot.mjs`).
//!
//! It does the least a registry could do for the same requests: one hash lookup by path, a choice of
//! representation by `Accept` (npm's abbreviated type or not) and `Accept-Encoding` (gzip or not), an
//! `If-None-Match` comparison, and the captured headers and body. No auth, no logging, no database.
//!
//! Usage: `packr-ceiling --listen 127.0.0.1:PORT --index SNAPSHOT/index.json`

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

#[derive(Deserialize)]
struct IndexEntry {
    /// Request path, with `%2f` already decoded to `/`.
    path: String,
    /// `full`, `abbrev` (packument representations) or `raw` (anything else, e.g. a tarball).
    kind: String,
    /// Whether the body is gzip-encoded (served only to clients that accept gzip).
    gzip: bool,
    /// Body file, relative to the index.
    file: String,
    /// Response headers as captured, in order.
    headers: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Index {
    entries: Vec<IndexEntry>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Full,
    Abbrev,
    Raw,
}

struct Variant {
    kind: Kind,
    gzip: bool,
    body: Bytes,
    headers: HeaderMap,
    /// Headers of a 304: the captured ones minus the content-describing ones.
    not_modified_headers: HeaderMap,
    etag: Option<String>,
}

struct State {
    routes: HashMap<String, Vec<Variant>>,
    misses: AtomicU64,
}

fn load(index_path: &Path) -> Result<State, String> {
    let dir = index_path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let text = std::fs::read_to_string(index_path).map_err(|e| format!("{}: {e}", index_path.display()))?;
    let index: Index = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index_path.display()))?;
    let mut routes: HashMap<String, Vec<Variant>> = HashMap::new();
    for entry in index.entries {
        let body = std::fs::read(dir.join(&entry.file)).map_err(|e| format!("{}: {e}", entry.file))?;
        let mut headers = HeaderMap::new();
        let mut not_modified_headers = HeaderMap::new();
        let mut etag = None;
        for (name, value) in &entry.headers {
            let name = name.to_ascii_lowercase();
            // hyper writes its own Date, Content-Length and connection management.
            if matches!(name.as_str(), "date" | "content-length" | "connection" | "keep-alive" | "transfer-encoding") {
                continue;
            }
            let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) else {
                return Err(format!("bad header {name}: {value}"));
            };
            if name == "etag" {
                etag = Some(value.trim_start_matches("W/").to_owned());
            }
            if !matches!(name.as_str(), "content-type" | "content-encoding") {
                not_modified_headers.append(n.clone(), v.clone());
            }
            headers.append(n, v);
        }
        let kind = match entry.kind.as_str() {
            "full" => Kind::Full,
            "abbrev" => Kind::Abbrev,
            _ => Kind::Raw,
        };
        routes.entry(entry.path).or_default().push(Variant {
            kind,
            gzip: entry.gzip,
            body: Bytes::from(body),
            headers,
            not_modified_headers,
            etag,
        });
    }
    Ok(State { routes, misses: AtomicU64::new(0) })
}

fn header_str<'a>(req: &'a Request<hyper::body::Incoming>, name: header::HeaderName) -> &'a str {
    req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn decode_path(path: &str) -> std::borrow::Cow<'_, str> {
    if path.contains('%') {
        std::borrow::Cow::Owned(path.replace("%2f", "/").replace("%2F", "/").replace("%40", "@"))
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}

fn respond(state: &State, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = decode_path(req.uri().path());
    if path == "/health" || path == "/-/ping" {
        return Response::new(Full::new(Bytes::from_static(b"{}")));
    }
    let Some(variants) = state.routes.get(path.as_ref()) else {
        let n = state.misses.fetch_add(1, Ordering::Relaxed);
        if n < 20 {
            eprintln!("ceiling: 404 {}", req.uri());
        }
        let mut response = Response::new(Full::new(Bytes::from_static(b"{\"error\":\"not found\"}")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let abbrev = header_str(req, header::ACCEPT).contains(ABBREVIATED);
    let gzip = header_str(req, header::ACCEPT_ENCODING).contains("gzip");
    let want = if abbrev { Kind::Abbrev } else { Kind::Full };
    let fits = |v: &&Variant| v.kind == Kind::Raw || v.kind == want;
    let variant = variants
        .iter()
        .filter(fits)
        .find(|v| v.gzip == gzip)
        .or_else(|| variants.iter().filter(fits).find(|v| !v.gzip))
        .unwrap_or(&variants[0]);
    let inm = header_str(req, header::IF_NONE_MATCH);
    if let Some(etag) = &variant.etag {
        if !inm.is_empty() && inm.split(',').any(|t| t.trim().trim_start_matches("W/") == etag) {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            *response.headers_mut() = variant.not_modified_headers.clone();
            return response;
        }
    }
    let mut response = Response::new(Full::new(variant.body.clone()));
    *response.headers_mut() = variant.headers.clone();
    response
}

fn main() -> Result<(), String> {
    let mut listen: SocketAddr = "127.0.0.1:4874".parse().map_err(|e| format!("{e}"))?;
    let mut index = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs ADDR")?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--index" => index = Some(PathBuf::from(args.next().ok_or("--index needs a file")?)),
            other => return Err(format!("unknown argument {other}; usage: packr-ceiling --listen ADDR --index FILE")),
        }
    }
    let index = index.ok_or("--index FILE is required")?;
    let state = Arc::new(load(&index)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await.map_err(|e| format!("bind {listen}: {e}"))?;
        eprintln!("ceiling: {} paths on http://{listen}", state.routes.len());
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let state = Arc::clone(&state);
                    tokio::spawn(async move {
                        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                            let response = respond(&state, &req);
                            async move { Ok::<_, Infallible>(response) }
                        });
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
            }
        }
    })
}
