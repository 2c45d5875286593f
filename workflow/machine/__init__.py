"""The Workflow Machine: flow definitions and their checks, the process state as plain data, the
eight commands as pure functions over it, and what a brand-scoped caller may do to a process."""
