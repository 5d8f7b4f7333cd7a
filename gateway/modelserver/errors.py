"""Errors of the model server, free of any HTTP import.

The tree (the HTTP edge maps each branch to one status, ``asgi._STATUS``)::

    ModelServerError
    ├── ModelLoadError          the model directory cannot be served (startup)
    ├── ServerStartError        the server cannot listen (e.g. the port is taken)
    ├── InvalidFaultConfig      a fault configuration is out of range (also ValueError)
    └── RequestError            one request cannot be answered
        ├── InvalidRequest      malformed body, unknown/missing tensor, bad datatype/shape
        ├── PayloadTooLarge     the body is over the size limit
        ├── NotFound            no such route
        │   └── ModelNotFound   unknown model name or version
        ├── MethodNotAllowed    the route exists for other methods
        ├── ModelNotReady       the model is not loaded (startup or shutdown)
        └── InferenceFailed     onnxruntime raised while running the model
            └── InjectedFault   the ``error`` fault mode answered on purpose

Messages are written for the client: they name the tensor and the problem and never
carry a stack trace.
"""

from __future__ import annotations


class ModelServerError(Exception):
    """Base of every error the model server raises on purpose."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class ModelLoadError(ModelServerError):
    """The model directory, its card or its artifact cannot be served."""


class ServerStartError(ModelServerError):
    """The HTTP server could not start listening."""


class InvalidFaultConfig(ModelServerError, ValueError):
    """A fault mode, delay, rate or seed is not acceptable."""


class RequestError(ModelServerError):
    """A request that cannot be answered successfully."""


class InvalidRequest(RequestError, ValueError):
    """The request is malformed or does not match the model's inputs and outputs."""


class PayloadTooLarge(RequestError):
    """The request body is larger than the server accepts."""


class NotFound(RequestError):
    """No route matches the request path."""


class ModelNotFound(NotFound):
    """The path names a model or a version this server does not serve."""


class MethodNotAllowed(RequestError):
    """The route exists but not for this HTTP method."""

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class ModelNotReady(RequestError):
    """The model is not loaded yet, or no longer."""


class InferenceFailed(RequestError):
    """onnxruntime raised while running the model."""


class InjectedFault(InferenceFailed):
    """The ``error`` fault mode failed this request on purpose."""
