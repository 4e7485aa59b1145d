"""Property-based validation: whatever the input, a 2xx or a 4xx JSON error, never a 5xx."""

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shortener import codes, create_app, targets
from shortener.errors import ApiError

MAX = 2048

# Valid-looking http(s) URLs built from parts, so most of them are accepted.
hosts = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){1,3}", fullmatch=True)
paths = st.text(alphabet=string.ascii_letters + string.digits + "/-_.~%!$&'()*+,;=:@", max_size=80)
good_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
    st.sampled_from(["http", "https", "HTTP", "Https"]),
    hosts,
    st.sampled_from(["", ":80", ":8080", ":65535"]),
    paths,
)



@given(good_urls)
def test_well_formed_http_urls_are_accepted(url):
    scheme, rest = url.split(":", 1)
    assert targets.check_target(url, MAX) == scheme.lower() + ":" + rest  # as the redirect writes it


@given(st.text(max_size=300))
def test_any_text_is_accepted_or_refused_with_a_400(text):
    try:
        url = targets.check_target(text, MAX)
    except ApiError as exc:
        assert exc.status == 400 and exc.code in {"invalid_url", "url_too_long"}
        return
    # Whatever got through is a usable target: http(s), a host, nothing that could split a header.
    assert url.split(":", 1)[0].lower() in {"http", "https"}
    assert not any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url)


@given(st.sampled_from(["javascript", "data", "file", "vbscript", "ftp", "blob", "about"]), st.text(max_size=50))
def test_dangerous_schemes_are_always_refused(scheme, rest):
    for variant in (scheme, scheme.upper(), scheme.capitalize()):
        with pytest.raises(ApiError):
            targets.check_target(f"{variant}:{rest}", MAX)


@given(hosts, paths)
def test_own_host_is_always_refused(host, path):
    with pytest.raises(ApiError):
        targets.check_target(f"https://{host.upper()}/{path}", MAX, frozenset({host}))


@given(st.text(max_size=40))
def test_custom_codes_accepted_iff_they_match_the_pattern_and_are_not_reserved(code):
    ok = 3 <= len(code) <= 32 and all(c in string.ascii_letters + string.digits + "_-" for c in code)
    ok = ok and code.lower() not in codes.RESERVED
    try:
        assert codes.check_custom(code) == code and ok
    except ApiError as exc:
        assert not ok and exc.status == 400


@pytest.fixture(scope="module")
def client(database_url, redis_url):
    app = create_app(
        {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TESTING": True, "SHORTENER_CREATE_LIMIT": "off"}
    )
    yield app.test_client()
    app.extensions["shortener.db"].close()
    app.extensions["shortener.cache"].close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"url": st.one_of(good_urls, st.text(max_size=60), json_values)},
        optional={
            "code": st.one_of(st.text(max_size=40), json_values),
            "expires_at": st.one_of(st.text(max_size=40), json_values),
        },
    ),
)


@settings(max_examples=120)
@given(bodies)
def test_shorten_never_fails_with_a_5xx(client, body):
    response = client.post("/shorten", data=json.dumps(body), content_type="application/json")
    assert response.status_code in {201, 400, 409}, (body, response.get_data(as_text=True))
    payload = response.get_json()
    if response.status_code == 201:
        assert set(payload) >= {"code", "short_url", "url", "created_at", "expires_at"}
    else:
        assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}


@settings(max_examples=80)
@given(st.binary(max_size=200), st.sampled_from(["application/json", "text/plain", "application/octet-stream", ""]))
def test_raw_bytes_never_fail_with_a_5xx(client, data, content_type):
    response = client.post("/shorten", data=data, content_type=content_type or None)
    assert response.status_code in {201, 400, 409, 415}, response.get_data(as_text=True)
    assert response.is_json


@settings(max_examples=80)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60))
def test_any_path_is_404_or_redirect_json(client, path):
    response = client.get("/" + path.lstrip("/"))
    assert response.status_code in {200, 302, 308, 404, 405, 410}, response.get_data(as_text=True)
