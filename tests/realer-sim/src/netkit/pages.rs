//! The answers the front and the CONNECT proxy make by themselves, byte for byte as the real programs send them:
//! nginx 1.22.1's special pages (captured from `return STATUS`) and squid 5's error templates (squid-langpack,
//! English, without the optional stylesheet).

use super::{Reply, NGINX_SERVER, SQUID_REALM, SQUID_SERVER};
use crate::time;

/// An answer ready to serialise.
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
    pub(crate) headers: Vec<(String, String)>,
    /// `None`: no `Content-Length` at all (204).
    pub(crate) body: Option<Vec<u8>>,
    /// Close the connection after it.
    pub(crate) close: bool,
}

impl Page {
    pub(crate) fn serialize(&self, close: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(body) = &self.body {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str(if close { "Connection: close\r\n\r\n" } else { "Connection: keep-alive\r\n\r\n" });
        let mut bytes = out.into_bytes();
        if let Some(body) = &self.body {
            bytes.extend_from_slice(body);
        }
        bytes
    }
}

/// What the page is about: the URL (front) or `host:port` (CONNECT), and the request line for squid's 400.
pub(crate) struct About<'a> {
    pub(crate) url: &'a str,
    pub(crate) request_line: &'a str,
}

/// The page for `reply`; `None` for [`Reply::Close`].
pub(crate) fn render(reply: &Reply, retry_after: Option<u64>, about: &About<'_>) -> Option<Page> {
    let mut page = match reply {
        Reply::Nginx(status) => nginx(*status),
        Reply::Squid(status) => squid(*status, about),
        Reply::Empty(status) => empty(*status),
        Reply::Portal => portal(),
        Reply::Close => return None,
    };
    if let Some(secs) = retry_after {
        page.headers.push(("Retry-After".into(), secs.to_string()));
    }
    Some(page)
}

fn date() -> String {
    time::format_http_date(time::now_unix())
}

/// nginx's reason phrase (ngx_http_status_lines); empty for the statuses it has none for (425, 499...).
pub(crate) fn nginx_reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// nginx's answer to `return STATUS` (for 408, the page its source has; `return 408` itself just closes).
fn nginx(status: u16) -> Page {
    let reason = nginx_reason(status);
    let mut headers = vec![("Server".to_string(), NGINX_SERVER.to_string()), ("Date".to_string(), date())];
    let body = if status >= 400 && !reason.is_empty() {
        headers.push(("Content-Type".into(), "text/html".into()));
        format!(
            "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>{NGINX_SERVER}</center>\r\n</body>\r\n</html>\r\n"
        )
        .into_bytes()
    } else {
        Vec::new()
    };
    Page {
        status,
        reason,
        headers,
        body: if status == 204 || status == 304 { None } else { Some(body) },
        close: matches!(status, 400 | 408 | 413 | 414 | 500 | 501),
    }
}

fn empty(status: u16) -> Page {
    Page {
        status,
        reason: nginx_reason(status),
        headers: vec![("Server".to_string(), NGINX_SERVER.to_string()), ("Date".to_string(), date())],
        body: if status == 204 || status == 304 { None } else { Some(Vec::new()) },
        close: false,
    }
}

pub(crate) const PORTAL_HTML: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Guest Wi-Fi</title></head>\n<body>\n<h1>Welcome to Guest Wi-Fi</h1>\n<p>Please accept the terms of use to continue.</p>\n<form method=\"post\" action=\"/login\"><input type=\"checkbox\" name=\"accept\"> I accept <button type=\"submit\">Connect</button></form>\n</body></html>\n";

fn portal() -> Page {
    Page {
        status: 200,
        reason: "OK",
        headers: vec![
            ("Server".into(), NGINX_SERVER.into()),
            ("Date".into(), date()),
            ("Content-Type".into(), "text/html; charset=utf-8".into()),
            ("Cache-Control".into(), "no-cache, no-store".into()),
        ],
        body: Some(PORTAL_HTML.as_bytes().to_vec()),
        close: false,
    }
}

/// RFC 9110's reason phrases, which squid sends.
fn standard_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        425 => "Too Early",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

const SQUID_HEAD: &str = "<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \"http://www.w3.org/TR/html4/strict.dtd\">\n<html><head>\n<meta type=\"copyright\" content=\"Copyright (C) 1996-2021 The Squid Software Foundation and contributors\">\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\n<title>ERROR: The requested URL could not be retrieved</title>\n<style type=\"text/css\"><!--\n \n\nbody\n:lang(fa) { direction: rtl; font-size: 100%; font-family: Tahoma, Roya, sans-serif; float: right; }\n:lang(he) { direction: rtl; }\n --></style>\n</head><body id=%c>\n<div id=\"titles\">\n<h1>ERROR</h1>\n<h2>%t</h2>\n</div>\n<hr>\n\n<div id=\"content\">\n";
const SQUID_FOOT: &str =
    "</div>\n\n<hr>\n<div id=\"footer\">\n<p>Generated %T by localhost (%s)</p>\n<!-- %c -->\n</div>\n</body></html>\n";
const SQUID_URL: &str =
    "<p>The following error was encountered while trying to retrieve the URL: <a href=\"%U\">%U</a></p>\n\n";
const SQUID_ADMIN: &str = "<p>Your cache administrator is <a href=\"mailto:webmaster\">webmaster</a>.</p>\n<br>\n";

/// (error name, errno in `X-Squid-Error`, title, content) of squid's template for `status`.
fn squid_template(status: u16) -> (&'static str, u16, &'static str, String) {
    let url_error = |bold: &str, rest: &str| {
        format!("{SQUID_URL}<blockquote id=\"error\">\n<p><b>{bold}</b></p>\n</blockquote>\n\n{rest}{SQUID_ADMIN}")
    };
    const RETRIEVE: &str = "The requested URL could not be retrieved";
    match status {
        400 => ("ERR_INVALID_REQ", 0, RETRIEVE, format!("<p><b>Invalid Request</b> error was encountered while trying to process the request:</p>\n\n<blockquote id=\"data\">\n<pre>%R</pre>\n</blockquote>\n\n<p>Some possible problems are:</p>\n<ul>\n<li id=\"missing-method\"><p>Missing or unknown request method.</p></li>\n<li id=\"missing-url\"><p>Missing URL.</p></li>\n<li id=\"missing-protocol\"><p>Missing HTTP Identifier (HTTP/1.0).</p></li>\n<li><p>Request is too large.</p></li>\n<li><p>Content-Length missing for POST or PUT requests.</p></li>\n<li><p>Illegal character in hostname; underscores are not allowed.</p></li>\n<li><p>HTTP/1.1 <q>Expect:</q> feature is being asked from an HTTP/1.0 software.</p></li>\n</ul>\n\n{SQUID_ADMIN}")),
        407 => ("ERR_CACHE_ACCESS_DENIED", 0, "Cache Access Denied.", format!("{SQUID_URL}<blockquote id=\"error\">\n<p><b>Cache Access Denied.</b></p>\n</blockquote>\n\n<p>Sorry, you are not currently allowed to request %U from this cache until you have authenticated yourself.</p>\n\n<p>Please contact the <a href=\"mailto:webmaster\">cache administrator</a> if you have difficulties authenticating yourself.</p>\n\n<br>\n")),
        413 => ("ERR_TOO_BIG", 0, RETRIEVE, url_error("The request or reply is too large.", "<p>If you are making a POST or PUT request, then the item you are trying to upload is too large.</p>\n<p>If you are making a GET request, then the item you are trying to download is too large.</p>\n<p>These limits have been established by the Internet Service Provider who operates this cache. Please contact them directly if you feel this is an error.</p>\n\n")),
        500 => ("ERR_GATEWAY_FAILURE", 0, RETRIEVE, url_error("Gateway Proxy Failure", "<p>A non-recoverable internal failure or configuration problem prevents this request from being completed.</p>\n\n<p>This may be due to limits established by the Internet Service Provider who operates this cache. Please contact them directly for more information.</p>\n\n")),
        502 => ("ERR_READ_ERROR", 104, RETRIEVE, url_error("Read Error", "<p id=\"sysmsg\">The system returned: <i>(104) Connection reset by peer</i></p>\n\n<p>An error condition occurred while reading data from the network. Please retry your request.</p>\n\n")),
        503 => ("ERR_CONNECT_FAIL", 111, RETRIEVE, url_error("Connection to %I failed.", "<p id=\"sysmsg\">The system returned: <i>(111) Connection refused</i></p>\n\n<p>The remote host or network may be down. Please try the request again.</p>\n\n")),
        504 => ("ERR_READ_TIMEOUT", 110, RETRIEVE, url_error("Read Timeout", "<p id=\"sysmsg\">The system returned: <i>(110) Connection timed out</i></p>\n\n<p>A Timeout occurred while waiting to read data from the network. The network or server may be down or congested. Please retry your request.</p>\n\n")),
        _ => ("ERR_ACCESS_DENIED", 0, RETRIEVE, url_error("Access Denied.", "<p>Access control configuration prevents your request from being allowed at this time. Please contact your service provider if you feel this is incorrect.</p>\n\n")),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn squid(status: u16, about: &About<'_>) -> Page {
    let (name, errno, title, content) = squid_template(status);
    let when = date();
    let host = about.url.rsplit_once(':').map_or(about.url, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    let body = format!("{SQUID_HEAD}{content}{SQUID_FOOT}")
        .replace("%t", title)
        .replace("%c", name)
        .replace("%T", &when)
        .replace("%s", SQUID_SERVER)
        .replace("%I", &html_escape(host))
        .replace("%R", &html_escape(about.request_line))
        .replace("%U", &html_escape(about.url));
    let mut headers = vec![
        ("Server".to_string(), SQUID_SERVER.to_string()),
        ("Mime-Version".into(), "1.0".into()),
        ("Date".into(), when),
        ("Content-Type".into(), "text/html;charset=utf-8".into()),
        ("X-Squid-Error".into(), format!("{name} {errno}")),
        ("Vary".into(), "Accept-Language".into()),
        ("Content-Language".into(), "en".into()),
    ];
    if status == 407 {
        headers.push(("Proxy-Authenticate".into(), format!("Basic realm=\"{SQUID_REALM}\"")));
    }
    headers.push(("X-Cache".into(), "MISS from localhost".into()));
    headers.push(("Via".into(), format!("1.1 localhost ({SQUID_SERVER})")));
    Page {
        status,
        reason: standard_reason(status),
        headers,
        body: Some(body.into_bytes()),
        close: matches!(status, 400 | 408 | 413 | 500),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(p: &Page) -> String {
        String::from_utf8(p.serialize(p.close)).unwrap()
    }

    #[test]
    fn nginx_413_is_byte_for_byte_nginx() {
        let t = text(&nginx(413));
        assert!(t.starts_with("HTTP/1.1 413 Request Entity Too Large\r\nServer: nginx/1.22.1\r\nDate: "), "{t}");
        assert!(t.ends_with("Content-Type: text/html\r\nContent-Length: 183\r\nConnection: close\r\n\r\n<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"), "{t}");
        // The lengths nginx 1.22.1 sent for these pages.
        for (status, len) in [(403, 153), (429, 169), (502, 157), (503, 197), (504, 167)] {
            assert_eq!(nginx(status).body.unwrap().len(), len, "{status}");
            assert!(!nginx(status).close);
        }
        let t = text(&nginx(425));
        assert!(t.starts_with("HTTP/1.1 425 \r\n"), "{t}");
        assert!(t.ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"), "{t}");
    }

    #[test]
    fn squid_407_names_the_realm_and_the_target() {
        let p = squid(407, &About { url: "127.0.0.1:8443", request_line: "CONNECT 127.0.0.1:8443 HTTP/1.1" });
        let t = text(&p);
        assert!(t.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\nServer: squid/5.7\r\n"), "{t}");
        assert!(t.contains("\r\nX-Squid-Error: ERR_CACHE_ACCESS_DENIED 0\r\n"), "{t}");
        assert!(t.contains("\r\nProxy-Authenticate: Basic realm=\"Squid proxy-caching web server\"\r\n"), "{t}");
        assert!(t.contains("until you have authenticated yourself"), "{t}");
        assert!(t.contains("<a href=\"127.0.0.1:8443\">127.0.0.1:8443</a>"), "{t}");
        assert!(
            !t.as_bytes().windows(2).any(|w| w[0] == b'%' && w[1].is_ascii_alphabetic()),
            "a placeholder left: {t}"
        );
        let t = text(&squid(503, &About { url: "[::1]:9", request_line: "" }));
        assert!(t.contains("<b>Connection to ::1 failed.</b>"), "{t}");
        assert!(t.contains("X-Squid-Error: ERR_CONNECT_FAIL 111"), "{t}");
    }
}
