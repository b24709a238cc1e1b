//! The session cookie: a random 256-bit id (the server keeps only its hash), HttpOnly and
//! SameSite=Strict; `__Host-` and Secure when the site is served over https.

use crate::sessions::REMEMBERED;

pub(crate) fn name(secure: bool) -> &'static str {
    // `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
    if secure {
        "__Host-twofold"
    } else {
        "twofold_session"
    }
}

/// The value of cookie `name` in the `Cookie` headers given.
pub(crate) fn find<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<String> {
    headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// `Set-Cookie` for a new session: persistent for 30 days when remembered, else a browser
/// session cookie.
pub(crate) fn set(secure: bool, id: &str, remember_me: bool) -> String {
    let mut cookie = format!("{}={id}; Path=/; HttpOnly; SameSite=Strict", name(secure));
    if remember_me {
        cookie.push_str(&format!("; Max-Age={}", REMEMBERED.as_secs()));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn clear(secure: bool) -> String {
    let mut cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        name(secure)
    );
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}
