//! Everything this binary writes goes through here: data lines to stdout, messages and logs to
//! stderr. Each line is scrubbed of secrets first, and a closed pipe (`kri values | head`) ends
//! output quietly instead of panicking; the command still exits with its usual code.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use kri_core::secret::scrub_cow;
use kri_core::text::{visible, visible_lines};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// One line of data on stdout.
pub fn out_line(text: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{}", scrub_cow(text)).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Bytes to stdout as they are (a generated script); a closed stdout (`| head`) is ignored.
pub fn out_bytes(bytes: &[u8]) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// One message for people on stderr, its control characters made visible (line breaks kept: a
/// message may have several lines; a value from outside inside it is made visible whole where
/// it is written). A closed stderr is ignored.
pub fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", visible_lines(&scrub_cow(text)));
}

/// `println!` for data: scrubbed, quiet on a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::term::out_line(&format!($($arg)*)) };
}

/// `eprintln!` for messages: scrubbed, quiet on a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::term::err_line(&format!($($arg)*)) };
}

/// The log writer: each event is formatted into a buffer, scrubbed, then written to stderr in
/// one piece.
pub struct ScrubbedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbedStderr {
    type Writer = EventBuffer;
    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer(Vec::new())
    }
}

/// One log event on its way to stderr.
pub struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        // One event, one line: whatever its fields hold, no line break but the last, no escape.
        let text = String::from_utf8_lossy(&self.0);
        let text = scrub_cow(&text);
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let _ = writeln!(std::io::stderr().lock(), "{}", visible(line));
    }
}

/// The agent's and the service's lines, written like every other: scrubbed, quiet on a closed
/// pipe.
pub struct Terminal;

impl kri_agent::Lines for Terminal {
    fn out(&self, line: &str) {
        out_line(line);
    }
    fn err(&self, line: &str) {
        err_line(line);
    }
}
