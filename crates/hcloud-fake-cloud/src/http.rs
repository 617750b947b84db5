//! A small HTTP/1.1 server side: requests with `Content-Length` or chunked bodies, persistent
//! connections (Go's client keeps them alive between polls), JSON answers labelled
//! `application/json`, and a bare 204 without a content type (hcloud-go parses every JSON body).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Upper bounds for what a client may send.
const MAX_LINE: usize = 16 * 1024;
const MAX_HEADERS: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// One parsed request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The query as sent (still percent-encoded).
    pub raw_query: String,
    /// The query, decoded, in order.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The last value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of query parameter `name` (`id=1&id=2`).
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An answer: JSON with a status, or 204 without a body.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Json(u16, serde_json::Value),
    NoContent,
}

impl Reply {
    pub fn status(&self) -> u16 {
        match self {
            Reply::Json(s, _) => *s,
            Reply::NoContent => 204,
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decode `application/x-www-form-urlencoded` text (`+` is a space, as Go encodes it).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn read_line(r: &mut impl BufRead, limit: usize) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.take(limit as u64 + 1).read_until(b'\n', &mut line)?;
    if n > limit {
        return Err(bad("line too long"));
    }
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches(['\r', '\n'])
        .to_string())
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r, MAX_LINE)?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers until the empty line.
            while !read_line(r, MAX_LINE)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        read_line(r, MAX_LINE)?;
    }
}

/// Read the next request; `Ok(None)` when the client closed the connection between requests.
pub fn read_request(r: &mut impl BufRead) -> io::Result<Option<Request>> {
    let line = match read_line(r, MAX_LINE) {
        Ok(l) if l.is_empty() => {
            // EOF, or a stray empty line between requests (allowed by RFC 9112).
            if r.fill_buf()?.is_empty() {
                return Ok(None);
            }
            read_line(r, MAX_LINE)?
        }
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("bad request line"));
    };
    let mut headers = Vec::new();
    let mut total = 0;
    loop {
        let h = read_line(r, MAX_LINE)?;
        total += h.len();
        if total > MAX_HEADERS {
            return Err(bad("headers too large"));
        }
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').ok_or_else(|| bad("bad header"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let mut req = Request {
        method: method.to_string(),
        path,
        query: parse_query(&raw_query),
        raw_query,
        headers,
        body: Vec::new(),
        keep_alive: false,
    };
    let connection = req.header("Connection").unwrap_or("").to_ascii_lowercase();
    req.keep_alive = if version == "HTTP/1.0" {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    let chunked = req
        .header("Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(r)?;
    } else if let Some(len) = req.header("Content-Length") {
        let len: usize = len.parse().map_err(|_| bad("bad Content-Length"))?;
        if len > MAX_BODY {
            return Err(bad("body too large"));
        }
        req.body = vec![0; len];
        r.read_exact(&mut req.body)?;
    }
    Ok(Some(req))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        422 => "Unprocessable Entity",
        423 => "Locked",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Write `reply`; `correlation` goes into `X-Correlation-Id` (hcloud-go v2 quotes it).
pub fn write_reply(
    w: &mut impl Write,
    reply: &Reply,
    keep_alive: bool,
    correlation: &str,
) -> io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let out = match reply {
        Reply::Json(status, v) => {
            let mut body = serde_json::to_vec(v).map_err(io::Error::other)?;
            body.push(b'\n');
            let mut out = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Correlation-Id: {correlation}\r\nConnection: {connection}\r\n\r\n",
                reason(*status),
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(&body);
            out
        }
        Reply::NoContent => format!(
            "HTTP/1.1 204 No Content\r\nX-Correlation-Id: {correlation}\r\nConnection: {connection}\r\n\r\n"
        )
        .into_bytes(),
    };
    w.write_all(&out)?;
    w.flush()
}

/// Serve one connection: requests in turn until the client closes it, asks to close it,
/// stays idle for `idle`, or `keep_going` says stop.
pub fn serve_connection(
    conn: TcpStream,
    idle: Duration,
    keep_going: impl Fn() -> bool,
    mut answer: impl FnMut(&Request) -> (Reply, String),
) -> io::Result<()> {
    conn.set_read_timeout(Some(idle))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    loop {
        let req = match read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let reply = Reply::Json(
                    400,
                    serde_json::json!({"error": {"code": "json_error", "message": format!("malformed request: {e}"), "details": null}}),
                );
                let _ = write_reply(&mut writer, &reply, false, "0");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let (reply, correlation) = answer(&req);
        let keep = req.keep_alive && keep_going();
        write_reply(&mut writer, &reply, keep, &correlation)?;
        if !keep {
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("label_selector=os-flavor%3Darchlinux&page=1&id=1&id=2&x=a+b&bad=%zz");
        assert_eq!(
            q[0],
            ("label_selector".into(), "os-flavor=archlinux".into())
        );
        assert_eq!(q[4], ("x".into(), "a b".into()));
        assert_eq!(q[5], ("bad".into(), "%zz".into()));
    }

    #[test]
    fn two_requests_on_one_connection_and_a_chunked_body() {
        let raw = b"POST /v1/ssh_keys HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /v1/servers?name=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let a = read_request(&mut r).unwrap().unwrap();
        assert_eq!(
            (a.method.as_str(), a.body.as_slice(), a.keep_alive),
            ("POST", &b"{}"[..], true)
        );
        let b = read_request(&mut r).unwrap().unwrap();
        assert_eq!(
            (b.path.as_str(), b.param("name"), b.body.as_slice()),
            ("/v1/servers", Some("a"), &b"abc"[..])
        );
        assert!(!b.keep_alive);
        assert!(read_request(&mut r).unwrap().is_none());
    }

    #[test]
    fn no_content_has_no_content_type() {
        let mut out = Vec::new();
        write_reply(&mut out, &Reply::NoContent, true, "1").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 204"));
        assert!(!text.to_ascii_lowercase().contains("content-type"));
    }
}
