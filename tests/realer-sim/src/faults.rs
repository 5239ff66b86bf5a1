//! Fault injection: failures a proxy or an overloaded server produces, queued for the next matching requests.

use crate::http::{Request, Response};
use crate::routes::Route;

/// One failure to produce instead of (or around) a normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 503 with code 5003 `service_unavailable`.
    ServiceUnavailable,
    /// 429 with code 4029 `rate_limited` and a `Retry-After` header.
    RateLimited { retry_after_secs: u64 },
    /// 402 with code 4002: the device's subscription is inactive (labelled `subscription_inactive` under the
    /// response-handling vocabulary).
    SubscriptionInactive,
    /// 404 with code 4004, as a service without the endpoint answers (e.g. no `/feed-data/batches`).
    NotFound,
    /// Handle the request normally (feed data is stored), then answer 200 `{"code":2000,"status":"accepted"}`:
    /// a batch answer in a shape the client cannot read.
    UnreadableSuccess,
    /// Handle the request normally, then add `"warnings":[{"type":"clock_skew",…}]` to its JSON answer.
    Warnings,
    /// Answer exactly this status and JSON body, without handling the request (a hostile or odd server).
    Answer { status: u16, body: String },
    /// 502 with an nginx-like HTML page (`text/html`, no JSON), as a reverse proxy answers.
    ProxyBadGateway,
    /// Wait this long, then handle the request normally.
    Delay { ms: u64 },
    /// Read the whole request, then close the TCP connection without an answer and without TLS close_notify.
    CloseBeforeAnswer,
    /// Handle the request normally (feed data is stored), then close without answering.
    StoreThenClose,
    /// Read the request and never answer, until the client closes or the sim stops.
    Hang,
    /// Handle the request normally (feed data is stored), then never answer.
    StoreThenHang,
    /// Handle the request normally, then send the answer one byte every `ms` milliseconds (a dripping
    /// server: it never goes silent long enough for a read timeout).
    Drip { ms: u64 },
    /// Answer this status with a page of the path's own (a proxy, a gateway, a captive portal): an nginx-like
    /// HTML page or no body, never JSON, no `X-Request-Id`; the request does not reach the API.
    ProxyPage { status: u16, body: PageBody },
    /// Handle the request normally (feed data is stored), then answer as `ProxyPage` does: a gateway that
    /// forwarded the request and answered 202 or 204 (or an empty or HTML 200) of its own.
    StoreThenPage { status: u16, body: PageBody },
    /// A proxy's body limit (nginx's `client_max_body_size`): a request body over `max_bytes` gets the HTML 413
    /// page without reaching the API; a smaller one is handled normally.
    BodyLimit { max_bytes: usize },
}

/// What a page of the path's own holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageBody {
    /// An nginx-like HTML page naming the status (`text/html`).
    Html,
    /// Nothing (`Content-Length: 0`, no `Content-Type`).
    Empty,
}

impl Fault {
    /// The admin-interface name of the fault.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::ServiceUnavailable => "service_unavailable",
            Fault::RateLimited { .. } => "rate_limited",
            Fault::SubscriptionInactive => "subscription_inactive",
            Fault::NotFound => "not_found",
            Fault::UnreadableSuccess => "unreadable_success",
            Fault::Warnings => "warnings",
            Fault::Answer { .. } => "answer",
            Fault::ProxyBadGateway => "proxy_bad_gateway",
            Fault::Delay { .. } => "delay",
            Fault::CloseBeforeAnswer => "close_before_answer",
            Fault::StoreThenClose => "store_then_close",
            Fault::Hang => "hang",
            Fault::StoreThenHang => "store_then_hang",
            Fault::Drip { .. } => "drip",
            Fault::ProxyPage { .. } => "proxy_page",
            Fault::StoreThenPage { .. } => "store_then_page",
            Fault::BodyLimit { .. } => "body_limit",
        }
    }
}

/// Which requests a queued fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every request except the admin interface.
    Any,
    /// `/oauth/token`, any method.
    Token,
    /// `GET` of a command or sensor collection or item (both: a catalog read is both requests).
    Catalog,
    /// `GET` of the command collection or a command item.
    Commands,
    /// `GET` of the sensor collection or a sensor item.
    Sensors,
    /// `GET …/desired-states`.
    DesiredStates,
    /// `POST …/feed-data` (one item).
    FeedData,
    /// `POST …/feed-data/batches`.
    Batch,
    /// Exactly this path (without the query string), any method.
    Path(String),
}

impl Target {
    /// Parses the admin-interface name: `any`, `token`, `catalog`, `commands`, `sensors`, `desired_states`,
    /// `feed_data`, `batch` or a path starting with `/`.
    pub fn parse(name: &str) -> Option<Target> {
        Some(match name {
            "any" => Target::Any,
            "token" => Target::Token,
            "catalog" => Target::Catalog,
            "commands" => Target::Commands,
            "sensors" => Target::Sensors,
            "desired_states" => Target::DesiredStates,
            "feed_data" => Target::FeedData,
            "batch" => Target::Batch,
            p if p.starts_with('/') => Target::Path(p.to_string()),
            _ => return None,
        })
    }

    pub(crate) fn matches(&self, req: &Request) -> bool {
        let route = Route::parse(&req.path);
        match self {
            Target::Any => true,
            Target::Token => matches!(route, Some(Route::Token)),
            Target::Catalog => {
                req.method == "GET" && matches!(route, Some(Route::Commands { .. } | Route::Sensors { .. }))
            }
            Target::Commands => req.method == "GET" && matches!(route, Some(Route::Commands { .. })),
            Target::Sensors => req.method == "GET" && matches!(route, Some(Route::Sensors { .. })),
            Target::DesiredStates => matches!(route, Some(Route::DesiredStates { .. })),
            Target::FeedData => req.method == "POST" && matches!(route, Some(Route::FeedData { .. })),
            Target::Batch => req.method == "POST" && matches!(route, Some(Route::Batches { .. })),
            Target::Path(p) => req.path == *p,
        }
    }
}

/// A fault with the number of matching requests it still applies to.
#[derive(Debug, Clone)]
pub(crate) struct QueuedFault {
    pub fault: Fault,
    pub target: Target,
    pub remaining: u32,
}

/// Consumes one count of the first queued fault matching `req`.
pub(crate) fn take(queue: &mut Vec<QueuedFault>, req: &Request) -> Option<Fault> {
    let pos = queue.iter().position(|q| q.target.matches(req))?;
    let fault = queue[pos].fault.clone();
    queue[pos].remaining -= 1;
    if queue[pos].remaining == 0 {
        queue.remove(pos);
    }
    Some(fault)
}

/// The page nginx serves when its upstream fails.
pub(crate) const BAD_GATEWAY_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// A page of the path's own for `status` (see `Fault::ProxyPage`), as nginx writes its error pages.
pub(crate) fn page(status: u16, body: PageBody) -> Response {
    let mut resp = match body {
        PageBody::Html => {
            // nginx's own wording for the statuses it writes pages for.
            let reason = match status {
                408 => "Request Time-out",
                413 => "Request Entity Too Large",
                425 => "Too Early",
                499 => "Client Closed Request",
                other => crate::http::reason(other),
            };
            let title = format!("{status} {reason}");
            let html = format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            );
            Response::new(status, "text/html", html.into_bytes())
        }
        PageBody::Empty => Response { status, headers: Vec::new(), body: Vec::new() },
    };
    resp.headers.push(("Server".to_string(), "nginx".to_string()));
    resp
}
