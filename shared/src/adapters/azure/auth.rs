//! How requests to the storage account are authorised, and SAS links.
//!
//! Two credentials, one per place testexec runs:
//!
//! - [`StorageCredential::Token`]: an Entra ID bearer token from
//!   `azure_identity` (the Container App's managed identity). Production.
//!   The SDK clients add it with their own `BearerTokenAuthorizationPolicy`;
//!   the Tables client uses the same policy.
//! - [`StorageCredential::SharedKey`]: the account key, signed per request
//!   by [`SharedKeyPolicy`] (the 1.x SDK crates dropped SharedKey). Only
//!   for azurite's well-known development account: a real account should
//!   have shared-key access disabled.
//!
//! Report links are service SAS URLs for one blob, read-only: signed with a
//! user delegation key (fetched with the token, cached) in production, with
//! the account key against azurite (which cannot issue delegation keys over
//! plain HTTP).

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::request::{Body, Request};
use azure_core::http::{Context, Url};
use azure_core::time::OffsetDateTime;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `x-ms-version` the Tables client speaks, and the SAS version.
pub(crate) const SAS_VERSION: &str = "2022-11-02";

/// Who signs requests to the storage account.
#[derive(Clone)]
pub enum StorageCredential {
    /// Account name and base64 account key (azurite's development account).
    SharedKey { account: String, key: Secret },
    /// Entra ID tokens (managed identity in production).
    Token(Arc<dyn TokenCredential>),
}

impl std::fmt::Debug for StorageCredential {
    // Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SharedKey { account, .. } => write!(f, "SharedKey({account}, <redacted>)"),
            Self::Token(_) => f.write_str("Token(<credential>)"),
        }
    }
}

/// Which service's SharedKey rules a request follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    BlobOrQueue,
    Table,
}

/// Signs every try of a request with SharedKey (a fresh `x-ms-date` per
/// try, so a retried request is not refused as stale).
#[derive(Clone)]
pub(crate) struct SharedKeyPolicy {
    account: String,
    key: Vec<u8>,
    service: Service,
}

impl std::fmt::Debug for SharedKeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedKeyPolicy({}, {:?})", self.account, self.service)
    }
}

/// The account key is not base64: say so without echoing it.
#[derive(Debug, thiserror::Error)]
#[error("the storage account key is not valid base64 (check TESTEXEC_AZURE_STORAGE_KEY)")]
pub struct BadAccountKey;

impl SharedKeyPolicy {
    pub(crate) fn new(
        account: &str,
        key: &Secret,
        service: Service,
    ) -> Result<Self, BadAccountKey> {
        let key = azure_core::base64::decode(key.secret()).map_err(|_| BadAccountKey)?;
        Ok(Self {
            account: account.to_string(),
            key,
            service,
        })
    }

    fn sign(&self, string_to_sign: &str) -> String {
        hmac_b64(&self.key, string_to_sign)
    }

    /// The string to sign of `request` (the REST docs' "Authorize with
    /// Shared Key"), with `date` as its `x-ms-date`.
    pub(crate) fn string_to_sign(&self, request: &Request, date: &str) -> String {
        let header = |name: &'static str| {
            request
                .headers()
                .get_optional_str(&HeaderName::from_static(name))
                .unwrap_or("")
                .to_string()
        };
        let url = request.url();
        let mut resource = format!("/{}{}", self.account, url.path());
        match self.service {
            Service::Table => {
                // Tables: only `comp` of the query is signed.
                if let Some((_, v)) = url.query_pairs().find(|(k, _)| k == "comp") {
                    resource.push_str("?comp=");
                    resource.push_str(&v);
                }
                format!(
                    "{}\n{}\n{}\n{date}\n{resource}",
                    method_name(request),
                    header("content-md5"),
                    header("content-type"),
                )
            }
            Service::BlobOrQueue => {
                let mut params: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| (k.to_lowercase(), v.into_owned()))
                    .collect();
                params.sort();
                let mut merged: Vec<(String, Vec<String>)> = Vec::new();
                for (k, v) in params {
                    match merged.last_mut() {
                        Some((last, values)) if *last == k => values.push(v),
                        _ => merged.push((k, vec![v])),
                    }
                }
                for (k, values) in merged {
                    resource.push('\n');
                    resource.push_str(&k);
                    resource.push(':');
                    resource.push_str(&values.join(","));
                }
                let mut ms: Vec<(String, String)> = request
                    .headers()
                    .iter()
                    .filter(|(k, _)| k.as_str().starts_with("x-ms-"))
                    .map(|(k, v)| (k.as_str().to_string(), v.as_str().trim().to_string()))
                    .collect();
                ms.sort();
                let canonical_headers: String =
                    ms.into_iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
                let length = match body_len(request.body()) {
                    0 => String::new(),
                    n => n.to_string(),
                };
                format!(
                    "{}\n{}\n{}\n{length}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n{canonical_headers}{resource}",
                    method_name(request),
                    header("content-encoding"),
                    header("content-language"),
                    header("content-md5"),
                    header("content-type"),
                    header("if-modified-since"),
                    header("if-match"),
                    header("if-none-match"),
                    header("if-unmodified-since"),
                    header("range"),
                )
            }
        }
    }
}

fn body_len(body: &Body) -> u64 {
    match body {
        Body::Bytes(b) => b.len() as u64,
        Body::SeekableStream(s) => s.len().unwrap_or(0),
    }
}

fn method_name(request: &Request) -> &'static str {
    use azure_core::http::Method;
    match request.method() {
        Method::Delete => "DELETE",
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Patch => "PATCH",
        Method::Post => "POST",
        Method::Put => "PUT",
        _ => "",
    }
}

pub(crate) fn hmac_b64(key: &[u8], data: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    azure_core::base64::encode(mac.finalize().into_bytes())
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let date = azure_core::time::to_rfc7231(&OffsetDateTime::now_utc());
        request.insert_header("x-ms-date", date.clone());
        let signature = self.sign(&self.string_to_sign(request, &date));
        let scheme = match self.service {
            Service::BlobOrQueue | Service::Table => "SharedKey",
        };
        request.insert_header(
            "authorization",
            format!("{scheme} {}:{signature}", self.account),
        );
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// `2026-12-06T19:37:57Z`: the form SAS fields take.
pub(crate) fn iso8601(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The signing key of a user delegation SAS, as Get User Delegation Key
/// returned it.
#[derive(Clone)]
pub(crate) struct DelegationKey {
    pub oid: String,
    pub tid: String,
    pub start: String,
    pub expiry: String,
    /// When the key stops signing (links made with it die then too).
    pub expires_at: OffsetDateTime,
    pub service: String,
    pub version: String,
    pub value: Vec<u8>,
}

/// A read-only SAS for one blob, as query parameters to append to its URL.
/// `canonical` is `/blob/<account>/<container>/<blob name>` (unencoded).
pub(crate) fn blob_read_sas(
    canonical: &str,
    expiry: OffsetDateTime,
    https_only: bool,
    signer: SasSigner<'_>,
) -> Vec<(&'static str, String)> {
    let se = iso8601(expiry);
    let spr = if https_only { "https" } else { "" };
    let mut params = vec![
        ("sv", SAS_VERSION.to_string()),
        ("sr", "b".into()),
        ("sp", "r".into()),
    ];
    params.push(("se", se.clone()));
    if https_only {
        params.push(("spr", spr.into()));
    }
    let sig = match signer {
        SasSigner::AccountKey(key) => {
            // sp, st, se, resource, si, sip, spr, sv, sr, snapshot,
            // encryption scope, rscc, rscd, rsce, rscl, rsct.
            let to_sign =
                format!("r\n\n{se}\n{canonical}\n\n\n{spr}\n{SAS_VERSION}\nb\n\n\n\n\n\n\n");
            hmac_b64(key, &to_sign)
        }
        SasSigner::Delegation(k) => {
            params.extend([
                ("skoid", k.oid.clone()),
                ("sktid", k.tid.clone()),
                ("skt", k.start.clone()),
                ("ske", k.expiry.clone()),
                ("sks", k.service.clone()),
                ("skv", k.version.clone()),
            ]);
            // sp, st, se, resource, skoid, sktid, skt, ske, sks, skv,
            // saoid, suoid, scid, sip, spr, sv, sr, snapshot, encryption
            // scope, rscc, rscd, rsce, rscl, rsct.
            let to_sign = format!(
                "r\n\n{se}\n{canonical}\n{}\n{}\n{}\n{}\n{}\n{}\n\n\n\n\n{spr}\n{SAS_VERSION}\nb\n\n\n\n\n\n\n",
                k.oid, k.tid, k.start, k.expiry, k.service, k.version
            );
            hmac_b64(&k.value, &to_sign)
        }
    };
    params.push(("sig", sig));
    params
}

/// What signs a SAS.
pub(crate) enum SasSigner<'a> {
    AccountKey(&'a [u8]),
    Delegation(&'a DelegationKey),
}

/// Appends SAS parameters to a blob URL.
pub(crate) fn with_sas(mut url: Url, params: &[(&'static str, String)]) -> Url {
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The string to sign of a queue GET, as the REST docs lay it out
    /// (empty Content-Length for no body, sorted x-ms- headers, sorted
    /// query parameters under the resource).
    #[test]
    fn blob_queue_string_to_sign_follows_the_docs() {
        let key = Secret::new(azure_core::base64::encode(b"k"));
        let p = SharedKeyPolicy::new("acct", &key, Service::BlobOrQueue).unwrap();
        let url =
            Url::parse("http://h/acct/q/messages?visibilitytimeout=5&numofmessages=1").unwrap();
        let mut r = Request::new(url, azure_core::http::Method::Get);
        r.insert_header("x-ms-version", "2026-04-06");
        r.insert_header("x-ms-date", "D");
        let s = p.string_to_sign(&r, "D");
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:D\nx-ms-version:2026-04-06\n/acct/acct/q/messages\nnumofmessages:1\nvisibilitytimeout:5"
        );
    }

    #[test]
    fn table_string_to_sign_keeps_only_comp() {
        let key = Secret::new(azure_core::base64::encode(b"k"));
        let p = SharedKeyPolicy::new("acct", &key, Service::Table).unwrap();
        let url = Url::parse("http://h/acct/t()?$filter=x&comp=list").unwrap();
        let mut r = Request::new(url, azure_core::http::Method::Get);
        r.insert_header("content-type", "application/json");
        assert_eq!(
            p.string_to_sign(&r, "D"),
            "GET\n\napplication/json\nD\n/acct/acct/t()?comp=list"
        );
    }

    #[test]
    fn a_bad_key_is_refused_without_echoing_it() {
        let err =
            SharedKeyPolicy::new("a", &Secret::new("not base64!!"), Service::Table).unwrap_err();
        assert!(!err.to_string().contains("not base64!!"));
    }

    #[test]
    fn sas_dates_are_iso8601_utc() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(iso8601(t), "2023-11-14T22:13:20Z");
    }
}
