//! Given/when/then for users and sessions.

use crate::aggregate::Aggregate;
use crate::aggregate::scenario::Scenario;
use crate::identity::*;
use crate::ids::{ApiKeyId, SessionId, Timestamp, UserId};
use crate::session::*;

const T: Timestamp = Timestamp(1_000);

fn registered() -> UserEvent {
    UserEvent::Registered {
        user_id: UserId(uuid::Uuid::nil()),
        email: Email::parse("ann@example.com").unwrap(),
        password_hash: "h1".into(),
        role: Role::User,
        at: T,
    }
}

fn opened(session_id: SessionId) -> UserEvent {
    UserEvent::SessionOpened(OpenSession {
        session_id,
        expires_at: Timestamp(9_000),
        ip: None,
        user_agent: None,
        mfa: false,
        totp_step: None,
        at: T,
    })
}

#[test]
fn a_user_registers_once() {
    let command = |_| UserCommand::Register {
        user_id: UserId::new(),
        email: Email::parse("b@example.com").unwrap(),
        password_hash: "h".into(),
        role: Role::User,
        at: T,
    };
    Scenario::given(UserState::default(), &[registered()])
        .when(command(()))
        .then_fails(IdentityError::AlreadyRegistered);
    Scenario::given(UserState::default(), &[])
        .when(UserCommand::OpenSession(OpenSession {
            session_id: SessionId::new(),
            expires_at: T,
            ip: None,
            user_agent: None,
            mfa: false,
            totp_step: None,
            at: T,
        }))
        .then_fails(IdentityError::NotRegistered);
}

#[test]
fn blocking_closes_every_session_and_refuses_new_ones_and_keys() {
    let (a, b) = (SessionId::new(), SessionId::new());
    let given = [registered(), opened(a), opened(b)];
    let mut expected = vec![UserEvent::Blocked { reason: "fraud".into(), by: None, at: T }];
    expected.extend([a, b].into_iter().map(|session_id| UserEvent::SessionClosed {
        session_id,
        reason: SessionEnd::Blocked,
        at: T,
    }));
    let block = UserCommand::Block { reason: " fraud ".into(), by: None, at: T };
    Scenario::given(UserState::default(), &given).when(block.clone()).then(expected.clone());
    let mut blocked = given.to_vec();
    blocked.extend(expected);
    Scenario::given(UserState::default(), &blocked).when(block).then(vec![]);
    Scenario::given(UserState::default(), &blocked)
        .when(UserCommand::OpenSession(match opened(SessionId::new()) {
            UserEvent::SessionOpened(open) => open,
            _ => unreachable!(),
        }))
        .then_fails(IdentityError::Blocked);
    Scenario::given(UserState::default(), &blocked)
        .when(UserCommand::CreateApiKey { key_id: ApiKeyId::new(), name: "bot".into(), prefix: "p".into(), at: T })
        .then_fails(IdentityError::Blocked);
}

#[test]
fn changing_the_password_keeps_only_the_current_session() {
    let (current, other) = (SessionId::new(), SessionId::new());
    Scenario::given(UserState::default(), &[registered(), opened(current), opened(other)])
        .when(UserCommand::ChangePassword {
            password_hash: "h2".into(),
            end_sessions: SessionEnd::PasswordChanged,
            keep: Some(current),
            replaces_version: None,
            at: T,
        })
        .then(vec![
            UserEvent::PasswordChanged { password_hash: "h2".into(), at: T },
            UserEvent::SessionClosed { session_id: other, reason: SessionEnd::PasswordChanged, at: T },
        ]);
}

#[test]
fn a_reset_replaces_only_the_password_version_it_was_issued_for() {
    let reset = |version| UserCommand::ChangePassword {
        password_hash: "h3".into(),
        end_sessions: SessionEnd::PasswordReset,
        keep: None,
        replaces_version: Some(version),
        at: T,
    };
    let changed = [registered(), UserEvent::PasswordChanged { password_hash: "h2".into(), at: T }];
    Scenario::given(UserState::default(), &changed).when(reset(1)).then_fails(IdentityError::PasswordAlreadyChanged);
    Scenario::given(UserState::default(), &changed)
        .when(reset(2))
        .then(vec![UserEvent::PasswordChanged { password_hash: "h3".into(), at: T }]);
}

#[test]
fn api_keys_are_bounded_named_and_revoked_once() {
    let mut given = vec![registered()];
    let key = ApiKeyId::new();
    given.push(UserEvent::ApiKeyCreated { key_id: key, name: "bot".into(), prefix: "p".into(), at: T });
    let create = |name: &str| UserCommand::CreateApiKey {
        key_id: ApiKeyId::new(),
        name: name.into(),
        prefix: "p".into(),
        at: T,
    };
    Scenario::given(UserState::default(), &given).when(create("  ")).then_fails(IdentityError::Invalid {
        field: "name",
        reason: format!("1 to {NAME_LENGTH_MAX} printable characters"),
    });
    Scenario::given(UserState::default(), &given)
        .when(UserCommand::RevokeApiKey { key_id: key, at: T })
        .then(vec![UserEvent::ApiKeyRevoked { key_id: key, at: T }]);
    for _ in 1..API_KEYS_MAX {
        given.push(UserEvent::ApiKeyCreated { key_id: ApiKeyId::new(), name: "k".into(), prefix: "p".into(), at: T });
    }
    Scenario::given(UserState::default(), &given)
        .when(create("one too many"))
        .then_fails(IdentityError::TooManyApiKeys { max: API_KEYS_MAX });
}

#[test]
fn totp_is_enabled_only_after_a_secret_was_set() {
    Scenario::given(UserState::default(), &[registered()])
        .when(UserCommand::EnableTotp { step: 7, at: T })
        .then_fails(IdentityError::TotpNotSetUp);
    let secret = UserEvent::TotpSecretSet { secret_sealed: "s".into(), at: T };
    let given = [registered(), secret.clone()];
    Scenario::given(UserState::default(), &given)
        .when(UserCommand::EnableTotp { step: 7, at: T })
        .then(vec![UserEvent::TotpEnabled { step: 7, at: T }]);
    let enabled = [registered(), secret, UserEvent::TotpEnabled { step: 7, at: T }];
    Scenario::given(UserState::default(), &enabled)
        .when(UserCommand::SetTotpSecret { secret_sealed: "s2".into(), at: T })
        .then_fails(IdentityError::TotpAlreadyEnabled);
}

#[test]
fn profile_fields_are_checked() {
    let update = |name: Option<&str>, language: Option<&str>| UserCommand::UpdateProfile {
        display_name: name.map(Into::into),
        language: language.map(Into::into),
        at: T,
    };
    Scenario::given(UserState::default(), &[registered()]).when(update(Some(" Ann "), Some("pt-BR"))).then(vec![
        UserEvent::ProfileUpdated { display_name: Some("Ann".into()), language: Some("pt-BR".into()), at: T },
    ]);
    for language in ["english", "EN", "en-us", "e1"] {
        assert!(UserState::default().apply(&registered()).decide(update(None, Some(language))).is_err(), "{language}");
    }
}

fn issued() -> SessionEvent {
    SessionEvent::Issued {
        session_id: SessionId::new(),
        user_id: UserId::new(),
        token_hash: "t1".into(),
        expires_at: Timestamp(9_000),
        mfa: false,
        at: T,
    }
}

fn refresh(presented: &str, at: i64) -> SessionCommand {
    SessionCommand::Refresh { presented_hash: presented.into(), new_hash: "next".into(), at: Timestamp(at) }
}

#[test]
fn a_refresh_rotates_the_current_token() {
    Scenario::given(SessionState::default(), &[issued()])
        .when(refresh("t1", 2_000))
        .then(vec![SessionEvent::Rotated { token_hash: "next".into(), at: Timestamp(2_000) }]);
}

#[test]
fn presenting_a_rotated_token_revokes_the_family() {
    let given = [issued(), SessionEvent::Rotated { token_hash: "t2".into(), at: T }];
    Scenario::given(SessionState::default(), &given)
        .when(refresh("t1", 2_000))
        .then(vec![SessionEvent::Revoked { reason: SessionEnd::RefreshTokenReused, at: Timestamp(2_000) }]);
    let revoked =
        [given[0].clone(), given[1].clone(), SessionEvent::Revoked { reason: SessionEnd::RefreshTokenReused, at: T }];
    Scenario::given(SessionState::default(), &revoked).when(refresh("t2", 2_000)).then_fails(SessionError::Ended);
}

#[test]
fn unknown_and_expired_tokens_are_refused() {
    Scenario::given(SessionState::default(), &[issued()])
        .when(refresh("forged", 2_000))
        .then_fails(SessionError::UnknownToken);
    Scenario::given(SessionState::default(), &[issued()]).when(refresh("t1", 9_000)).then_fails(SessionError::Expired);
    Scenario::given(SessionState::default(), &[]).when(refresh("t1", 2_000)).then_fails(SessionError::UnknownToken);
}

#[test]
fn sessions_expired_before_a_new_login_are_forgotten() {
    let (old, recent) = (SessionId::new(), SessionId::new());
    let open = |session_id, at: i64, expires: i64| {
        UserEvent::SessionOpened(OpenSession {
            session_id,
            expires_at: Timestamp(expires),
            ip: None,
            user_agent: None,
            mfa: false,
            totp_step: None,
            at: Timestamp(at),
        })
    };
    let state = UserState::default().apply_all(&[registered(), open(old, 1, 10), open(recent, 5, 100)]);
    assert_eq!(state.sessions.len(), 2, "both still valid when the second opened");
    let state = state.apply(&open(SessionId::new(), 50, 150));
    assert!(!state.sessions.contains_key(&old));
    assert!(state.sessions.contains_key(&recent));
}
