"""What more than one test module holds the service to: the security headers of every
response, and the role table of an event's routes."""
from __future__ import annotations

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

_SECOND = "2026-12-08T09:00:00%2B01:00"  # the second occurrence of the weekly series the tests share

# (method, path under /api/events/{id}, body, statuses for owner, editor, viewer, stranger)
ROLE_MATRIX = [
    ("GET", "", None, (200, 200, 200, 404)),
    ("GET", "/occurrences?start=2026-12-01T00:00:00Z&end=2027-01-01T00:00:00Z", None, (200, 200, 200, 404)),
    ("GET", "/permissions", None, (200, 200, 200, 404)),
    ("GET", "/history", None, (200, 200, 200, 404)),
    ("GET", "/history/1", None, (200, 200, 200, 404)),
    ("GET", "/changelog", None, (200, 200, 200, 404)),
    ("GET", "/diff/1/1", None, (200, 200, 200, 404)),
    ("PATCH", "", {"title": "changed"}, (200, 200, 403, 404)),
    ("PUT", "", {"location": "elsewhere"}, (200, 200, 403, 404)),
    ("PUT", f"/occurrences/{_SECOND}", {"title": "just this one"}, (200, 200, 403, 404)),
    ("DELETE", f"/occurrences/{_SECOND}", None, (204, 204, 403, 404)),
    ("POST", "/rollback/1", None, (200, 200, 403, 404)),  # the event is at version 2: its title changed
    ("DELETE", "", None, (204, 403, 403, 404)),
    ("POST", "/share", {"user_id": "OTHER", "role": "viewer"}, (200, 403, 403, 404)),
    ("PUT", "/permissions/VIEWER", {"role": "editor"}, (200, 403, 403, 404)),
    ("DELETE", "/permissions/VIEWER", None, (204, 403, 204, 404)),  # the viewer leaves
    ("DELETE", "/permissions/EDITOR", None, (204, 204, 403, 404)),  # the editor leaves
    ("DELETE", "/permissions/OWNER", None, (409, 403, 403, 404)),
]
