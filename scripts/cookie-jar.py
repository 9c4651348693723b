#!/usr/bin/env python3
"""Runs an HTTP check script as a browser's cookie jar would drive it.

    python3 scripts/cookie-jar.py SCRIPT URL [ARGS...]

For the demo on encrypted cookie sessions (SESSION_STORE=cookie), where the
session lives in the cookie: every response that changes the session sets
a new cookie, which a browser keeps and sends from then on. The check
scripts (../shared/contract/demo_smoke.py, scripts/demo-web-protections.py)
keep a cookie in a variable and do not always pick up the new one, which is
the same session on a server store but an older copy of it here.

This wraps `http.client` so that a request sending a cookie this run saw
replaced sends its latest replacement instead, as a browser would. A
removal cookie (an empty value) is not followed: a script that replays a
cookie after a logout still sends the logged-out cookie, so that check
keeps its meaning (the per-user epoch must refuse it). Nothing else
changes: the script runs unmodified, with its own exit status.
"""
import http.client
import runpy
import sys

JAR = {}  # a `name=value` the server replaced -> its replacement
_request = http.client.HTTPConnection.request
_getresponse = http.client.HTTPConnection.getresponse


def latest(cookie):
    seen = set()
    while cookie in JAR and cookie not in seen:
        seen.add(cookie)
        cookie = JAR[cookie]
    return cookie


def request(self, method, url, body=None, headers=None, **kw):
    headers = dict(headers or {})
    sent = headers.get("Cookie")
    if sent:
        headers["Cookie"] = latest(sent)
    self._jar_sent = headers.get("Cookie")
    return _request(self, method, url, body, headers, **kw)


def getresponse(self):
    r = _getresponse(self)
    sent = getattr(self, "_jar_sent", None)
    for value in r.headers.get_all("set-cookie") or []:
        pair = value.split(";")[0]
        name, _, v = pair.partition("=")
        if sent and v and pair != sent and sent.startswith(name + "="):
            JAR[sent] = pair
    return r


http.client.HTTPConnection.request = request
http.client.HTTPConnection.getresponse = getresponse

if len(sys.argv) < 3:
    sys.exit(__doc__)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
