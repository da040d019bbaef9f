"""The Debian mirror of this machine, read from its apt sources (pure parsing, then one read of /etc/apt):
debootstrap uses it, so no mirror host is ever written into the repository."""

from __future__ import annotations

import re
from collections.abc import Iterable

# --- apt sources (pure) --------------------------------------------------------------------------------


def _deb822_stanzas(text: str) -> Iterable[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = ""
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
        elif line[0] in " \t" and key:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            stanza[key] = value.strip()


def http_uri(uri: str) -> str | None:
    uri = uri.strip()
    if re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/\-+]*)?", uri):
        return uri.rstrip("/")
    return None


def mirror_from_sources(deb822: Iterable[str], one_line: Iterable[str], suite: str = "bookworm") -> str | None:
    """The Debian mirror that serves ``suite``: ``URIs:`` of a deb822 ``.sources`` stanza, or a deb line.

    Stanzas and lines that do not list ``suite`` itself (e.g. only ``bookworm-security``) are skipped.
    """
    for text in deb822:
        for stanza in _deb822_stanzas(text):
            if stanza.get("enabled", "yes").lower() == "no" or "deb" not in stanza.get("types", "").split():
                continue
            if suite not in stanza.get("suites", "").split():
                continue
            for uri in stanza.get("uris", "").split():
                if found := http_uri(uri):
                    return found
    for text in one_line:
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2 and words[1] == suite and (found := http_uri(words[0])):
                return found
    return None
