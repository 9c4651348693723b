#!/usr/bin/env python3
"""The demo's token sessions, over HTTP.

Start the demo (and optionally examples/service.rs against it), then:
    python3 scripts/demo-tokens.py http://127.0.0.1:3000 [ACCESS_TTL] [SERVICE_URL]

ACCESS_TTL is the demo's SESSION_ACCESS_TOKEN_TTL (default 300); when it is
at most 5 seconds, the script also waits for an access token to expire.
Checks the contract:
  - POST /api/token {"username","password"} -> {"access_token","refresh_token",
    "token_type":"Bearer","expires_in"}; wrong credentials 401;
  - GET /api/whoami with Bearer -> {"user","sid"}; without or forged: 401;
  - POST /api/token/refresh {"refresh_token"} -> a new pair, same sid; a
    used refresh token -> 401 and the family ends (the newest one fails);
  - POST /api/token/logout (Bearer) -> 204; then the access token and the
    refresh token are refused;
  - GET /.well-known/jwks.json -> the public keys (no private parts);
  - with SERVICE_URL: the service accepts the demo's access tokens and
    refuses a tampered one.
"""
import http.client
import json
import sys
import time
import urllib.parse

base = urllib.parse.urlsplit(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000")
ttl = int(sys.argv[2]) if len(sys.argv) > 2 else 300
service = urllib.parse.urlsplit(sys.argv[3]) if len(sys.argv) > 3 else None
failures = 0


def req(method, path, body=None, bearer=None, at=None):
    at = at or base
    c = http.client.HTTPConnection(at.hostname, at.port, timeout=10)
    h = {}
    if body is not None:
        h["Content-Type"] = "application/json"
    if bearer is not None:
        h["Authorization"] = "Bearer " + bearer
    c.request(method, path, json.dumps(body) if body is not None else None, h)
    r = c.getresponse()
    raw = r.read()
    headers = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw[:80]
    return r.status, data, headers


def expect(name, cond, got):
    global failures
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": got {got!r}"))
    if not cond:
        failures += 1


def sign_in(user="alice", password="alice-pass"):
    return req("POST", "/api/token", {"username": user, "password": password})


status, data, headers = sign_in(password="wrong")
expect("wrong credentials: 401", status == 401, status)

status, pair, headers = sign_in()
expect("sign-in: 200", status == 200, (status, pair))
expect(
    "sign-in: an OAuth token response",
    isinstance(pair, dict)
    and set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    and pair["token_type"] == "Bearer",
    pair,
)
expect("expires_in is SESSION_ACCESS_TOKEN_TTL", pair.get("expires_in") == ttl, pair.get("expires_in"))
expect("token responses are not cached", headers.get("cache-control") == "no-store", headers.get("cache-control"))
expect("no cookie for a token client", "set-cookie" not in headers, headers.get("set-cookie"))

status, me, _ = req("GET", "/api/whoami", bearer=pair["access_token"])
expect("whoami: the user and the session handle", status == 200 and me.get("user") == "alice" and me.get("sid"), me)
sid = me.get("sid") if isinstance(me, dict) else None
status, _, headers = req("GET", "/api/whoami")
expect("whoami without a token: 401", status == 401, status)
expect("a Bearer challenge", "bearer" in headers.get("www-authenticate", "").lower(), headers)
forged = pair["access_token"][:-2] + ("AA" if not pair["access_token"].endswith("AA") else "BB")
expect("a tampered access token: 401", req("GET", "/api/whoami", bearer=forged)[0] == 401, forged)
expect(
    "a refresh token is no access token",
    req("GET", "/api/whoami", bearer=pair["refresh_token"])[0] == 401,
    None,
)

status, second, _ = req("POST", "/api/token/refresh", {"refresh_token": pair["refresh_token"]})
expect("refresh: a new pair", status == 200 and second["refresh_token"] != pair["refresh_token"], (status, second))
status, me2, _ = req("GET", "/api/whoami", bearer=second["access_token"])
expect("the new access token: the same session", status == 200 and me2.get("sid") == sid, me2)
status, third, _ = req("POST", "/api/token/refresh", {"refresh_token": second["refresh_token"]})
expect("refresh again", status == 200, status)

status, data, _ = req("POST", "/api/token/refresh", {"refresh_token": pair["refresh_token"]})
expect("a used refresh token: 401", status == 401, (status, data))
status, data, _ = req("POST", "/api/token/refresh", {"refresh_token": third["refresh_token"]})
expect("after a reuse the newest refresh token fails too", status == 401, (status, data))
status, data, _ = req("POST", "/api/token/refresh", {"refresh_token": "garbage"})
expect("a malformed refresh token: 401", status == 401, status)
status, data, _ = req("POST", "/api/token/refresh", {"nope": 1})
expect("a body without refresh_token: 4xx", 400 <= status < 500 and status != 401, status)

status, pair, _ = sign_in("bob", "bob-pass")
expect("bob signs in", status == 200, status)
expect("bob's token works", req("GET", "/api/whoami", bearer=pair["access_token"])[0] == 200, None)
status, _, _ = req("POST", "/api/token/logout", bearer=pair["access_token"])
expect("token logout: 204", status == 204, status)
status, _, _ = req("GET", "/api/whoami", bearer=pair["access_token"])
expect("after logout the access token is refused", status == 401, status)
status, _, _ = req("POST", "/api/token/refresh", {"refresh_token": pair["refresh_token"]})
expect("after logout the refresh token is refused", status == 401, status)

status, jwks, headers = req("GET", "/.well-known/jwks.json")
keys = jwks.get("keys") if isinstance(jwks, dict) else None
expect("JWKS: public keys", status == 200 and keys and all("kid" in k and "alg" in k for k in keys), jwks)
expect("JWKS: no private parts", keys is not None and not any("d" in k for k in keys), keys)

if service is not None:
    status, pair, _ = sign_in()
    status, me, _ = req("GET", "/whoami", bearer=pair["access_token"], at=service)
    expect("the service accepts the demo's token", status == 200 and me.get("user") == "alice", (status, me))
    status, _, _ = req("GET", "/whoami", bearer=forged, at=service)
    expect("the service refuses a tampered token", status == 401, status)

if ttl <= 5:
    status, pair, _ = sign_in()
    expect("a fresh token works", req("GET", "/api/whoami", bearer=pair["access_token"])[0] == 200, None)
    time.sleep(ttl + 1.2)
    status, _, _ = req("GET", "/api/whoami", bearer=pair["access_token"])
    expect(f"after {ttl}s the access token has expired: 401", status == 401, status)
    status, fresh, _ = req("POST", "/api/token/refresh", {"refresh_token": pair["refresh_token"]})
    expect("the refresh token still gives a new one", status == 200, status)
    expect("and it works", req("GET", "/api/whoami", bearer=fresh["access_token"])[0] == 200, None)

print(f"\n{'FAILED' if failures else 'passed'}: {failures} failure(s)")
sys.exit(1 if failures else 0)
