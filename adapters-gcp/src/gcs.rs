//! Acceptor slots as objects in a Google Cloud Storage bucket: a [`SlotStore`], so
//! `CasAcceptor<GcsSlots>` is the witness acceptor, with the acceptor's rule applied in the domain
//! ([`paracell_domain::placement::quorum::CasAcceptor`]).
//!
//! One object per register (`<prefix><register>`), holding the slot document. The version is the
//! object's **generation**, and every write is conditional on it (`ifGenerationMatch`; `0` means
//! "only if the object does not exist"): Cloud Storage answers `412 Precondition Failed` when the
//! object changed since it was read, which is the compare-and-swap the acceptor needs. Reads and
//! writes of one object are strongly consistent (read-after-write, including overwrites).
//!
//! Writes are **multipart** uploads. The stand-in (fake-gcs-server) ignores `ifGenerationMatch` on
//! a media upload (`uploadType=media`) and honours it on a multipart one; the real service honours
//! it on both, so the multipart form is the one whose behaviour the tests prove.
//!
//! Cloud Storage accepts about one write per second to one object name. A placement change is two
//! writes (prepare, accept) on its tenant's object, and a cell's lease renewal two writes every few
//! seconds on the cell's object, so both stay under it; a burst past it answers `429`, which is
//! [`StoreError::Unavailable`] (the proposer counts that acceptor as silent and moves on with the
//! other two).
//!
//! ```
//! use paracell_gcp::gcs::GcsConfig;
//! let config = GcsConfig::new("paracell-witness").with_endpoint("http://127.0.0.1:4443");
//! assert_eq!(config.prefix, "paracell/");
//! ```

use paracell_domain::http::percent::encode_component;
use paracell_domain::placement::quorum::{AcceptorError, SlotStore, SlotWrite};
use paracell_domain::ports::{
    AccessTokens, HttpClient, OutboundRequest, OutboundResponse, StoreError, TransportError,
};
use std::sync::Arc;
use std::time::Duration;

/// The public Cloud Storage endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";

/// Where the witness keeps its slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsConfig {
    /// The JSON API's base URL (no trailing slash): [`DEFAULT_ENDPOINT`], or a stand-in's.
    pub endpoint: String,
    /// The bucket (created by the deployment, single-region or dual-region; never with object
    /// versioning turned off later, never with a retention policy that refuses overwrites).
    pub bucket: String,
    /// Prepended to every register's name (several environments may share one bucket).
    pub prefix: String,
    /// Each request's whole exchange must finish within this; past it the witness counts as silent
    /// for that phase.
    pub timeout: Duration,
}

impl GcsConfig {
    /// Slots in `bucket` on the public endpoint, under `paracell/`, with a 1.5 s request timeout
    /// (the lease timeline in `docs/failover.md` assumes at most that).
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            bucket: bucket.into(),
            prefix: "paracell/".to_owned(),
            timeout: Duration::from_millis(1_500),
        }
    }

    /// The same on another endpoint (a stand-in on loopback).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into().trim_end_matches('/').to_owned();
        self
    }

    /// The same under another prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// From `PARACELL_GCS_BUCKET` (required), `PARACELL_GCS_ENDPOINT` and `PARACELL_GCS_PREFIX`
    /// (optional), read through `lookup`.
    ///
    /// ```
    /// use paracell_gcp::gcs::GcsConfig;
    /// let env = |name: &str| (name == "PARACELL_GCS_BUCKET").then(|| "w".to_owned());
    /// assert_eq!(GcsConfig::from_lookup(env).unwrap(), GcsConfig::new("w"));
    /// assert!(GcsConfig::from_lookup(|_| None).is_err());
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, StoreError> {
        let bucket = lookup("PARACELL_GCS_BUCKET").ok_or_else(|| {
            StoreError::Failed("PARACELL_GCS_BUCKET is not set: the witness's bucket".into())
        })?;
        let mut config = Self::new(bucket);
        if let Some(endpoint) = lookup("PARACELL_GCS_ENDPOINT") {
            config = config.with_endpoint(endpoint);
        }
        if let Some(prefix) = lookup("PARACELL_GCS_PREFIX") {
            config = config.with_prefix(prefix);
        }
        Ok(config)
    }
}

/// How the witness proves it may read and write the bucket.
#[derive(Clone)]
pub enum GcsAuth {
    /// No credentials: only the local stand-in accepts this.
    Anonymous,
    /// OAuth 2.0 bearer tokens (scope `devstorage.read_write`, role "Storage Object User" on the
    /// bucket) from a token source; a refused token is dropped and the call made once more with a
    /// fresh one.
    Bearer(Arc<dyn AccessTokens>),
}

impl std::fmt::Debug for GcsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token.
        f.write_str(match self {
            Self::Anonymous => "Anonymous",
            Self::Bearer(_) => "Bearer(..)",
        })
    }
}

/// Acceptor slots in a Cloud Storage bucket.
#[derive(Clone)]
pub struct GcsSlots {
    config: GcsConfig,
    auth: GcsAuth,
    http: Arc<dyn HttpClient>,
    domain: String,
}

impl std::fmt::Debug for GcsSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsSlots")
            .field("config", &self.config)
            .field("auth", &self.auth)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// A request's outcome, before the operation decides what it means.
enum Answer {
    /// The service answered (any status but a refused credential retried once).
    Status(OutboundResponse),
    /// No answer: the request may or may not have been applied.
    Silent(TransportError),
}

impl GcsSlots {
    /// Slots described by `config`, reached through `http`, for failure domain `domain` (e.g.
    /// `gcp`).
    pub fn new(
        config: GcsConfig,
        auth: GcsAuth,
        http: Arc<dyn HttpClient>,
        domain: impl Into<String>,
    ) -> Self {
        Self {
            config,
            auth,
            http,
            domain: domain.into(),
        }
    }

    /// Creates the bucket (local runs and tests on the stand-in; deployments create it with their
    /// infrastructure). An existing bucket is fine.
    pub async fn create_bucket(&self) -> Result<(), StoreError> {
        let body = serde_json::json!({ "name": self.config.bucket }).to_string();
        let url = format!("{}/storage/v1/b", self.config.endpoint);
        match self.exchange("POST", url, "application/json", body).await? {
            Answer::Status(r) if r.status == 200 || r.status == 409 => Ok(()),
            Answer::Status(r) => Err(refusal("create the witness bucket", &r)),
            Answer::Silent(e) => Err(silent("create the witness bucket", &e)),
        }
    }

    fn object(&self, register: &str) -> String {
        format!("{}{register}", self.config.prefix)
    }

    /// Sends one request, with a fresh token once more if the first was refused.
    async fn exchange(
        &self,
        method: &str,
        url: String,
        content_type: &str,
        body: String,
    ) -> Result<Answer, StoreError> {
        for attempt in 0..2 {
            let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
            if let GcsAuth::Bearer(tokens) = &self.auth {
                let token = tokens
                    .token()
                    .await
                    .map_err(|e| StoreError::Failed(format!("witness credentials: {e}")))?;
                headers.push(("authorization".to_owned(), format!("Bearer {token}")));
            }
            let request = OutboundRequest {
                method: method.to_owned(),
                url: url.clone(),
                headers,
                body: body.clone().into_bytes(),
                timeout: self.config.timeout,
            };
            match self.http.send(request).await {
                Ok(r) if (r.status == 401 || r.status == 403) && attempt == 0 => {
                    if let GcsAuth::Bearer(tokens) = &self.auth {
                        tokens.invalidate();
                        continue;
                    }
                    return Ok(Answer::Status(r));
                }
                Ok(r) => return Ok(Answer::Status(r)),
                Err(e) => return Ok(Answer::Silent(e)),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }
}

/// The multipart body of an upload: the object's metadata, then its content. The boundary is one
/// the content does not contain.
fn multipart(name: &str, document: &str) -> (String, String) {
    let mut n = 0u32;
    let boundary = loop {
        let candidate = format!("paracell-slot-{n}");
        if !document.contains(&candidate) && !name.contains(&candidate) {
            break candidate;
        }
        n += 1;
    };
    let metadata = serde_json::json!({ "name": name, "contentType": "application/json" });
    let body = format!(
        "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n\
         --{boundary}\r\nContent-Type: application/json\r\n\r\n{document}\r\n--{boundary}--\r\n"
    );
    (format!("multipart/related; boundary={boundary}"), body)
}

/// An object generation as Cloud Storage writes it: a decimal number.
fn is_generation(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// A status the operation does not expect: throttled or failing (retry later) or refused.
fn refusal(what: &str, response: &OutboundResponse) -> StoreError {
    let detail = format!(
        "{what}: the witness answered {} {}",
        response.status,
        String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
    );
    match response.status {
        408 | 429 | 500..=599 => StoreError::Unavailable {
            retry_after_secs: 1,
            detail,
        },
        401 | 403 => StoreError::Failed(format!("{detail} (credentials refused)")),
        _ => StoreError::Failed(detail),
    }
}

/// No answer. For a write, it may still have been applied: the proposer counts the witness as
/// silent, which CASPaxos allows for an accept that landed (a reply lost on the way back).
fn silent(what: &str, error: &TransportError) -> StoreError {
    StoreError::Unavailable {
        retry_after_secs: 1,
        detail: format!("{what}: {error}"),
    }
}

#[async_trait::async_trait]
impl SlotStore for GcsSlots {
    fn domain(&self) -> &str {
        &self.domain
    }

    async fn read(&self, register: &str) -> Result<Option<(String, String)>, AcceptorError> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}?alt=media",
            self.config.endpoint,
            encode_component(&self.config.bucket),
            encode_component(&self.object(register))
        );
        let response = match self
            .exchange("GET", url, "application/json", String::new())
            .await?
        {
            Answer::Status(r) => r,
            Answer::Silent(e) => return Err(silent("read acceptor slot", &e).into()),
        };
        match response.status {
            200 => {
                let generation = response
                    .header("x-goog-generation")
                    .filter(|g| is_generation(g))
                    .ok_or_else(|| {
                        AcceptorError::Malformed(format!(
                            "acceptor slot {register}: no object generation in the answer"
                        ))
                    })?
                    .to_owned();
                let document = String::from_utf8(response.body).map_err(|_| {
                    AcceptorError::Malformed(format!("acceptor slot {register}: not UTF-8"))
                })?;
                Ok(Some((document, generation)))
            }
            404 => Ok(None),
            _ => Err(refusal("read acceptor slot", &response).into()),
        }
    }

    async fn write(
        &self,
        register: &str,
        document: &str,
        expected: Option<&str>,
    ) -> Result<SlotWrite, StoreError> {
        let generation = match expected {
            None => "0",
            Some(g) if is_generation(g) => g,
            Some(g) => {
                return Err(StoreError::Failed(format!(
                    "acceptor slot {register}: {g:?} is not an object generation"
                )));
            }
        };
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=multipart&ifGenerationMatch={generation}",
            self.config.endpoint,
            encode_component(&self.config.bucket),
        );
        let (content_type, body) = multipart(&self.object(register), document);
        match self.exchange("POST", url, &content_type, body).await? {
            Answer::Status(r) if r.status == 200 => Ok(SlotWrite::Written),
            Answer::Status(r) if r.status == 412 => Ok(SlotWrite::Conflict),
            Answer::Status(r) => Err(refusal("write acceptor slot", &r)),
            Answer::Silent(e) => Err(silent("write acceptor slot", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use paracell_domain::ports::TokenError;
    use std::sync::Mutex;

    /// Answers from a script and records every request.
    struct Scripted {
        answers: Mutex<Vec<Result<OutboundResponse, TransportError>>>,
        seen: Mutex<Vec<OutboundRequest>>,
    }

    impl Scripted {
        fn new(answers: Vec<Result<OutboundResponse, TransportError>>) -> Arc<Self> {
            Arc::new(Self {
                answers: Mutex::new(answers.into_iter().rev().collect()),
                seen: Mutex::new(Vec::new()),
            })
        }
    }

    #[async_trait::async_trait]
    impl HttpClient for Scripted {
        async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
            self.seen.lock().unwrap().push(request);
            self.answers
                .lock()
                .unwrap()
                .pop()
                .expect("a scripted answer")
        }
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn slots(http: Arc<Scripted>, auth: GcsAuth) -> GcsSlots {
        let config = GcsConfig::new("wit ness").with_endpoint("http://gcs.test/");
        GcsSlots::new(config, auth, http, "gcp")
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        use paracell_domain::testing::store_contract::{Executor, ThreadExecutor};
        ThreadExecutor.block_on(future)
    }

    #[test]
    fn a_read_names_the_object_encoded_and_returns_its_generation() {
        let http = Scripted::new(vec![Ok(answer(
            200,
            &[("x-goog-generation", "1796")],
            "{\"doc\":1}",
        ))]);
        let read = block_on(slots(http.clone(), GcsAuth::Anonymous).read("placement/t 1"));
        assert_eq!(
            read,
            Ok(Some(("{\"doc\":1}".to_owned(), "1796".to_owned())))
        );
        let seen = http.seen.lock().unwrap();
        assert_eq!(
            seen[0].url,
            "http://gcs.test/storage/v1/b/wit%20ness/o/paracell%2Fplacement%2Ft%201?alt=media"
        );
        assert!(!seen[0].headers.iter().any(|(n, _)| n == "authorization"));
    }

    #[test]
    fn an_answer_without_a_generation_or_with_bytes_that_are_not_text_is_malformed() {
        let http = Scripted::new(vec![
            Ok(answer(200, &[], "{}")),
            Ok(answer(200, &[("x-goog-generation", "12a")], "{}")),
            Ok(OutboundResponse {
                status: 200,
                headers: vec![("x-goog-generation".into(), "3".into())],
                body: vec![0xff, 0xfe],
            }),
        ]);
        let s = slots(http, GcsAuth::Anonymous);
        for _ in 0..3 {
            assert!(matches!(
                block_on(s.read("r")),
                Err(AcceptorError::Malformed(_))
            ));
        }
    }

    #[test]
    fn a_missing_object_is_an_empty_slot_and_failures_are_store_errors() {
        let http = Scripted::new(vec![
            Ok(answer(404, &[], "")),
            Ok(answer(429, &[], "slow down")),
            Ok(answer(400, &[], "bad")),
            Err(TransportError::Timeout),
        ]);
        let s = slots(http, GcsAuth::Anonymous);
        assert_eq!(block_on(s.read("r")), Ok(None));
        assert!(matches!(
            block_on(s.read("r")),
            Err(AcceptorError::Store(StoreError::Unavailable { .. }))
        ));
        assert!(matches!(
            block_on(s.read("r")),
            Err(AcceptorError::Store(StoreError::Failed(_)))
        ));
        assert!(matches!(
            block_on(s.read("r")),
            Err(AcceptorError::Store(StoreError::Unavailable { .. }))
        ));
    }

    #[test]
    fn a_write_is_a_multipart_upload_conditioned_on_the_generation() {
        let http = Scripted::new(vec![
            Ok(answer(200, &[], "{}")),
            Ok(answer(412, &[], "")),
            Err(TransportError::Broken("reset".into())),
        ]);
        let s = slots(http.clone(), GcsAuth::Anonymous);
        assert_eq!(
            block_on(s.write("r", "{\"a\":1}", None)),
            Ok(SlotWrite::Written)
        );
        assert_eq!(
            block_on(s.write("r", "{\"a\":2}", Some("77"))),
            Ok(SlotWrite::Conflict)
        );
        assert!(matches!(
            block_on(s.write("r", "{}", Some("78"))),
            Err(StoreError::Unavailable { .. })
        ));
        assert!(matches!(
            block_on(s.write("r", "{}", Some("W/\"etag\""))),
            Err(StoreError::Failed(_))
        ));
        let seen = http.seen.lock().unwrap();
        assert_eq!(
            seen.len(),
            3,
            "a version that is not a generation is never sent"
        );
        assert!(
            seen[0]
                .url
                .ends_with("?uploadType=multipart&ifGenerationMatch=0")
        );
        assert!(seen[1].url.ends_with("&ifGenerationMatch=77"));
        let body = String::from_utf8(seen[0].body.clone()).unwrap();
        assert!(body.contains("\"name\":\"paracell/r\""), "{body}");
        assert!(
            body.contains("\r\n\r\n{\"a\":1}\r\n--paracell-slot-0--"),
            "{body}"
        );
    }

    #[test]
    fn the_boundary_never_occurs_in_the_document() {
        let (content_type, body) = multipart("r", "--paracell-slot-0 --paracell-slot-1");
        assert_eq!(content_type, "multipart/related; boundary=paracell-slot-2");
        assert!(body.starts_with("--paracell-slot-2\r\n"));
    }

    #[derive(Default)]
    struct Tokens(Mutex<u32>);

    #[async_trait::async_trait]
    impl AccessTokens for Tokens {
        async fn token(&self) -> Result<String, TokenError> {
            Ok(format!("t{}", self.0.lock().unwrap()))
        }
        fn invalidate(&self) {
            *self.0.lock().unwrap() += 1;
        }
    }

    #[test]
    fn a_refused_token_is_replaced_once_then_reported() {
        let http = Scripted::new(vec![
            Ok(answer(401, &[], "")),
            Ok(answer(404, &[], "")),
            Ok(answer(403, &[], "")),
            Ok(answer(403, &[], "")),
        ]);
        let s = slots(http.clone(), GcsAuth::Bearer(Arc::new(Tokens::default())));
        assert_eq!(block_on(s.read("r")), Ok(None));
        assert!(matches!(
            block_on(s.read("r")),
            Err(AcceptorError::Store(StoreError::Failed(m))) if m.contains("credentials refused")
        ));
        let auth: Vec<_> = http
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.headers[1].1.clone())
            .collect();
        assert_eq!(auth, ["Bearer t0", "Bearer t1", "Bearer t1", "Bearer t2"]);
    }
}
