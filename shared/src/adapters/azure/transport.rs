//! The HTTP client under every Azure client: the workspace's `reqwest`
//! 0.12 (rustls + ring, already linked for the GitHub client) behind
//! `azure_core`'s [`HttpClient`] trait.
//!
//! Why not `azure_core`'s own `reqwest` feature: it brings a second reqwest
//! (0.13) whose rustls feature builds aws-lc's C library, which every other
//! part of this workspace avoids on purpose (see `aws::config_loader`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::request::{Body, Request};
use azure_core::http::{AsyncRawResponse, HttpClient, Method, Transport};

/// Connect timeout of every storage request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-request timeout: a block of a large upload is at most 8 MiB, so
/// this is generous; a hung server must not hang a worker forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest streamed request body we buffer (the blob store sends blocks of
/// at most 8 MiB; azure_core only streams when asked to).
const MAX_STREAMED_BODY: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct ReqwestClient(reqwest::Client);

/// The one HTTP client of the process: every Azure client shares its
/// connection pool (a `reqwest::Client` clone shares it).
static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();

/// A transport over the process's one HTTP client.
pub(crate) fn transport() -> Result<Transport, reqwest::Error> {
    let client = match CLIENT.get() {
        Some(client) => client.clone(),
        None => {
            let client = reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                // Storage never redirects; following one could leak a
                // signed header.
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            CLIENT.get_or_init(|| client).clone()
        }
    };
    Ok(Transport::new(Arc::new(ReqwestClient(client))))
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let method = match request.method() {
            Method::Delete => reqwest::Method::DELETE,
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Patch => reqwest::Method::PATCH,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            other => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    format!("unsupported HTTP method {other:?}"),
                ));
            }
        };
        let mut req = self.0.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        let body = match request.body().clone() {
            Body::Bytes(bytes) => bytes.to_vec(),
            Body::SeekableStream(mut stream) => {
                use futures::AsyncReadExt;
                let mut buf = Vec::new();
                (&mut stream)
                    .take(MAX_STREAMED_BODY as u64 + 1)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| Error::with_error(ErrorKind::Io, e, "reading the request body"))?;
                if buf.len() > MAX_STREAMED_BODY {
                    return Err(Error::with_message(
                        ErrorKind::Other,
                        format!("request body over {MAX_STREAMED_BODY} bytes"),
                    ));
                }
                buf
            }
        };
        let rsp = req.body(body).send().await.map_err(|e| {
            let kind = if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            Error::with_error(kind, e, "storage request failed")
        })?;
        let status = rsp.status().as_u16();
        let mut headers = Headers::new();
        for (name, value) in rsp.headers() {
            if let Ok(v) = value.to_str() {
                headers.insert(
                    HeaderName::from(name.as_str().to_owned()),
                    HeaderValue::from(v.to_owned()),
                );
            }
        }
        // Response bodies arrive chunk by chunk (a blob download streams).
        let stream = futures::stream::try_unfold(rsp, |mut rsp| async move {
            match rsp.chunk().await {
                Ok(Some(chunk)) => Ok(Some((chunk, rsp))),
                Ok(None) => Ok(None),
                Err(e) => Err(Error::with_error(ErrorKind::Io, e, "reading the response")),
            }
        });
        Ok(AsyncRawResponse::new(
            status.into(),
            headers,
            Box::pin(stream),
        ))
    }
}
