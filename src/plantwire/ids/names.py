"""Handle and prefix names: parse, validate, normalise. No I/O.

A handle is ``<prefix>/<suffix>`` (RFC 3650 §3): the prefix is a naming authority made of
dot-separated segments, each delegating the next (``88`` → ``88.101`` → ``88.101.5``); the
suffix is any UTF-8 text unique under its prefix and may itself contain ``/``. Prefix records
are ordinary handles ``0.NA/<prefix>``. As in the Handle System, ASCII letters match without
regard to case while every other character matches exactly, so ``88.101.5/SN-1`` and
``88.101.5/sn-1`` are one handle but ``…/Ä`` and ``…/ä`` are two.

Limits and refusals are plantwire's: a handle is at most ``max_bytes`` of UTF-8 (255 by
default, configurable), control characters are refused anywhere, and prefixes are printable
ASCII, as every prefix the national and global systems issue is."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_to_bytes

__all__ = [
    "DEFAULT_MAX_HANDLE_BYTES",
    "PREFIX_AUTHORITY",
    "Handle",
    "HandleSyntaxError",
    "match_key",
    "parse_handle",
    "parse_prefix",
    "prefix_chain",
    "prefix_record",
    "unquote_handle",
    "url_path",
]

DEFAULT_MAX_HANDLE_BYTES = 255
PREFIX_AUTHORITY = "0.NA"  # the prefix under which every prefix's own record lives

_PREFIX_SEGMENT = re.compile(r"[!-~]+")  # printable ASCII, no space
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_AUTHORITY_KEY = PREFIX_AUTHORITY.lower()


_DOT_SEGMENTS = {".": "%2E", "..": "%2E%2E"}


def url_path(handle: str) -> str:
    """A handle as a URL path, ``88.101.5/SN 1`` → ``88.101.5/SN%201``: each ``/``-separated
    segment percent-encoded, ``.`` and ``..`` segments too — HTTP clients and browsers remove
    those, so a handle named ``88.101.5/../../v1/users/x`` would otherwise name another path
    of the same server (and a request for it carry its sender's credentials there)."""
    return "/".join(_DOT_SEGMENTS.get(s, quote(s, safe="")) for s in handle.split("/"))


class HandleSyntaxError(ValueError):
    """Text that is not a valid handle or prefix; the message says what is wrong."""


def match_key(text: str) -> str:
    """The form two names are compared in: ASCII letters lower-cased, all else as it is."""
    return text.translate(_ASCII_UPPER)


def parse_prefix(text: str) -> str:
    """Validate a prefix (``88``, ``88.101.5``, ``0.NA``); returns it unchanged."""
    if not text:
        raise HandleSyntaxError("A prefix cannot be empty.")
    if "/" in text:
        raise HandleSyntaxError(f"A prefix cannot contain '/': {text!r}.")
    for segment in text.split("."):
        if not segment:
            raise HandleSyntaxError(
                f"Prefix {text!r} has an empty segment (two dots, or one at an end)."
            )
        if not _PREFIX_SEGMENT.fullmatch(segment):
            raise HandleSyntaxError(
                f"Prefix {text!r} may hold only printable ASCII characters without spaces."
            )
    return text


def prefix_chain(prefix: str) -> list[str]:
    """Every prefix from the top to ``prefix``: ``88.101.5`` → ``[88, 88.101, 88.101.5]``."""
    segments = parse_prefix(prefix).split(".")
    return [".".join(segments[: n + 1]) for n in range(len(segments))]


@dataclass(frozen=True, slots=True)
class Handle:
    """A parsed handle. Compare with ``key``, not the raw text (case rules above)."""

    prefix: str
    suffix: str
    # Derived once: every lookup, permission check and write asks for them.
    key: str = field(init=False, repr=False, compare=False)
    is_prefix_record: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = f"{self.prefix}/{self.suffix}"
        object.__setattr__(self, "key", match_key(text))
        # Whether this is the record of a prefix (``0.NA/<prefix>``).
        object.__setattr__(self, "is_prefix_record", match_key(self.prefix) == _AUTHORITY_KEY)

    def __str__(self) -> str:
        return f"{self.prefix}/{self.suffix}"

    @property
    def authority(self) -> str:
        """The prefix whose node is responsible for this handle: for a prefix record the
        prefix it describes, for any other handle its own prefix."""
        return self.suffix if self.is_prefix_record else self.prefix


def parse_handle(text: str, max_bytes: int = DEFAULT_MAX_HANDLE_BYTES) -> Handle:
    """Parse ``prefix/suffix`` text (already percent-decoded)."""
    if not text:
        raise HandleSyntaxError("A handle cannot be empty.")
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise HandleSyntaxError(
            f"A handle may have at most {max_bytes} bytes of UTF-8; this has {size}."
        )
    if _CONTROL.search(text):
        raise HandleSyntaxError("A handle cannot contain control characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise HandleSyntaxError("A handle must be valid Unicode (no lone surrogates).") from error
    prefix, slash, suffix = text.partition("/")
    if not slash:
        raise HandleSyntaxError(f"A handle is 'prefix/suffix'; {text!r} has no '/'.")
    if not suffix:
        raise HandleSyntaxError(f"Handle {text!r} has an empty suffix.")
    parse_prefix(prefix)
    if match_key(prefix) == _AUTHORITY_KEY:
        parse_prefix(suffix)  # 0.NA/<prefix>: the suffix must itself be a prefix
    return Handle(prefix, suffix)


def prefix_record(prefix: str) -> Handle:
    """The handle of ``prefix``'s own record: ``0.NA/<prefix>``."""
    return Handle(PREFIX_AUTHORITY, parse_prefix(prefix))


def unquote_handle(raw: str, max_bytes: int = DEFAULT_MAX_HANDLE_BYTES) -> Handle:
    """Parse a handle as it appears in a URL path or query: percent-encoded UTF-8. Malformed
    escapes (``%G1``, a lone ``%``) and bytes that are not UTF-8 are refused, not guessed at."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", raw):
        raise HandleSyntaxError("Bad percent-encoding: '%' must be followed by two hex digits.")
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise HandleSyntaxError("The percent-decoded handle is not valid UTF-8.") from error
    return parse_handle(text, max_bytes)
