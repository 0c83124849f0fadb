"""A small fake of HashiCorp Vault's HTTP API for alto's tests (standard
library only): KV v1 `GET /v1/<mount>/<path>`, KV v2
`GET /v1/<mount>/data/<path>`, the `X-Vault-Token` header, and AppRole login
`POST /v1/auth/approle/login`.

    python3 fake_vault.py CONFIG.json

CONFIG: {"mount": "secret", "kv_version": 2, "token": "...",
         "role_id": "...", "secret_id": "...", "tls": [cert, key] (optional),
         "secrets": {"dynaconf/default": {"KEY": "value"}, ...}}

Listens on 127.0.0.1, port 0, and prints the port on its first line.
Each request is appended to CONFIG + ".log" ("METHOD path").
"""

import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONFIG_PATH = sys.argv[1]
with open(CONFIG_PATH) as f:
    CONFIG = json.load(f)
MOUNT = CONFIG.get("mount", "secret")
KV = int(CONFIG.get("kv_version", 2))
TOKENS = {CONFIG["token"]} if CONFIG.get("token") else set()
APPROLE_TOKEN = "approle-client-token-0f3a"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self):
        with open(CONFIG_PATH + ".log", "a") as f:
            f.write(f"{self.command} {self.path}\n")

    def do_POST(self):
        self.record()
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.answer(400, {"errors": ["bad JSON"]})
        if self.path != "/v1/auth/approle/login":
            return self.answer(404, {"errors": []})
        if (
            CONFIG.get("role_id")
            and body.get("role_id") == CONFIG["role_id"]
            and body.get("secret_id") == CONFIG.get("secret_id")
        ):
            TOKENS.add(APPROLE_TOKEN)
            return self.answer(200, {"auth": {"client_token": APPROLE_TOKEN}})
        return self.answer(400, {"errors": ["invalid role or secret ID"]})

    def do_GET(self):
        self.record()
        if self.headers.get("X-Vault-Token") not in TOKENS:
            return self.answer(403, {"errors": ["permission denied"]})
        prefix = f"/v1/{MOUNT}/" + ("data/" if KV == 2 else "")
        if not self.path.startswith(prefix):
            return self.answer(404, {"errors": []})
        path = self.path[len(prefix):]
        secret = CONFIG["secrets"].get(path)
        if secret is None:
            return self.answer(404, {"errors": []})
        if KV == 2:
            return self.answer(200, {"data": {"data": secret, "metadata": {"version": 1}}})
        return self.answer(200, {"data": secret, "lease_duration": 2764800})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if CONFIG.get("tls"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*CONFIG["tls"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
