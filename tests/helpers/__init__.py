"""Helpers shared by the tests (builders of small inputs and plans, stand-in job runners); not tests themselves.

Import them as ``from tests.helpers.api import ...``: the repository root is on ``sys.path`` (pytest's
``pythonpath`` setting in pyproject.toml), and the job runner subprocess runs from the root too.
"""
