//! E1/L1 (issue 17): no secret in any `Debug`. Every request and answer type that holds a
//! password, code, token or key is built with a known secret and its `Debug` grepped; every
//! type of the operations table must be `Debug` at all.

use twofold_proto::*;

const SECRET: &str = "s3cr3t-Tr0ub4dor&3-zx9q";

fn shown<T: std::fmt::Debug>(value: &T) -> String {
    format!("{value:?} {value:#?}")
}

#[test]
fn every_type_that_holds_a_secret_redacts_it() {
    let s = || SECRET.to_owned();
    let passkey = Passkey {
        id: "id".into(),
        name: "Laptop".into(),
        created_at: 1,
        last_used_at: None,
        backup_eligible: false,
        backed_up: false,
        transports: vec![],
    };
    let key = AuditKey::new("k1", s());
    let outputs = [
        shown(&Context {
            ip: "ip".into(),
            user_agent: "ua".into(),
            client_id: "c".into(),
            device_token: Some(s()),
        }),
        shown(&CreateAccount {
            email: "e".into(),
            password: s(),
        }),
        shown(&SignIn {
            email: "e".into(),
            password: s(),
            remember_me: true,
        }),
        shown(&SignedIn {
            user_id: "u".into(),
            remember_me: false,
            security_epoch: 1,
            device_token: s(),
            backup_codes_remaining: None,
            backup_codes_running_low: None,
        }),
        shown(&SignInOutcome::SecondFactorRequired(SecondFactorRequired {
            pending_token: s(),
            options: "{}".into(),
        })),
        shown(&PasskeySignIn {
            pending_token: s(),
            credential: "{}".into(),
        }),
        shown(&BackupCodeSignIn {
            pending_token: s(),
            code: s(),
        }),
        shown(&StartRegistration {
            user_id: "u".into(),
            name: "n".into(),
            password: s(),
        }),
        shown(&PasskeyRegistered {
            passkey,
            two_factor_enabled: true,
            backup_codes: Some(vec![s(), s()]),
            backup_codes_remaining: 2,
            backup_codes_running_low: false,
        }),
        shown(&RemovePasskey {
            user_id: "u".into(),
            passkey_id: "p".into(),
            password: s(),
        }),
        shown(&PasswordConfirmed {
            user_id: "u".into(),
            password: s(),
        }),
        shown(&BackupCodes {
            codes: vec![s()],
            security_epoch: 1,
        }),
        shown(&ChangePassword {
            user_id: "u".into(),
            current_password: s(),
            new_password: s(),
        }),
        shown(&ResetPassword {
            email: "e".into(),
            new_password: s(),
        }),
        shown(&key),
        shown(&Config {
            audit_keys: vec![key.clone()],
            ..Config::default()
        }),
    ];
    for out in outputs {
        assert!(!out.contains(SECRET), "{out}");
        assert!(out.contains("<redacted>"), "{out}");
    }
}

#[test]
fn every_request_and_answer_of_the_table_is_debug() {
    fn debug<T: std::fmt::Debug>() {}
    macro_rules! check {
        ($($(#[doc = $doc:literal])+ $variant:ident, $method:ident, $name:literal, $wit:literal,
           $req:path => $answer:path;)+) => {
            $(debug::<$req>(); debug::<$answer>();)+
        };
    }
    for_each_op!(check);
}

#[test]
fn a_secret_of_the_wrong_json_type_is_named_without_its_value() {
    for (json, member) in [
        (r#"{"email":"e","password":31415926535}"#, "password"),
        (r#"{"email":"e","password":["31415926535"]}"#, "password"),
        (r#"{"email":"e","password":{"x":31415926535}}"#, "password"),
    ] {
        let e = serde_json::from_str::<SignIn>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{member} must be a string")), "{e}");
        assert!(!e.contains("31415926535"), "{e}");
    }
    for (json, member) in [
        (
            r#"{"user_id":"u","current_password":true,"new_password":"x"}"#,
            "current_password",
        ),
        (
            r#"{"user_id":"u","current_password":"x","new_password":31415926535}"#,
            "new_password",
        ),
    ] {
        let e = serde_json::from_str::<ChangePassword>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{member} must be a string")), "{e}");
        assert!(!e.contains("31415926535"), "{e}");
    }
    let e = serde_json::from_str::<BackupCodeSignIn>(r#"{"pending_token":"t","code":31415926535}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("code must be a string") && !e.contains("31415926535"),
        "{e}"
    );
}
