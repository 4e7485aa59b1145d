"""Only links that can be followed are accepted: hostile and unusual targets, created then followed (item 2)."""

import json
import re

import pytest
from hypothesis import given, settings
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
