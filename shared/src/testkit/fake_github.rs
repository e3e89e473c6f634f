//! A fake of the GitHub REST API for tests: an axum server on
//! `127.0.0.1:0` that answers the endpoints testexec calls the way
//! api.github.com does (status codes, bodies, limits, headers) and records
//! every request for assertions.
//!
//! It stands for one GitHub App ([`APP_ID`], signing with the TEST-ONLY key
//! pair in `shared/tests/fixtures/github/`) installed as [`INSTALLATION_ID`]
//! on the repositories given to [`FakeGithub::start`]:
//!
//! - `POST /app/installations/{id}/access_tokens` and
//!   `GET /repos/{owner}/{repo}/installation` want the App JWT: RS256,
//!   signed by the test key, `iss` the App id, `iat` not in the future, `exp`
//!   in the future and at most 10 minutes ahead; otherwise 401 like GitHub.
//!   Tokens are `ghs_test_token_1`, `_2`, ... ([`installation_token`]), valid
//!   for an hour ([`FakeGithub::set_token_ttl`]); an expired or unknown one
//!   gets 401 `Bad credentials`.
//! - `GET /repos/{o}/{r}/commits/{ref}` resolves a SHA or a ref registered
//!   with [`FakeGithub::add_tarball`] / [`FakeGithub::set_ref`] (422 `No commit
//!   found` otherwise); `GET /repos/{o}/{r}/tarball/{ref}` redirects (302) to
//!   `/codeload/{o}/{r}/legacy.tar.gz/{ref}` on the fake, which serves the
//!   bytes the test provided.
//! - Check runs: create, update (annotations are appended, as on GitHub),
//!   get, list for a ref (`check_name`, `status`, `filter=latest|all`,
//!   paging) and list annotations. GitHub's limits are enforced with its 422
//!   answers: more than 50 annotations or 3 actions in one request,
//!   `summary`/`text` over 65535 characters or bytes, annotation and action
//!   fields missing or too long, unknown status/conclusion/level. Only an
//!   installation token may write check runs (a personal token gets 403).
//! - Commit statuses: create (state, 140-character description, 1000 per
//!   SHA and context).
//!
//! Any other token than `ghs_...` counts as a personal access token with
//! access to every installed repository. Every answer carries
//! `x-ratelimit-*` headers counted per credential (5000 an hour by default,
//! [`FakeGithub::set_rate_limit`]); a spent budget answers 403 with
//! `x-ratelimit-remaining: 0`. [`FakeGithub::script`] queues canned answers
//! (status, headers, body) for the next requests whose path contains a
//! string, before any of the above: outages, secondary rate limits.
//!
//! The fake shares no code with the client it tests (JWT checks excepted,
//! which use `jsonwebtoken` like any GitHub server would).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};

/// The App's id (`iss` of its JWTs).
pub const APP_ID: u64 = 31337;
/// The App's installation on the repositories given to [`FakeGithub::start`].
pub const INSTALLATION_ID: u64 = 4242;
/// The App's private key (TEST-ONLY: it belongs to no real App).
pub const PRIVATE_KEY_PEM: &str =
    include_str!("../../tests/fixtures/github/TEST-ONLY-app-private-key.pem");
/// Its public half, which the fake checks JWTs with.
pub const PUBLIC_KEY_PEM: &str =
    include_str!("../../tests/fixtures/github/TEST-ONLY-app-public-key.pem");
/// The private key's file, for processes configured with a key path.
pub const PRIVATE_KEY_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/github/TEST-ONLY-app-private-key.pem"
);

/// Annotations accepted per create/update request.
pub const MAX_ANNOTATIONS_PER_REQUEST: usize = 50;
/// `output.summary` and `output.text`, in characters and in bytes.
pub const MAX_OUTPUT: usize = 65_535;
/// Annotation `message` and `raw_details` ("64 KB").
pub const MAX_ANNOTATION_FIELD_BYTES: usize = 64 * 1024;
/// Annotation `title`, in characters.
pub const MAX_ANNOTATION_TITLE_CHARS: usize = 255;
/// Check run `actions` per request and their field lengths in characters.
pub const MAX_ACTIONS: usize = 3;
pub const MAX_ACTION_LABEL_CHARS: usize = 20;
pub const MAX_ACTION_DESCRIPTION_CHARS: usize = 40;
pub const MAX_ACTION_IDENTIFIER_CHARS: usize = 20;
/// Commit status `description`, in characters.
pub const MAX_STATUS_DESCRIPTION_CHARS: usize = 140;
/// Statuses per SHA and context.
pub const MAX_STATUSES_PER_CONTEXT: usize = 1000;
/// The first check run id (then +1 each).
pub const FIRST_CHECK_RUN_ID: u64 = 9_000_000_001;

const DOCS: &str = "https://docs.github.com/rest";
const CHECK_RUN_DOCS: &str = "https://docs.github.com/rest/checks/runs#create-a-check-run";
const RATE_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";
const JWT_MAX_LIFETIME_SECS: u64 = 600;
const DEFAULT_RATE_LIMIT: u64 = 5000;
const ANONYMOUS_RATE_LIMIT: u64 = 60;

/// The `n`-th installation token the fake mints (from 1).
pub fn installation_token(n: u64) -> String {
    format!("ghs_test_token_{n}")
}

/// One request as the fake received it, and the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub headers: HeaderMap,
    /// The body parsed as JSON, when it is JSON.
    pub body: Option<Value>,
    pub raw_body: Vec<u8>,
    /// The status the fake answered.
    pub status: u16,
}

impl Recorded {
    /// The `Authorization` header ("" when absent).
    pub fn authorization(&self) -> &str {
        self.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The credential after `Bearer ` ("" otherwise).
    pub fn bearer(&self) -> &str {
        self.authorization().strip_prefix("Bearer ").unwrap_or("")
    }

    /// The App's own endpoints (JWT): token minting, installation lookups.
    pub fn is_app_endpoint(&self) -> bool {
        self.path.starts_with("/app/") || self.path.ends_with("/installation")
    }

    /// The archive download the tarball endpoint redirects to.
    pub fn is_codeload(&self) -> bool {
        self.path.starts_with("/codeload/")
    }
}

/// A canned answer for the first request whose path contains
/// `path_contains`, used once.
struct Scripted {
    path_contains: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

struct CheckRun {
    repo: String,
    object: Value,
    annotations: Vec<Value>,
}

struct Minted {
    installation: u64,
    expires: u64,
}

struct FakeState {
    addr: SocketAddr,
    requests: Vec<Recorded>,
    scripted: VecDeque<Scripted>,
    /// installation id → repositories (lowercase `owner/name`).
    installations: BTreeMap<u64, Vec<String>>,
    tokens: HashMap<String, Minted>,
    tokens_minted: u64,
    token_ttl_secs: u64,
    rate_limit: u64,
    rate_reset: u64,
    /// Requests per credential in the current hour.
    rate_used: HashMap<String, u64>,
    /// (repo, ref) → sha; a sha also maps to itself.
    refs: HashMap<(String, String), String>,
    /// (repo, sha) → `.tar.gz` bytes.
    tarballs: HashMap<(String, String), Vec<u8>>,
    check_runs: BTreeMap<u64, CheckRun>,
    next_check_run: u64,
    /// (repo, sha, status object).
    statuses: Vec<(String, String, Value)>,
}

/// The fake GitHub API; clones share one server.
#[derive(Clone)]
pub struct FakeGithub(Arc<Mutex<FakeState>>);

impl FakeGithub {
    /// Serves on a free loopback port, with the App installed
    /// ([`INSTALLATION_ID`]) on `repos` (`owner/name`, matched without case).
    /// Needs a tokio runtime; the server lives as long as it.
    pub async fn start(repos: &[&str]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("the bound address");
        let mut installations = BTreeMap::new();
        installations.insert(INSTALLATION_ID, repos.iter().map(|r| lower(r)).collect());
        let fake = Self(Arc::new(Mutex::new(FakeState {
            addr,
            requests: Vec::new(),
            scripted: VecDeque::new(),
            installations,
            tokens: HashMap::new(),
            tokens_minted: 0,
            token_ttl_secs: 3600,
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_reset: now_secs() + 3600,
            rate_used: HashMap::new(),
            refs: HashMap::new(),
            tarballs: HashMap::new(),
            check_runs: BTreeMap::new(),
            next_check_run: FIRST_CHECK_RUN_ID,
            statuses: Vec::new(),
        })));
        let app = Router::new()
            .fallback(handle)
            // Check run bodies reach a few MB (50 annotations of up to
            // 64 KB); axum's default limit is 2 MB.
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake GitHub server");
        });
        fake
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        // Plain data: a panicking test leaves nothing half-updated.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The API base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.state().addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Requests other than the App's own endpoints and codeload downloads:
    /// the calls made with an installation or personal token.
    pub fn api_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| !r.is_app_endpoint() && !r.is_codeload())
            .collect()
    }

    /// Installation token requests (`.../access_tokens`).
    pub fn token_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/access_tokens"))
            .collect()
    }

    /// Requests the fake answered with 4xx or 5xx.
    pub fn refused(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.status >= 400)
            .collect()
    }

    /// The next request whose path (with query) contains `path_contains`
    /// gets this answer instead of the normal one. Scripted headers replace
    /// the default ones (`x-ratelimit-remaining: 0` for a spent quota); a
    /// `Null` body is an empty one.
    pub fn script(&self, path_contains: &str, status: u16, headers: &[(&str, &str)], body: Value) {
        self.script_times(1, path_contains, status, headers, body);
    }

    /// [`Self::script`] for the next `times` matching requests.
    pub fn script_times(
        &self,
        times: usize,
        path_contains: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: Value,
    ) {
        let mut s = self.state();
        for _ in 0..times {
            s.scripted.push_back(Scripted {
                path_contains: path_contains.into(),
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                    .collect(),
                body: body.clone(),
            });
        }
    }

    /// Lifetime of the installation tokens minted from now on.
    pub fn set_token_ttl(&self, secs: u64) {
        self.state().token_ttl_secs = secs;
    }

    /// Requests per credential and hour before 403 (default 5000).
    pub fn set_rate_limit(&self, limit: u64) {
        self.state().rate_limit = limit;
    }

    /// Installs the App on more repositories under another installation id.
    pub fn install(&self, installation: u64, repos: &[&str]) {
        self.state()
            .installations
            .entry(installation)
            .or_default()
            .extend(repos.iter().map(|r| lower(r)));
    }

    /// The archive `GET /repos/{repo}/tarball/{sha}` serves; also makes
    /// `sha` a known commit of `repo`.
    pub fn add_tarball(&self, repo: &str, sha: &str, bytes: Vec<u8>) {
        let mut s = self.state();
        let repo = lower(repo);
        s.refs.insert((repo.clone(), sha.into()), sha.into());
        s.tarballs.insert((repo, sha.into()), bytes);
    }

    /// Points a branch or tag of `repo` at `sha`: `git_ref` as `main`,
    /// `heads/main` or `refs/heads/main` (tags likewise).
    pub fn set_ref(&self, repo: &str, git_ref: &str, sha: &str) {
        let name = git_ref
            .trim_start_matches("refs/")
            .trim_start_matches("heads/")
            .trim_start_matches("tags/");
        let mut s = self.state();
        let repo = lower(repo);
        for key in [
            name.to_string(),
            format!("heads/{name}"),
            format!("refs/heads/{name}"),
            format!("tags/{name}"),
            format!("refs/tags/{name}"),
            sha.to_string(),
        ] {
            s.refs.insert((repo.clone(), key), sha.into());
        }
    }

    /// Check run `id` as `GET .../check-runs/{id}` shows it. Panics when
    /// there is none.
    pub fn check_run(&self, id: u64) -> Value {
        match self.state().check_runs.get(&id) {
            Some(c) => c.object.clone(),
            None => panic!("no check run {id} on the fake GitHub"),
        }
    }

    /// Every check run, oldest first.
    pub fn check_runs(&self) -> Vec<Value> {
        self.state()
            .check_runs
            .values()
            .map(|c| c.object.clone())
            .collect()
    }

    /// The annotations check run `id` holds, in the order they came.
    pub fn annotations(&self, id: u64) -> Vec<Value> {
        self.state()
            .check_runs
            .get(&id)
            .map(|c| c.annotations.clone())
            .unwrap_or_default()
    }

    /// Commit statuses created on `repo` at `sha`, oldest first.
    pub fn statuses(&self, repo: &str, sha: &str) -> Vec<Value> {
        let repo = lower(repo);
        self.state()
            .statuses
            .iter()
            .filter(|(r, s, _)| *r == repo && s == sha)
            .map(|(_, _, v)| v.clone())
            .collect()
    }

    /// Installation tokens minted so far.
    pub fn tokens_minted(&self) -> u64 {
        self.state().tokens_minted
    }
}

// ---- archives ---------------------------------------------------------------

/// GitHub's top directory in a tarball: `owner-repo-<7 hex of the sha>`.
pub fn tarball_top_dir(repo: &str, sha: &str) -> String {
    format!("{}-{}", repo.replace('/', "-"), &sha[..sha.len().min(7)])
}

/// A `.tar.gz` with `files` (`(path, contents)`) under `top/`, laid out like
/// GitHub's archives (a directory entry first).
pub fn tar_gz(top: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir, format!("{top}/"), std::io::empty())
        .expect("a tar directory entry");
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("{top}/{path}"), content.as_bytes())
            .expect("a tar file entry");
    }
    let raw = b.into_inner().expect("the tar stream");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).expect("gzip in memory");
    gz.finish().expect("gzip in memory")
}

// ---- time -------------------------------------------------------------------

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `secs` as ISO 8601 UTC (`2024-01-31T12:00:00Z`), worked out here rather
/// than shared with the code under test.
pub fn iso8601(secs: u64) -> String {
    let is_leap = |y: u64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let rem = secs % 86_400;
    let (mut year, mut day) = (1970u64, secs / 86_400);
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if day < len {
            break;
        }
        day -= len;
        year += 1;
    }
    let feb = if is_leap(year) { 29 } else { 28 };
    let months = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 0;
    while day >= months[month] {
        day -= months[month];
        month += 1;
    }
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        month + 1,
        day + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---- answers ----------------------------------------------------------------

fn lower(repo: &str) -> String {
    repo.to_ascii_lowercase()
}

fn json_reply(status: u16, body: &Value) -> Response {
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let mut resp = Response::new(body);
    *resp.status_mut() =
        axum::http::StatusCode::from_u16(status).expect("a valid HTTP status from the test");
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        "x-github-media-type",
        HeaderValue::from_static("github.v3; format=json"),
    );
    resp
}

/// An error answer, turned into a response at the edge.
struct Refusal {
    status: u16,
    body: Value,
}

impl Refusal {
    fn into_response(self) -> Response {
        json_reply(self.status, &self.body)
    }
}

/// A route's answer.
type Answer = Result<Response, Refusal>;

fn error(status: u16, message: &str, docs: &str) -> Refusal {
    Refusal {
        status,
        body: json!({"message": message, "documentation_url": docs, "status": status.to_string()}),
    }
}

fn not_found() -> Refusal {
    error(404, "Not Found", DOCS)
}

fn bad_credentials() -> Refusal {
    error(401, "Bad credentials", DOCS)
}

/// A 422 from request-schema checks ("Invalid request.\n\n...").
fn invalid(detail: &str) -> Refusal {
    error(
        422,
        &format!("Invalid request.\n\n{detail}"),
        CHECK_RUN_DOCS,
    )
}

/// A 422 from model validation ("Validation Failed" with `errors`).
fn validation_failed(resource: &str, code: &str, field: &str, message: Option<&str>) -> Refusal {
    let mut e = json!({"resource": resource, "code": code, "field": field});
    if let Some(m) = message {
        e["message"] = Value::from(m);
    }
    Refusal {
        status: 422,
        body: json!({"message": "Validation Failed", "errors": [e], "documentation_url": CHECK_RUN_DOCS, "status": "422"}),
    }
}

fn ok(status: u16, body: &Value) -> Answer {
    Ok(json_reply(status, body))
}

fn redirect(location: &str) -> Answer {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = axum::http::StatusCode::FOUND;
    resp.headers_mut().insert(
        "location",
        HeaderValue::from_str(location).expect("a redirect URL"),
    );
    Ok(resp)
}

// ---- credentials --------------------------------------------------------------

enum Credential {
    None,
    /// A JWT: verified, or why not.
    AppJwt(Result<(), String>),
    /// A live installation token.
    Installation(u64),
    /// A `ghs_` token the fake did not mint, or one that expired.
    Dead,
    /// Anything else: a personal access token.
    Personal,
}

impl Credential {
    fn of(s: &FakeState, authorization: &str, now: u64) -> (Self, String) {
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("token "))
            .unwrap_or("")
            .trim();
        if token.is_empty() {
            return (Self::None, "anonymous".into());
        }
        if token.starts_with("ey") && token.split('.').count() == 3 {
            return (Self::AppJwt(verify_app_jwt(token, now)), "app".into());
        }
        if token.starts_with("ghs_") {
            return match s.tokens.get(token) {
                Some(m) if now < m.expires => (
                    Self::Installation(m.installation),
                    format!("installation {}", m.installation),
                ),
                _ => (Self::Dead, "anonymous".into()),
            };
        }
        (Self::Personal, format!("user {token}"))
    }
}

/// GitHub's checks of an App JWT, with its 401 messages.
fn verify_app_jwt(jwt: &str, now: u64) -> Result<(), String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    const UNDECODABLE: &str = "A JSON web token could not be decoded";
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| UNDECODABLE.to_string())?;
    if header.alg != Algorithm::RS256 {
        return Err(UNDECODABLE.into());
    }
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY_PEM.as_bytes()).expect("the test public key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    validation.validate_aud = false;
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .map_err(|_| UNDECODABLE.to_string())?
        .claims;
    let issuer_ok = match &claims["iss"] {
        Value::String(s) => s == &APP_ID.to_string(),
        Value::Number(n) => n.as_u64() == Some(APP_ID),
        _ => false,
    };
    if !issuer_ok {
        return Err(UNDECODABLE.into());
    }
    let Some(iat) = claims["iat"].as_u64() else {
        return Err("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.".into());
    };
    if iat > now {
        return Err("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.".into());
    }
    let Some(exp) = claims["exp"].as_u64().filter(|&e| e > now) else {
        return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.".into());
    };
    if exp > now + JWT_MAX_LIFETIME_SECS {
        return Err("'Expiration time' claim ('exp') is too far in the future".into());
    }
    Ok(())
}

/// Who a token-authenticated call on a repository acts as.
enum Access {
    Installation,
    User,
}

impl FakeState {
    fn installed(&self, repo: &str) -> Option<u64> {
        self.installations
            .iter()
            .find(|(_, repos)| repos.iter().any(|r| r == repo))
            .map(|(id, _)| *id)
    }

    /// Token access to `repo` (already lowercase), or GitHub's refusal.
    fn access(&self, cred: &Credential, repo: &str) -> Result<Access, Refusal> {
        match cred {
            Credential::Installation(id) => {
                let repos = self.installations.get(id).map_or(&[][..], Vec::as_slice);
                if repos.iter().any(|r| r == repo) {
                    Ok(Access::Installation)
                } else {
                    Err(not_found())
                }
            }
            Credential::Personal if self.installed(repo).is_some() => Ok(Access::User),
            Credential::Personal => Err(not_found()),
            Credential::Dead => Err(bad_credentials()),
            Credential::AppJwt(_) => Err(error(
                403,
                "A JSON web token cannot be used for this endpoint: use an installation access token.",
                DOCS,
            )),
            Credential::None => Err(error(401, "Requires authentication", DOCS)),
        }
    }

    fn resolve(&self, repo: &str, git_ref: &str) -> Option<String> {
        self.refs
            .get(&(repo.to_string(), git_ref.to_string()))
            .cloned()
    }
}

/// The App's endpoints take its JWT only.
fn need_app(cred: &Credential) -> Result<(), Refusal> {
    match cred {
        Credential::AppJwt(Ok(())) => Ok(()),
        Credential::AppJwt(Err(message)) => Err(error(401, message, DOCS)),
        _ => Err(error(401, "A JSON web token could not be decoded", DOCS)),
    }
}

// ---- the server -------------------------------------------------------------

async fn handle(
    State(fake): State<FakeGithub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path_q = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    let mut s = fake.state();
    s.requests.push(Recorded {
        method: method.to_string(),
        path: path_q.clone(),
        headers: headers.clone(),
        body: json_body.clone(),
        raw_body: body.to_vec(),
        status: 0,
    });
    let index = s.requests.len() - 1;
    let now = now_secs();
    if now >= s.rate_reset {
        s.rate_used.clear();
        s.rate_reset = now + 3600;
    }
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (cred, bucket) = Credential::of(&s, authorization, now);
    let limit = if matches!(cred, Credential::None | Credential::Dead) {
        ANONYMOUS_RATE_LIMIT
    } else {
        s.rate_limit
    };
    let codeload = uri.path().starts_with("/codeload/");

    let mut resp = if let Some(i) = s
        .scripted
        .iter()
        .position(|x| path_q.contains(&x.path_contains))
    {
        let x = s.scripted.remove(i).expect("a scripted answer at i");
        let mut resp = json_reply(x.status, &x.body);
        for (k, v) in &x.headers {
            resp.headers_mut().insert(
                HeaderName::from_bytes(k.as_bytes()).expect("a scripted header name"),
                HeaderValue::from_str(v).expect("a scripted header value"),
            );
        }
        resp
    } else if codeload {
        route(
            &mut s,
            &cred,
            &method,
            &uri,
            &json_body.unwrap_or(Value::Null),
        )
        .unwrap_or_else(Refusal::into_response)
    } else if s.rate_used.get(&bucket).copied().unwrap_or(0) >= limit {
        let who = match cred {
            Credential::Installation(id) => format!("installation ID {id}"),
            Credential::AppJwt(_) => format!("app ID {APP_ID}"),
            Credential::Personal => "user ID 1".into(),
            Credential::None | Credential::Dead => "127.0.0.1".into(),
        };
        error(
            403,
            &format!("API rate limit exceeded for {who}."),
            RATE_DOCS,
        )
        .into_response()
    } else {
        let resp = route(
            &mut s,
            &cred,
            &method,
            &uri,
            &json_body.unwrap_or(Value::Null),
        )
        .unwrap_or_else(Refusal::into_response);
        // Failed authentication costs nothing; everything else counts.
        if resp.status() != 401 {
            *s.rate_used.entry(bucket.clone()).or_default() += 1;
        }
        resp
    };

    if !codeload {
        let used = s.rate_used.get(&bucket).copied().unwrap_or(0);
        let defaults = [
            ("x-ratelimit-limit", limit.to_string()),
            (
                "x-ratelimit-remaining",
                limit.saturating_sub(used).to_string(),
            ),
            ("x-ratelimit-used", used.to_string()),
            ("x-ratelimit-reset", s.rate_reset.to_string()),
            ("x-ratelimit-resource", "core".to_string()),
            ("x-github-api-version-selected", "2022-11-28".to_string()),
            ("x-github-request-id", format!("FAKE:{index:08X}")),
        ];
        for (k, v) in defaults {
            if !resp.headers().contains_key(k) {
                resp.headers_mut()
                    .insert(k, HeaderValue::from_str(&v).expect("a header value"));
            }
        }
    }
    s.requests[index].status = resp.status().as_u16();
    resp
}

/// The answer for one authenticated-or-not request.
fn route(s: &mut FakeState, cred: &Credential, method: &Method, uri: &Uri, body: &Value) -> Answer {
    let base = format!("http://{}", s.addr);
    let query = parse_query(uri.query().unwrap_or(""));
    let parts: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            need_app(cred)?;
            let Some(id) = id
                .parse::<u64>()
                .ok()
                .filter(|id| s.installations.contains_key(id))
            else {
                return Err(not_found());
            };
            s.tokens_minted += 1;
            let token = installation_token(s.tokens_minted);
            let expires = now_secs() + s.token_ttl_secs;
            s.tokens.insert(
                token.clone(),
                Minted {
                    installation: id,
                    expires,
                },
            );
            ok(
                201,
                &json!({
                    "token": token,
                    "expires_at": iso8601(expires),
                    "permissions": {"checks": "write", "contents": "read", "statuses": "write", "metadata": "read"},
                    "repository_selection": "selected",
                }),
            )
        }
        ("GET", ["repos", owner, name, "installation"]) => {
            need_app(cred)?;
            let repo = lower(&format!("{owner}/{name}"));
            match s.installed(&repo) {
                Some(id) => ok(
                    200,
                    &json!({
                        "id": id,
                        "app_id": APP_ID,
                        "app_slug": "testexec",
                        "account": {"login": owner, "type": "Organization"},
                        "target_type": "Organization",
                        "repository_selection": "selected",
                        "access_tokens_url": format!("{base}/app/installations/{id}/access_tokens"),
                        "permissions": {"checks": "write", "contents": "read", "statuses": "write", "metadata": "read"},
                    }),
                ),
                None => Err(not_found()),
            }
        }
        ("GET", ["codeload", owner, name, "legacy.tar.gz", git_ref @ ..]) => {
            let repo = lower(&format!("{owner}/{name}"));
            let bytes = s
                .resolve(&repo, &git_ref.join("/"))
                .and_then(|sha| s.tarballs.get(&(repo, sha)));
            match bytes {
                Some(bytes) => {
                    let mut resp = Response::new(Body::from(bytes.clone()));
                    resp.headers_mut().insert(
                        "content-type",
                        HeaderValue::from_static("application/x-gzip"),
                    );
                    Ok(resp)
                }
                None => Err(not_found()),
            }
        }
        (_, ["repos", owner, name, rest @ ..]) => {
            let repo = lower(&format!("{owner}/{name}"));
            let access = s.access(cred, &repo)?;
            let repo = Repo {
                key: &repo,
                url: format!("{base}/repos/{owner}/{name}"),
                owner,
                name,
                base: &base,
            };
            repo_route(s, &access, method.as_str(), &repo, rest, &query, body)
        }
        _ => Err(not_found()),
    }
}

/// The repository a `/repos/{owner}/{name}/...` request is about.
struct Repo<'a> {
    /// `owner/name` in lowercase.
    key: &'a str,
    owner: &'a str,
    name: &'a str,
    /// Its API URL on the fake.
    url: String,
    /// The fake's base URL.
    base: &'a str,
}

fn repo_route(
    s: &mut FakeState,
    access: &Access,
    method: &str,
    repo: &Repo<'_>,
    rest: &[&str],
    query: &HashMap<String, String>,
    body: &Value,
) -> Answer {
    let Repo {
        key,
        owner,
        name,
        base,
        ..
    } = *repo;
    let repo_url = &repo.url;
    match (method, rest) {
        ("GET", ["commits", git_ref @ .., "check-runs"]) if !git_ref.is_empty() => {
            let git_ref = git_ref.join("/");
            let sha = s.resolve(key, &git_ref).unwrap_or(git_ref);
            Ok(list_check_runs(s, key, &sha, query))
        }
        ("GET", ["commits", git_ref @ ..]) if !git_ref.is_empty() => {
            let git_ref = git_ref.join("/");
            match s.resolve(key, &git_ref) {
                Some(sha) => ok(
                    200,
                    &json!({
                        "sha": sha,
                        "node_id": "C_fake",
                        "url": format!("{repo_url}/commits/{sha}"),
                        "html_url": format!("https://github.com/{owner}/{name}/commit/{sha}"),
                        "commit": {
                            "message": "fake commit",
                            "tree": {"sha": sha},
                            "author": {"name": "Octo Cat", "email": "octocat@example.com", "date": iso8601(now_secs())},
                        },
                        "parents": [],
                    }),
                ),
                None => Err(error(
                    422,
                    &format!("No commit found for SHA: {git_ref}"),
                    "https://docs.github.com/rest/commits/commits#get-a-commit",
                )),
            }
        }
        ("GET", ["tarball", git_ref @ ..]) if !git_ref.is_empty() => {
            let git_ref = git_ref.join("/");
            let found = s
                .resolve(key, &git_ref)
                .is_some_and(|sha| s.tarballs.contains_key(&(key.to_string(), sha)));
            if found {
                // Like api.github.com: a redirect to codeload.
                redirect(&format!(
                    "{base}/codeload/{owner}/{name}/legacy.tar.gz/{git_ref}"
                ))
            } else {
                Err(not_found())
            }
        }
        ("POST", ["check-runs"]) => {
            app_only(access)?;
            check_run_errors(body, None)?;
            let id = s.next_check_run;
            s.next_check_run += 1;
            let mut object = json!({
                "id": id,
                "node_id": format!("CR_fake{id}"),
                "head_sha": body["head_sha"],
                "external_id": body.get("external_id").cloned().unwrap_or(Value::from("")),
                "url": format!("{repo_url}/check-runs/{id}"),
                "html_url": format!("https://github.com/{owner}/{name}/runs/{id}"),
                "details_url": body.get("details_url").cloned().unwrap_or(Value::Null),
                "status": body.get("status").cloned().unwrap_or(Value::from("queued")),
                "conclusion": Value::Null,
                "started_at": body.get("started_at").cloned().unwrap_or_else(|| Value::from(iso8601(now_secs()))),
                "completed_at": Value::Null,
                "name": body["name"],
                "output": {
                    "title": Value::Null,
                    "summary": Value::Null,
                    "text": Value::Null,
                    "annotations_count": 0,
                    "annotations_url": format!("{repo_url}/check-runs/{id}/annotations"),
                },
                "check_suite": {"id": 7_000_000_000u64 + id},
                "app": {"id": APP_ID, "slug": "testexec"},
                "pull_requests": [],
            });
            let mut annotations = Vec::new();
            apply_check_run(&mut object, &mut annotations, body);
            s.check_runs.insert(
                id,
                CheckRun {
                    repo: key.to_string(),
                    object: object.clone(),
                    annotations,
                },
            );
            ok(201, &object)
        }
        ("PATCH", ["check-runs", id]) => {
            app_only(access)?;
            let Some(run) = id
                .parse::<u64>()
                .ok()
                .and_then(|id| s.check_runs.get_mut(&id))
                .filter(|c| c.repo == key)
            else {
                return Err(not_found());
            };
            check_run_errors(body, Some(&run.object))?;
            apply_check_run(&mut run.object, &mut run.annotations, body);
            ok(200, &run.object)
        }
        ("GET", ["check-runs", id]) => match find_check_run(s, key, id) {
            Some(run) => ok(200, &run.object),
            None => Err(not_found()),
        },
        ("GET", ["check-runs", id, "annotations"]) => match find_check_run(s, key, id) {
            Some(run) => {
                let (per_page, page) = paging(query);
                let page: Vec<Value> = run
                    .annotations
                    .iter()
                    .skip(per_page * (page - 1))
                    .take(per_page)
                    .cloned()
                    .collect();
                ok(200, &Value::Array(page))
            }
            None => Err(not_found()),
        },
        ("POST", ["statuses", sha]) => create_status(s, key, repo_url, sha, body),
        _ => Err(not_found()),
    }
}

fn find_check_run<'a>(s: &'a FakeState, repo: &str, id: &str) -> Option<&'a CheckRun> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| s.check_runs.get(&id))
        .filter(|c| c.repo == repo)
}

fn app_only(access: &Access) -> Result<(), Refusal> {
    match access {
        Access::Installation => Ok(()),
        Access::User => Err(error(
            403,
            "You must authenticate via a GitHub App.",
            CHECK_RUN_DOCS,
        )),
    }
}

fn parse_query(q: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// `per_page` (default 30, at most 100) and `page` (from 1).
fn paging(query: &HashMap<String, String>) -> (usize, usize) {
    let per_page = query
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 100);
    let page = query
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    (per_page, page)
}

fn list_check_runs(
    s: &FakeState,
    repo: &str,
    sha: &str,
    query: &HashMap<String, String>,
) -> Response {
    let mut runs: Vec<&Value> = s
        .check_runs
        .values()
        .filter(|c| c.repo == repo && c.object["head_sha"] == sha)
        .map(|c| &c.object)
        .filter(|o| {
            query
                .get("check_name")
                .is_none_or(|n| o["name"] == n.as_str())
        })
        .filter(|o| {
            query
                .get("status")
                .is_none_or(|st| o["status"] == st.as_str())
        })
        .collect();
    // Newest first; `latest` (the default) keeps the newest per name.
    runs.reverse();
    if query.get("filter").map_or("latest", String::as_str) != "all" {
        let mut seen = Vec::new();
        runs.retain(|o| {
            let name = o["name"].to_string();
            let first = !seen.contains(&name);
            seen.push(name);
            first
        });
    }
    let total = runs.len();
    let (per_page, page) = paging(query);
    let page: Vec<Value> = runs
        .into_iter()
        .skip(per_page * (page - 1))
        .take(per_page)
        .cloned()
        .collect();
    json_reply(200, &json!({"total_count": total, "check_runs": page}))
}

/// Merges a valid create/update body into the check run, appending its
/// annotations as GitHub does.
fn apply_check_run(object: &mut Value, annotations: &mut Vec<Value>, body: &Value) {
    for key in [
        "name",
        "details_url",
        "external_id",
        "status",
        "started_at",
        "conclusion",
        "completed_at",
    ] {
        if let Some(v) = body.get(key) {
            object[key] = v.clone();
        }
    }
    // A conclusion completes the run.
    if body.get("conclusion").is_some_and(|c| !c.is_null()) {
        object["status"] = Value::from("completed");
    }
    if object["status"] == "completed" && object["completed_at"].is_null() {
        object["completed_at"] = Value::from(iso8601(now_secs()));
    }
    if let Some(out) = body.get("output") {
        object["output"]["title"] = out["title"].clone();
        object["output"]["summary"] = out["summary"].clone();
        object["output"]["text"] = out.get("text").cloned().unwrap_or(Value::Null);
        if let Some(added) = out.get("annotations").and_then(Value::as_array) {
            annotations.extend(added.iter().cloned());
            object["output"]["annotations_count"] = Value::from(annotations.len());
        }
    }
}

const STATUSES: [&str; 6] = [
    "queued",
    "in_progress",
    "completed",
    "waiting",
    "requested",
    "pending",
];
const CONCLUSIONS: [&str; 7] = [
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "timed_out",
];
const LEVELS: [&str; 3] = ["notice", "warning", "failure"];

fn missing(keys: &[&str]) -> String {
    let list: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    if keys.len() == 1 {
        format!("{} wasn't supplied.", list[0])
    } else {
        format!("{} weren't supplied.", list.join(", "))
    }
}

fn too_many(limit: usize, supplied: usize) -> String {
    format!("No more than {limit} items are allowed; {supplied} were supplied.")
}

fn too_long(limit: usize, supplied: usize) -> String {
    format!("Only {limit} characters are allowed; {supplied} were supplied.")
}

fn not_member(value: &Value, of: &[&str]) -> String {
    format!("{value} is not a member of {of:?}.")
}

fn is_sha(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// GitHub's refusals of a check run create (`existing` None) or update.
fn check_run_errors(body: &Value, existing: Option<&Value>) -> Result<(), Refusal> {
    if !body.is_object() {
        return Err(error(400, "Problems parsing JSON", DOCS));
    }
    if existing.is_none() {
        let absent: Vec<&str> = ["name", "head_sha"]
            .into_iter()
            .filter(|k| !body[*k].is_string())
            .collect();
        if !absent.is_empty() {
            return Err(invalid(&missing(&absent)));
        }
        if !is_sha(&body["head_sha"]) {
            return Err(validation_failed("CheckRun", "invalid", "head_sha", None));
        }
    }
    if let Some(st) = body.get("status") {
        if !st.as_str().is_some_and(|v| STATUSES.contains(&v)) {
            return Err(invalid(&not_member(st, &STATUSES)));
        }
    }
    let conclusion = body.get("conclusion").filter(|c| !c.is_null());
    if let Some(c) = conclusion {
        if !c.as_str().is_some_and(|v| CONCLUSIONS.contains(&v)) {
            return Err(invalid(&not_member(c, &CONCLUSIONS)));
        }
    }
    let concluded = conclusion.is_some() || existing.is_some_and(|o| !o["conclusion"].is_null());
    if body.get("status").is_some_and(|s| s == "completed") && !concluded {
        return Err(validation_failed(
            "CheckRun",
            "missing_field",
            "conclusion",
            Some("conclusion is required when status is completed"),
        ));
    }
    if conclusion.is_some_and(|c| c == "action_required") {
        let details = body
            .get("details_url")
            .or_else(|| existing.map(|o| &o["details_url"]))
            .is_some_and(Value::is_string);
        if !details {
            return Err(validation_failed(
                "CheckRun",
                "missing_field",
                "details_url",
                Some("details_url is required when conclusion is action_required"),
            ));
        }
    }
    if let Some(out) = body.get("output") {
        output_errors(out)?;
    }
    if let Some(actions) = body.get("actions") {
        actions_errors(actions)?;
    }
    Ok(())
}

fn output_errors(out: &Value) -> Result<(), Refusal> {
    let absent: Vec<&str> = ["title", "summary"]
        .into_iter()
        .filter(|k| !out[*k].is_string())
        .collect();
    if !absent.is_empty() {
        return Err(invalid(&missing(&absent)));
    }
    for field in ["summary", "text"] {
        let Some(v) = out.get(field).and_then(Value::as_str) else {
            continue;
        };
        let chars = v.chars().count();
        if chars > MAX_OUTPUT {
            return Err(invalid(&too_long(MAX_OUTPUT, chars)));
        }
        if v.len() > MAX_OUTPUT {
            let message = format!("{field} exceeds a maximum bytesize of {MAX_OUTPUT}");
            return Err(validation_failed(
                "CheckRun",
                "custom",
                field,
                Some(&message),
            ));
        }
    }
    let Some(annotations) = out.get("annotations") else {
        return Ok(());
    };
    let Some(annotations) = annotations.as_array() else {
        return Err(invalid("\"annotations\" is not an array."));
    };
    if annotations.len() > MAX_ANNOTATIONS_PER_REQUEST {
        return Err(invalid(&too_many(
            MAX_ANNOTATIONS_PER_REQUEST,
            annotations.len(),
        )));
    }
    for a in annotations {
        let absent: Vec<&str> = [
            "path",
            "start_line",
            "end_line",
            "annotation_level",
            "message",
        ]
        .into_iter()
        .filter(|k| a[*k].is_null())
        .collect();
        if !absent.is_empty() {
            return Err(invalid(&missing(&absent)));
        }
        let level = &a["annotation_level"];
        if !level.as_str().is_some_and(|l| LEVELS.contains(&l)) {
            return Err(invalid(&not_member(level, &LEVELS)));
        }
        let (Some(start), Some(end)) = (a["start_line"].as_u64(), a["end_line"].as_u64()) else {
            return Err(invalid("\"start_line\", \"end_line\" must be integers."));
        };
        if end < start {
            return Err(validation_failed(
                "CheckRun",
                "invalid",
                "annotations",
                None,
            ));
        }
        let columns = !a["start_column"].is_null() || !a["end_column"].is_null();
        if columns && start != end {
            return Err(validation_failed(
                "CheckRun",
                "invalid",
                "annotations",
                None,
            ));
        }
        if let Some(title) = a["title"].as_str() {
            let chars = title.chars().count();
            if chars > MAX_ANNOTATION_TITLE_CHARS {
                return Err(invalid(&too_long(MAX_ANNOTATION_TITLE_CHARS, chars)));
            }
        }
        for field in ["message", "raw_details"] {
            if a[field]
                .as_str()
                .is_some_and(|v| v.len() > MAX_ANNOTATION_FIELD_BYTES)
            {
                return Err(validation_failed(
                    "CheckRun",
                    "invalid",
                    "annotations",
                    None,
                ));
            }
        }
    }
    Ok(())
}

fn actions_errors(actions: &Value) -> Result<(), Refusal> {
    let Some(actions) = actions.as_array() else {
        return Err(invalid("\"actions\" is not an array."));
    };
    if actions.len() > MAX_ACTIONS {
        return Err(invalid(&too_many(MAX_ACTIONS, actions.len())));
    }
    for a in actions {
        let absent: Vec<&str> = ["label", "description", "identifier"]
            .into_iter()
            .filter(|k| !a[*k].is_string())
            .collect();
        if !absent.is_empty() {
            return Err(invalid(&missing(&absent)));
        }
        for (field, limit) in [
            ("label", MAX_ACTION_LABEL_CHARS),
            ("description", MAX_ACTION_DESCRIPTION_CHARS),
            ("identifier", MAX_ACTION_IDENTIFIER_CHARS),
        ] {
            let chars = a[field].as_str().map_or(0, |v| v.chars().count());
            if chars > limit {
                return Err(invalid(&too_long(limit, chars)));
            }
        }
    }
    Ok(())
}

fn create_status(s: &mut FakeState, repo: &str, repo_url: &str, sha: &str, body: &Value) -> Answer {
    const STATES: [&str; 4] = ["error", "failure", "pending", "success"];
    let docs = "https://docs.github.com/rest/commits/statuses#create-a-commit-status";
    let state = &body["state"];
    if !state.as_str().is_some_and(|v| STATES.contains(&v)) {
        return Err(error(
            422,
            &format!("Invalid request.\n\n{}", not_member(state, &STATES)),
            docs,
        ));
    }
    let description = body["description"].as_str().unwrap_or_default();
    if description.chars().count() > MAX_STATUS_DESCRIPTION_CHARS {
        return Err(validation_failed(
            "Status",
            "custom",
            "description",
            Some("description is too long (maximum is 140 characters)"),
        ));
    }
    let context = body["context"].as_str().unwrap_or("default").to_string();
    let same = s
        .statuses
        .iter()
        .filter(|(r, sh, v)| r == repo && sh == sha && v["context"] == context.as_str())
        .count();
    if same >= MAX_STATUSES_PER_CONTEXT {
        return Err(validation_failed(
            "Status",
            "custom",
            "context",
            Some("This SHA and context has reached the maximum number of statuses."),
        ));
    }
    let now = iso8601(now_secs());
    let status = json!({
        "id": s.statuses.len() + 1,
        "url": format!("{repo_url}/statuses/{sha}"),
        "state": state,
        "description": body.get("description").cloned().unwrap_or(Value::Null),
        "target_url": body.get("target_url").cloned().unwrap_or(Value::Null),
        "context": context,
        "created_at": now,
        "updated_at": now,
    });
    s.statuses
        .push((repo.to_string(), sha.to_string(), status.clone()));
    ok(201, &status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn github_messages() {
        assert_eq!(
            too_many(50, 143),
            "No more than 50 items are allowed; 143 were supplied."
        );
        assert_eq!(
            missing(&["annotation_level", "path"]),
            "\"annotation_level\", \"path\" weren't supplied."
        );
    }
}
