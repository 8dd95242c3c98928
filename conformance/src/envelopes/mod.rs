//! The envelopes: every way a client's request can reach a cell. Each renders the request into its
//! platform's exact event, runs it through the adapter's entry point, and applies the platform's model
//! of what the client finally sees.

pub mod aws;
pub mod azure;

use crate::request::{ClientRequest, ClientResponse};

/// One way a request reaches a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Envelope {
    /// The domain entry point, no platform: the reference.
    Direct,
    /// API Gateway REST API, payload 1.0, stage `Prod`.
    AwsApigwV1,
    /// API Gateway HTTP API, payload 2.0, `$default` stage.
    AwsApigwV2,
    /// API Gateway HTTP API, payload 2.0, a named stage (`/Prod` in `rawPath`).
    AwsApigwV2Stage,
    /// Lambda Function URL (payload 2.0).
    AwsFunctionUrl,
    /// ALB, multi-value headers off.
    AwsAlb,
    /// ALB, multi-value headers on.
    AwsAlbMultivalue,
    /// Azure Functions custom handler, payload mode.
    AzurePayload,
    /// Azure Functions custom handler, `enableForwardingHttpRequest`.
    AzureForwarding,
}

impl Envelope {
    /// Every envelope, in report order.
    pub const ALL: [Envelope; 9] = [
        Self::Direct,
        Self::AwsApigwV1,
        Self::AwsApigwV2,
        Self::AwsApigwV2Stage,
        Self::AwsFunctionUrl,
        Self::AwsAlb,
        Self::AwsAlbMultivalue,
        Self::AzurePayload,
        Self::AzureForwarding,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::AwsApigwV1 => "aws-apigw-v1",
            Self::AwsApigwV2 => "aws-apigw-v2",
            Self::AwsApigwV2Stage => "aws-apigw-v2-stage",
            Self::AwsFunctionUrl => "aws-function-url",
            Self::AwsAlb => "aws-alb",
            Self::AwsAlbMultivalue => "aws-alb-multivalue",
            Self::AzurePayload => "azure-payload",
            Self::AzureForwarding => "azure-forwarding",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Whether this envelope goes through the AWS adapter.
    pub fn is_aws(self) -> bool {
        self.name().starts_with("aws-")
    }

    /// Why this envelope cannot express `request` at all, if it cannot.
    pub fn not_applicable(self, request: &ClientRequest) -> Option<&'static str> {
        match self {
            Self::AwsFunctionUrl | Self::AwsAlb | Self::AwsAlbMultivalue
                if request.authenticated_tenant.is_some() =>
            {
                Some(
                    "no authorizer: Function URLs authenticate with IAM only, ALB has no authorizer",
                )
            }
            _ => None,
        }
    }
}

/// The outcome of one request through one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// What the client saw.
    Response(ClientResponse),
    /// The envelope cannot express the request (reported as `n/a`, with the reason).
    NotApplicable(&'static str),
    /// The platform would not have given the client an HTTP response from the cell (the adapter
    /// failed the invocation): always a failure.
    Failed(String),
}

impl Exchange {
    /// The exchange as an HTTP client port sees it (for a relay or a router whose peer is an
    /// envelope in this process): a response, or a failure after the request may have been sent.
    pub fn into_outbound(
        self,
    ) -> Result<paracell_domain::ports::OutboundResponse, paracell_domain::ports::TransportError>
    {
        use paracell_domain::ports::{OutboundResponse, TransportError};
        match self {
            Self::Response(r) => Ok(OutboundResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Self::NotApplicable(reason) => Err(TransportError::Broken(reason.to_owned())),
            Self::Failed(e) => Err(TransportError::Broken(e)),
        }
    }
}
