use std::borrow::Cow;

/// Request header lines: multi-valued, names matched case-insensitively, order kept.
///
/// ```
/// use paracell_domain::http::Headers;
/// let mut h = Headers::default();
/// h.append("X-Tenant-ID", "coop-1");
/// assert_eq!(h.get("x-tenant-id").as_deref(), Some("coop-1"));
/// h.append("x-tenant-id", "coop-2");
/// // Repeated lines read as one comma-separated list (RFC 9110 §5.3), the way some hops merge them.
/// assert_eq!(h.get("X-TENANT-ID").as_deref(), Some("coop-1, coop-2"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Adds a header line.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The field value of `name`, read as an HTTP list (RFC 9110 §5.3, §5.6.1): its lines joined,
    /// split on commas, elements trimmed, empty elements dropped, rejoined with `", "`. `None` when no
    /// element is left. Some hops merge repeated lines into one comma-separated line and others keep
    /// them apart, and some drop empty headers: reading every header this way makes all of those
    /// spellings the same value.
    ///
    /// ```
    /// use paracell_domain::http::Headers;
    /// let lines: Headers = [("X-Tenant-ID", ""), ("x-tenant-id", "coop-1")].into_iter().collect();
    /// let merged: Headers = [("x-tenant-id", ",coop-1")].into_iter().collect();
    /// assert_eq!(lines.get("X-Tenant-ID").as_deref(), Some("coop-1"));
    /// assert_eq!(merged.get("X-Tenant-ID").as_deref(), Some("coop-1"));
    /// ```
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let mut elements = self
            .get_all(name)
            .flat_map(|line| line.split(','))
            .map(|v| v.trim_matches([' ', '\t']))
            .filter(|v| !v.is_empty());
        let first = elements.next()?;
        match elements.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = format!("{first}, {second}");
                for v in elements {
                    joined.push_str(", ");
                    joined.push_str(v);
                }
                Some(Cow::Owned(joined))
            }
        }
    }

    /// All lines, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }
}

/// A request as every platform can express it.
///
/// ```
/// use paracell_domain::http::ApiRequest;
/// let req = ApiRequest::new("POST", "/v1/transactions")
///     .with_header("Content-Type", "application/json")
///     .with_body(br#"{"account_id":"ACC-1"}"#.to_vec());
/// assert_eq!(req.headers.get("content-type").as_deref(), Some("application/json"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiRequest {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// The path as the client sent it, percent-encoding intact, without platform prefixes
    /// (API Gateway stage, Azure route prefix): adapters remove those, nothing else.
    pub path: String,
    /// The raw query string without `?` (the contract defines no query parameters today).
    pub query: String,
    /// Header lines.
    pub headers: Headers,
    /// Body bytes; a missing body and an empty body are the same.
    pub body: Vec<u8>,
    /// A tenant id vouched for by the platform's authentication (an API Gateway authorizer's
    /// `tenant_id` claim, or App Service authentication's principal), never by a client header.
    /// When present it wins, and a differing `X-Tenant-ID` is refused.
    pub authenticated_tenant: Option<String>,
}

impl ApiRequest {
    /// A request with no headers and no body.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            ..Self::default()
        }
    }

    /// Adds a header line.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the query string (without `?`).
    #[must_use]
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = query.into();
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the platform-authenticated tenant.
    #[must_use]
    pub fn with_authenticated_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.authenticated_tenant = Some(tenant.into());
        self
    }
}
