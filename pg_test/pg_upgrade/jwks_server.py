"""A loopback HTTP server for pg_test/pg_upgrade.sh: serves one JWKS (the
file given) to the JWKS fetcher, half a second late, so the fetcher is
seen in pg_stat_activity while it waits. Usage: jwks_server.py PORT FILE"""
import http.server
import sys
import time

PORT, FILE = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        time.sleep(0.5)
        with open(FILE, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
