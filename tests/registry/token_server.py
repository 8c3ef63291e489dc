#!/usr/bin/env python3
"""A token server for the registry tests' Bearer flow (docker's token auth,
as distribution 2.8's `auth.token` verifies it). Standard library only; the
RS256 signature is made by `openssl dgst -sha256 -sign`.

The JWT header carries `x5c` = the signing certificate (base64 DER), the
same certificate the registry has in its `rootcertbundle`: distribution 2.8
takes the key from `x5c` and verifies the chain against the bundle (a bare
`kid` would have to be a libtrust fingerprint).

Grants what a configured user asks for (Basic on the token request, GET
with `scope` query parameters, or the OAuth2 POST form with
grant_type=password); anonymous callers get `pull` only with
--anonymous-pull, otherwise 401. Wrong credentials: 401.

Listens on 127.0.0.1 (a free port unless --port) and prints
`listening PORT` as its first line of stdout. With --log, one JSON line per
request (user, scopes, what was granted, status), never a password or
token, so a test can count how often a client authenticated.
"""
import argparse
import base64
import binascii
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# distribution 2.8 accepts a token up to this long after its `exp`
# (registry/auth/token/token.go, Leeway).
REGISTRY_LEEWAY_SECONDS = 60
KNOWN_ACTIONS = ("pull", "push", "delete", "*")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Signer:
    def __init__(self, key_file, cert_file):
        self.key_file = key_file
        with open(cert_file, "r", encoding="ascii") as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        self.x5c = base64.b64encode(der).decode("ascii")

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.key_file],
            input=signing_input.encode("ascii"),
            capture_output=True,
            check=True,
        ).stdout
        return signing_input + "." + b64url(signature)


def parse_scope(scope):
    """`repository:NAME:ACTIONS` (NAME may hold ':' for a host-qualified
    name, so split at the first and the last colon)."""
    first = scope.find(":")
    last = scope.rfind(":")
    if first < 0 or last <= first:
        return None
    return scope[:first], scope[first + 1 : last], scope[last + 1 :].split(",")


class Handler(BaseHTTPRequestHandler):
    server_version = "microsnap-test-token-server"

    def log_message(self, fmt, *args):  # no per-request stderr noise
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        user, password = self.basic_credentials()
        self.answer(url.path, query, user, password)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if form.get("grant_type", [""])[0] != "password":
            return self.reply(400, {"error": "unsupported_grant_type"}, None, [])
        query = dict(form)
        # The OAuth2 form has one space-separated scope field.
        query["scope"] = " ".join(form.get("scope", [])).split()
        self.answer(
            url.path,
            query,
            form.get("username", [None])[0],
            form.get("password", [None])[0],
            oauth=True,
        )

    def basic_credentials(self):
        value = self.headers.get("Authorization", "")
        if not value.lower().startswith("basic "):
            return None, None
        try:
            decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        user, _, password = decoded.partition(":")
        return user, password

    def answer(self, path, query, user, password, oauth=False):
        cfg = self.server.cfg
        scopes = query.get("scope", [])
        if path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND"}]}, user, scopes)
        if query.get("service", [cfg.service])[0] != cfg.service:
            return self.reply(400, {"errors": [{"code": "UNKNOWN_SERVICE"}]}, user, scopes)
        if user is None:
            if not cfg.anonymous_pull:
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED"}]}, None, scopes)
            allowed = ("pull",)
        elif user == cfg.user and password == cfg.password:
            allowed = KNOWN_ACTIONS
        else:
            return self.reply(401, {"errors": [{"code": "UNAUTHORIZED"}]}, user, scopes)

        access = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                return self.reply(400, {"errors": [{"code": "INVALID_SCOPE"}]}, user, scopes)
            kind, name, actions = parsed
            granted = [a for a in actions if a in allowed]
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})

        now = int(time.time())
        with self.server.lock:
            self.server.issued += 1
            jti = "%d-%d" % (os.getpid(), self.server.issued)
        claims = {
            "iss": cfg.issuer,
            "sub": user or "",
            "aud": cfg.service,
            # --lifetime is how long the registry accepts the token: it
            # adds its leeway to `exp`, so subtract it here.
            "exp": now + cfg.lifetime - REGISTRY_LEEWAY_SECONDS,
            "nbf": now - 1,
            "iat": now,
            "jti": jti,
            "access": access,
        }
        token = self.server.signer.sign(claims)
        body = {
            "access_token": token,
            "expires_in": cfg.lifetime,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        }
        if not oauth:
            body["token"] = token
        self.reply(200, body, user, scopes, access)

    def reply(self, status, body, user, scopes, access=None):
        cfg = self.server.cfg
        # Logged before answering, so a client that has its answer finds
        # the line.
        if cfg.log:
            line = json.dumps(
                {
                    "method": self.command,
                    "status": status,
                    "user": user,
                    "scopes": scopes,
                    "granted": access or [],
                }
            )
            with self.server.lock, open(cfg.log, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="microsnap-test-token-server"')
        self.end_headers()
        self.wfile.write(data)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--key", required=True, help="PEM RSA key the tokens are signed with")
    p.add_argument("--cert", required=True, help="its certificate (the registry's rootcertbundle)")
    p.add_argument("--issuer", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--anonymous-pull", action="store_true")
    p.add_argument("--lifetime", type=int, default=300,
                   help="seconds the registry accepts a token (expires_in)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate ...")
    p.add_argument("--tls-key", help="... and this key")
    p.add_argument("--log", help="append one JSON line per request here")
    cfg = p.parse_args()
    if cfg.lifetime < 1:
        p.error("--lifetime must be at least 1")

    server = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    server.cfg = cfg
    server.signer = Signer(cfg.key, cfg.cert)
    server.lock = threading.Lock()
    server.issued = 0
    if cfg.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("listening %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
