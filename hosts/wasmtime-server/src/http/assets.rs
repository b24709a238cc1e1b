//! The web UI: every file under `web/`, embedded in the binary at build time, served with a
//! strict content security policy.

use crate::http::reply::{ApiError, Reply};
use twofold_proto::ErrorCode;

/// Every file under `web/`: (URL path, bytes).
static ASSETS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Scripts and styles only from the site itself; inline scripts refused.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// A file of the UI (`/` is `/index.html`), or 404.
pub(crate) fn serve(method: &str, path: &str) -> Reply {
    if !matches!(method, "GET" | "HEAD") {
        return ApiError::with_status(405, ErrorCode::InvalidInput, "method not allowed here")
            .reply()
            .with_header("Allow", "GET, HEAD");
    }
    let path = if path == "/" { "/index.html" } else { path };
    match ASSETS.iter().find(|(p, _)| *p == path) {
        Some((p, bytes)) => Reply {
            status: 200,
            content_type: content_type(p),
            body: bytes.to_vec(),
            headers: vec![
                ("Cache-Control", "no-cache".into()),
                ("Content-Security-Policy", CONTENT_SECURITY_POLICY.into()),
            ],
            close: false,
        },
        None => Reply::text(404, "not found\n"),
    }
}
