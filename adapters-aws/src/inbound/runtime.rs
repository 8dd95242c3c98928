//! The one place that relies on `lambda_http`'s undocumented API (`request::LambdaRequest`,
//! `RequestOrigin`, `Adapter`: public but `#[doc(hidden)]`). The dependency is pinned exactly
//! (`=1.3.2`); re-check this module on every upgrade.
//!
//! `lambda_http` decides which source an event is (its untagged `LambdaRequest` deserialiser: REST,
//! then HTTP API, then ALB) and serialises our response into that source's exact shape (its `Adapter`,
//! as `lambda_http::run` does). Both see a *sanitised* copy of the event (no path, query, headers or
//! body): `lambda_http`'s own request conversion panics on invalid base64 and some URIs, and
//! everything it would read from those fields is read by [`crate::inbound::http`] instead.

use crate::inbound::http::Source;
use lambda_http::lambda_runtime::LambdaEvent;
use lambda_http::request::{LambdaRequest, RequestOrigin};
use lambda_http::tower::ServiceExt as _;
use lambda_http::{Adapter, Body, Context, Request, service_fn};
use paracell_domain::http::ApiResponse;
use serde_json::Value;
use serde_json::value::RawValue;

/// An event `lambda_http` does not recognise as an HTTP event of an enabled source.
#[derive(Debug, thiserror::Error)]
#[error("not an API Gateway (REST or HTTP API), Function URL or ALB event: {0}")]
pub struct NotAnHttpEvent(String);

/// A recognised event: its source and the sanitised form the response is built from.
pub struct Recognised {
    /// The source.
    pub source: Source,
    request: LambdaRequest,
}

/// Detects the source of a raw event with `lambda_http`'s deserialiser.
pub fn recognise(event: &Value) -> Result<Recognised, NotAnHttpEvent> {
    let request: LambdaRequest =
        serde_json::from_value(sanitised(event)).map_err(|e| NotAnHttpEvent(e.to_string()))?;
    let source = match request.request_origin() {
        RequestOrigin::ApiGatewayV1 => Source::RestV1,
        RequestOrigin::ApiGatewayV2 => Source::HttpV2,
        RequestOrigin::Alb => Source::Alb,
        #[allow(unreachable_patterns)]
        _ => return Err(NotAnHttpEvent("unsupported origin".into())),
    };
    Ok(Recognised { source, request })
}

/// Serialises a response in the shape the recognised source expects, through `lambda_http`'s
/// `Adapter`, straight to JSON text (the runtime writes it as it is).
pub async fn respond(
    recognised: Recognised,
    response: ApiResponse,
    context: Context,
) -> Result<Box<RawValue>, lambda_http::Error> {
    let http_response = to_http(response);
    let mut slot = Some(http_response);
    let inner = service_fn(move |_: Request| {
        let response = slot.take();
        async move {
            response.ok_or_else(|| lambda_http::Error::from("the adapter called the handler twice"))
        }
    });
    let lambda_response = Adapter::from(inner)
        .oneshot(LambdaEvent::new(recognised.request, context))
        .await?;
    Ok(RawValue::from_string(serde_json::to_string(
        &lambda_response,
    )?)?)
}

fn to_http(response: ApiResponse) -> lambda_http::http::Response<Body> {
    // Domain bodies are UTF-8 JSON or empty; every response has a JSON Content-Type, so lambda_http
    // emits it as text (never base64, never lossily re-decoded).
    let body = if response.body.is_empty() {
        Body::Empty
    } else {
        Body::Text(String::from_utf8_lossy(&response.body).into_owned())
    };
    let mut http_response = lambda_http::http::Response::new(body);
    *http_response.status_mut() = lambda_http::http::StatusCode::from_u16(response.status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            lambda_http::http::HeaderName::try_from(name),
            lambda_http::http::HeaderValue::try_from(value),
        ) {
            http_response.headers_mut().insert(name, value);
        }
    }
    http_response
}

/// The event without the members `lambda_http` would convert (and could panic on). Those members
/// are replaced, never cloned: they are the bulk of an event (body, headers).
fn sanitised(event: &Value) -> Value {
    let Some(object) = event.as_object() else {
        return event.clone();
    };
    let empty = || Value::Object(serde_json::Map::new());
    let copy = object
        .iter()
        .map(|(key, value)| {
            let replacement = match key.as_str() {
                "body" | "cookies" => Value::Null,
                "isBase64Encoded" => Value::Bool(false),
                "path" | "rawPath" => Value::from("/"),
                "rawQueryString" => Value::from(""),
                "queryStringParameters"
                | "multiValueQueryStringParameters"
                | "headers"
                | "multiValueHeaders" => empty(),
                _ => value.clone(),
            };
            (key.clone(), replacement)
        })
        .collect();
    Value::Object(copy)
}
