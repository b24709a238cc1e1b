//! What the test binaries share beyond the library: the component, loaded once per binary.

#![allow(dead_code)]

pub mod component {
    //! The WASI component in wasmtime: loaded through the compiled-code cache beside it, and
    //! driven with the JSON arguments of `twofold_core::api` (converted to WIT records the way
    //! the server's driver converts them).

    use std::path::PathBuf;
    use std::sync::OnceLock;

    use serde_json::Value;
    use twofold_reliability::hosts;
    use twofold_server::json::{self as sj, request};
    use twofold_server::{ComponentEngine, Instance, LoadOptions, wit};
    use twofold_testkit::ORIGIN;

    /// The component, compiled (or loaded from the cache) once per test binary.
    pub fn loader() -> ComponentEngine {
        static LOADER: OnceLock<ComponentEngine> = OnceLock::new();
        LOADER
            .get_or_init(|| {
                let path = hosts::component_path();
                let options = LoadOptions {
                    cache_dir: path.parent().map(PathBuf::from),
                    call_timeout: None,
                };
                match ComponentEngine::load(&path, &options) {
                    Ok((loader, report)) => {
                        eprintln!(
                            "component {} in {} ms",
                            if report.from_cache {
                                "loaded from the cache"
                            } else {
                                "compiled"
                            },
                            report.took.as_millis()
                        );
                        loader
                    }
                    Err(e) => panic!("cannot load {}: {e:?}", path.display()),
                }
            })
            .clone()
    }

    /// The test relying party, with argon2 cheap enough for thousands of calls.
    pub fn config() -> wit::Config {
        wit::Config {
            rp_id: twofold_testkit::RP_ID.into(),
            rp_name: "twofold test".into(),
            origins: vec![ORIGIN.into()],
            password_hash: Some(wit::Argon2Params {
                m_kib: 64,
                t: 1,
                p: 1,
            }),
            backup_code_hash: Some(wit::Argon2Params {
                m_kib: 32,
                t: 1,
                p: 1,
            }),
            ..twofold_server::default_config()
        }
    }

    /// One operation by name with JSON arguments: `Ok(answer)` (the result as JSON, or the
    /// typed error), or `Err(trap)`.
    pub fn call(
        tf: &mut Instance,
        op: &str,
        args: &Value,
    ) -> Result<Result<Value, wit::Error>, String> {
        let ctx = wit::Context {
            ip: "203.0.113.7".into(),
            user_agent: "twofold-reliability".into(),
        };
        macro_rules! run {
            ($req:ty, $method:ident, $render:expr) => {{
                let req = match sj::args::<$req>(args) {
                    Ok(req) => req.into(),
                    Err(e) => return Ok(Err(e)),
                };
                match tf.$method(&ctx, &req) {
                    Ok(Ok(v)) => Ok(Ok($render(&v))),
                    Ok(Err(e)) => Ok(Err(e)),
                    Err(trap) => Err(format!("{trap:?}")),
                }
            }};
        }
        match op {
            "create_account" => run!(request::CreateAccount, create_account, sj::account_created),
            "sign_in" => run!(request::SignIn, sign_in, |o| sj::sign_in_outcome(o)
                .unwrap_or(Value::Null)),
            "sign_in_passkey" => {
                run!(request::PasskeySignIn, sign_in_with_passkey, sj::signed_in)
            }
            "sign_in_backup_code" => {
                run!(
                    request::BackupCodeSignIn,
                    sign_in_with_backup_code,
                    sj::signed_in
                )
            }
            "start_passkey_registration" => run!(
                request::StartRegistration,
                start_passkey_registration,
                |r| sj::registration_started(r).unwrap_or(Value::Null)
            ),
            "finish_passkey_registration" => run!(
                request::FinishRegistration,
                finish_passkey_registration,
                sj::passkey_registered
            ),
            "list_passkeys" => run!(request::UserRef, list_passkeys, |l: &Vec<wit::Passkey>| {
                sj::passkey_list(l)
            }),
            "rename_passkey" => run!(request::RenamePasskey, rename_passkey, sj::passkey),
            "remove_passkey" => run!(request::RemovePasskey, remove_passkey, sj::status),
            "enable_two_factor" => {
                run!(
                    request::PasswordConfirmed,
                    enable_two_factor,
                    sj::backup_codes
                )
            }
            "disable_two_factor" => {
                run!(request::PasswordConfirmed, disable_two_factor, sj::status)
            }
            "regenerate_backup_codes" => {
                run!(
                    request::PasswordConfirmed,
                    regenerate_backup_codes,
                    sj::backup_codes
                )
            }
            "status" => run!(request::UserRef, status, sj::status),
            "audit_events" => run!(request::AuditQuery, audit_events, |p| sj::audit_page(p)
                .unwrap_or(Value::Null)),
            "verify_audit_chain" => run!(request::UserRef, verify_audit_chain, sj::chain_report),
            other => panic!("no such operation {other}"),
        }
    }

    /// The error code's SPEC name.
    pub fn code(e: &wit::Error) -> &'static str {
        sj::code_name(e.code)
    }
}
