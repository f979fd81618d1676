"""The SMTP output's test peer: a real aiosmtpd server on 127.0.0.1 that, like Gmail, requires
TLS (STARTTLS, or implicit TLS with --implicit-tls) and AUTH (PLAIN or LOGIN) before it takes
mail. It listens on --port (default: a free port) and prints one JSON line {"port": N} once
listening, then one JSON line per accepted message: the envelope, the AUTH login and
mechanism, the TLS version, and the parsed message (subject, headers, every MIME part
decoded). With --defer N it answers the first N messages with a 451 "try again later", as a
relay over its rate limit does."""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import ssl
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Authenticator:
    """Accepts exactly one login and password; remembers which mechanism was used."""

    def __init__(self, login, password):
        self.login = login.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.login
            and auth_data.password == self.password
        ):
            data = {"login": auth_data.login.decode(), "mechanism": mechanism}
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)


class Recorder:
    """Prints every accepted message as one JSON line, after deferring the first `defer`."""

    def __init__(self, defer):
        self.defer = defer

    async def handle_DATA(self, server, session, envelope):
        if self.defer > 0:
            self.defer -= 1
            return "451 4.7.0 Try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = [
            {"content_type": part.get_content_type(), "text": part.get_content()}
            for part in message.walk()
            if not part.is_multipart()
        ]
        ssl_object = server.transport.get_extra_info("ssl_object")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth": session.auth_data,
            "tls_version": ssl_object.version() if ssl_object else None,
            "content_type": message.get_content_type(),
            "subject": str(message["subject"]),
            "from": str(message["from"]),
            "to": str(message["to"]),
            "has_date": message["date"] is not None,
            "has_message_id": message["message-id"] is not None,
            "parts": parts,
        }
        print(json.dumps(record), flush=True)
        return "250 2.0.0 OK"


async def serve(args):
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    authenticator = Authenticator(args.login, args.password)
    recorder = Recorder(args.defer)
    loop = asyncio.get_running_loop()

    def session():
        if args.implicit_tls:
            # The socket is TLS from the start, which aiosmtpd's auth_require_tls cannot see.
            return SMTP(
                recorder,
                hostname="smtp.test",
                authenticator=authenticator,
                auth_required=True,
                auth_require_tls=False,
                loop=loop,
            )
        return SMTP(
            recorder,
            hostname="smtp.test",
            tls_context=tls,
            require_starttls=True,
            authenticator=authenticator,
            auth_required=True,
            loop=loop,
        )

    server = await loop.create_server(session, "127.0.0.1", args.port, ssl=tls if args.implicit_tls else None)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert", required=True, help="server certificate chain, PEM")
    parser.add_argument("--key", required=True, help="server private key, PEM")
    parser.add_argument("--login", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--defer", type=int, default=0, help="answer the first N messages with 451")
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (port 465 style)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    # aiosmtpd warns about its own use of a deprecated attribute; keep only real errors.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
