"""Only links that can be followed are accepted: hostile and unusual targets, created then followed (item 2)."""

import json
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shortener import targets
from shortener.errors import ApiError

# Gunicorn's rule for a header value: what a Location must match to be sent at all.
SENDABLE = re.compile(r"[ \t\x21-\x7e\x80-\xff]*")

# (target, what a create answers: the stored URL, or the error code of a 400)
HOSTILE = [
    ("https://bücher.de/straße?q=ü#ä", "https://xn--bcher-kva.de/stra%C3%9Fe?q=%C3%BC#%C3%A4"),
    ("https://ß.de/", "https://xn--zca.de/"),  # non-transitional, as browsers: not ss.de
    ("https://MÜNCHEN.de/", "https://xn--mnchen-3ya.de/"),
    ("https://EXAMPLE.org./x", "https://example.org/x"),
    ("https://example.org/€", "https://example.org/%E2%82%AC"),
    ("https://a\u00adb.example/", "https://ab.example/"),  # a soft hyphen is mapped away
    ("https://a_b.example/", "https://a_b.example/"),
    ("https://[::1]:8080/", "https://[::1]:8080/"),
    ("https://user:pw@example.org/", "https://user:pw@example.org/"),
    # ASCII that RFC 3986 allows nowhere: stored as the Location header sends it.
    ("https://example.org/a[b]", "https://example.org/a%5Bb%5D"),
    ("https://example.org/?#", "https://example.org/"),  # empty query and fragment: the redirect drops them
    ("https://example.org/a?q#", "https://example.org/a?q"),
    ("HTTPS://example.org:/x", "https://example.org/x"),  # the redirect lowercases the scheme, drops an empty port
    ('https://example.org/a[b]<c>^\\?q={x}|"y"#`z`', "https://example.org/a%5Bb%5D%3Cc%3E%5E%5C?q=%7Bx%7D%7C%22y%22#%60z%60"),
    ("https://" + "a" * 64 + ".example/", "invalid_url"),  # a label too long: Werkzeug's IDNA failed at follow
    ("https://a..b/", "invalid_url"),
    ("https://xn--.example/", "invalid_url"),
    ("https://❤.example/", "invalid_url"),  # IDNA2008 has no emoji
    ("https://١.example/", "invalid_url"),  # bidi rule
    ("https://%ff.example/", "invalid_url"),  # percent-encoded bytes that are not UTF-8
    ("https://ex%20ample.org/", "invalid_url"),
    ("https://example.org/\u202eexe.txt", "invalid_url"),  # right-to-left override
    ("https://\u2066example.org/", "invalid_url"),
    ("https://example.org/\x85", "invalid_url"),  # a C1 control
    ("https://example.org/\x00", "invalid_url"),
    ("https://example.org/a b", "invalid_url"),
    ("https://example.org/\ud800", "invalid_url"),  # a lone surrogate: not valid Unicode
    ("http://256.0.0.1/", "invalid_url"),
    ("https://example.org:99999/", "invalid_url"),
    ("javascript:alert(1)", "invalid_url"),
    ("https://", "invalid_url"),
]

# Spellings of the service's own host (localhost in the test client, sho.rt configured, an alias).
LOOPS = [
    "http://LOCALHOST/x", "http://localhost./x", "http://ｌｏｃａｌｈｏｓｔ/x", "http://local%68ost/x",
    "https://sho.rt/x", "https://SHO.RT:443/x", "https://sho%2Ert/x", "https://ｓｈｏ。ｒｔ/x", "https://user@sho.rt/x",
    "https://old.sho.rt/x", "http://0x7f.1/x", "http://2130706433/x", "http://127.1/x",
    # The configured 127.0.0.1 as an IPv6 address that carries it (mapped, compatible, NAT64), on any port.
    "http://[::ffff:127.0.0.1]:5000/x", "http://[::FFFF:7f00:1]/x", "http://[::127.0.0.1]/x",
    "http://[64:ff9b::127.0.0.1]/x",
    # Other spellings of it: octal, a trailing dot, and the names and address that reach the client's own machine.
    "http://0177.0.0.01/x", "http://127.0.0.1./x", "http://0.0.0.0/x", "http://app.localhost/x",
]


@pytest.fixture
def client(make_app):
    return make_app(PUBLIC_BASE_URL="https://sho.rt/", SHORTENER_HOST_ALIASES="old.sho.rt, 127.0.0.1").test_client()


def create(client, url):
    # json.dumps escapes a lone surrogate as \ud800, as a hostile client would send it.
    return client.post("/shorten", data=json.dumps({"url": url}), content_type="application/json")


@pytest.mark.parametrize(("url", "expected"), HOSTILE)
def test_hostile_target_is_refused_or_stored_canonical_and_followable(client, url, expected):
    response = create(client, url)
    if expected == "invalid_url":
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.get_json()["error"]["code"] == "invalid_url"
        return
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["url"] == expected
    followed = client.get("/" + response.get_json()["code"])
    assert followed.status_code == 302
    assert followed.headers["Location"] == expected


@pytest.mark.parametrize("url", LOOPS)
def test_every_spelling_of_the_own_host_is_a_loop(client, url):
    response = create(client, url)
    assert response.status_code == 400
    assert "redirect loop" in response.get_json()["error"]["message"]


def test_the_host_header_neither_refuses_another_host_nor_admits_the_own_one(client):
    # The client writes Host: only configuration says which hosts are this service's own.
    elsewhere = client.post("/shorten", json={"url": "https://example.org/x"}, headers={"Host": "example.org"})
    assert elsewhere.status_code == 201, elsewhere.get_data(as_text=True)
    assert elsewhere.get_json()["short_url"] == "https://sho.rt/" + elsewhere.get_json()["code"]
    for host in ("example.org", "sho.rt.evil.example"):
        loop = client.post("/shorten", json={"url": "https://sho.rt/x"}, headers={"Host": host})
        assert loop.status_code == 400 and "redirect loop" in loop.get_json()["error"]["message"]


def test_without_public_base_url_the_short_url_is_the_path_and_loopback_the_own_host(make_app):
    client = make_app().test_client()
    response = client.post("/shorten", json={"url": "https://example.org/x"}, headers={"Host": "evil.example"})
    assert response.status_code == 201
    assert response.get_json()["short_url"] == "/" + response.get_json()["code"]  # never the Host header
    # Gunicorn listens on loopback: that is where clients reach a service that was given no name.
    for url in ("http://[::ffff:127.0.0.1]:5000/x", "http://localhost:5000/x", "http://[::1]/x", "http://0x7f.1/x"):
        loop = client.post("/shorten", json={"url": url}, headers={"Host": "evil.example"})
        assert loop.status_code == 400 and "redirect loop" in loop.get_json()["error"]["message"], url


# WHATWG's host parser: a host whose last label is a number (digits, or 0x and hexadecimal digits) must be
# an IPv4 address as its IPv4 parser reads it, or browsers refuse the URL (url.spec.whatwg.org, "ends in a number").
NOT_IPV4 = ["http://1.2.3.08/", "http://foo.09/", "http://foo.0/", "http://bar.0.09/", "http://a.1.2.0x./",
            "http://1.2.3.4.5/", "http://foo.0x1f/", "http://1.2.3.0x100/", "http://09/", "http://0x100000000/"]
IPV4_OR_DOMAIN = [("http://1.2.3.4./", "http://1.2.3.4/"), ("http://0x1.0X2.03.4/", "http://1.2.3.4/"),
                  ("http://0x/", "http://0.0.0.0/"), ("http://foo.0x1g/", "http://foo.0x1g/"),
                  ("http://foo.1a/", "http://foo.1a/"), ("http://1.2.3.4a/", "http://1.2.3.4a/"),
                  ("http://１２７.１/", "http://127.0.0.1/")]  # full-width digits map to ASCII first


@pytest.mark.parametrize("url", NOT_IPV4)
def test_a_host_ending_in_a_number_that_is_no_ipv4_address_is_refused(client, url):
    response = create(client, url)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "invalid_url"


@pytest.mark.parametrize(("url", "expected"), IPV4_OR_DOMAIN)
def test_hosts_are_read_as_whatwg_reads_them(url, expected):
    assert targets.check_target(url, 2048) == expected


unicode_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=30)
urls = st.one_of(
    st.builds(lambda h, p: f"https://{h}/{p}", unicode_text, unicode_text),
    st.builds(lambda h: f"http://{h}", st.from_regex(r"[a-zA-Z0-9._%\-\u00c0-\u024f\uff00-\uff5e]{1,40}", fullmatch=True)),
    unicode_text,
    # Printable ASCII in the path, query and fragment: what Werkzeug would re-encode on the way out.
    st.builds(lambda p: f"https://example.org/{p}", st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e))),
)


@pytest.fixture(scope="module")
def shared_client(database_url, redis_url):
    """One app for the whole property run: a new app per example would be slow."""
    from conftest import ServerLikeClient

    from shortener import create_app

    app = create_app({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TESTING": True,
                      "SHORTENER_CREATE_LIMIT": "off"})
    app.test_client_class = ServerLikeClient
    yield app.test_client()
    app.extensions["shortener.db"].close()
    app.extensions["shortener.cache"].close()


@settings(max_examples=150)
@given(urls)
def test_every_accepted_target_can_be_followed(shared_client, url):
    assert_followed_as_stored(shared_client, url)


def assert_followed_as_stored(shared_client, url):
    """A create is a 201 or a 400; a link created redirects with its stored url as the Location, byte for byte."""
    response = create(shared_client, url)
    assert response.status_code in {201, 400}, response.get_data(as_text=True)
    if response.status_code == 400:
        assert response.get_json()["error"]["code"] in {"invalid_url", "url_too_long", "missing_url"}
        return
    stored = response.get_json()["url"]
    assert stored.isascii() and SENDABLE.fullmatch(stored)
    followed = shared_client.get("/" + response.get_json()["code"])
    assert followed.status_code == 302, (url, followed.get_data(as_text=True))
    assert followed.headers["Location"] == stored


# What may come before the "@" of a URL: letters and the characters Werkzeug's redirect encodes there ("@", ":").
userinfo = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e) | st.sampled_from("é€ß"),
                   max_size=20)


@settings(max_examples=150)
@example("a@b:c:d")  # measured on the live stack: stored https://a@b:c:d@..., sent https://a%40b:c%3Ad@...
@example("user:p@ss:w%rd")
@example("@:@")
@given(userinfo)
def test_the_location_sent_is_the_stored_url_whatever_the_userinfo(shared_client, info):
    assert_followed_as_stored(shared_client, f"https://{info}@example.org/p")


@given(unicode_text)
def test_canonical_form_is_stable(url):
    try:
        once = targets.check_target(url, 2048)
    except ApiError:
        return
    assert targets.check_target(once, 2048) == once


@pytest.mark.parametrize(("host", "expected"), [("0x", "0.0.0.0"), ("0X", "0.0.0.0"), ("0x.0X.1", "0.0.0.1"),
                                                ("0x7f.1", "127.0.0.1")])
def test_a_bare_0x_is_the_number_zero_as_whatwg_reads_it(host, expected):
    # Found by `schemathesis run` (http://0X was a 500): WHATWG's IPv4 parser reads "0x" as 0.
    assert targets.canonical_host(host) == expected
