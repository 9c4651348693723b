#!/usr/bin/env python3
"""The demo's web protections and header transport, over HTTP (issue 10).

Start the demo, then:
    python3 scripts/demo-web-protections.py http://127.0.0.1:3000

Checks the contract the demo adds on top of ../shared/contract/demo_smoke.py:
  - GET /api/csrf gives {"token": ...} and creates an anonymous session if
    there is none; the token changes across login;
  - a wrong or stale X-CSRF-Token is refused (403) and changes nothing; so
    is an unsafe request from another origin (Sec-Fetch-Site, Origin); a
    request with neither header nor token works as before;
  - /api/header/...: the same API with the session in X-Session-Token; a
    response that creates or renews a session carries the token in that
    header, and no Set-Cookie is ever sent there; a cookie's token is no
    header token and the reverse.
"""
import http.client
import json
import sys
import urllib.parse

base = urllib.parse.urlsplit(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000")
failures = 0
TOKEN = "X-Session-Token"


class Reply:
    def __init__(self, status, data, cookie, token, set_cookies):
        self.status = status
        self.data = data
        self.cookie = cookie  # "name=value" of the Set-Cookie, if any
        self.token = token  # the X-Session-Token response header, if any
        self.set_cookies = set_cookies


def req(method, path, cookie=None, body=None, headers=None):
    c = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
    h = dict(headers or {})
    if body is not None:
        h["Content-Type"] = "application/json"
    if cookie:
        h["Cookie"] = cookie
    c.request(method, path, json.dumps(body) if body is not None else None, h)
    r = c.getresponse()
    raw = r.read()
    set_cookies = r.headers.get_all("set-cookie") or []
    token = r.getheader(TOKEN)
    c.close()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw[:80]
    cookie = set_cookies[0].split(";")[0] if set_cookies else None
    return Reply(r.status, data, cookie, token, set_cookies)


def expect(name, cond, got):
    global failures
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": got {got!r}"))
    failures += 0 if cond else 1


def count(cookie):
    return req("GET", "/api/counter", cookie).data


# --- CSRF tokens on the cookie API -------------------------------------------
r = req("GET", "/api/csrf")
ok = r.status == 200 and isinstance(r.data, dict) and isinstance(r.data.get("token"), str) and r.data["token"]
expect("GET /api/csrf gives {token} and creates an anonymous session", ok and r.cookie, (r.status, r.data, r.cookie))
ck, token = r.cookie, (r.data or {}).get("token", "")
r2 = req("GET", "/api/csrf", ck)
expect("every GET /api/csrf masks afresh (the text differs)", r2.status == 200 and r2.data["token"] != token, r2.data)

r = req("POST", "/api/counter", ck, headers={"X-CSRF-Token": token})
expect("POST with the session's token counts", r.status == 200 and r.data == {"count": 1}, (r.status, r.data))
r = req("POST", "/api/counter", ck, headers={"X-CSRF-Token": token[:-2] + ("AA" if token[-2:] != "AA" else "BB")})
expect("POST with a wrong token is 403", r.status == 403, r.status)
other = req("GET", "/api/csrf").data["token"]
r = req("POST", "/api/counter", ck, headers={"X-CSRF-Token": other})
expect("POST with another session's token is 403", r.status == 403, r.status)
r = req("POST", "/api/counter", ck, headers={"Sec-Fetch-Site": "cross-site"})
expect("a cross-site POST (Sec-Fetch-Site) is 403", r.status == 403, r.status)
r = req("POST", "/api/counter", ck, headers={"Origin": "https://evil.example"})
expect("a POST from another Origin is 403", r.status == 403, r.status)
expect("refused requests changed nothing", count(ck) == {"count": 1}, count(ck))
r = req("POST", "/api/counter", ck)
expect("a POST without Origin, Sec-Fetch-Site or token works as before", r.status == 200 and r.data == {"count": 2}, (r.status, r.data))

r = req("POST", "/api/login", ck, {"username": "alice", "password": "alice-pass"}, {"X-CSRF-Token": token})
expect("login with the pre-session's token is 200 with a new cookie", r.status == 200 and r.cookie and r.cookie != ck, (r.status, r.cookie))
ck = r.cookie or ck
r = req("POST", "/api/counter", ck, headers={"X-CSRF-Token": token})
expect("the token from before login is refused after it (403)", r.status == 403, r.status)
r = req("GET", "/api/csrf", ck)
fresh = (r.data or {}).get("token", "")
r = req("POST", "/api/counter", ck, headers={"X-CSRF-Token": fresh})
expect("a token fetched after login works", r.status == 200 and r.data == {"count": 3}, (r.status, r.data))
req("POST", "/api/logout", ck, headers={"X-CSRF-Token": fresh})

# --- the header transport ---------------------------------------------------
r = req("GET", "/api/header/counter")
expect("GET /api/header/counter without a token is {count: 0}, no token, no cookie",
       r.status == 200 and r.data == {"count": 0} and not r.token and not r.set_cookies, (r.status, r.data, r.token))
r = req("POST", "/api/header/counter")
expect("POST /api/header/counter creates a session: the token in X-Session-Token, no Set-Cookie",
       r.status == 200 and r.data == {"count": 1} and r.token and not r.set_cookies, (r.status, r.data, r.token, r.set_cookies))
tok = r.token
r = req("POST", "/api/header/counter", headers={TOKEN: tok})
expect("the header token carries the session", r.status == 200 and r.data == {"count": 2} and not r.set_cookies, (r.status, r.data))
r = req("POST", "/api/header/counter", headers={TOKEN: tok, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
expect("a header session needs no CSRF check (a cross-site POST with the token counts)", r.status == 200 and r.data == {"count": 3}, (r.status, r.data))
r = req("POST", "/api/header/login", body={"username": "alice", "password": "alice-pass"}, headers={TOKEN: tok})
expect("POST /api/header/login renews: a new token in the header, no Set-Cookie",
       r.status == 200 and r.token and r.token != tok and not r.set_cookies, (r.status, r.token, r.set_cookies))
old_tok, tok = tok, r.token or tok
r = req("GET", "/api/header/me", headers={TOKEN: tok})
expect("GET /api/header/me is {user: alice}", r.status == 200 and r.data == {"user": "alice"} and not r.set_cookies, (r.status, r.data))
r = req("GET", "/api/header/me", headers={TOKEN: old_tok})
expect("the token from before login is dead", r.status == 401 and not r.set_cookies, r.status)
r = req("GET", "/api/header/counter", headers={TOKEN: tok})
expect("login kept the counter", r.data == {"count": 3}, r.data)
r = req("GET", "/api/header/sessions", headers={TOKEN: tok})
ok = r.status == 200 and isinstance(r.data, dict) and any(s.get("current") for s in r.data.get("sessions", []))
expect("GET /api/header/sessions lists the current session", ok and not r.set_cookies, (r.status, r.data))

# A cookie's token is no header token, and the reverse (the MAC binds the transport).
r = req("POST", "/api/login", body={"username": "bob", "password": "bob-pass"})
bob_cookie = r.cookie or ""
bob_value = bob_cookie.split("=", 1)[1] if "=" in bob_cookie else ""
r = req("GET", "/api/header/me", headers={TOKEN: bob_value})
expect("a cookie's token sent as X-Session-Token is no session", r.status == 401, r.status)
name = bob_cookie.split("=", 1)[0] if "=" in bob_cookie else "__Host-sid"
r = req("GET", "/api/me", f"{name}={tok}")
expect("a header token sent as the cookie is no session", r.status == 401, r.status)

r = req("POST", "/api/header/logout", headers={TOKEN: tok})
expect("POST /api/header/logout is 204, clears the token (an empty X-Session-Token), no Set-Cookie",
       r.status == 204 and r.token == "" and not r.set_cookies, (r.status, r.token, r.set_cookies))
r = req("GET", "/api/header/me", headers={TOKEN: tok})
expect("after logout the header token is not authenticated", r.status == 401, r.status)

print(f"web protections: {failures} failed")
sys.exit(1 if failures else 0)
