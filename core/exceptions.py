"""The engine's exceptions, one tree, turned into OGC exception JSON in one place.

    EngineError
    ├── NotFound                      404
    │   ├── NoSuchProcess             no process with that id for this user
    │   ├── NoSuchJob                 no job with that id for this user
    │   ├── NoSuchSchedule            no schedule with that id on this process
    │   └── ResultNotReady            the job has no results (yet, or because it failed)
    ├── Unauthorized                  401  no bearer token, or one that does not validate
    ├── Forbidden                     403  a valid token for another user's path
    ├── DuplicatedProcess             409  deploy of an id that exists (Part 2)
    ├── ImmutableProcess              403  replace/undeploy of a process that cannot change
    ├── UnsupportedMediaType          415  deploy/replace body of a type we do not read
    ├── InvalidParameter              400  a query parameter, header or body is wrong
    │   ├── InvalidPackage            the application package does not load or validate
    │   ├── InvalidInput              execute inputs do not match the process description
    │   └── OwsException              a WPS request the service cannot answer, with its OWS
    │                                 exception code (MissingParameterValue, …) and locator
    ├── PayloadTooLarge               413
    ├── ResultsExpired                410  the job's results were removed by the retention policy
    ├── LimitReached                  403  a per-user maximum (processes, schedules), named
    │   └── TooManyJobs               429  too many accepted jobs; with ``Retry-After``
    ├── JobFailed                     500  results asked of a failed job: the failure is the answer
    ├── ServiceUnavailable            503  Prefect (or another service) did not answer in time
    ├── ContainerEngineError          the container engine (podman service, images) is unusable
    └── BackendError                  a job failed in its backend (never an HTTP error:
        ├── ToolFailed                it ends the job ``failed`` with this message)
        ├── JobCancelled
        ├── StagingError
        ├── BackendUnreachable        the backend's service did not answer (after retries)
        └── BackendAuthFailed         the backend's service refused the engine's credentials

Each class carries its HTTP status and the OGC exception type URI; the gateway's single
exception handler reads them.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BackendAuthFailed",
    "BackendError",
    "ContainerEngineError",
    "BackendUnreachable",
    "DuplicatedProcess",
    "EngineError",
    "Forbidden",
    "ImmutableProcess",
    "InvalidInput",
    "InvalidPackage",
    "InvalidParameter",
    "JobCancelled",
    "JobFailed",
    "LimitReached",
    "NoSuchJob",
    "NoSuchProcess",
    "NoSuchSchedule",
    "NotFound",
    "OwsException",
    "PayloadTooLarge",
    "ResultNotReady",
    "ResultsExpired",
    "ServiceUnavailable",
    "StagingError",
    "ToolFailed",
    "TooManyJobs",
    "Unauthorized",
    "UnsupportedMediaType",
]

_P1 = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
_P2 = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0"


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    status: ClassVar[int] = 500
    type_uri: ClassVar[str] = f"{_P1}/server-error"
    title: ClassVar[str] = "Server error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(EngineError):
    status = 404
    type_uri = "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/not-found"
    title = "Not found"


class NoSuchProcess(NotFound):
    type_uri = f"{_P1}/no-such-process"
    title = "No such process"


class NoSuchJob(NotFound):
    type_uri = f"{_P1}/no-such-job"
    title = "No such job"


class NoSuchSchedule(NotFound):
    """No reprocessing schedule with that id on the user's process."""

    title = "No such schedule"


class ResultNotReady(NotFound):
    type_uri = f"{_P1}/result-not-ready"
    title = "Result not ready"


class Unauthorized(EngineError):
    """A request without a bearer token, or with one that does not validate (OIDC mode).

    Answered with ``WWW-Authenticate: Bearer`` (RFC 6750); ``error`` is its error code
    (``invalid_token``, ``invalid_request``), or ``missing_token`` when there was no token
    at all (answered with the bare challenge, as RFC 6750 asks).
    """

    status = 401
    type_uri = "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str, error: str = "invalid_token") -> None:
        super().__init__(detail)
        self.error = error


class Forbidden(EngineError):
    """A valid token used on another user's ``/{user}/ogc-api`` tree."""

    status = 403
    type_uri = "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/forbidden"
    title = "Forbidden"


class DuplicatedProcess(EngineError):
    status = 409
    type_uri = f"{_P2}/duplicated-process"
    title = "Duplicated process"


class ImmutableProcess(EngineError):
    status = 403
    type_uri = f"{_P2}/immutable-process"
    title = "Immutable process"


class UnsupportedMediaType(EngineError):
    status = 415
    type_uri = f"{_P2}/unsupported-media-type"
    title = "Unsupported media type"


class InvalidParameter(EngineError):
    status = 400
    type_uri = f"{_P1}/invalid-parameter"
    title = "Invalid parameter"


class InvalidPackage(InvalidParameter):
    title = "Invalid application package"


class InvalidInput(InvalidParameter):
    """Execute inputs that do not match the process description.

    ``errors`` maps each offending input id to what is wrong with it.
    """

    title = "Invalid input"

    def __init__(self, detail: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or {}


class OwsException(InvalidParameter):
    """A WPS request that cannot be answered, said as an OWS exception.

    ``code`` is the OWS/WPS exception code (``MissingParameterValue``,
    ``InvalidParameterValue``, ``OperationNotSupported``, ``VersionNegotiationFailed``,
    ``NoSuchProcess``, ``NoSuchInput``, ...), ``locator`` the parameter, input or job it is
    about. The WPS answers it as an ``ows:ExceptionReport`` (``api_gateway/wps``); it is
    never raised on the OGC API.
    """

    title = "Invalid WPS request"

    def __init__(self, code: str, detail: str, locator: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.locator = locator


class PayloadTooLarge(EngineError):
    status = 413
    type_uri = f"{_P1}/payload-too-large"
    title = "Payload too large"


class ResultsExpired(EngineError):
    """Results of a job whose results the retention policy removed (its record stays
    until it is purged).

    OGC API - Processes names 410 for expired resources (the workflows extension) but no
    type URI; this one follows the standard's naming.
    """

    status = 410
    type_uri = f"{_P1}/results-expired"
    title = "Results expired"


class LimitReached(EngineError):
    """A per-user maximum (``OAPIP_USER_MAX_PROCESSES``, ``OAPIP_USER_MAX_SCHEDULES``)
    that the request would pass; ``detail`` names it and says what to remove first."""

    status = 403
    type_uri = "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/limit-reached"
    title = "Limit reached"


class TooManyJobs(LimitReached):
    """An execute request of a user who already has ``OAPIP_USER_MAX_QUEUED`` accepted
    jobs; ``retry_after_s`` (seconds) is sent as ``Retry-After``."""

    status = 429
    type_uri = "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class JobFailed(EngineError):
    """Results (or a synchronous execution) of a job that failed.

    OGC API - Processes 1.0 answers the results of a failed job with an exception; it
    defines no type URI for it, so this one follows the standard's naming.
    """

    status = 500
    type_uri = f"{_P1}/job-failed"
    title = "Job failed"


class ServiceUnavailable(EngineError):
    status = 503
    type_uri = f"{_P1}/service-unavailable"
    title = "Service unavailable"


class ContainerEngineError(EngineError):
    """The container engine could not be set up: podman missing, its service down, an
    image that would not build."""


class BackendError(EngineError):
    """A job failed while a backend ran it; ends the job ``failed`` with ``detail``."""


class ToolFailed(BackendError):
    """A CWL tool or workflow step exited unsuccessfully."""


class JobCancelled(BackendError):
    """The job was dismissed while the backend ran it."""


class StagingError(BackendError):
    """An input could not be fetched or an output could not be stored."""


class BackendUnreachable(BackendError):
    """The backend's service (a WES endpoint, a cluster API) did not answer, after retries."""


class BackendAuthFailed(BackendError):
    """The backend's service refused the engine's credentials (HTTP 401/403)."""
