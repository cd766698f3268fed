"""Entity pre-scan: refuse feeds whose prolog declares dangerous XML entities, before feedparser.

feedparser blocks external entities and billion laughs, but its loose parser expands a large
internal entity on every reference without limit (an 88 KiB feed became 1.7 GB; RELIABILITY H2).
So before feedparser sees the bytes we read every `<!ENTITY` declaration of the whole prolog, not
a fixed-size prefix (a 70 KB comment before the DOCTYPE must not hide it), and refuse:

- external entities (SYSTEM / PUBLIC) and parameter entities (`<!ENTITY % …>`),
- more than 32 declarations, or any value longer than 1 KiB,
- values that reference other entities (nesting, recursion, `&#38;` tricks).

Small plain entities (`<!ENTITY id "tag:example.com,">`) stay allowed (feed-parser#256).
Declarations inside comments of the prolog are checked too: feedparser's own DOCTYPE rewrite
finds them there with a regular expression and re-inserts them.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Iterator

from pipeline.errors import FetchError

MAX_ENTITIES = 32
MAX_ENTITY_BYTES = 1024

_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_DECL_HEAD = re.compile(rb"\s*(%\s*)?([^\s'\"%>]*)\s*")
_NESTED = re.compile(
    rb"&(?!#|(?:amp|lt|gt|quot|apos);)|%[A-Za-z_:]|&#0*(?:38|37|60);|&#[xX]0*(?:26|25|3[cC]);"
)
_DOCTYPE_STOP = re.compile(rb"['\"\[>]")
_SUBSET_STOP = re.compile(rb"['\"\]]|<!--|<\?")
_CLOSERS = {b"<!--": b"-->", b"<?": b"?>"}  # a quote is closed by itself
_FIRST_TAG = re.compile(rb"<\w")
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})""")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)


def check_entities(body: bytes, *, content_type: str | None = None) -> None:
    """Raise FetchError when the document's prolog declares entities we refuse.

    The bytes are scanned as they are (every ASCII-compatible encoding) and, when the BOM, the
    HTTP charset or the XML declaration names an encoding that is not ASCII-compatible (UTF-16,
    UTF-32, UTF-7, …), once more decoded, since feedparser would decode them the same way.

    Raises:
        FetchError: "feed declares external entities; refused" and the like.
    """
    for view in _views(body, content_type):
        _scan(view)


def _views(body: bytes, content_type: str | None) -> Iterator[bytes]:
    yield body
    for encoding in _declared_encodings(body, content_type):
        if not _is_ascii_compatible(encoding):
            try:
                yield body.decode(encoding, errors="replace").encode("utf-8")
            except (LookupError, UnicodeError, ValueError):
                continue  # not a text encoding (rot13, base64, …): no parser decodes with it


def _declared_encodings(body: bytes, content_type: str | None) -> list[str]:
    found = []
    head = body[:4]
    if head[:4] in (b"\x00\x00\xfe\xff", b"\x00\x00\x00<"):
        found.append("utf-32-be")
    elif head[:4] in (b"\xff\xfe\x00\x00", b"<\x00\x00\x00"):
        found.append("utf-32-le")
    elif head[:2] == b"\xfe\xff" or head[:2] == b"\x00<":
        found.append("utf-16-be")
    elif head[:2] == b"\xff\xfe" or head[:2] == b"<\x00":
        found.append("utf-16-le")
    elif head == b"\x4c\x6f\xa7\x94":  # "<?xm" in EBCDIC, as feedparser sniffs it
        found.append("cp037")
    match = _CHARSET.search(content_type or "")
    if match:
        found.append(match.group(1))
    declared = _XML_ENCODING.match(body[:512])
    if declared:
        found.append(declared.group(1).decode("ascii"))
    return [name for name in found if _codec_exists(name)]


def _codec_exists(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _is_ascii_compatible(encoding: str) -> bool:
    """True when markup bytes mean the same in `encoding` as in ASCII, both ways.

    UTF-7 encodes `<` as itself but also decodes `+ADw-` to `<`; ISO-2022 and HZ switch to
    two-byte modes with escape sequences: those are scanned decoded.
    """
    probe = "<!ENTITY % x SYSTEM '\"&#38;;[]>-? +ADw- \x1b$B<!\x1b(B ~{<!~}"
    try:
        return (
            probe.encode(encoding) == probe.encode("ascii")
            and probe.encode("ascii").decode(encoding) == probe
        )
    except (UnicodeError, LookupError):
        return False


def _scan(data: bytes) -> None:
    end = _prolog_end(data)
    first_tag = _FIRST_TAG.search(data)
    if first_tag is not None:  # feedparser's own idea of the prolog; scan the larger of both
        end = max(end, first_tag.start())
    for count, match in enumerate(_ENTITY.finditer(data, 0, end), start=1):
        if count > MAX_ENTITIES:
            total = count + len(_ENTITY.findall(data, match.end(), end))
            raise FetchError(f"feed declares {total} entities (limit {MAX_ENTITIES}); refused")
        _check_declaration(data, match.end(), end)


def _check_declaration(data: bytes, start: int, end: int) -> None:
    head = _DECL_HEAD.match(data, start, end)
    assert head is not None  # the pattern matches the empty string
    rest = head.end()
    if data.startswith((b"SYSTEM", b"PUBLIC"), rest):
        raise FetchError("feed declares external entities; refused")
    if head.group(1):
        raise FetchError("feed declares parameter entities; refused")
    quote = data[rest : rest + 1]
    if quote not in (b'"', b"'"):
        return  # not a declaration any parser accepts
    close = data.find(quote, rest + 1, end)
    value_end = close if close >= 0 else end
    size = value_end - rest - 1
    if size > MAX_ENTITY_BYTES:
        raise FetchError(
            f"feed declares an entity of {size} bytes (limit {MAX_ENTITY_BYTES}); refused"
        )
    if _NESTED.search(data, rest + 1, value_end):
        raise FetchError("feed declares nested entity references; refused")


def _prolog_end(data: bytes) -> int:
    """Offset of the root element's `<`: after the XML declaration, PIs, comments and DOCTYPE."""
    pos, size = 0, len(data)
    while True:
        lt = data.find(b"<", pos)
        if lt < 0:
            return size
        if data.startswith(b"<?", lt):
            pos = _after(data, b"?>", lt + 2)
        elif data.startswith(b"<!--", lt):
            pos = _after(data, b"-->", lt + 4)
        elif data.startswith(b"<!DOCTYPE", lt):
            pos = _skip_to(data, lt + 9, _DOCTYPE_STOP, b">")
        elif data.startswith(b"<!", lt):
            pos = _after(data, b">", lt + 2)
        else:
            return lt
        if pos >= size:
            return size


def _after(data: bytes, token: bytes, start: int) -> int:
    found = data.find(token, start)
    return len(data) if found < 0 else found + len(token)


def _skip_to(data: bytes, pos: int, stops: re.Pattern[bytes], end: bytes) -> int:
    """The index just after `end`, skipping quoted values, comments, PIs and an internal subset."""
    while True:
        stop = stops.search(data, pos)
        if stop is None:
            return len(data)
        token = stop.group()
        if token == end:
            return stop.end()
        if token == b"[":
            pos = _skip_to(data, stop.end(), _SUBSET_STOP, b"]")
        else:
            pos = _after(data, _CLOSERS.get(token, token), stop.end())
