"""The data-quality gate: Great Expectations suites and checkpoints kept as reviewable code.

- ``expectations/suites/``: one module per suite; every expectation carries a severity
  (``critical`` blocks the pipeline, ``warning`` is reported) and a one-line reason.
- ``expectations/checkpoints.py``: which suite validates which data, grouped by gate stage.
- ``expectations/frames.py``: turns the new landed files (or the marts of a build) into the
  small tables the suites validate, plus the run-time parameters (bands, known ids, clock).
- ``expectations/gate/``: ``validate_landing``, ``validate_marts`` -> ``GateResult``; the API
  the DAG and ``loyalty validate`` call.

The GX file context lives in ``<data_dir>/quality/gx`` (results are kept with the data they
describe) and is written from this code when it changed (expectations/context.py); see docs/quality.md.
"""

import warnings

# Great Expectations imports pyspark.sql.connect, which warns on every import that it does not yet
# fully support pandas 3; the gate never runs Spark through it, so the line is only noise in every
# `loyalty validate` and DAG log.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
