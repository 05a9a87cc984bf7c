"""The service's errors: one exception type for every answer that is not a prediction, and its OpenAPI shape."""
from __future__ import annotations

from starlette.exceptions import HTTPException

ERROR_DOC = {"description": "an error, said plainly", "content": {"application/json": {"schema": {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "string"}, "errors": {"type": "array", "items": {"type": "string"}}}}}}}


class ApiError(HTTPException):
    def __init__(self, status: int, message: str, errors: list[str] | None = None, headers: dict | None = None):
        super().__init__(status, message, headers)
        self.errors = errors
