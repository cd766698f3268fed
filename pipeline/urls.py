"""URL helpers: canonical form without tracking, redaction of secrets for logs, http(s) checks."""

from __future__ import annotations

from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit

# Query parameters that only track the reader; the same story with and without them is one story.
# Prefixes cover families (utm_source, utm_medium, …).
_TRACKING_PREFIXES = ("utm_", "ns_", "at_custom", "pk_", "mtm_", "_hs")
_TRACKING_NAMES = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "rb_clickid",
        "s_cid",
        "vero_conv",
        "vero_id",
        "wickedid",
        "at_medium",
        "at_campaign",
        "__twitter_impression",
        "_ga",
        "_gl",
    }
)
# Query parameters whose values are secrets in URLs we might log.
_SECRET_NAMES = frozenset(
    {
        "token",
        "access_token",
        "auth",
        "key",
        "api_key",
        "apikey",
        "secret",
        "password",
        "passwd",
        "sig",
        "signature",
        "code",
        "session",
        "sid",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """Return `url` without tracking parameters, fragment, default port, or host/scheme case.

    Used to recognise the same story behind different links (DESIGN "same canonical URL without
    tracking parameters"). The path and the remaining query are kept byte for byte, in order.
    A URL that cannot be parsed, or is not http(s), comes back stripped of its fragment only.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url.split("#", 1)[0]
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return urlunsplit(parts._replace(fragment=""))
    netloc = _canonical_netloc(parts, scheme, port)
    query = "&".join(p for p in parts.query.split("&") if p and not _is_tracking(p))
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def _canonical_netloc(parts: SplitResult, scheme: str, port: int | None) -> str:
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return netloc


def _is_tracking(pair: str) -> bool:
    name = unquote_plus(pair.split("=", 1)[0]).lower()
    return name in _TRACKING_NAMES or name.startswith(_TRACKING_PREFIXES)


def redact_url(url: str) -> str:
    """Return `url` fit for logs: userinfo replaced by `***`, secret-looking query values hidden.

    Feed URLs may carry credentials (`https://user:pass@host/feed`, `?token=…`); logs, error
    messages and `status` must never show them (RELIABILITY W4).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(_redact_pair(p) for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _redact_pair(pair: str) -> str:
    name, sep, _value = pair.partition("=")
    if sep and unquote_plus(name).lower() in _SECRET_NAMES:
        return f"{name}=***"
    return pair


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a feed or webhook URL (only http and https with a host), or None."""
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{parts.scheme or 'no'} scheme in URL; only http and https are allowed"
    return None if host else "no host in URL"
