"""Errors as each OpenStack service writes them, and the apiserver's refusals translated.

Nova and Cinder: `{"itemNotFound": {"code": 404, "message": ...}}`; Keystone:
`{"error": {"code", "message", "title"}}`; Neutron: `{"NeutronError": {"type", "message",
"detail"}}`; Glance: `{"code", "title", "message"}`. A refusal of the apiserver (RBAC,
the admission webhook, quota) keeps its words and gets the status code Nova would use.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum

from aiohttp import web

from kubenova.errors import ApiError


class Service(StrEnum):
    IDENTITY = "identity"
    COMPUTE = "compute"
    IMAGE = "image"
    VOLUME = "volume"
    NETWORK = "network"


NOVA_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    501: "notImplemented",
    503: "serviceUnavailable",
}
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    501: "Not Implemented",
    503: "Service Unavailable",
}
NEUTRON_TYPES = {
    400: "BadRequest",
    401: "NotAuthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
}

# What the inventory says when a claim or an admission goes over a project's quota.
_QUOTA = re.compile(
    r"quota exceeded in project (?P<project>\S+): (?P<what>\S+) "
    r"(?P<used>\d+) \+ (?P<req>\d+) > (?P<limit>\d+)"
)


class Fault(Exception):
    """An answer that is an error: status code and message, shaped per service on the way out."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def nova_quota_message(text: str) -> str | None:
    """Nova's words for a quota refusal in kubenova's, or None when `text` is none."""
    found = _QUOTA.search(text)
    if found is None:
        return None
    what = found["what"]
    return (
        f"Quota exceeded for {what}: Requested {found['req']}, but already used "
        f"{found['used']} of {found['limit']} {what}"
    )


def from_api_error(exc: ApiError) -> Fault:
    """The fault a client of OpenStack sees for a refusal of the apiserver."""
    message = exc.message or str(exc)
    quota = nova_quota_message(message)
    if quota is not None:
        return Fault(403, quota)
    if exc.status in (400, 422):
        return Fault(400, message)
    if exc.status in (401, 403, 404, 409):
        return Fault(exc.status, message)
    if exc.status == 429 or exc.status >= 500:
        return Fault(503, f"the cloud's API server is not answering now: {message}")
    return Fault(400, message)


def render(service: Service, fault: Fault) -> web.Response:
    status, message = fault.status, fault.message
    title = TITLES.get(status, "Error")
    body: object
    if service is Service.IDENTITY:
        body = {"error": {"code": status, "message": message, "title": title}}
    elif service is Service.NETWORK:
        body = {
            "NeutronError": {
                "type": NEUTRON_TYPES.get(status, "Error"),
                "message": message,
                "detail": "",
            }
        }
    elif service is Service.IMAGE:
        body = {"code": status, "title": title, "message": message}
    else:
        body = {NOVA_KEYS.get(status, "computeFault"): {"code": status, "message": message}}
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="/identity"'
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )
