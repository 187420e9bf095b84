"""Rule tables, one module per family. Importing this package registers every primitive."""

from s2sad.runtime.rules import core  # noqa: F401
from s2sad.runtime.rules import elementwise  # noqa: F401

for _name in ("reductions", "shapes", "indexing", "linalg", "constants", "complex", "special",
              "records"):
    try:
        __import__(f"s2sad.runtime.rules.{_name}")
    except ModuleNotFoundError as _e:  # a family not written yet
        if _e.name != f"s2sad.runtime.rules.{_name}":
            raise

from s2sad.runtime.rules import batching  # noqa: F401,E402  (batch rules of the families above)
