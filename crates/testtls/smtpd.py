"""A real SMTP server for the email sink's tests: aiosmtpd (Debian's python3-aiosmtpd), run with
/usr/bin/python3.

    smtpd.py PORT OUT [--starttls CERT KEY | --tls CERT KEY] [--auth USER PASS] [--fail-rcpt]

Listens on 127.0.0.1:PORT; appends each message it accepts to OUT as one JSON line (the envelope,
the raw message, and its headers and parts as Python's email package reads them); prints "ready"
once it listens.
"""

import argparse
import email
import email.policy
import json
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, out, fail_rcpt):
        self.out = out
        self.fail_rcpt = fail_rcpt
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.fail_rcpt:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = [
            {"type": p.get_content_type(), "body": p.get_content()}
            for p in msg.walk()
            if not p.is_multipart()
        ]
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "raw": raw.decode("utf-8", "replace"),
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "date": str(msg["date"]),
            "to": str(msg["to"]),
            "content_type": msg.get_content_type(),
            "parts": parts,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
        }
        with self.lock, open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("out")
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--auth", nargs=2, metavar=("USER", "PASS"))
    ap.add_argument("--fail-rcpt", action="store_true")
    args = ap.parse_args()

    def context(cert_key):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*cert_key)
        return ctx

    kwargs = {}
    if args.starttls:
        kwargs["tls_context"] = context(args.starttls)
        kwargs["require_starttls"] = True
    if args.tls:
        kwargs["ssl_context"] = context(args.tls)
    if args.auth:
        user, password = (s.encode() for s in args.auth)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login == user
                and auth_data.password == password
            )
            # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting)
            return AuthResult(success=ok, handled=False)

        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
        # Credentials only over TLS. Under implicit TLS aiosmtpd does not know the connection is
        # encrypted (it only tracks STARTTLS), so its check is off there: the socket is TLS.
        kwargs["auth_require_tls"] = not args.tls
    controller = Controller(
        Recorder(args.out, args.fail_rcpt),
        hostname="127.0.0.1",
        port=args.port,
        **kwargs,
    )
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
