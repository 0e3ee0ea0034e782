"""schemathesis hooks of TestAPIConformsToItsDocument (cmd/uvr/conformance_test.go).

OpenAPI 3.0 states what one value may be, not how two values relate. The few rules of uvr
that tie values together are stated in words in api/openapi.yaml; schemathesis cannot read
them, so a case it generates as valid may break one and be refused, rightly. These hooks
bring such a valid case within the rule, and only a valid case: a case generated to be
invalid is sent as it is, and must be refused.

Each rule below names the words of the document it follows.
"""

import datetime

import schemathesis
from schemathesis import GenerationMode

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


@schemathesis.hook
def map_case(context, case):
    if not _positive(case):
        return case
    if isinstance(case.query, dict) and "start_date" in case.query:
        _within_range_rule(case.query)
    return case
