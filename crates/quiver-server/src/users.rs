//! Handlers for credentials: CreateCredential, UpdateCredential, DeleteCredential, ListCredUsers.
//!
//! They work with or without `--auth` (users are kept either way; only `--auth` checks them).
//! Passwords arrive base64-encoded; they are validated with Milvus's rules and stored as argon2id
//! hashes through the engine (see [`crate::auth`]). Errors carry Milvus's codes:
//!
//! | case                                      | code  | reason                                              |
//! |-------------------------------------------|-------|-----------------------------------------------------|
//! | invalid user name or password             | 1100  | `invalid user name ...` / `invalid password ...`    |
//! | the user already exists                   | 65535 | `user already exists: NAME`                         |
//! | wrong old password, or no such user (update) | 1400 | `old password not correct for NAME: not authenticated` |
//! | deleting `root`                           | 1401  | `root user cannot be deleted: privilege not permitted` |
//!
//! Deleting a user that does not exist succeeds, as in Milvus. A changed or deleted user's cached
//! verifications are dropped at once.

use quiver_core::{Error, Result};

use crate::auth::{
    check_password, check_username, decode_password, hash_password, verify_password, ROOT_USER,
};
use crate::proto::common::{ErrorCode, Status};
use crate::proto::milvus::*;
use crate::service::Ctx;
use crate::status::{code, failed, ok};

fn invalid(reason: String) -> Status {
    failed(
        code::PARAMETER_INVALID,
        ErrorCode::IllegalArgument,
        reason,
        true,
    )
}

fn forget(ctx: &Ctx, user: &str) {
    if let Some(auth) = &ctx.shared.auth {
        auth.forget_user(user);
    }
}

pub fn create_credential(ctx: &Ctx, req: CreateCredentialRequest) -> Result<Status> {
    if let Err(why) = check_username(&req.username) {
        return Ok(invalid(why));
    }
    let password = match decode_password(&req.password) {
        Ok(p) => p,
        Err(why) => return Ok(invalid(why)),
    };
    if let Err(why) = check_password(&password) {
        return Ok(invalid(why));
    }
    let exists = || {
        failed(
            code::UNEXPECTED,
            ErrorCode::UnexpectedError,
            format!("user already exists: {}", req.username),
            false,
        )
    };
    if ctx.engine().user_password_hash(&req.username).is_some() {
        return Ok(exists());
    }
    match ctx
        .engine()
        .create_user(&req.username, &hash_password(&password)?)
    {
        Ok(()) => Ok(ok()),
        Err(Error::AlreadyExists { .. }) => Ok(exists()),
        Err(e) => Err(e),
    }
}

pub fn update_credential(ctx: &Ctx, req: UpdateCredentialRequest) -> Result<Status> {
    let not_authenticated = || {
        failed(
            code::PRIVILEGE_NOT_AUTHENTICATED,
            ErrorCode::UnexpectedError,
            format!(
                "old password not correct for {}: not authenticated",
                req.username
            ),
            true,
        )
    };
    let (old, new) = match (
        decode_password(&req.old_password),
        decode_password(&req.new_password),
    ) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(why), _) | (_, Err(why)) => return Ok(invalid(why)),
    };
    if let Err(why) = check_password(&new) {
        return Ok(invalid(why));
    }
    let matches = ctx
        .engine()
        .user_password_hash(&req.username)
        .is_some_and(|phc| verify_password(&old, &phc));
    if !matches {
        return Ok(not_authenticated());
    }
    ctx.engine()
        .update_user(&req.username, &hash_password(&new)?)?;
    forget(ctx, &req.username);
    Ok(ok())
}

pub fn delete_credential(ctx: &Ctx, req: DeleteCredentialRequest) -> Result<Status> {
    if req.username == ROOT_USER {
        return Ok(failed(
            code::PRIVILEGE_NOT_PERMITTED,
            ErrorCode::UnexpectedError,
            "root user cannot be deleted: privilege not permitted".into(),
            true,
        ));
    }
    if ctx.engine().user_password_hash(&req.username).is_some() {
        match ctx.engine().delete_user(&req.username) {
            // Deleted concurrently: the outcome is the same.
            Ok(()) | Err(Error::FailedPrecondition(_)) => {}
            Err(e) => return Err(e),
        }
    }
    forget(ctx, &req.username);
    Ok(ok())
}

pub fn list_cred_users(ctx: &Ctx, _: ListCredUsersRequest) -> Result<ListCredUsersResponse> {
    Ok(ListCredUsersResponse {
        status: Some(ok()),
        usernames: ctx.engine().list_users(),
    })
}
