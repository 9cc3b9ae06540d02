"""schemathesis hooks for scripts/fuzz-api.py (loaded through SCHEMATHESIS_HOOKS).

One check replaces schemathesis' `not_a_server_error` (switched off in
scripts/schemathesis.toml): every 5xx fails the run, except the one 5xx the contract gives a
healthy server — a write to a tenant whose move is in its freeze answers 503 TENANT_MIGRATING
with Retry-After (API.md, "Tenant mobility"). The platform admin's pass moves tenants between
the two cells of the PostgreSQL deployment, so a write to the same tenant can land in that
freeze. Anything else — a 500, a 503 of another code, a 503 without Retry-After — fails as
before. fuzz-api.py then checks that no tenant was left frozen (a freeze that never ends would
otherwise hide behind this exception).
"""
import schemathesis


def migrating_answer(response):
    """True when the response is the documented answer to a write during a move's freeze."""
    if response.status_code != 503 or not response.headers.get("retry-after"):
        return False
    try:
        body = response.json()
    except Exception:
        return False
    return isinstance(body, dict) and body.get("code") == "TENANT_MIGRATING"


@schemathesis.check
def not_a_server_error_but_a_freeze(ctx, response, case):
    """5xx is a failure, except 503 TENANT_MIGRATING with Retry-After."""
    if response.status_code >= 500 and not migrating_answer(response):
        raise AssertionError(
            f"Server error: {response.status_code} {response.text[:300]}"
        )
