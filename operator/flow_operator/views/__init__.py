"""Read models that the HTTP API and flowctl both render, pure (no HTTP, no client).

- `runs`: the seed's Flow Run Status table (rows, tasks, search) and the rerun of a run;
- `workflows`: the Workflow list rows and the seed's Workflow status document;
- `paging`: a `Page` of a list and its opaque continue token.

The API (`flow_operator.api`) and the CLI (`flow_operator.cli`) import these and never
each other (an import-linter contract in pyproject.toml holds that).
"""
