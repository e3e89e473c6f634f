//! A small Azure Tables REST client on `azure_core`'s pipeline: point
//! reads, insert, conditional replace, delete, filtered queries with
//! continuation, and entity-group transactions. No maintained 1.x Tables
//! crate exists (`azure_data_tables` is archived on the pre-1.0 SDK), and
//! the run store needs only these calls; they share the SDK's retry policy
//! and credentials (bearer token or SharedKey) with the other clients.

use std::fmt::Write as _;
use std::sync::Arc;

use azure_core::http::policies::Policy;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::request::Request;
use azure_core::http::{Context, Method, Pipeline, PipelineSendOptions, RawResponse, Url};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Map, Value};

use super::super::auth::{Service, SharedKeyPolicy, StorageCredential};

/// The Table service version spoken.
const VERSION: &str = "2019-02-02";
const JSON_NO_METADATA: &str = "application/json;odata=nometadata";
/// Most operations in one entity-group transaction.
pub const BATCH_MAX_OPS: usize = 100;
/// Most bytes in one entity-group transaction's body (the service allows
/// 4 MiB; the margin covers the multipart framing).
pub const BATCH_MAX_BYTES: usize = 3 * 1024 * 1024 + 512 * 1024;

/// Characters escaped inside a key literal of an entity URL.
const KEY_CHARS: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'\\');

/// One entity's properties as the service's JSON (with `PartitionKey`,
/// `RowKey`; Int64 values carry their `@odata.type`).
pub type Entity = Map<String, Value>;

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Done; the entity's new ETag.
    Done(String),
    /// 409: an insert found the entity there.
    Exists,
    /// 412: the `If-Match` ETag did not match.
    Changed,
    /// 404: a replace or delete found no entity.
    Missing,
}

/// One operation of an entity-group transaction.
#[derive(Debug, Clone)]
pub enum BatchOp {
    Insert(Entity),
    /// Replace the entity if its ETag still is the given one.
    Replace {
        entity: Entity,
        etag: String,
    },
    /// Insert or replace, whatever is there (a `PUT` without `If-Match`).
    Upsert(Entity),
}

/// A request the service refused, with what it said.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status} {code}: {message}")]
pub struct Refused {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Http(#[from] azure_core::Error),
    #[error("unreadable answer: {0}")]
    Answer(String),
}

#[derive(Clone)]
pub struct TableClient {
    pipeline: Pipeline,
    endpoint: Url,
    table: String,
}

impl std::fmt::Debug for TableClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableClient({}, {})", self.endpoint, self.table)
    }
}

impl TableClient {
    pub fn new(
        endpoint: &str,
        table: &str,
        credential: &StorageCredential,
    ) -> Result<Self, String> {
        let endpoint = Url::parse(&format!("{}/", endpoint.trim_end_matches('/')))
            .map_err(|e| format!("bad table endpoint: {e}"))?;
        let auth: Arc<dyn Policy> = match credential {
            StorageCredential::Token(t) => {
                if endpoint.scheme() != "https" {
                    return Err("a token credential needs an https endpoint".into());
                }
                Arc::new(BearerTokenAuthorizationPolicy::new(
                    t.clone(),
                    vec!["https://storage.azure.com/.default"],
                ))
            }
            StorageCredential::SharedKey { account, key } => Arc::new(
                SharedKeyPolicy::new(account, key, Service::Table).map_err(|e| e.to_string())?,
            ),
        };
        let pipeline = Pipeline::new(
            Some("testexec"),
            Some(env!("CARGO_PKG_VERSION")),
            super::super::client_options(None)?,
            Vec::new(),
            vec![auth],
            None,
        );
        Ok(Self {
            pipeline,
            endpoint,
            table: table.to_string(),
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/{path}"));
        url
    }

    fn entity_url(&self, pk: &str, rk: &str) -> Url {
        self.url(&format!(
            "{}(PartitionKey='{}',RowKey='{}')",
            self.table,
            key_literal(pk),
            key_literal(rk)
        ))
    }

    async fn send(&self, mut request: Request) -> Result<RawResponse, TableError> {
        request.insert_header("x-ms-version", VERSION);
        request.insert_header("dataserviceversion", "3.0");
        request.insert_header("maxdataserviceversion", "3.0;NetFx");
        request.insert_header("accept", JSON_NO_METADATA);
        let options = PipelineSendOptions {
            skip_checks: true,
            ..Default::default()
        };
        Ok(self
            .pipeline
            .send(&Context::new(), &mut request, Some(options))
            .await?)
    }

    fn json_request(&self, url: Url, method: Method, entity: &Entity) -> Request {
        let mut request = Request::new(url, method);
        request.insert_header("content-type", "application/json");
        request.set_body(serde_json::to_vec(entity).unwrap_or_default());
        request
    }

    /// Creates the table; an existing one is fine.
    pub async fn create_table(&self) -> Result<(), TableError> {
        let mut body = Map::new();
        body.insert("TableName".into(), Value::String(self.table.clone()));
        let mut request = self.json_request(self.url("Tables"), Method::Post, &body);
        request.insert_header("prefer", "return-no-content");
        let rsp = self.send(request).await?;
        match u16::from(rsp.status()) {
            201 | 204 | 409 => Ok(()),
            _ => Err(refused(&rsp).into()),
        }
    }

    /// The entity and its ETag, or `None`.
    pub async fn get(&self, pk: &str, rk: &str) -> Result<Option<(Entity, String)>, TableError> {
        let rsp = self
            .send(Request::new(self.entity_url(pk, rk), Method::Get))
            .await?;
        match u16::from(rsp.status()) {
            200 => {
                let etag = etag(&rsp)?;
                let entity: Entity = serde_json::from_slice(rsp.body().as_ref())
                    .map_err(|e| TableError::Answer(format!("entity JSON: {e}")))?;
                Ok(Some((entity, etag)))
            }
            404 => Ok(None),
            _ => Err(refused(&rsp).into()),
        }
    }

    /// Inserts a new entity: `Exists` when one with its keys is there.
    pub async fn insert(&self, entity: &Entity) -> Result<Write, TableError> {
        let mut request = self.json_request(self.url(&self.table), Method::Post, entity);
        request.insert_header("prefer", "return-no-content");
        let rsp = self.send(request).await?;
        match u16::from(rsp.status()) {
            201 | 204 => Ok(Write::Done(etag(&rsp)?)),
            409 => Ok(Write::Exists),
            _ => Err(refused(&rsp).into()),
        }
    }

    /// Replaces an entity: only if its ETag is `if_match`, or inserts or
    /// replaces it unconditionally when `if_match` is `None`.
    pub async fn replace(
        &self,
        entity: &Entity,
        if_match: Option<&str>,
    ) -> Result<Write, TableError> {
        let (pk, rk) = keys(entity)?;
        let mut request = self.json_request(self.entity_url(&pk, &rk), Method::Put, entity);
        if let Some(etag) = if_match {
            request.insert_header("if-match", etag.to_string());
        }
        let rsp = self.send(request).await?;
        match u16::from(rsp.status()) {
            204 | 200 | 201 => Ok(Write::Done(etag(&rsp)?)),
            412 => Ok(Write::Changed),
            404 => Ok(Write::Missing),
            _ => Err(refused(&rsp).into()),
        }
    }

    /// Deletes an entity whatever its ETag; a missing one is fine.
    pub async fn delete(&self, pk: &str, rk: &str) -> Result<(), TableError> {
        let mut request = Request::new(self.entity_url(pk, rk), Method::Delete);
        request.insert_header("if-match", "*");
        let rsp = self.send(request).await?;
        match u16::from(rsp.status()) {
            204 | 404 => Ok(()),
            _ => Err(refused(&rsp).into()),
        }
    }

    /// Every entity matching an OData `$filter`, page by page (the service
    /// stops a page at 1000 entities or 5 s), until `limit`.
    pub async fn query(&self, filter: &str, limit: usize) -> Result<Vec<Entity>, TableError> {
        let mut out = Vec::new();
        let mut next: Option<(String, Option<String>)> = None;
        loop {
            let mut url = self.url(&format!("{}()", self.table));
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("$filter", filter);
                q.append_pair(
                    "$top",
                    &limit.saturating_sub(out.len()).clamp(1, 1000).to_string(),
                );
                if let Some((pk, rk)) = &next {
                    q.append_pair("NextPartitionKey", pk);
                    if let Some(rk) = rk {
                        q.append_pair("NextRowKey", rk);
                    }
                }
            }
            let rsp = self.send(Request::new(url, Method::Get)).await?;
            if u16::from(rsp.status()) != 200 {
                return Err(refused(&rsp).into());
            }
            let page: Value = serde_json::from_slice(rsp.body().as_ref())
                .map_err(|e| TableError::Answer(format!("query JSON: {e}")))?;
            if let Some(items) = page.get("value").and_then(Value::as_array) {
                for item in items {
                    if let Value::Object(e) = item {
                        out.push(e.clone());
                    }
                }
            }
            let header = |name: &'static str| {
                rsp.headers()
                    .get_optional_str(&azure_core::http::headers::HeaderName::from_static(name))
                    .map(str::to_string)
            };
            next = header("x-ms-continuation-nextpartitionkey")
                .map(|pk| (pk, header("x-ms-continuation-nextrowkey")));
            if next.is_none() || out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// One entity-group transaction: every operation applies, or none.
    /// All entities must share one partition; at most [`BATCH_MAX_OPS`].
    /// `Ok(None)` when all applied, `Ok(Some(refusal))` when the service
    /// refused the changeset (a 409 or 412 of one operation, say).
    pub async fn batch(&self, ops: &[BatchOp]) -> Result<Option<Refused>, TableError> {
        let id = ulid::Ulid::new().to_string();
        let (batch, changeset) = (format!("batch_{id}"), format!("changeset_{id}"));
        let mut body =
            format!("--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n");
        for op in ops {
            let (method, url, entity, etag) = match op {
                BatchOp::Insert(e) => ("POST", self.url(&self.table), e, None),
                BatchOp::Upsert(entity) => {
                    let (pk, rk) = keys(entity)?;
                    ("PUT", self.entity_url(&pk, &rk), entity, None)
                }
                BatchOp::Replace { entity, etag } => {
                    let (pk, rk) = keys(entity)?;
                    ("PUT", self.entity_url(&pk, &rk), entity, Some(etag))
                }
            };
            let _ = write!(
                body,
                "--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{method} {url} HTTP/1.1\r\nContent-Type: application/json\r\nAccept: {JSON_NO_METADATA}\r\nDataServiceVersion: 3.0\r\nPrefer: return-no-content\r\n"
            );
            if let Some(etag) = etag {
                let _ = write!(body, "If-Match: {etag}\r\n");
            }
            body.push_str("\r\n");
            body.push_str(&serde_json::to_string(entity).unwrap_or_default());
            body.push_str("\r\n");
        }
        let _ = write!(body, "--{changeset}--\r\n--{batch}--\r\n");
        let mut request = Request::new(self.url("$batch"), Method::Post);
        request.insert_header("content-type", format!("multipart/mixed; boundary={batch}"));
        request.set_body(body.into_bytes());
        let rsp = self.send(request).await?;
        if u16::from(rsp.status()) != 202 {
            return Err(refused(&rsp).into());
        }
        let text = String::from_utf8_lossy(rsp.body().as_ref()).into_owned();
        Ok(first_refusal(&text))
    }
}

/// The first non-2xx sub-response of a batch answer, if any.
fn first_refusal(text: &str) -> Option<Refused> {
    let mut parts = text.split("HTTP/1.1 ").skip(1);
    parts.find_map(|part| {
        let status: u16 = part.get(..3)?.parse().ok()?;
        if (200..300).contains(&status) {
            return None;
        }
        // The sub-response's JSON error: {"odata.error":{"code":..,"message":{"value":..}}}
        let json = part.find('{').map(|i| &part[i..]).unwrap_or("");
        let json = json.rfind('}').map(|j| &json[..=j]).unwrap_or("");
        let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
        let err = value.get("odata.error").unwrap_or(&value);
        let code = err
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let message = err
            .get("message")
            .and_then(|m| m.get("value").or(Some(m)))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Some(Refused {
            status,
            code,
            message,
        })
    })
}

fn key_literal(key: &str) -> String {
    utf8_percent_encode(&key.replace('\'', "''"), KEY_CHARS).to_string()
}

fn keys(entity: &Entity) -> Result<(String, String), TableError> {
    let get = |k: &str| {
        entity
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| TableError::Answer(format!("entity without {k}")))
    };
    Ok((get("PartitionKey")?, get("RowKey")?))
}

fn etag(rsp: &RawResponse) -> Result<String, TableError> {
    rsp.headers()
        .get_optional_str(&azure_core::http::headers::HeaderName::from_static("etag"))
        .map(str::to_string)
        .ok_or_else(|| TableError::Answer("no ETag in the answer".into()))
}

fn refused(rsp: &RawResponse) -> Refused {
    let status = u16::from(rsp.status());
    let value: Value = serde_json::from_slice(rsp.body().as_ref()).unwrap_or(Value::Null);
    let err = value.get("odata.error").unwrap_or(&value);
    Refused {
        status,
        code: err
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        message: err
            .get("message")
            .and_then(|m| m.get("value").or(Some(m)))
            .and_then(Value::as_str)
            .map(|m| crate::domain::report::truncate_bytes(m, 500).to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_answer_names_the_refused_operation() {
        let ok = "--b\r\nHTTP/1.1 204 No Content\r\n\r\n--b\r\nHTTP/1.1 204 No Content\r\n";
        assert!(first_refusal(ok).is_none());
        let bad = "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 412 Precondition Failed\r\nContent-Type: application/json\r\n\r\n{\"odata.error\":{\"code\":\"UpdateConditionNotSatisfied\",\"message\":{\"lang\":\"en-US\",\"value\":\"1:The update condition specified in the request was not satisfied.\"}}}\r\n--b--";
        let r = first_refusal(bad).unwrap();
        assert_eq!(
            (r.status, r.code.as_str()),
            (412, "UpdateConditionNotSatisfied")
        );
        assert!(r.message.starts_with("1:"));
    }

    #[test]
    fn key_literals_are_quoted_and_escaped() {
        assert_eq!(key_literal("run"), "run");
        assert_eq!(key_literal("a'b/c"), "a''b%2Fc");
    }
}
