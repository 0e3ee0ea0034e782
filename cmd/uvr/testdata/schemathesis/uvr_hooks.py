"""schemathesis hooks of TestAPIConformsToItsDocument (cmd/uvr/conformance_test.go).

OpenAPI 3.0 states what one value may be, not how two values relate. The few rules of uvr
that tie values together are stated in words in api/openapi.yaml; schemathesis cannot read
them, so a case it generates as valid may break one and be refused, rightly. These hooks
bring such a valid case within the rule, and only a valid case: a case generated to be
invalid is sent as it is, and must be refused.

Each rule below names the words of the document it follows.
"""

import datetime
import json
import os

import schemathesis
from schemathesis import GenerationMode

# The service catalog as the server has it (the test writes it from connectors/catalog).
with open(os.environ["UVR_SERVICE_TYPES"]) as f:
    SERVICE_TYPES = {t["name"]: t for t in json.load(f)}

# Values that pass what the connectors check of a field beyond "not blank".
CREDENTIAL_SAMPLES = {"base_url": "https://api.example.com", "region": "us-east-1"}

# StartDate: "Not after end_date, and the range holds at most 3,660 days (both included)".
MAX_RANGE_DAYS = 3660
LAST_DAY = datetime.date(2105, 12, 31)


def _date(value):
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


def _positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _within_range_rule(query):
    """start_date ≤ end_date and at most MAX_RANGE_DAYS days; a lone start_date gets an end
    within the rule (the default, today, may be before it or too far after it)."""
    start, end = _date(query.get("start_date")), _date(query.get("end_date"))
    if start is None:
        return  # end_date alone: the default start is 29 days before it, never before 1970
    if end is None:
        end = min(start + datetime.timedelta(days=29), LAST_DAY)
    if end < start:
        start, end = end, start
    end = min(end, start + datetime.timedelta(days=MAX_RANGE_DAYS - 1))
    query["start_date"], query["end_date"] = start.isoformat(), end.isoformat()


def _service_rule(body):
    """Credentials: "which fields depend on service_type, as GET /api/service-types lists them";
    service_category: "the type's own category, or empty"."""
    typ = SERVICE_TYPES.get(body.get("service_type"))
    if typ is None:
        return
    if body.get("service_category"):
        body["service_category"] = typ["category"]
    body["credentials"] = {f: CREDENTIAL_SAMPLES.get(f, "uvr-conformance") for f in typ["required"]}


def _mapping_rule(body):
    """PlanFeature.plan: "each plan at most once in a mapping"."""
    seen = set()
    body["mappings"] = [m for m in body.get("mappings", []) if not (m["plan"] in seen or seen.add(m["plan"]))]


def _fx_rule(body):
    """FXRate: quote "not base; a pair is quoted once a day, in one direction", rate "at most 9
    decimal places" (a generated float may have more)."""
    seen, rates = set(), []
    for r in body.get("rates", []):
        pair = (r["base"], r["quote"], r["date"])
        if r["base"] == r["quote"] or pair in seen or (r["quote"], r["base"], r["date"]) in seen:
            continue
        seen.add(pair)
        r["rate"] = min(max(round(r["rate"], 6), 0.000001), 999999999.0)
        rates.append(r)
    body["rates"] = rates


BODY_RULES = {
    ("POST", "/api/services"): _service_rule,
    ("POST", "/api/test-service"): _service_rule,
    ("PUT", "/api/revenue-mapping"): _mapping_rule,
    ("PUT", "/api/fx-rates"): _fx_rule,
}


# The run's own user (the admin whose token it sends): it may change or delete any user but
# that one, or it would lock itself out halfway and test nothing after. Any mode.
OWN_USER_ID = os.environ["UVR_CONFORMANCE_USER_ID"]


@schemathesis.hook
def map_case(context, case):
    if case.operation.path == "/api/users/{id}" and (case.path_parameters or {}).get("id") == OWN_USER_ID:
        case.path_parameters["id"] = "usr_not_the_runs_own"
    if not _positive(case):
        return case
    if isinstance(case.query, dict) and "start_date" in case.query:
        _within_range_rule(case.query)
    rule = BODY_RULES.get((case.method.upper(), case.operation.path))
    if rule is not None and isinstance(case.body, dict):
        rule(case.body)
    return case
