//! A busy SIEM hour: an answer of a chosen size (hundreds of MB) in the real shape, generated
//! once and served from memory, with a `Content-Length` or chunked. For the benchmarks of the
//! read path: a busy real hour is what makes a naive client slow and large.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};

/// What the busy hour holds, so a benchmark can check the counts are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusyCounts {
    /// Distinct `messagesDelivered` records.
    pub delivered: u64,
    /// Distinct `clicksPermitted` records.
    pub clicks_permitted: u64,
    /// Distinct delivered + blocked messages classified impostor.
    pub impostor: u64,
    /// Records in the three counted arrays.
    pub records: u64,
}

/// One generated hour.
#[derive(Debug, Clone)]
pub struct BusyHour {
    /// The hour slot it answers for (windows inside `[slot, slot + 1 h)`).
    pub slot: DateTime<Utc>,
    pub body: Bytes,
    pub counts: BusyCounts,
    /// Serve without `Content-Length` (chunked transfer encoding).
    pub chunked: bool,
}

fn message(i: u64, classification: &str, t: &str) -> String {
    format!(
        r#"{{"GUID":"busy-guid-{g}","id":"busy-{i}","QID":"q{i}","messageID":"<{i}@example.com>","messageTime":"{t}","sender":"s{i}@example.net","recipient":["r{i}@example.com"],"senderIP":"192.0.2.{ip}","subject":"Invoice {i} \"please\" review the attached document","fromAddress":["s{i}@example.net"],"headerFrom":"\"Sender\" <s{i}@example.net>","spamScore":{s},"phishScore":{p},"malwareScore":0,"impostorScore":0.0,"quarantineFolder":null,"quarantineRule":null,"modulesRun":["spam","urldefense","sandbox"],"policyRoutes":["default_inbound"],"completelyRewritten":"true","messageParts":[{{"contentType":"text/html","filename":"text.html","md5":"008c5926ca861023c1d2a36653fd88e2","sha256":"85738f8f9a7f1b04b5329c590ebcb9e425925c6d0984089c43a022de4f19c281","sandboxStatus":null,"disposition":"inline","oContentType":"text/html"}}],"threatsInfoMap":[{{"threatID":"{x:032x}","threatStatus":"active","classification":"{classification}","threatUrl":"https://threatinsight.example/threat/{x:032x}","threatTime":"{t}","threat":"http://bad.example/{i}","campaignID":null,"threatType":"url"}}]}}"#,
        g = i / 3,
        ip = i % 250,
        s = i % 100,
        p = (i * 7) % 100,
        x = u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    )
}

impl BusyHour {
    /// An hour of about `bytes` bytes for `slot`: four arrays of equal size (delivered, blocked,
    /// clicks permitted, clicks blocked); one message in ten is an impostor.
    pub fn generate(slot: DateTime<Utc>, bytes: usize, chunked: bool) -> Self {
        let t = (slot + chrono::Duration::minutes(10)).to_rfc3339_opts(SecondsFormat::Millis, true);
        let end = (slot + chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut out = String::with_capacity(bytes + 4096);
        out.push_str(&format!(r#"{{"queryEndTime":"{end}""#));
        let mut counts = BusyCounts::default();
        let per_array = bytes / 4;
        let mut i = 0u64;
        for (n, array) in [
            "messagesDelivered",
            "messagesBlocked",
            "clicksPermitted",
            "clicksBlocked",
        ]
        .iter()
        .enumerate()
        {
            out.push_str(&format!(r#","{array}":["#));
            let until = per_array * (n + 1);
            let mut first = true;
            while out.len() < until {
                if !first {
                    out.push(',');
                }
                first = false;
                let impostor = i.is_multiple_of(10);
                out.push_str(&message(i, if impostor { "IMPOSTOR" } else { "phish" }, &t));
                match n {
                    0 => {
                        counts.delivered += 1;
                        counts.impostor += u64::from(impostor);
                    }
                    1 => counts.impostor += u64::from(impostor),
                    2 => counts.clicks_permitted += 1,
                    _ => {}
                }
                if n < 3 {
                    counts.records += 1;
                }
                i += 1;
            }
            out.push(']');
        }
        out.push('}');
        Self {
            slot,
            body: Bytes::from(out),
            counts,
            chunked,
        }
    }

    /// Whether a window `[start, end)` asks for this hour.
    pub fn answers(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        start >= self.slot && end <= self.slot + chrono::Duration::hours(1)
    }

    /// The answer: the whole body, or the same bytes in 64 KiB chunks without a length.
    pub fn response(&self) -> Response {
        if !self.chunked {
            let mut r = (StatusCode::OK, self.body.clone()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return r;
        }
        let body = self.body.clone();
        let chunks = (0..body.len())
            .step_by(64 * 1024)
            .map(move |at| Ok::<_, std::io::Error>(body.slice(at..(at + 64 * 1024).min(body.len()))));
        let mut r = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}
