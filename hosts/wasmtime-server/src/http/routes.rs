//! The JSON API: each route turns a request into one engine call and its answer into JSON.
//!
//! Request bodies are the engine's own request types read with serde (the server adds what
//! only it knows: the signed-in user, the pending token, a passkey id from the path); answers
//! are the engine's answer types written with serde, except where the server keeps something
//! back (the pending token and the user id stay server-side). The server holds no policy: it
//! maps the engine's answers to HTTP. Its own part is HTTP's: sessions in a cookie, the
//! `Origin` check on every state-changing request, and the caller's context for each call.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use twofold_proto::ops::op;
use twofold_proto::{
    AuditQuery, Context, ErrorCode, FinishRegistration, Operation, PasskeySignIn,
    PasswordConfirmed, SignInOutcome, SignedIn, Status, UserRef, VerifyAudit,
};
use wasmtime::component::{Lift, Lower};

use crate::http::assets;
use crate::http::cookies;
use crate::http::reply::{ApiError, Reply};
use crate::sessions::{self, Session};
use crate::workers::Worker;

/// What every request of one server shares.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    /// The configured origin, e.g. `http://localhost:8080`.
    pub(crate) origin: String,
    /// Whether the origin is https (cookie name and `Secure`).
    pub(crate) secure: bool,
}

/// One request as the routes see it, whatever the transport.
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    /// The session cookie's value.
    pub(crate) session: Option<String>,
    /// Who is calling, for the engine.
    pub(crate) ctx: Context,
    pub(crate) body: Vec<u8>,
}

/// The answer to a request that needs no engine worker: a refused `Origin` (H4) or a file of
/// the UI. `None`: an API request, for [`api`].
pub(crate) fn front(site: &Site, method: &str, path: &str, origin: Option<&str>) -> Option<Reply> {
    let changes_state = matches!(method, "POST" | "PUT" | "PATCH" | "DELETE");
    if changes_state && origin != Some(site.origin.as_str()) {
        return Some(cross_site(site, origin).reply());
    }
    if !path.starts_with("/api/") {
        return Some(assets::serve(method, path));
    }
    None
}

/// Answers an API request, on an engine worker.
pub(crate) fn api(worker: &mut Worker, site: &Site, req: &Request) -> Reply {
    let mut call = Call { worker, site, req };
    route(&mut call).unwrap_or_else(ApiError::reply)
}

/// H4: a state-changing request whose `Origin` is not the configured one. The message says
/// what to do, since the usual cause is opening the site under another address
/// (`127.0.0.1` for `localhost`).
fn cross_site(site: &Site, origin: Option<&str>) -> ApiError {
    let from = match origin {
        Some(origin) => format!("came from {origin}"),
        None => "had no Origin header".into(),
    };
    ApiError::with_status(
        403,
        ErrorCode::InvalidInput,
        format!(
            "Refused: this request {from}, but the server takes changes only from its \
             configured origin {0}. Open {0}/ instead.",
            site.origin
        ),
    )
}

/// A request on its way through a route.
struct Call<'a> {
    worker: &'a mut Worker,
    site: &'a Site,
    req: &'a Request,
}

impl Call<'_> {
    /// The body as `T`, which must be a JSON object.
    fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let text = std::str::from_utf8(&self.req.body)
            .map_err(|_| ApiError::invalid("the request body is not UTF-8"))?;
        if !text.trim_start().starts_with('{') {
            return Err(ApiError::invalid("the request body must be a JSON object"));
        }
        serde_json::from_str(text).map_err(|e| ApiError::invalid(format!("request body: {e}")))
    }

    /// The body (a JSON object; none means `{}`) with the server's own members set over
    /// whatever the client sent under those names, as `T`.
    fn args<T: DeserializeOwned>(&self, own: &[(&str, &str)]) -> Result<T, ApiError> {
        let mut body: Map<String, Value> = if self.req.body.is_empty() {
            Map::new()
        } else {
            self.body()?
        };
        for (name, value) in own {
            body.insert((*name).to_owned(), Value::String((*value).to_owned()));
        }
        serde_json::from_value(Value::Object(body))
            .map_err(|e| ApiError::invalid(format!("request body: {e}")))
    }

    fn call<O>(&mut self, req: &O::Request) -> Result<O::Answer, ApiError>
    where
        O: Operation,
        O::Request: Lower,
        O::Answer: Lift,
    {
        self.worker.call::<O>(&self.req.ctx, req)
    }

    fn session(&mut self) -> Result<Option<Session>, ApiError> {
        match &self.req.session {
            Some(id) => sessions::get(&*self.worker.backend()?, id).map_err(ApiError::storage),
            None => Ok(None),
        }
    }

    /// The signed-in user, or 401.
    fn user(&mut self) -> Result<String, ApiError> {
        match self.session()? {
            Some(Session::SignedIn { user_id }) => Ok(user_id),
            _ => Err(ApiError::not_signed_in()),
        }
    }

    /// Replaces whatever session the request had with a signed-in one: its `Set-Cookie`.
    fn signed_in(&mut self, user_id: &str, epoch: u64, remember: bool) -> Result<String, ApiError> {
        let backend = self.end_old_session()?;
        let id =
            sessions::sign_in(&*backend, user_id, epoch, remember).map_err(ApiError::storage)?;
        Ok(cookies::set(self.site.secure, &id, remember))
    }

    /// Replaces whatever session the request had with a pending sign-in: its `Set-Cookie`.
    fn pending(&mut self, pending_token: &str) -> Result<String, ApiError> {
        let backend = self.end_old_session()?;
        let id = sessions::pend(&*backend, pending_token).map_err(ApiError::storage)?;
        Ok(cookies::set(self.site.secure, &id, false))
    }

    fn end_old_session(&mut self) -> Result<std::sync::Arc<dyn crate::store::Backend>, ApiError> {
        let backend = self.worker.backend()?;
        if let Some(old) = &self.req.session {
            sessions::end(&*backend, old).map_err(ApiError::storage)?;
        }
        Ok(backend)
    }

    /// Ends the request's session: the `Set-Cookie` that clears it.
    fn end_session(&mut self) -> Result<String, ApiError> {
        if let Some(old) = &self.req.session {
            sessions::end(&*self.worker.backend()?, old).map_err(ApiError::storage)?;
        }
        Ok(cookies::clear(self.site.secure))
    }
}

fn route(c: &mut Call) -> Result<Reply, ApiError> {
    let path = c.req.path.clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let allow = |methods: &'static str| {
        Ok(
            ApiError::with_status(405, ErrorCode::InvalidInput, "method not allowed here")
                .reply()
                .with_header("Allow", methods),
        )
    };
    match (segments.as_slice(), c.req.method.as_str()) {
        (["api", "signup"], "POST") => signup(c),
        (["api", "signin"], "POST") => signin(c),
        (["api", "signin", "passkey"], "POST") => signin_passkey(c),
        (["api", "signin", "backup-code"], "POST") => signin_backup_code(c),
        (["api", "signout"], "POST") => {
            let cookie = c.end_session()?;
            Ok(Reply::ok(&Signed {
                status: "signed_out",
            })
            .with_cookies(vec![cookie]))
        }
        (["api", "me"], "GET") => me(c),
        (["api", "passkeys"], "GET") => {
            let req = UserRef { user_id: c.user()? };
            Ok(Reply::ok(&c.call::<op::ListPasskeys>(&req)?))
        }
        (["api", "passkeys", "registration", "start"], "POST") => {
            let user = c.user()?;
            let req = c.args(&[("user_id", &user)])?;
            Ok(Reply::ok(&c.call::<op::StartPasskeyRegistration>(&req)?))
        }
        (["api", "passkeys", "registration", "finish"], "POST") => registration_finish(c),
        (["api", "passkeys", id], "PATCH") => {
            let (user, id) = (c.user()?, passkey_id(id)?);
            let req = c.args(&[("user_id", &user), ("passkey_id", &id)])?;
            Ok(Reply::ok(&c.call::<op::RenamePasskey>(&req)?))
        }
        (["api", "passkeys", id], "DELETE") => {
            let (user, id) = (c.user()?, passkey_id(id)?);
            let req = c.args(&[("user_id", &user), ("passkey_id", &id)])?;
            Ok(Reply::ok(&c.call::<op::RemovePasskey>(&req)?))
        }
        (["api", "two-factor", "enable"], "POST") => {
            let req = password_confirmed(c)?;
            Ok(Reply::ok(&c.call::<op::EnableTwoFactor>(&req)?))
        }
        (["api", "two-factor", "disable"], "POST") => {
            let req = password_confirmed(c)?;
            Ok(Reply::ok(&c.call::<op::DisableTwoFactor>(&req)?))
        }
        (["api", "backup-codes", "regenerate"], "POST") => {
            let req = password_confirmed(c)?;
            Ok(Reply::ok(&c.call::<op::RegenerateBackupCodes>(&req)?))
        }
        (["api", "audit"], "GET") => audit(c),
        (["api", "audit", "verify"], "GET") => {
            let req = VerifyAudit {
                user_id: c.user()?,
                anchor: None,
            };
            Ok(Reply::ok(&c.call::<op::VerifyAuditChain>(&req)?))
        }

        (
            [
                "api",
                "signup" | "signin" | "signout" | "two-factor" | "backup-codes",
                ..,
            ],
            _,
        )
        | (["api", "passkeys", "registration", _], _) => allow("POST"),
        (["api", "me" | "audit"] | ["api", "audit", "verify"] | ["api", "passkeys"], _) => {
            allow("GET")
        }
        (["api", "passkeys", _], _) => allow("PATCH, DELETE"),
        _ => Err(ApiError::new(ErrorCode::NotFound, "no such endpoint")),
    }
}

/// `{"status": "signed_out"}` and the like.
#[derive(Serialize)]
struct Signed {
    status: &'static str,
}

/// A completed sign-in as the browser sees it: the engine's answer without the user id (the
/// session holds it) and without the device token (it is for a cookie, not for scripts).
#[derive(Serialize)]
struct SignedInReply {
    status: &'static str,
    remember_me: bool,
    security_epoch: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_codes_remaining: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_codes_running_low: Option<bool>,
}

impl From<&SignedIn> for SignedInReply {
    fn from(s: &SignedIn) -> SignedInReply {
        SignedInReply {
            status: "signed_in",
            remember_me: s.remember_me,
            security_epoch: s.security_epoch,
            backup_codes_remaining: s.backup_codes_remaining,
            backup_codes_running_low: s.backup_codes_running_low,
        }
    }
}

/// Step one passed; the pending token stays in the server's session.
#[derive(Serialize)]
struct SecondFactorReply<'a> {
    status: &'static str,
    #[serde(with = "twofold_proto::json::text")]
    options: &'a str,
}

fn signup(c: &mut Call) -> Result<Reply, ApiError> {
    let req = c.body()?;
    let created = c.call::<op::CreateAccount>(&req)?;
    // The new account's security epoch, for the session (A6).
    let status = c.call::<op::Status>(&UserRef {
        user_id: created.user_id.clone(),
    })?;
    let cookie = c.signed_in(&created.user_id, status.security_epoch, false)?;
    Ok(Reply::ok(&serde_json::json!({
        "status": "signed_in",
        "remember_me": false,
        "email": created.email,
    }))
    .with_cookies(vec![cookie]))
}

fn signin(c: &mut Call) -> Result<Reply, ApiError> {
    let req = c.body()?;
    match c.call::<op::SignIn>(&req)? {
        SignInOutcome::SignedIn(s) => {
            let cookie = c.signed_in(&s.user_id, s.security_epoch, s.remember_me)?;
            Ok(Reply::ok(&SignedInReply::from(&s)).with_cookies(vec![cookie]))
        }
        SignInOutcome::SecondFactorRequired(s) => {
            let reply = Reply::ok(&SecondFactorReply {
                status: "second_factor_required",
                options: &s.options,
            });
            let cookie = c.pending(&s.pending_token)?;
            Ok(reply.with_cookies(vec![cookie]))
        }
    }
}

/// The pending sign-in's token, or `expired` when there is none.
fn pending_token(c: &mut Call) -> Result<String, ApiError> {
    match c.session()? {
        Some(Session::Pending { pending_token }) => Ok(pending_token),
        _ => Err(ApiError::new(
            ErrorCode::Expired,
            "no sign-in is waiting for a second factor; sign in again",
        )),
    }
}

/// Finishes step two: a signed-in session replaces the pending one. When the engine says the
/// pending sign-in is over, the pending session goes too.
fn second_step(c: &mut Call, outcome: Result<SignedIn, ApiError>) -> Result<Reply, ApiError> {
    match outcome {
        Ok(s) => {
            let cookie = c.signed_in(&s.user_id, s.security_epoch, s.remember_me)?;
            Ok(Reply::ok(&SignedInReply::from(&s)).with_cookies(vec![cookie]))
        }
        Err(e) if e.error.code == ErrorCode::Expired => {
            let cookie = c.end_session()?;
            Ok(e.reply().with_cookies(vec![cookie]))
        }
        Err(e) => Err(e),
    }
}

/// A body holding the browser's `credential.toJSON()`, kept as the text it arrived as: the
/// engine parses it, once.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialBody {
    #[serde(with = "twofold_proto::json::text")]
    credential: String,
}

fn signin_passkey(c: &mut Call) -> Result<Reply, ApiError> {
    let pending_token = pending_token(c)?;
    let CredentialBody { credential } = c.body()?;
    let req = PasskeySignIn {
        pending_token,
        credential,
    };
    let outcome = c.call::<op::SignInPasskey>(&req);
    second_step(c, outcome)
}

fn signin_backup_code(c: &mut Call) -> Result<Reply, ApiError> {
    let token = pending_token(c)?;
    let req = c.args(&[("pending_token", &token)])?;
    let outcome = c.call::<op::SignInBackupCode>(&req);
    second_step(c, outcome)
}

fn registration_finish(c: &mut Call) -> Result<Reply, ApiError> {
    let user_id = c.user()?;
    let CredentialBody { credential } = c.body()?;
    let req = FinishRegistration {
        user_id,
        credential,
    };
    let registered = c
        .call::<op::FinishPasskeyRegistration>(&req)
        .map_err(|mut e| {
            // A credential that does not verify is a bad request here, not a failed
            // authentication: the user is signed in.
            if e.error.code == ErrorCode::InvalidPasskey {
                e.status = 400;
            }
            e
        })?;
    Ok(Reply::ok(&registered))
}

/// `GET /api/me`: who is signed in, and their two-factor state.
fn me(c: &mut Call) -> Result<Reply, ApiError> {
    #[derive(Serialize)]
    struct Me<'a> {
        user_id: &'a str,
        email: &'a str,
        security_epoch: u64,
        two_factor: TwoFactor<'a>,
    }
    #[derive(Serialize)]
    struct TwoFactor<'a> {
        enabled: bool,
        passkeys: &'a [twofold_proto::Passkey],
        backup_codes_remaining: u32,
        backup_codes_running_low: bool,
    }
    let req = UserRef { user_id: c.user()? };
    let status: Status = match c.call::<op::Status>(&req) {
        Ok(status) => status,
        Err(e) if e.error.code == ErrorCode::NotFound => {
            // The account is gone: so is the session.
            let cookie = c.end_session()?;
            return Ok(ApiError::not_signed_in().reply().with_cookies(vec![cookie]));
        }
        Err(e) => return Err(e),
    };
    Ok(Reply::ok(&Me {
        user_id: &status.user_id,
        email: &status.email,
        security_epoch: status.security_epoch,
        two_factor: TwoFactor {
            enabled: status.two_factor_enabled,
            passkeys: &status.passkeys,
            backup_codes_remaining: status.backup_codes_remaining,
            backup_codes_running_low: status.backup_codes_running_low,
        },
    }))
}

fn password_confirmed(c: &mut Call) -> Result<PasswordConfirmed, ApiError> {
    let user = c.user()?;
    c.args(&[("user_id", &user)])
}

fn audit(c: &mut Call) -> Result<Reply, ApiError> {
    let mut req = AuditQuery {
        user_id: c.user()?,
        before: None,
        limit: None,
    };
    for pair in c.req.query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| ApiError::invalid(format!("{name} must be a whole number")))
        };
        match name {
            "before" => req.before = Some(number()?),
            "limit" => {
                req.limit = Some(
                    u32::try_from(number()?)
                        .map_err(|_| ApiError::invalid("limit is out of range"))?,
                )
            }
            _ => {}
        }
    }
    Ok(Reply::ok(&c.call::<op::AuditEvents>(&req)?))
}

/// A passkey id from the path, percent-decoded.
fn passkey_id(segment: &str) -> Result<String, ApiError> {
    percent_decode(segment).ok_or_else(|| ApiError::invalid("the passkey id is not valid"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
