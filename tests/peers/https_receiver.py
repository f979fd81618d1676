"""An HTTPS webhook receiver for the webhook output's TLS test (sensor/tests/outputs.rs).

It requires a client certificate signed by --client-ca, and appends one JSON line per POST
to --log: {"client": <the client certificate's common name>, "alert": <the JSON body>}.
It prints "port N" once it listens on 127.0.0.1:N.
"""

import argparse
import http.server
import json
import ssl


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            subject = dict(field[0] for field in self.connection.getpeercert().get("subject", ()))
            with open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps({"client": subject.get("commonName"), "alert": json.loads(body)}) + "\n")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    context.load_verify_locations(args.client_ca)
    context.verify_mode = ssl.CERT_REQUIRED

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
