"""The web server without a browser: the JSON API (the numbers of predict(dict), 422 and 413
shapes, hostile bodies), the page's HTML, the access log, the command line's ``serve``.

The browser tests are in ``test_serve_browser.py``.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("fastapi", reason="the serve extra is not installed")

with warnings.catch_warnings():  # starlette would rather have httpx2: not ours to change
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from data_schemas import FIELDS, FIELDS_BY_NAME, SCHEMA_VERSION, Role
from predictor import predict
from predictor.serve import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_RECORDS,
    DISCLAIMER,
    LOOPBACK_HOSTS,
    ROUTE_CAVEAT,
    create_app,
)
from predictor.serve import _app as app_module

ROOT = Path(__file__).resolve().parents[1]
PATIENT = json.loads((ROOT / "examples" / "patient.json").read_text())
PROBLEM_KEYS = {"record", "field", "column", "value", "rule", "message"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def _expected(record: dict[str, Any]) -> dict[str, Any]:
    return predict(record).to_dict()


# --------------------------------------------------------------------------- POST /predict


@pytest.mark.parametrize(
    "record",
    [
        PATIENT,
        {},
        {"crp_mg_dl": 0.09, "bdnf_pg_ml": "27000", "Route": "IV"},
        {"CRP (mg/L)": "0.9", "Sex": "F", "age_years": None, "substance_use_disorder": "past"},
        {"crp_mg_l": 0.9, "history_of_psychosis": True, "current_naltrexone": "yes"},
        {"crp_mg_l": 400, "bdnf_ng_ml": 190},  # outside the training range: warnings
    ],
    ids=["example-patient", "empty", "other-units-and-aliases", "headers", "safety", "extreme"],
)
def test_serve_predict_one_record_gives_the_numbers_of_predict_dict(
    client: TestClient, record: dict[str, Any]
) -> None:
    response = client.post("/predict", json=record)
    assert response.status_code == 200
    body = response.json()
    expected = _expected(record)
    for key, value in expected.items():
        assert body[key] == value, key  # exact: JSON floats round-trip
    assert response.headers["cache-control"] == "no-store"


def test_serve_predict_list_gives_one_result_per_record_in_order(client: TestClient) -> None:
    records = [PATIENT, {"crp_mg_l": 5, "patient_id": "B"}, {"Site": "Leeds"}]
    response = client.post("/predict", json=records)
    assert response.status_code == 200
    body = response.json()
    assert [r["probability"] for r in body] == [_expected(r)["probability"] for r in records]
    assert [r["patient_id"] for r in body] == ["K-1", "B", None]
    assert body[2]["ignored_keys"] == ["Site"]
    assert client.post("/predict", json=[]).json() == []


@pytest.mark.parametrize(
    ("body", "rule", "field"),
    [
        ({"crp_mg_l": "high"}, "not_a_number", "crp_mg_l"),
        ({"crp_mg_l": '"0.9'}, "not_a_number", "crp_mg_l"),  # a stray quote
        ({"crp_mg_l": "\u041e.9"}, "not_a_number", "crp_mg_l"),  # Cyrillic O, a look-alike
        ({"age_years": "\uff14\uff15"}, "not_a_number", "age_years"),  # fullwidth digits
        ({"route": "\u0406V"}, "unknown_level", "route"),  # Cyrillic I
        ({"crp_mg_l": "x" * 1_000_000}, "not_a_number", "crp_mg_l"),  # a huge string
        ({"crp_mg_l": True}, "not_a_number", "crp_mg_l"),
        ({"crp_mg_l": [0.9]}, "not_a_number", "crp_mg_l"),
        ({"crp_mg_l": {"value": 0.9, "unit": "mg/L"}}, "not_a_number", "crp_mg_l"),
        ({"sex": {"nested": {"deeper": []}}}, "unknown_level", "sex"),
        ({"family_history_aud": 2}, "not_a_boolean", "family_history_alcohol_use_disorder"),
        ({"failed_antidepressant_trials": 2.5}, "not_an_integer", "failed_antidepressant_trials"),
        ({"age_years": 12}, "out_of_range", "age_years"),
        ({"crp_mg_dl": 60}, "out_of_range", "crp_mg_l"),  # 600 mg/L after conversion
        ({"crp_mg_l": 1, "crp_mg_dl": 0.1}, "duplicate_field", "crp_mg_l"),
        ({"crp": 1}, "unit_unclear", "crp_mg_l"),
    ],
    ids=[
        "text", "stray-quote", "look-alike", "fullwidth", "look-alike-level", "huge-string",
        "boolean-for-number", "list", "object", "nested-object", "boolean-2", "fraction-count",
        "range", "range-after-conversion", "two-units", "no-unit",
    ],
)  # fmt: skip
def test_serve_predict_bad_record_gives_422_with_field_value_and_rule(
    client: TestClient, body: dict[str, Any], rule: str, field: str
) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert all(set(p) == PROBLEM_KEYS for p in problems)
    assert [(p["rule"], p["field"], p["record"]) for p in problems] == [(rule, field, 0)]
    assert len(problems[0]["value"]) <= 200
    assert 0 < len(problems[0]["message"]) < 1000  # a huge value is cut there too


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b'{"crp_mg_l": NaN}', "invalid_json"),
        (b'{"crp_mg_l": Infinity}', "invalid_json"),
        (b'[{"crp_mg_l": -Infinity}]', "invalid_json"),
        (b'{"crp_mg_l": 1e999}', "not_finite"),
        (b'{"crp_mg_l": 1, "crp_mg_l": 2}', "invalid_json"),
        (b'{"crp_mg_l": 0.9', "invalid_json"),
        (b"crp_mg_l=0.9", "invalid_json"),
        (b"", "invalid_json"),
        (b'{"crp_mg_l": "\xff"}', "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b'{"age_years": ' + b"9" * 5000 + b"}", "invalid_json"),
        (b'"a string"', "not_an_object"),
        (b"42", "not_an_object"),
        (b"null", "not_an_object"),
        (b"[1, [2]]", "not_an_object"),
        (json.dumps({f"k{i}": 1 for i in range(50_000)}).encode(), "too_many_keys"),
        (json.dumps({"k" * 1_000_000: 1}).encode(), "key_too_long"),
        (b'{"crp_mg_l": "\\ud800"}', "invalid_json"),
        (b'{"\\udc80": 1}', "invalid_json"),
        (b'[{"patient_id": "A\\udfff", "crp_mg_l": 1}]', "invalid_json"),
        (b'{"route": ["iv"]}', "unknown_level"),
    ],
    ids=[
        "nan", "infinity", "minus-infinity", "overflow", "duplicate-key", "truncated", "form",
        "empty", "not-utf8", "deep-nesting", "huge-integer", "string", "number", "null",
        "list-of-non-objects", "50000-keys", "huge-key", "lone-surrogate-value",
        "lone-surrogate-key", "lone-surrogate-id", "list-as-level",
    ],
)  # fmt: skip
def test_serve_predict_body_that_is_not_records_gives_422_never_500(
    client: TestClient, content: bytes, rule: str
) -> None:
    response = client.post(
        "/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert problems and {p["rule"] for p in problems} == {rule}
    assert all(set(p) == PROBLEM_KEYS for p in problems)


def test_serve_predict_problems_of_every_record_are_listed_and_none_is_scored(
    client: TestClient,
) -> None:
    response = client.post("/predict", json=[PATIENT, {"crp_mg_l": "high"}, 7, {"age_years": 5}])
    assert response.status_code == 422
    body = response.json()
    assert [(p["record"], p["rule"]) for p in body["problems"]] == [
        (1, "not_a_number"),
        (2, "not_an_object"),
        (3, "out_of_range"),
    ]
    assert "records 1, 2, 3" in body["detail"]


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from([f.name for f in FIELDS] + ["crp_mg_dl", "CRP (mg/L)", "Sex", "x"])


@given(st.dictionaries(_keys, _json_values, max_size=6) | st.lists(_json_values, max_size=3))
def test_serve_predict_any_json_gives_200_or_422(body: Any) -> None:
    with TestClient(_APP) as test_client:
        response = test_client.post("/predict", json=body)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200 and isinstance(body, dict):
        assert response.json()["probability"] == predict(body).probability


_APP = create_app()


def test_serve_body_over_the_limit_gives_413_before_it_is_parsed() -> None:
    with TestClient(create_app(max_body_bytes=1000)) as small:
        response = small.post("/predict", content=b"{" + b" " * 2000 + b"}")
        assert response.status_code == 413
        assert "1,000 bytes" in response.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b"[" + b" " * 600
            yield b" " * 600 + b"]"

        response = small.post("/predict", content=chunks())
        assert response.status_code == 413
        assert small.post("/predict", json={"crp_mg_l": 1}).status_code == 200


def test_serve_more_records_than_the_limit_gives_413(client: TestClient) -> None:
    response = client.post("/predict", json=[{}] * (DEFAULT_MAX_RECORDS + 1))
    assert response.status_code == 413
    assert f"limit of {DEFAULT_MAX_RECORDS}" in response.json()["detail"]
    assert client.post("/predict", json=[{}] * DEFAULT_MAX_RECORDS).status_code == 200


# --------------------------------------------------------------------------- schema, health, docs


def test_serve_schema_is_the_field_table(client: TestClient) -> None:
    body = client.get("/schema").json()
    assert body["schema_version"] == SCHEMA_VERSION
    inputs = [f for f in FIELDS if f.role in (Role.ID, Role.PREDICTOR, Role.SAFETY)]
    assert [f["name"] for f in body["fields"]] == [f.name for f in inputs]
    for shown in body["fields"]:
        field = FIELDS_BY_NAME[shown["name"]]
        assert (shown["kind"], shown["role"], shown["unit"]) == (field.kind, field.role, field.unit)
        assert (shown["low"], shown["high"]) == (field.low, field.high)
        assert shown["levels"] == list(field.levels)
        assert [(a["name"], a["factor"]) for a in shown["aliases"]] == [
            (a.name, a.factor) for a in field.aliases
        ]
    crp = next(f for f in body["fields"] if f["name"] == "crp_mg_l")
    assert {"name": "crp_mg_dl", "unit": "mg/dL", "factor": 10.0} in crp["aliases"]


def test_serve_health(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["schema_version"] == SCHEMA_VERSION


def test_serve_openapi_documents_the_api_from_the_same_models(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {"/predict", "/schema", "/health"}
    predict_op = spec["paths"]["/predict"]["post"]
    assert {"200", "413", "422"} <= set(predict_op["responses"])
    one, many = predict_op["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert many["maxItems"] == DEFAULT_MAX_RECORDS
    inputs = {f.name for f in FIELDS if f.role in (Role.ID, Role.PREDICTOR, Role.SAFETY)}
    assert inputs <= set(one["properties"])
    assert set(spec["components"]["schemas"]["ProblemOut"]["properties"]) == PROBLEM_KEYS
    docs = client.get("/docs")
    assert docs.status_code == 200 and "POST /predict" in docs.text and DISCLAIMER in docs.text


def _external_references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|action)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""", html)


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_serve_pages_load_nothing_from_elsewhere(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert _external_references(response.text) == []
    assert "@import" not in client.get("/static/page.css").text
    assert "url(" not in client.get("/static/page.css").text
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "http" not in policy
    assert DISCLAIMER in response.text


# --------------------------------------------------------------------------- the page


def _probability(html: str, element: str = "probability") -> float:
    found = re.search(rf'id="{element}" data-probability="([^"]+)"', html)
    assert found, f"no #{element} on the page"
    return float(found.group(1))


def test_serve_page_form_is_generated_from_the_schema(client: TestClient) -> None:
    html = client.get("/").text
    for field in FIELDS:
        if field.role in (Role.PREDICTOR, Role.SAFETY):
            assert f'name="{field.name}"' in html, field.name
    assert 'name="patient_id"' not in html  # the page asks for no identifier
    for name in ("crp_mg_l", "bdnf_ng_ml"):
        units = FIELDS_BY_NAME[name].columns_by_unit()
        choice = re.search(rf'<select name="{name}__unit".*?</select>', html, re.DOTALL)
        assert choice and re.findall(r'value="([^"]+)"', choice.group(0)) == list(units)


def test_serve_page_route_select_offers_every_route_in_words(client: TestClient) -> None:
    html = client.get("/").text
    select = re.search(r'<select id="f-route" name="route".*?</select>', html, re.DOTALL)
    assert select
    options = re.findall(r'<option value="([^"]*)">([^<]*)</option>', select.group(0))
    assert options == [
        ("", "not recorded"),
        ("iv_ketamine", "IV ketamine"),
        ("intranasal_esketamine", "Intranasal esketamine"),
        ("intramuscular_ketamine", "Intramuscular ketamine"),
        ("oral_ketamine", "Oral ketamine"),
        ("sublingual_ketamine", "Sublingual ketamine"),
    ]


NEVER_SAW = (
    "route = sublingual_ketamine was not seen when this model was trained: its route term is "
    "that of an average training patient (contribution 0), and the interval does not cover "
    "what this route changes"
)


def test_serve_route_the_model_never_saw_is_warned_on_the_page_and_in_the_api(
    client: TestClient,
) -> None:
    # the shipped model knows IV and intranasal only
    expected = predict({"crp_mg_l": "0.9", "route": "sublingual_ketamine"})
    assert NEVER_SAW in expected.warnings and expected.contributions["route"] == 0.0
    html = client.post("/", data={"crp_mg_l": "0.9", "route": "sublingual_ketamine"}).text
    assert _probability(html) == expected.probability
    assert f"<li>{NEVER_SAW}</li>" in html
    assert "Sublingual ketamine raises" not in html and "Sublingual ketamine lowers" not in html
    assert 'data-field="route" data-contribution="0.0"' in html  # the chart's route bar
    body = client.post("/predict", json={"crp_mg_l": 0.9, "route": "troche"}).json()
    assert body["warnings"] == list(expected.warnings)
    assert body["contributions"]["route"] == 0.0 and body["reasons"] == list(expected.reasons)


def test_serve_page_submit_shows_the_numbers_of_predict_dict(client: TestClient) -> None:
    form = {k: str(v) for k, v in PATIENT.items() if k != "patient_id"}
    form["crp_mg_l"], form["crp_mg_l__unit"] = "0.09", "mg/dL"
    html = client.post("/", data=form).text
    record = {**PATIENT, "crp_mg_dl": "0.09"}
    del record["crp_mg_l"], record["patient_id"]
    expected = predict(record)
    assert _probability(html) == expected.probability
    assert f"{100 * expected.probability:.1f}%" in html
    for reason in expected.reasons:
        assert reason in html
    assert html.count('class="waterfall"') == 1
    assert len(re.findall(r"<rect[^>]*data-contribution", html)) == len(expected.contributions)


def test_serve_page_empty_form_means_not_measured(client: TestClient) -> None:
    html = client.post("/", data={"crp_mg_l": "", "sex": "", "action": "predict"}).text
    assert _probability(html) == predict({}).probability
    assert "CRP not measured" in html


def test_serve_page_shows_safety_screen_warnings_first(client: TestClient) -> None:
    html = client.post("/", data={"history_of_psychosis": "yes", "crp_mg_l": "1"}).text
    safety = re.search(r'<div class="safety".*?</div>', html, re.DOTALL)
    assert safety and FIELDS_BY_NAME["history_of_psychosis"].caution in safety.group(0)
    assert html.index('id="safety"') < html.index('id="chart"')


def test_serve_page_bad_value_gives_a_message_next_to_the_field(client: TestClient) -> None:
    html = client.post("/", data={"crp_mg_l": "high", "age_years": "45"}).text
    block = re.search(
        r'<div class="field invalid" id="field-crp_mg_l">.*?</div>\s*</div>', html, re.S
    )
    assert block, "the CRP field is not marked invalid"
    assert "is not a number" in block.group(0)
    assert 'id="probability"' not in html  # nothing estimated
    assert 'value="high"' in html and 'value="45"' in html  # what was typed is kept


def test_serve_page_form_with_too_many_fields_gives_413(client: TestClient) -> None:
    body = "&".join(f"f{i}=1" for i in range(600)).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response = client.post("/", content=body, headers=headers)
    assert response.status_code == 413
    assert DISCLAIMER in response.text


def test_serve_page_unknown_unit_is_a_problem_not_a_guess(client: TestClient) -> None:
    html = client.post("/", data={"crp_mg_l": "1", "crp_mg_l__unit": "mmol/L"}).text
    assert 'id="field-crp_mg_l"' in html and "is not a unit of crp_mg_l" in html
    assert 'id="probability"' not in html


def test_serve_page_whatif_shows_new_next_to_old_and_the_route_caveat(client: TestClient) -> None:
    form = {"crp_mg_l": "0.9", "route": "iv_ketamine", "action": "whatif"}
    html = client.post("/", data={**form, "whatif_field": "crp_mg_l", "whatif_value": "5"}).text
    assert _probability(html) == predict({"crp_mg_l": "0.9", "route": "iv_ketamine"}).probability
    assert _probability(html, "whatif-probability") == (
        predict({"crp_mg_l": "5", "route": "iv_ketamine"}).probability
    )
    assert ROUTE_CAVEAT not in html
    html = client.post(
        "/", data={**form, "whatif_field": "route", "whatif_value": "intranasal"}
    ).text
    assert _probability(html, "whatif-probability") == (
        predict({"crp_mg_l": "0.9", "route": "intranasal"}).probability
    )
    assert ROUTE_CAVEAT in html
    html = client.post("/", data={**form, "whatif_field": "crp_mg_l", "whatif_value": "lots"}).text
    assert 'id="whatif-error"' in html and "is not a number" in html


def test_serve_chart_steps_chain_from_the_baseline_to_the_prediction() -> None:
    import math

    from data_schemas import validate_record
    from predictor.serve._chart import render_svg, waterfall

    prediction = predict(PATIENT)
    chart = waterfall(prediction.baseline, prediction.contributions, validate_record(PATIENT))
    assert chart.steps[0].start == prediction.baseline
    assert all(a.end == b.start for a, b in zip(chart.steps, chart.steps[1:], strict=False))
    p = prediction.probability
    assert math.isclose(chart.end, math.log(p / (1 - p)), abs_tol=1e-9)
    sizes = [abs(step.contribution) for step in chart.steps]
    assert sizes == sorted(sizes, reverse=True)
    svg = render_svg(chart)
    positions = [float(x) for x in re.findall(r' x="([0-9.-]+)%"', svg)]
    assert positions and all(-1 <= x <= 101 for x in positions)
    assert "CRP: </text>" not in svg and "0.9 mg/L" in svg  # each value with its unit


# --------------------------------------------------------------------------- log and errors

SECRETS = ("4.321", "SECRET-PATIENT-77", "Leeds-General")
CLIENT_LOGGERS = ("httpx", "httpcore")
"""The test client's own loggers (it logs the URLs it requests): not the server's log."""


def _server_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)
    )


def test_serve_access_log_has_no_patient_values(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    record = {"crp_mg_l": 4.321, "patient_id": "SECRET-PATIENT-77", "Site": "Leeds-General"}
    with caplog.at_level(logging.DEBUG):
        assert client.post("/predict", json=record).status_code == 200
        assert client.post("/predict", json={**record, "age_years": "4.321"}).status_code == 422
        assert client.post("/", data={"crp_mg_l": "4.321"}).status_code == 200
        client.get("/?crp_mg_l=4.321&patient_id=SECRET-PATIENT-77")
        client.get("/patients/SECRET-PATIENT-77")
    logged = _server_log(caplog)
    assert "POST /predict 200" in logged and "POST /predict 422" in logged
    assert "GET / 200" in logged and "GET (other path) 404" in logged
    for secret in SECRETS:
        assert secret not in logged


def test_serve_internal_error_is_500_and_logs_no_message(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crp_mg_l = 4.321 SECRET-PATIENT-77")

    monkeypatch.setattr(app_module, "predict", broken)
    broken_app = TestClient(create_app(), raise_server_exceptions=False)
    with broken_app as broken_client, caplog.at_level(logging.DEBUG):
        response = broken_client.post("/predict", json={"crp_mg_l": 4.321})
    assert response.status_code == 500
    assert "4.321" not in response.text
    logged = _server_log(caplog)
    assert "RuntimeError" in logged
    for secret in SECRETS:
        assert secret not in logged


def test_serve_refuses_other_host_names_on_loopback() -> None:
    with TestClient(create_app(allowed_hosts=LOOPBACK_HOSTS), base_url="http://127.0.0.1") as c:
        assert c.get("/health").status_code == 200
        assert c.get("/health", headers={"host": "rebound.example"}).status_code == 400


# --------------------------------------------------------------------------- command line


def test_cli_loads_the_web_stack_only_for_serve_and_says_how_to_install_it() -> None:
    code = (  # one interpreter for both: each costs ~1.5 s of imports
        "import sys\n"
        "from predictor._cli import main\n"
        "web = ('fastapi', 'uvicorn', 'starlette', 'jinja2')\n"
        "print(sorted(m for m in web if m in sys.modules))\n"
        "sys.modules['fastapi'] = None  # as if the serve extra were not installed\n"
        "sys.exit(main(['serve']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stderr  # score's start-up has none of it
    assert result.returncode == 2
    assert "ketamine-predictor[serve]" in result.stderr


def test_cli_serve_refuses_a_busy_port_and_a_missing_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import socket

    from predictor._cli import main

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = str(busy.getsockname()[1])
        assert main(["serve", "--port", port]) == 2
    assert f"cannot listen on 127.0.0.1 port {port}" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path / "no-model")]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_serve_help_gives_the_servers_limits(capsys: pytest.CaptureFixture[str]) -> None:
    from predictor._cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{DEFAULT_MAX_BODY_BYTES:,} bytes" in text
    assert f"(default: {DEFAULT_MAX_RECORDS})" in text
    assert "127.0.0.1" in text
