//! Who may write: the one rule every write route applies.
//!
//! In order:
//! 1. A request whose caller an upstream verified ([`VerifiedCaller`], set
//!    by the Lambda host from API Gateway's `AWS_IAM` authorizer context,
//!    which AWS writes and a client cannot).
//! 2. With `TESTEXEC_API_TOKEN` configured: `Authorization: Bearer <token>`,
//!    compared in constant time.
//! 3. Without a token: only a loopback peer. A web page the user has open
//!    can reach loopback too, so such a write must also be
//!    `application/json` (a cross-site form or `text/plain` fetch cannot
//!    send that without a CORS preflight, which we never answer) and carry
//!    no foreign `Origin`.
//!
//! Every write also refuses a foreign `Origin` and a body that is not JSON.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::ApiError;
use super::state::FrontDoorConfig;

/// The caller's identity as an upstream verified it (e.g. the IAM ARN API
/// Gateway put in the request context after checking a SigV4 signature).
/// Hosts insert it as a request extension; no client header sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCaller(pub String);

/// Checks that the write in `parts` may go ahead.
pub(crate) fn authorize_write(config: &FrontDoorConfig, parts: &Parts) -> Result<(), ApiError> {
    require_same_origin(parts)?;
    require_json(parts)?;
    if let Some(VerifiedCaller(caller)) = parts.extensions.get::<VerifiedCaller>() {
        tracing::info!(caller = %caller, "write authorised by the upstream's verified caller");
        return Ok(());
    }
    if let Some(token) = &config.api_token {
        let presented = bearer_token(parts).unwrap_or_default();
        if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
            return Ok(());
        }
        return Err(ApiError::new(
            401,
            "missing or wrong `Authorization: Bearer <token>` (the value of TESTEXEC_API_TOKEN)",
        ));
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    match peer {
        Some(addr) if addr.ip().is_loopback() => Ok(()),
        _ => Err(ApiError::new(
            401,
            format!(
                "writes from {} need a credential: configure TESTEXEC_API_TOKEN and send `Authorization: Bearer <token>` (on AWS, the route's AWS_IAM authorizer with a SigV4-signed call also works); without a token only loopback callers may write",
                peer.map_or_else(|| "this caller".to_string(), |a| a.ip().to_string())
            ),
        )),
    }
}

/// The token of `Authorization: Bearer <token>`, trimmed.
pub(crate) fn bearer_token(parts: &Parts) -> Option<&str> {
    header(parts, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Browsers send `Origin` on every cross-site POST; a page on another site
/// must not start runs with the user's network position.
pub(crate) fn require_same_origin(parts: &Parts) -> Result<(), ApiError> {
    let Some(origin) = parts.headers.get("origin") else {
        return Ok(());
    };
    let host = header(parts, "host").unwrap_or_default();
    let same = origin.to_str().ok().is_some_and(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            .is_some_and(|rest| !host.is_empty() && rest.eq_ignore_ascii_case(host))
    });
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            format!(
                "cross-origin write refused (Origin `{}` is not this server)",
                String::from_utf8_lossy(origin.as_bytes())
                    .chars()
                    .take(100)
                    .collect::<String>()
            ),
        ))
    }
}

pub(crate) fn require_json(parts: &Parts) -> Result<(), ApiError> {
    let essence = header(parts, "content-type")
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    let shown = if essence.is_empty() {
        "none".to_string()
    } else {
        format!("`{}`", essence.chars().take(100).collect::<String>())
    };
    Err(ApiError::new(
        415,
        format!("content type {shown} is not accepted; send `Content-Type: application/json`"),
    ))
}
