//! Every error the library can return, one precise enum per concern.
//!
//! Messages name the offending file, field or value and, where there is one,
//! the fix. Callers match on variants; the CLI prints `Display`.

use thiserror::Error;

/// A malformed run or shard id.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error(
        "invalid run id `{value}`: expected a 26-character ULID such as 01J9Z3V8K4QW5T6Y7X8C9B0N1M"
    )]
    InvalidRunId { value: String },
    #[error(
        "invalid run id `{value}`: the first character must be 0-7 (26 base32 characters hold 130 bits and a ULID has 128), so this is not an id testexec made; check for a typo"
    )]
    RunIdOverflow { value: String },
    #[error(
        "invalid shard id `{value}`: expected `<run id>/<index>`, e.g. 01J9Z3V8K4QW5T6Y7X8C9B0N1M/3"
    )]
    InvalidShardId { value: String },
}

// ---- JUnit reader errors (junit.rs) ----------------------------------------

/// Why a JUnit/xUnit report could not be read. Every variant names the file
/// (`file` is the `source` label given to the reader) and, where it applies,
/// the byte offset in the (UTF-8) input and the line when it was cheap to get.
#[derive(Debug, Error)]
pub enum JunitError {
    #[error("{file}: cannot read the report: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: the report is larger than the {limit}-byte limit; if it is genuine, raise `max_report_bytes`"
    )]
    TooLarge { file: String, limit: u64 },
    #[error(
        "{file}: empty report (no XML element); the test runner probably died before writing it"
    )]
    Empty { file: String },
    #[error(
        "{file}: malformed XML at {}: {message}; check that the file is a complete JUnit XML report",
        at(*position, *line)
    )]
    Malformed {
        file: String,
        position: u64,
        line: Option<u64>,
        message: String,
    },
    #[error(
        "{file}: truncated report: input ends at {} inside <{open}>; the writer probably died mid-report",
        at(*position, *line)
    )]
    Truncated {
        file: String,
        position: u64,
        line: Option<u64>,
        open: String,
    },
    #[error(
        "{file}: not a JUnit report: root element is <{root}> at {}, expected <testsuites> or <testsuite>",
        at(*position, *line)
    )]
    NotJunit {
        file: String,
        position: u64,
        line: Option<u64>,
        root: String,
    },
    #[error(
        "{file}: refused a DOCTYPE at {}: JUnit reports never need one and entities are never resolved (XXE)",
        at(*position, *line)
    )]
    Doctype {
        file: String,
        position: u64,
        line: Option<u64>,
    },
    #[error(
        "{file}: elements nested deeper than {limit} levels at {}; raise `max_depth` if the report is genuine",
        at(*position, *line)
    )]
    TooDeep {
        file: String,
        position: u64,
        line: Option<u64>,
        limit: usize,
    },
    #[error(
        "{file}: unsupported encoding `{label}` in the XML declaration; re-encode the report as UTF-8"
    )]
    UnsupportedEncoding { file: String, label: String },
    /// A FIFO, socket, device or directory given as a report: reading a
    /// FIFO would wait for a writer, possibly forever, so none is opened
    /// for reading.
    #[error(
        "{file}: is a {what}, not a regular file; JUnit reports are read from regular files (hint: have the runner write the report to a file and pass that file's path)"
    )]
    NotAFile { file: String, what: &'static str },
}

/// Formats a position for the messages above.
fn at(position: u64, line: Option<u64>) -> String {
    match line {
        Some(line) => format!("line {line} (byte {position})"),
        None => format!("byte {position}"),
    }
}

// ---- manifest errors (manifest.rs) -----------------------------------------

/// Where in a manifest a problem sits: `origin:line:column`, plus the suite
/// and field when the problem is inside one (`command[2]` names an element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestLocation {
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    pub suite: Option<String>,
    pub field: Option<String>,
}

impl std::fmt::Display for ManifestLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)?;
        if let Some(suite) = &self.suite {
            write!(f, ": suite `{suite}`")?;
        }
        if let Some(field) = &self.field {
            let sep = if self.suite.is_some() { "," } else { ":" };
            write!(f, "{sep} field `{field}`")?;
        }
        Ok(())
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref()
        .map(|h| format!("\n  hint: {h}"))
        .unwrap_or_default()
}

/// Everything that can be wrong with a `testexec.toml` or with listing the
/// files one of its suites selects.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {message}")]
    Read { path: String, message: String },
    #[error(
        "manifest {path} is larger than the {limit}-byte limit; a testexec.toml only describes suites and should be a few kilobytes"
    )]
    TooLarge { path: String, limit: u64 },
    /// The text is not valid TOML or not a valid manifest.
    #[error("{at}: {message}{}", hint_suffix(.hint))]
    Invalid {
        /// Boxed to keep `Result<_, ManifestError>` small.
        at: Box<ManifestLocation>,
        message: String,
        hint: Option<String>,
    },
    #[error("unknown suite `{name}`; the manifest defines: {}", .known.join(", "))]
    UnknownSuite { name: String, known: Vec<String> },
    #[error("the manifest defines {} suites ({}); choose one with --suite <name>", .known.len(), .known.join(", "))]
    SuiteRequired { known: Vec<String> },
    #[error(
        "suite `{suite}` has no `files` globs, so there is nothing to list; add files = [\"tests/**/test_*.py\"]"
    )]
    NoFileGlobs { suite: String },
    #[error("suite `{suite}`: no test files match {} under {root}{}", fmt_globs(.globs), fmt_exclude(.exclude))]
    NoFilesMatch {
        suite: String,
        globs: Vec<String>,
        exclude: Vec<String>,
        root: String,
    },
    #[error(
        "suite `{suite}`: more than {limit} files match under {root}; narrow `files` or add `exclude`"
    )]
    TooManyFiles {
        suite: String,
        root: String,
        limit: usize,
    },
    #[error(
        "suite `{suite}`: {path} is nested deeper than {limit} directories; testexec stops there to avoid runaway walks"
    )]
    TooDeep {
        suite: String,
        path: String,
        limit: usize,
    },
    #[error("suite `{suite}`: working_dir `{working_dir}` is not a directory inside {root}")]
    BadWorkingDir {
        suite: String,
        working_dir: String,
        root: String,
    },
    #[error("suite `{suite}`: cannot list {path}: {message}")]
    Walk {
        suite: String,
        path: String,
        message: String,
    },
}

fn fmt_globs(globs: &[String]) -> String {
    globs
        .iter()
        .map(|g| format!("`{g}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_exclude(exclude: &[String]) -> String {
    if exclude.is_empty() {
        String::new()
    } else {
        format!(" (after excluding {})", fmt_globs(exclude))
    }
}

// ---- shard planning errors (plan.rs) ---------------------------------------

/// Why a shard plan or a timings history could not be produced.
/// `testexec cost`: a price list, call model or workload that cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum CostError {
    #[error("{file}: {reason}")]
    Parse { file: String, reason: String },
    #[error(
        "{file}: price `{item}` must have usd >= 0, per > 0, free >= 0 and an https:// source page"
    )]
    BadPrice { file: String, item: String },
    #[error("{file}: no price `{item}`; add it (see cost/prices.toml)")]
    MissingPrice { file: String, item: String },
    #[error("`{field}` is {value}; it must be between {min} and {max}")]
    OutOfRange {
        field: &'static str,
        value: String,
        min: f64,
        max: f64,
    },
}

#[derive(Debug, Error, PartialEq)]
pub enum PlanError {
    #[error(
        "nothing to plan: the suite listed no test files (hint: check the suite's `files` and `exclude` globs and the repository root)"
    )]
    NoFiles,
    #[error(
        "too many test files: {count} exceeds the limit of {max} (hint: split the suite into several suites)"
    )]
    TooManyFiles { count: usize, max: usize },
    #[error("the file list contains a blank path (hint: check the suite's file listing)")]
    BlankPath,
    #[error("invalid shard count 0 (hint: ask for at least 1 shard)")]
    ZeroShards,
    #[error("invalid max_shards {value}: expected 1..={max}")]
    InvalidMaxShards { value: u32, max: u32 },
    #[error(
        "invalid target shard duration {value} s: expected a finite number of seconds greater than 0"
    )]
    InvalidTargetSeconds { value: f64 },
    #[error(
        "timings `{origin}` are not valid JSON history: {message} (hint: expected {{\"version\":1,\"files\":{{...}},\"tests\":{{...}}}} as written by `testexec`)"
    )]
    BadTimingsJson { origin: String, message: String },
    #[error(
        "timings `{origin}` have version {version}, this testexec reads version 1 (hint: upgrade testexec or regenerate the history)"
    )]
    UnsupportedTimingsVersion { origin: String, version: u64 },
    #[error(
        "timings `{origin}`: {what} `{path}` has duration {value}: expected seconds between 0 and 1e9"
    )]
    BadDuration {
        origin: String,
        what: &'static str,
        path: String,
        value: f64,
    },
    #[error("timings `{origin}` hold {count} files, more than the limit of {max}")]
    TooManyTimings {
        origin: String,
        count: usize,
        max: usize,
    },
}

// ---- ports, handlers and backends ------------------------------------------

/// Boxed cause from a backend (SQLite, an SDK, the file system).
pub type BackendSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Run store failures.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("run {run} already exists")]
    Conflict { run: String },
    #[error("run {run} not found")]
    NotFound { run: String },
    /// The caller asked for something the store must refuse (e.g. finishing
    /// a run with a non-final status, shards that do not belong to the run).
    #[error("run {run}: invalid request: {message}")]
    Invalid { run: String, message: String },
    #[error("stored record `{key}` is corrupt: {message}")]
    Corrupt { key: String, message: String },
    /// The backend does not implement this part of the port (listing test
    /// history on DynamoDB); callers degrade.
    #[error(
        "this run store does not support {operation} yet (hint: use the local or AWS backend for test history)"
    )]
    Unsupported { operation: &'static str },
    #[error("run store ({backend}) failed during {operation}: {source}")]
    Backend {
        backend: &'static str,
        operation: &'static str,
        #[source]
        source: BackendSource,
    },
}

/// Blob store failures.
#[derive(Debug, Error)]
pub enum BlobError {
    #[error("blob `{key}` not found")]
    NotFound { key: String },
    #[error("blob key `{key}` is not allowed: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("blob store ({backend}) failed during {operation} of `{key}`: {source}")]
    Backend {
        backend: &'static str,
        operation: &'static str,
        key: String,
        #[source]
        source: BackendSource,
    },
}

/// Queue failures.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error("message for queue `{queue}` is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        queue: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("queue `{queue}` ({backend}) failed: {source}")]
    Backend {
        backend: &'static str,
        queue: &'static str,
        #[source]
        source: BackendSource,
    },
    /// The queue service refused one entry of a batch: at once when the
    /// entry itself is at fault (`sender_fault`, retrying cannot help),
    /// else after `attempts` tries.
    #[error(
        "queue `{queue}` refused message entry `{entry}` after {attempts} attempt(s): {code}: {message}{}",
        if *sender_fault { " (the message itself was rejected; retrying the same message cannot help)" } else { "" }
    )]
    EntryFailed {
        queue: &'static str,
        entry: String,
        code: String,
        message: String,
        sender_fault: bool,
        attempts: u32,
    },
    /// The local queue's SQLite file (adapters/local/queue.rs) could not be
    /// opened or set up, or it was written by a newer testexec.
    #[error("cannot open the queue database `{path}`: {source}")]
    Open {
        path: String,
        #[source]
        source: BackendSource,
    },
    /// A queue setting (visibility timeout, receive count, name prefix) is
    /// outside what the queue service accepts.
    #[error("invalid queue setting `{setting}` = `{value}`: {reason}")]
    InvalidSetting {
        setting: &'static str,
        value: String,
        reason: String,
    },
}

/// Source fetching and snapshot failures.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("source `{repo}` not found: {detail}")]
    NotFound { repo: String, detail: String },
    #[error("source archive is unsafe: entry `{entry}` {reason}")]
    UnsafeEntry { entry: String, reason: &'static str },
    #[error("source archive exceeds the limit of {limit} {what}; raise it or slim the repository")]
    TooLarge { what: &'static str, limit: u64 },
    #[error("source I/O failed at `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("source provider ({backend}) failed: {source}")]
    Backend {
        backend: &'static str,
        #[source]
        source: BackendSource,
    },
}

/// Notifier failures. Report retries them through the queue.
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("notifier ({backend}) failed: {message}")]
    Failed {
        backend: &'static str,
        message: String,
        retry_after_secs: Option<u64>,
    },
}

/// Why a handler could not do its work. Hosts map these to retries, HTTP
/// statuses and exit codes: [`HandlerError::is_permanent`] says whether
/// trying the same input again can help.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("undecodable {what} message: {detail}")]
    BadMessage { what: &'static str, detail: String },
    #[error(
        "message version {found} is not supported (this build reads version {supported}); drain the queue with a matching build"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("run {run} does not exist")]
    UnknownRun { run: String },
    #[error("the repository has no {file} at its root; add one (see docs/manifest.md)")]
    NoManifest { file: &'static str },
    #[error("nothing to rerun: {why}")]
    NothingToRerun { why: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl HandlerError {
    /// True when retrying the same input cannot succeed (bad input, a
    /// broken manifest); false for infrastructure trouble worth a retry.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            HandlerError::BadMessage { .. }
                | HandlerError::UnsupportedVersion { .. }
                | HandlerError::UnknownRun { .. }
                | HandlerError::NoManifest { .. }
                | HandlerError::NothingToRerun { .. }
                | HandlerError::Manifest(_)
                | HandlerError::Plan(_)
                | HandlerError::Source(
                    SourceError::NotFound { .. }
                        | SourceError::UnsafeEntry { .. }
                        | SourceError::TooLarge { .. }
                )
        )
    }
}

// ---- GitHub webhook intake (github/webhook/) -------------------------------

/// Why a webhook delivery was refused. Hosts answer with
/// [`WebhookError::http_status`] and the `Display` text.
///
/// No variant carries the secret, the signature header or the body: these
/// messages go back to whoever sent the request and into logs.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error(
        "request body is {size} bytes, over the {limit}-byte limit; GitHub never sends more than 25 MiB, so this is not a GitHub delivery"
    )]
    TooLarge { size: usize, limit: usize },
    #[error(
        "no webhook secret is configured; set TESTEXEC_WEBHOOK_SECRET to the secret entered in the GitHub webhook settings (unsigned deliveries are never accepted)"
    )]
    NoSecret,
    #[error(
        "missing X-Hub-Signature-256 header; set a secret in the GitHub webhook settings (GitHub only signs deliveries when one is set)"
    )]
    MissingSignature,
    #[error(
        "malformed X-Hub-Signature-256 header: {reason}; expected `sha256=` followed by 64 hex digits"
    )]
    MalformedSignature { reason: &'static str },
    #[error(
        "X-Hub-Signature-256 does not match the body; the webhook secret configured in GitHub does not match TESTEXEC_WEBHOOK_SECRET, or a proxy altered the body"
    )]
    SignatureMismatch,
    #[error("missing {header} header; is the request really from a GitHub webhook?")]
    MissingHeader { header: &'static str },
    #[error("invalid {header} header: {reason}")]
    InvalidHeader {
        header: &'static str,
        reason: &'static str,
    },
    #[error(
        "unsupported content type `{content_type}`; set the webhook's \"Content type\" to application/json in the GitHub webhook settings"
    )]
    UnsupportedContentType { content_type: String },
    #[error("body is not valid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "`{event}` payload: field `{field}` is missing or is not {expected}; the payload does not look like one GitHub sends"
    )]
    Payload {
        event: String,
        field: &'static str,
        expected: &'static str,
    },
}

impl WebhookError {
    /// The HTTP status a host should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookError::TooLarge { .. } => 413,
            // Our misconfiguration, not the sender's fault.
            WebhookError::NoSecret => 500,
            WebhookError::MissingSignature
            | WebhookError::MalformedSignature { .. }
            | WebhookError::SignatureMismatch => 401,
            WebhookError::UnsupportedContentType { .. } => 415,
            WebhookError::MissingHeader { .. }
            | WebhookError::InvalidHeader { .. }
            | WebhookError::Json { .. }
            | WebhookError::Payload { .. } => 400,
        }
    }

    /// True for the variants that mean "not proven to come from GitHub".
    pub fn is_unauthorized(&self) -> bool {
        self.http_status() == 401
    }
}

// ---- GitHub API errors (github/) -------------------------------------------

/// Why a call to the GitHub API failed. No variant ever carries a token, a
/// JWT or the private key: these messages end up in logs and run records.
#[derive(Debug, Error)]
pub enum GithubError {
    #[error("GitHub configuration: {0}")]
    Config(String),
    #[error(
        "the GitHub App private key is not a usable RSA PEM key ({0}); paste the .pem file GitHub generated, BEGIN/END lines included"
    )]
    PrivateKey(String),
    #[error("`{value}` is not a valid {what} for the GitHub API")]
    InvalidInput { what: &'static str, value: String },
    #[error("{0}")]
    Unsupported(String),
    /// A 4xx that retrying cannot fix; `message` is GitHub's own.
    #[error(
        "GitHub API {method} {path} returned {status}: {message}{}",
        doc_hint(documentation_url)
    )]
    Api {
        method: String,
        path: String,
        status: u16,
        message: String,
        documentation_url: Option<String>,
    },
    /// 5xx, rate limits or transport failures that outlasted the retry
    /// budget. The caller should try again after `retry_after_secs`.
    #[error(
        "GitHub API {method} {path} is unavailable after {attempts} attempt(s): {last}; retry in {retry_after_secs}s"
    )]
    Unavailable {
        method: String,
        path: String,
        attempts: u32,
        last: String,
        retry_after_secs: u64,
    },
    #[error("GitHub API {method} {path}: unexpected response: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },
}

fn doc_hint(url: &Option<String>) -> String {
    match url {
        Some(url) => format!(" (see {url})"),
        None => String::new(),
    }
}

impl GithubError {
    /// When the caller's queue should try again, for errors worth retrying.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            GithubError::Unavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            GithubError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<GithubError> for NotifyError {
    fn from(e: GithubError) -> Self {
        NotifyError::Failed {
            backend: "github",
            retry_after_secs: e.retry_after_secs(),
            message: e.to_string(),
        }
    }
}

/// A host's configuration from its environment is missing or wrong.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable `{var}` is not set; {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("environment variable `{var}` has an invalid value `{value}`: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

/// A metrics exporter could not start.
#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("installing the metrics recorder: {0}")]
    Install(String),
    #[error("metrics listener: {0}")]
    Bind(std::io::Error),
}

// ---- Lambda host (lambda/) ----------------------------------------------------

/// An invocation event the Lambda host cannot take.
#[derive(Debug, Error)]
pub enum EventError {
    #[error(
        "unrecognised event: {detail}; expected an API Gateway (REST v1 or HTTP v2) or Function URL request, an SQS event, an EventBridge event or a run request object (see docs/lambda.md)"
    )]
    Unrecognised { detail: String },
    #[error("malformed {kind} event: {detail}")]
    Malformed { kind: &'static str, detail: String },
    #[error(
        "the {function} function does not take {kind} events (see docs/lambda.md for what each function accepts)"
    )]
    NotAccepted {
        function: &'static str,
        kind: &'static str,
    },
    #[error("invalid run request: {0}")]
    BadRunRequest(String),
}

/// A Lambda host could not be built from its environment.
#[derive(Debug, Error)]
pub enum HostError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("GitHub configuration: {0}")]
    Github(#[from] GithubError),
    #[error(
        "this build has no {0} function: build testexec-shared with feature `lambda-http` (trigger) or `github` (report)"
    )]
    NotBuilt(&'static str),
}

/// Why a Lambda invocation failed as a whole (the runtime reports it, and
/// an asynchronous invoker such as EventBridge retries it).
#[derive(Debug, Error)]
pub enum InvocationError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Handler(#[from] HandlerError),
    #[error(
        "{count} failed SQS record(s) carry no messageId, so they cannot be reported one by one; failing the whole batch so nothing is lost"
    )]
    UnnamedFailures { count: usize },
}

/// Why creating the AWS resources (`backends::aws::provision`) failed.
#[derive(Debug, Error)]
pub enum ProvisionError {
    #[error(
        "invalid resource prefix `{prefix}`: {reason}; use 1-40 lowercase letters, digits and `-`, starting with a letter (it names the table, bucket and queues)"
    )]
    InvalidPrefix {
        prefix: String,
        reason: &'static str,
    },
    #[error("creating the run table: {0}")]
    Table(#[source] StoreError),
    #[error("creating the bucket: {0}")]
    Bucket(#[source] BlobError),
    #[error("creating the queues: {0}")]
    Queues(#[source] QueueError),
}
